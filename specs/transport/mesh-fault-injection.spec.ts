/**
 * Fault injection in the mesh (transport/mesh-faults.ts): partitions, random drops and delay
 * between in-process nodes on loopback, and the IPC commands of transport/mesh-fault-ipc.ts with
 * a real child process (specs/fixtures/mesh-fault-node.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import sinon from 'sinon';
import { mulberry32 } from '../../actors/raft/mulberry32.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { UnavailableError } from '../../runtime/errors.ts';
import {
  type FaultAck,
  type FaultIpcChannel,
  faultInjectionEnv,
  installFaultIpc,
} from '../../transport/mesh-fault-ipc.ts';
import { partitionDeadLetterReason } from '../../transport/mesh-faults.ts';
import { rejectionOf, until, withDeadline } from '../support/deadline.ts';
import type { EchoRequest, SinkMessage, Verdict } from '../support/mesh-fixture-actors.ts';
import { echoBehavior, sinkBehavior } from '../support/mesh-fixture-actors.ts';
import { type SpecNode, settleLibp2pTimersAfterEach, startSpecNode } from '../support/mesh-spec-node.ts';
import { spawnWatcher } from '../support/mesh-watcher.ts';

const unreachableAfterMs = 800;

function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    const step = mulberry32(state);
    state = step.next;
    return step.value;
  };
}

/**
 * Mocha arms an async hook's timeout timer once the hook's synchronous part returned; a node
 * started before that would count the timer of the later hook that stops it as its own leak.
 */
async function armedHookTimer(): Promise<void> {
  await Promise.resolve();
}

/** A collector of numbers on `node`, at /user/<name>. */
function spawnCollector(node: SpecNode, name: string): number[] {
  const received: number[] = [];
  node.system.spawn(
    Behaviors.receiveMessage<number>((n) => {
      received.push(n);
      return Behaviors.same;
    }),
    { name },
  );
  return received;
}

