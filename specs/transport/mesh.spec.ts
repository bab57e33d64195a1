/**
 * The mesh across real processes on loopback: this spec process runs one node and talks to two
 * node processes (specs/support/mesh-node-process.ts), A and B, which are also connected to each
 * other. Faults (SIGKILL, restart, the gate) are in mesh-faults.spec.ts; hostile peers in
 * mesh-raw-client.spec.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import {
  type RemoteLifecycleEvent,
  type RemoteWorkerMessage,
  remoteWorker,
} from '../fixtures/mesh-behaviors.ts';
import { withDeadline } from '../support/deadline.ts';
import type {
  AdminMessage,
  ConnectResult,
  EchoRequest,
  RelayMessage,
  SinkMessage,
  Verdict,
} from '../support/mesh-fixture-actors.ts';
import { MeshNodeChild } from '../support/mesh-node-child.ts';
import { type SpecNode, settleLibp2pTimersAfterEach, startSpecNode } from '../support/mesh-spec-node.ts';
import { spawnWatcher } from '../support/mesh-watcher.ts';
import { spawnProbe } from '../support/test-system.ts';

const behaviorModule = new URL('../fixtures/mesh-behaviors.ts', import.meta.url).pathname;

describe('mesh across processes', function () {
  settleLibp2pTimersAfterEach();
  this.timeout(30_000);

  const dataDirs: string[] = [];
  const children: MeshNodeChild[] = [];
  let a: MeshNodeChild;
  let b: MeshNodeChild;
  let node: SpecNode;

  function remote<TMsg>(child: MeshNodeChild, actorPath: string): ActorRef<TMsg> {
    return node.system.resolve<TMsg>({ node: child.peerId, path: actorPath });
  }

  before(async () => {
    for (let i = 0; i < 2; i++) dataDirs.push(await mkdtemp(path.join(os.tmpdir(), 'cloudless-mesh-')));
    const args = ['--behavior-module', behaviorModule];
    const started = await Promise.allSettled(
      dataDirs.map((dataDir) => MeshNodeChild.start({ dataDir, args })),
    );
    for (const outcome of started) if (outcome.status === 'fulfilled') children.push(outcome.value);
    for (const outcome of started) if (outcome.status === 'rejected') throw outcome.reason;
    [a, b] = children as [MeshNodeChild, MeshNodeChild];
    node = await startSpecNode({ unreachableAfterMs: 5000 }, { behaviorModules: [behaviorModule] });
    // Connections made here are part of every spec's baseline (the leak hook compares to it).
    expect(await node.mesh.connect(a.address)).to.equal(a.peerId);
    expect(await node.mesh.connect(b.address)).to.equal(b.peerId);
    const linked = await remote<AdminMessage>(a, '/user/admin').ask<ConnectResult>((replyTo) => ({
      type: 'connect',
      address: b.address,
      replyTo,
    }));
    expect(linked).to.deep.equal({ ok: true, peerId: b.peerId });
    // One round trip each way on every link, so each has its stream before the specs start.
    for (const child of children) {
      expect(
        await remote<EchoRequest>(child, '/user/echo').ask<number>((replyTo) => ({ n: 0, replyTo })),
      ).to.equal(0);
    }
  });

  after(async () => {
    try {
      await node?.stop();
    } finally {
      // Whatever happened above, the node processes go (stop() falls back to SIGKILL).
      const exits = await Promise.all(children.map((child) => child.stop()));
      await Promise.all(dataDirs.map((dir) => rm(dir, { recursive: true, force: true })));
      // A node process stopped with SIGTERM stops its mesh and system and exits by itself.
      for (const exit of exits) expect(exit).to.deep.equal({ code: 0, signal: null });
    }
  });

  it('delivers a tell to an actor in another process, and its reply to a local actor', async () => {
    const probe = spawnProbe<number>(node.system);
    remote<EchoRequest>(a, '/user/echo').tell({ n: 41, replyTo: probe.ref });
    expect(await probe.next(5000)).to.equal(41);
  });

  it('answers an ask to an actor in another process', async () => {
    const echo = remote<EchoRequest>(a, '/user/echo');
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, n) =>
        echo.ask<number>((replyTo) => ({ n, replyTo }), { timeoutMs: 5000 }),
      ),
    );
    expect(replies).to.deep.equal(Array.from({ length: 100 }, (_, n) => n));
  });

  it('carries a ref inside a message as a live ref: a relay on A forwards an ask to B, which replies straight to the asker', async () => {
    const relay = remote<RelayMessage>(a, '/user/relay');
    const echoOnB = remote<EchoRequest>(b, '/user/echo');
    const reply = await relay.ask<number>(
      (replyTo) => ({ type: 'forward', to: echoOnB, message: { n: 7, replyTo } }),
      { timeoutMs: 5000 },
    );
    expect(reply).to.equal(7);
  });

  it('hands back a ref to an actor spawned in another process, and the ref reaches it', async () => {
    const admin = remote<AdminMessage>(a, '/user/admin');
    const spawned = await admin.ask<ActorRef<EchoRequest>>((replyTo) => ({
      type: 'spawn-echo',
      name: 'handed-back',
      replyTo,
    }));
    expect(spawned.node).to.equal(a.peerId);
    expect(spawned.path).to.equal('/user/admin/handed-back');
    expect(await spawned.ask<number>((replyTo) => ({ n: 5, replyTo }))).to.equal(5);
    admin.tell({ type: 'stop-child', name: 'handed-back' });
  });

  it('keeps each sender’s order for 3 senders × 20,000 messages into one remote actor', async () => {
    const sink = remote<SinkMessage>(a, '/user/sink');
    sink.tell({ type: 'reset' });
    const perSender = 20_000;
    const chunk = 500;
    const senders = ['s1', 's2', 's3'].map((name) =>
      node.system.spawn(
        Behaviors.setup<'go'>((ctx) => {
          let seq = 0;
          return Behaviors.receiveMessage<'go'>(() => {
            // A chunk per turn, so the three senders' messages interleave on the one link.
            const end = Math.min(perSender, seq + chunk);
            while (seq < end) sink.tell({ sender: name, seq: seq++ });
            if (seq < perSender) ctx.self.tell('go');
            return seq < perSender ? Behaviors.same : Behaviors.stopped;
          });
        }),
      ),
    );
    for (const sender of senders) sender.tell('go');
    const deadline = performance.now() + 20_000;
    let verdict: Verdict;
    do {
      verdict = await sink.ask<Verdict>((replyTo) => ({ type: 'verdict', replyTo }), { timeoutMs: 5000 });
      if (verdict.total >= 3 * perSender) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } while (performance.now() < deadline);
    expect(verdict.counts).to.deep.equal({ s1: perSender, s2: perSender, s3: perSender });
    expect(verdict.firstBreak).to.equal(undefined);
    expect(verdict.inOrder).to.equal(true);
    expect(node.deadLetters.filter((letter) => letter.recipient === '/user/sink')).to.deep.equal([]);
  });

  it('delivers interleaved runs to two remote actors, sent in one turn, each to its actor in order', async () => {
    // One frame carries them all; a path repeated from the envelope before goes as null on the wire.
    const sink = remote<SinkMessage>(a, '/user/sink');
    sink.tell({ type: 'reset' });
    const echo = remote<EchoRequest>(a, '/user/echo');
    const probe = spawnProbe<number>(node.system);
    const pattern = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1];
    let seq = 0;
    let n = 0;
    for (let round = 0; round < 50; round++)
      for (const to of pattern) {
        if (to === 0) sink.tell({ sender: 'runs', seq: seq++ });
        else echo.tell({ n: n++, replyTo: probe.ref });
      }
    for (let i = 0; i < n; i++) expect(await probe.next(5000)).to.equal(i);
    const verdict = await sink.ask<Verdict>((replyTo) => ({ type: 'verdict', replyTo }), { timeoutMs: 5000 });
    expect(verdict.counts).to.deep.equal({ runs: seq });
    expect(verdict.inOrder).to.equal(true);
  });

  it('gives a local watcher Terminated when the remote actor it watches stops', async () => {
    const admin = remote<AdminMessage>(a, '/user/admin');
    const victim = await admin.ask<ActorRef<EchoRequest>>((replyTo) => ({
      type: 'spawn-echo',
      name: 'watched',
      replyTo,
    }));
    const watcher = spawnWatcher(node.system, victim as ActorRef<never>);
    // The watch goes out before this ask on the same link, so A serves it before answering.
    expect(await victim.ask<number>((replyTo) => ({ n: 1, replyTo }))).to.equal(1);
    admin.tell({ type: 'stop-child', name: 'watched' });
    const { signal } = await withDeadline(watcher.outcome, 5000, 'Terminated of the watched remote actor');
    expect(signal.type).to.equal('Terminated');
    expect(signal.ref.node).to.equal(a.peerId);
    expect(signal.ref.path).to.equal('/user/admin/watched');
  });

  it('sends a death notice ahead of a backlog of user messages on the same link', async () => {
    const admin = remote<AdminMessage>(a, '/user/admin');
    const victim = await admin.ask<ActorRef<EchoRequest>>((replyTo) => ({
      type: 'spawn-echo',
      name: 'behind-backlog',
      replyTo,
    }));
    // The backlog goes to a path with no actor here: each message becomes a dead letter the
    // moment the link hands it to the kernel, so counting them counts what has arrived.
    const nowhere = '/user/backlog-target';
    const arrived = (): number => node.deadLetters.filter((letter) => letter.recipient === nowhere).length;
    let arrivedAtDeath = -1;
    const watcher = spawnWatcher(node.system, victim as ActorRef<never>, () => {
      arrivedAtDeath = arrived();
    });
    expect(await victim.ask<number>((replyTo) => ({ n: 1, replyTo }))).to.equal(1);
    const count = 90_000;
    admin.tell({
      type: 'blast',
      to: node.system.resolve({ node: node.peerId, path: nowhere }),
      count,
      pad: 'x'.repeat(64),
      thenStop: 'behind-backlog',
    });
    const { signal } = await withDeadline(watcher.outcome, 10_000, 'Terminated behind the backlog');
    expect(signal.type).to.equal('Terminated');
    // A's stop came after the whole backlog was queued; the death notice still overtook most of it.
    expect(arrivedAtDeath).to.be.below(count / 2);
    await withDeadline(
      (async () => {
        while (arrived() < count) await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      15_000,
      'the whole backlog arriving',
    );
    expect(arrived()).to.equal(count);
  });

  describe('remote spawn', () => {
    /** A local parent whose child runs on `child`'s node; `'stop'` stops the parent (and so the child). */
    function spawnParent(
      name: string,
      on: MeshNodeChild,
      props: { reportTo?: ActorRef<RemoteLifecycleEvent> },
      onSignal?: (signal: { type: string; ref: ActorRef<never>; error?: Error }) => void,
    ): { parent: ActorRef<'stop' | 'stop-child'>; child: Promise<ActorRef<RemoteWorkerMessage>> } {
      let resolveChild!: (ref: ActorRef<RemoteWorkerMessage>) => void;
      const child = new Promise<ActorRef<RemoteWorkerMessage>>((resolve) => {
        resolveChild = resolve;
      });
      const parent = node.system.spawn(
        Behaviors.setup<'stop' | 'stop-child'>((ctx) => {
          const worker = ctx.spawn(remoteWorker.with(props), { name: 'worker', node: on.peerId });
          ctx.watch(worker as ActorRef<never>);
          resolveChild(worker);
          return Behaviors.receiveMessage<'stop' | 'stop-child'>((message) => {
            if (message === 'stop') return Behaviors.stopped;
            ctx.stop(worker as ActorRef<never>);
            return Behaviors.same;
          }).receiveSignal((_ctx, signal) => {
            if (signal.type === 'Terminated' || signal.type === 'ChildFailed') {
              onSignal?.(signal as { type: string; ref: ActorRef<never>; error?: Error });
            }
            return Behaviors.same;
          });
        }),
        { name },
      );
      return { parent, child };
    }

    it('spawns a defineBehavior actor in another process, where it answers asks', async () => {
      const events = spawnProbe<RemoteLifecycleEvent>(node.system);
      const { parent, child } = spawnParent('remote-echo', a, { reportTo: events.ref });
      const worker = await child;
      expect(worker.path).to.equal('/user/remote-echo/worker');
      const started = await events.next(5000);
      expect(started).to.deep.equal({
        type: 'started',
        node: a.peerId,
        // Placed actors live under /host/<placer> on the node that runs them.
        path: `/host/${node.peerId}/user/remote-echo/worker`,
        pid: a.process.pid,
      });
      const reply = await worker.ask<{ n: number; pid: number }>(
        (replyTo) => ({ type: 'echo', n: 3, replyTo }),
        {
          timeoutMs: 5000,
        },
      );
      expect(reply).to.deep.equal({ n: 3, pid: a.process.pid });
      parent.tell('stop');
      expect(await events.next(5000)).to.include({ type: 'stopped', node: a.peerId });
    });

    it('runs the remote actor’s PostStop when its local parent stops it', async () => {
      const events = spawnProbe<RemoteLifecycleEvent>(node.system);
      let terminated: string | undefined;
      const { parent } = spawnParent('stops-its-child', b, { reportTo: events.ref }, (signal) => {
        terminated = signal.type;
      });
      expect(await events.next(5000)).to.include({ type: 'started', node: b.peerId });
      parent.tell('stop-child');
      const stopped = await events.next(5000);
      expect(stopped).to.deep.equal({
        type: 'stopped',
        node: b.peerId,
        path: `/host/${node.peerId}/user/stops-its-child/worker`,
        pid: b.process.pid,
      });
      await withDeadline(
        (async () => {
          while (terminated === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
        })(),
        5000,
        'Terminated of the stopped remote child',
      );
      expect(terminated).to.equal('Terminated');
      parent.tell('stop');
    });

    it('gives the local parent ChildFailed when the remote actor fails', async () => {
      let resolveSignal!: (signal: { type: string; ref: ActorRef<never>; error?: Error }) => void;
      const received = new Promise<{ type: string; ref: ActorRef<never>; error?: Error }>((resolve) => {
        resolveSignal = resolve;
      });
      const { parent, child } = spawnParent('failing-parent', a, {}, resolveSignal);
      (await child).tell({ type: 'crash' });
      const signal = await withDeadline(received, 5000, 'ChildFailed from the remote child');
      expect(signal.type).to.equal('ChildFailed');
      expect(signal.ref.path).to.equal('/user/failing-parent/worker');
      expect(signal.error).to.be.instanceOf(Error);
      parent.tell('stop');
    });
  });
});