describe('mesh fault injection', function () {
  this.timeout(30_000);
  settleLibp2pTimersAfterEach();

  describe('between in-process nodes', () => {
    let a: SpecNode;
    let b: SpecNode;
    let c: SpecNode;

    beforeEach(async () => {
      const init = { unreachableAfterMs, reconnect: { minMs: 50, maxMs: 200 }, dialTimeoutMs: 1000 };
      await armedHookTimer();
      a = await startSpecNode(init);
      b = await startSpecNode(init);
      c = await startSpecNode(init);
      for (const node of [a, b, c]) {
        node.system.spawn(echoBehavior(), { name: 'echo' });
        node.system.spawn(sinkBehavior(), { name: 'sink' });
      }
      // Every pair connected both ways, with a round trip on each link.
      for (const from of [a, b, c]) {
        for (const to of [a, b, c]) {
          if (from === to) continue;
          await from.mesh.connect(to.mesh.multiaddrs[0] as string);
          expect(await echo(from, to).ask<number>((replyTo) => ({ n: 1, replyTo }))).to.equal(1);
        }
      }
    });

    afterEach(async () => {
      // Every mesh first: a partitioned link redials on timers until its mesh stops, which each
      // node's stop (it waits for its resources to go) would otherwise count against it.
      await Promise.all([a, b, c].map((node) => node?.mesh.stop()));
      for (const node of [c, b, a]) await node?.stop();
    });

    function echo(from: SpecNode, to: SpecNode): ActorRef<EchoRequest> {
      return from.system.resolve<EchoRequest>({ node: to.peerId, path: '/user/echo' });
    }

    function sink(from: SpecNode, to: SpecNode): ActorRef<SinkMessage> {
      return from.system.resolve<SinkMessage>({ node: to.peerId, path: '/user/sink' });
    }

    function connectedTo(from: SpecNode, to: SpecNode): boolean {
      return from.mesh.node
        .getConnections()
        .some((connection) => connection.remotePeer.toString() === to.peerId);
    }

    /** Partitions `x` and `y` from each other, both ways (as a chaos harness does). */
    function partition(x: SpecNode, y: SpecNode): void {
      x.mesh.enableFaultInjection().partition([y.peerId]);
      y.mesh.enableFaultInjection().partition([x.peerId]);
    }

    it('makes tells to a partitioned peer dead letters and asks to it fail as unreachable, and cuts its connections, while other peers are unaffected', async () => {
      partition(a, b);
      expect(connectedTo(a, b), 'the connections to the partitioned peer are cut').to.equal(false);
      const before = a.deadLetters.length;
      sink(a, b).tell({ sender: 'a', seq: 0 });
      const letters = a.deadLetters.slice(before);
      expect(letters).to.have.length(1);
      expect(letters[0]?.reason).to.equal(partitionDeadLetterReason);
      expect(letters[0]?.recipient).to.equal('/user/sink');

      const error = await rejectionOf(
        echo(a, b).ask<number>((replyTo) => ({ n: 2, replyTo })),
        500,
        'an ask to a partitioned peer',
      );
      expect(error).to.be.instanceOf(UnavailableError);
      expect(a.mesh.faults?.stats.droppedOutgoing).to.equal(2);

      // New connections are refused both ways.
      await rejectionOf(a.mesh.connect(b.mesh.multiaddrs[0] as string), 5000, 'a dial across the partition');
      expect(await echo(a, c).ask<number>((replyTo) => ({ n: 3, replyTo }))).to.equal(3);
      expect(await echo(c, b).ask<number>((replyTo) => ({ n: 4, replyTo }))).to.equal(4);
      expect(connectedTo(a, b)).to.equal(false);
    });

    it('drops what a peer sends while only this node partitioned itself from it, refusing its connections', async () => {
      a.mesh.enableFaultInjection().partition([b.peerId]);
      // b knows nothing of the partition; once it saw its connection go, it queues, redials and is refused.
      await until(() => (connectedTo(b, a) ? undefined : true), 5000, 'b sees its connection to a cut');
      for (let seq = 0; seq < 10; seq++) sink(b, a).tell({ sender: 'b', seq });
      await until(
        () => ((a.mesh.faults?.stats.refusedConnections ?? 0) > 0 ? true : undefined),
        5000,
        'a refuses a connection from b',
      );
      const verdict = await a.system
        .resolve<SinkMessage>({ node: a.peerId, path: '/user/sink' })
        .ask<Verdict>((replyTo) => ({ type: 'verdict', replyTo }));
      expect(verdict.total, 'nothing from b got through').to.equal(0);
    });

    it('ends watches of the partitioned peer’s actors with Terminated once the partition lasts unreachableAfterMs', async () => {
      const watcher = spawnWatcher(a.system, echo(a, b) as ActorRef<never>);
      // The watch request goes out ahead of this ask, so b serves it before it answers.
      expect(await echo(a, b).ask<number>((replyTo) => ({ n: 1, replyTo }))).to.equal(1);
      const cutAt = performance.now();
      partition(a, b);
      const { signal, at } = await withDeadline(watcher.outcome, unreachableAfterMs + 3000, 'Terminated');
      expect(signal.type).to.equal('Terminated');
      expect(signal.ref.path).to.equal('/user/echo');
      expect(at - cutAt, 'not before unreachableAfterMs').to.be.above(unreachableAfterMs - 100);
    });

    it('lets traffic flow again after heal, in the order sent per sender', async () => {
      partition(a, b);
      sink(a, b).tell({ sender: 'lost', seq: 0 });
      // Past unreachableAfterMs: the links gave each other up.
      await new Promise((resolve) => setTimeout(resolve, unreachableAfterMs + 200));
      a.mesh.faults?.heal();
      b.mesh.faults?.heal();
      await until(
        () =>
          echo(a, b)
            .ask<number>((replyTo) => ({ n: 5, replyTo }), { timeoutMs: 500 })
            .then(
              (n) => n,
              () => undefined,
            ),
        5000,
        'an ask across the healed partition',
      );
      const count = 2000;
      for (let seq = 0; seq < count; seq++) {
        sink(a, b).tell({ sender: 'a', seq });
        sink(c, b).tell({ sender: 'c', seq });
        sink(b, a).tell({ sender: 'b', seq });
      }
      // Ordered per sender only: c's envelopes may still be on their way when a's ask arrives.
      const atB = await until(
        () =>
          sink(a, b)
            .ask<Verdict>((replyTo) => ({ type: 'verdict', replyTo }))
            .then((verdict) => (verdict.total === 2 * count ? verdict : undefined)),
        5000,
        'every envelope at b',
      );
      expect(atB.counts).to.deep.equal({ a: count, c: count });
      expect(atB.inOrder, JSON.stringify(atB.firstBreak)).to.equal(true);
      const atA = await sink(b, a).ask<Verdict>((replyTo) => ({ type: 'verdict', replyTo }));
      expect(atA.counts).to.deep.equal({ b: count });
      expect(atA.inOrder).to.equal(true);
    });

    it('drops envelopes with the configured probability, replayably from a seeded source', async () => {
      const received = spawnCollector(b, 'numbers');
      const faults = a.mesh.enableFaultInjection({ random: seededRandom(42) });
      faults.configure({ dropProbability: 0.3 });
      const to = a.system.resolve<number>({ node: b.peerId, path: '/user/numbers' });
      const count = 500;
      for (let n = 0; n < count; n++) to.tell(n);
      const draws = seededRandom(42);
      const expected: number[] = [];
      for (let n = 0; n < count; n++) if (draws() >= 0.3) expected.push(n);
      expect(faults.stats.droppedRandomly).to.equal(count - expected.length);
      expect(expected.length).to.be.within(300, 400);
      await until(() => (received.length === expected.length ? true : undefined), 5000, 'the survivors');
      expect(received).to.deep.equal(expected);
    });

    it('delays envelopes and keeps them in the order sent when the delay changes', async () => {
      const received = spawnCollector(b, 'numbers');
      const faults = a.mesh.enableFaultInjection();
      const to = a.system.resolve<number>({ node: b.peerId, path: '/user/numbers' });
      faults.configure({ delayMs: 150 });
      const sentAt = performance.now();
      for (let n = 0; n < 50; n++) to.tell(n);
      faults.configure({ delayMs: 0 });
      for (let n = 50; n < 100; n++) to.tell(n);
      await until(() => (received.length > 0 ? true : undefined), 3000, 'the first delayed envelope');
      expect(performance.now() - sentAt).to.be.above(140);
      await until(() => (received.length === 100 ? true : undefined), 3000, 'every envelope');
      expect(received).to.deep.equal(Array.from({ length: 100 }, (_, n) => n));
      expect(faults.stats.delayed).to.equal(100);
    });

    it('intercepts nothing when fault injection is off, and ignores fault commands (with a warning)', async () => {
      const channel = new EventEmitter();
      const sent: unknown[] = [];
      const fake = Object.assign(channel, {
        send: (message: unknown) => {
          sent.push(message);
          return true;
        },
      }) as unknown as FaultIpcChannel;
      const warn = sinon.spy(a.system.internals.logger, 'warn');
      try {
        const uninstall = installFaultIpc(a.mesh, { env: {}, channel: fake });
        channel.emit('message', { type: 'fault:partition', id: 1, peers: [b.peerId] });
        channel.emit('message', { type: 'unrelated' });
        uninstall();
        expect(channel.listenerCount('message')).to.equal(0);
        expect(sent, 'no ack').to.deep.equal([]);
        expect(warn.callCount).to.equal(1);
        expect(String(warn.firstCall.args[0])).to.include('ignored');
      } finally {
        warn.restore();
      }
      expect(a.mesh.faults).to.equal(undefined);
      for (let seq = 0; seq < 100; seq++) sink(a, b).tell({ sender: 'a', seq });
      const verdict = await sink(a, b).ask<Verdict>((replyTo) => ({ type: 'verdict', replyTo }));
      expect(verdict.counts).to.deep.equal({ a: 100 });
      expect(verdict.inOrder).to.equal(true);
    });
  });

  describe('over IPC with a child process', () => {
    const fixture = new URL('../fixtures/mesh-fault-node.ts', import.meta.url).pathname;
    let node: SpecNode;
    let child: ChildProcess;
    let exited: Promise<number | null>;
    let stderr: string[];

    async function startChild(env: NodeJS.ProcessEnv): Promise<{ peerId: string; multiaddrs: string[] }> {
      child = spawn(process.execPath, ['--conditions=development', fixture], {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        env,
      });
      stderr = [];
      createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) =>
        stderr.push(line),
      );
      exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
      const stdout = createInterface({ input: child.stdout as NodeJS.ReadableStream });
      const line = await withDeadline(
        new Promise<string>((resolve) => stdout.once('line', resolve)),
        20_000,
        'the fixture’s ready line',
      );
      return JSON.parse(line) as { peerId: string; multiaddrs: string[] };
    }

    function command(message: Record<string, unknown>, timeoutMs = 3000): Promise<FaultAck> {
      return withDeadline(
        new Promise<FaultAck>((resolve) => {
          const onMessage = (reply: FaultAck): void => {
            if (reply.type !== 'fault:ack' || reply.id !== message.id) return;
            child.off('message', onMessage);
            resolve(reply);
          };
          child.on('message', onMessage);
          child.send(message);
        }),
        timeoutMs,
        `the ack of ${String(message.type)}`,
      ).finally(() => child.removeAllListeners('message'));
    }

    beforeEach(async () => {
      await armedHookTimer();
      node = await startSpecNode({ unreachableAfterMs: 600, reconnect: { minMs: 50, maxMs: 200 } });
    });

    afterEach(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
        await exited;
        clearTimeout(timer);
      }
      await node.stop();
    });

    it('partitions and heals the child on its parent’s commands, answering each with an ack', async () => {
      const ready = await startChild({ ...process.env, [faultInjectionEnv]: '1' });
      expect(await node.mesh.connect(ready.multiaddrs[0] as string)).to.equal(ready.peerId);
      const echo = node.system.resolve<EchoRequest>({ node: ready.peerId, path: '/user/echo' });
      expect(await echo.ask<number>((replyTo) => ({ n: 1, replyTo }))).to.equal(1);

      const status = await command({ type: 'fault:status', id: 1 });
      expect(status).to.include({ type: 'fault:ack', id: 1, command: 'fault:status', ok: true });
      const partitioned = await command({ type: 'fault:partition', id: 2, peers: [node.peerId] });
      expect(partitioned.ok && partitioned.partitioned).to.deep.equal([node.peerId]);
      const cut = await rejectionOf(
        echo.ask<number>((replyTo) => ({ n: 2, replyTo }), { timeoutMs: 5000 }),
        6000,
        'an ask to the partitioned child',
      );
      expect(cut).to.be.instanceOf(UnavailableError);

      const healed = await command({ type: 'fault:heal', id: 3 });
      expect(healed.ok && healed.partitioned).to.deep.equal([]);
      await until(
        () =>
          echo
            .ask<number>((replyTo) => ({ n: 3, replyTo }), { timeoutMs: 500 })
            .then(
              (n) => n,
              () => undefined,
            ),
        5000,
        'an ask after the heal',
      );

      const invalid = await command({ type: 'fault:partition', id: 4, peers: ['not-a-peer-id'] });
      expect(invalid.ok).to.equal(false);
      expect(!invalid.ok && invalid.error.code).to.equal('INVALID_REQUEST');
      const configured = await command({ type: 'fault:configure', id: 5, delayMs: 10, seed: 7 });
      expect(configured.ok && configured.rules).to.deep.equal({ dropProbability: 0, delayMs: 10 });

      // A test node does not outlive its harness: the channel closing stops it.
      child.disconnect();
      expect(await withDeadline(exited, 10_000, 'the child stopping once its parent is gone')).to.equal(0);
    });

    it('ignores fault commands in a process without CLOUDLESS_FAULT_INJECTION=1', async () => {
      const env = { ...process.env };
      delete env[faultInjectionEnv];
      const ready = await startChild(env);
      await node.mesh.connect(ready.multiaddrs[0] as string);
      const noAck = await rejectionOf(
        command({ type: 'fault:partition', id: 1, peers: [node.peerId] }, 500),
        1000,
        'an ack from a node without fault injection',
      );
      expect(noAck.name).to.equal('TimeoutError');
      const echo = node.system.resolve<EchoRequest>({ node: ready.peerId, path: '/user/echo' });
      expect(await echo.ask<number>((replyTo) => ({ n: 1, replyTo }))).to.equal(1);
      await until(
        () => (stderr.some((line) => line.includes('ignored')) ? true : undefined),
        2000,
        'the warning',
      );
    });
  });
});
