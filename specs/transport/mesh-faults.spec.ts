/**
 * Mesh faults with real processes on loopback: a node process killed with SIGKILL, restarted
 * with the same data dir (so the same PeerId), and the connection gate. Each spec starts its own
 * node here and its own node processes, and stops all of them afterwards.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { actorProtocol } from '../../transport/peer-link.ts';
import { rejectionOf, until, withDeadline } from '../support/deadline.ts';
import type { EchoRequest, SinkMessage, Verdict } from '../support/mesh-fixture-actors.ts';
import { MeshNodeChild } from '../support/mesh-node-child.ts';
import { type SpecNode, settleLibp2pTimersAfterEach, startSpecNode } from '../support/mesh-spec-node.ts';
import { spawnWatcher } from '../support/mesh-watcher.ts';
import { track } from '../support/test-system.ts';

describe('mesh faults across processes', function () {
  settleLibp2pTimersAfterEach();
  this.timeout(30_000);

  let nodes: SpecNode[] = [];
  let children: MeshNodeChild[] = [];
  let dataDirs: string[] = [];

  async function newDataDir(): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-mesh-faults-'));
    dataDirs.push(dir);
    return dir;
  }

  async function startChild(dataDir: string, args: string[] = []): Promise<MeshNodeChild> {
    const child = await MeshNodeChild.start({ dataDir, args });
    children.push(child);
    return child;
  }

  async function startNode(init: Parameters<typeof startSpecNode>[0]): Promise<SpecNode> {
    const node = await startSpecNode(init);
    nodes.push(node);
    return node;
  }

  function tcpPort(address: string): number {
    const port = multiaddr(address)
      .getComponents()
      .find((component) => component.name === 'tcp')?.value;
    return Number(port);
  }

  afterEach(async () => {
    const stopping = { children, nodes, dataDirs };
    nodes = [];
    children = [];
    dataDirs = [];
    // Children first, then the nodes here, newest first: each node's stop waits for the handles
    // it opened to go, which those started after it would otherwise still hold.
    const failures: unknown[] = [];
    for (const outcome of await Promise.allSettled(stopping.children.map((child) => child.stop()))) {
      if (outcome.status === 'rejected') failures.push(outcome.reason);
    }
    for (const node of stopping.nodes.reverse())
      await node.stop().catch((error: unknown) => failures.push(error));
    await Promise.all(stopping.dataDirs.map((dir) => rm(dir, { recursive: true, force: true })));
    if (failures.length > 0) throw failures[0];
  });

  it('after a SIGKILL, watchers get Terminated within unreachableAfterMs, asks in flight fail with UNAVAILABLE and tells become dead letters (unreachable)', async () => {
    const unreachableAfterMs = 1500;
    const child = await startChild(await newDataDir());
    const node = await startNode({ unreachableAfterMs });
    await node.mesh.connect(child.address);
    const echo = node.system.resolve<EchoRequest>({ node: child.peerId, path: '/user/echo' });
    const sink = node.system.resolve<SinkMessage>({ node: child.peerId, path: '/user/sink' });
    const blackhole = node.system.resolve<EchoRequest>({ node: child.peerId, path: '/user/blackhole' });
    const watcher = spawnWatcher(node.system, echo as ActorRef<never>);
    // The watch goes out ahead of this ask, so the child serves it before it answers.
    expect(await echo.ask<number>((replyTo) => ({ n: 1, replyTo }))).to.equal(1);
    const inFlight = blackhole.ask<number>((replyTo) => ({ n: 2, replyTo }), { timeoutMs: 20_000 });
    const inFlightOutcome = track(inFlight);

    await child.kill('SIGKILL');
    const killedAt = performance.now();
    // Sent while the link redials: queued, then a dead letter once the node counts as unreachable.
    sink.tell({ sender: 'during-outage', seq: 0 });

    const { signal, at } = await withDeadline(
      watcher.outcome,
      unreachableAfterMs + 3000,
      'Terminated of a watched actor on the killed node',
    );
    expect(signal.type).to.equal('Terminated');
    expect(signal.ref.path).to.equal('/user/echo');
    const elapsed = at - killedAt;
    expect(elapsed, 'Terminated must wait for unreachableAfterMs').to.be.above(unreachableAfterMs - 300);
    expect(elapsed, 'Terminated within unreachableAfterMs + 1 s').to.be.below(unreachableAfterMs + 1000);

    const failure = await rejectionOf(inFlight, 1000, 'the ask in flight to the killed node');
    expect(inFlightOutcome.settled).to.equal(true);
    expect((failure as Error & { code?: string }).code).to.equal('UNAVAILABLE');
    expect(
      node.deadLetters.filter((letter) => letter.recipient === '/user/sink').map((letter) => letter.reason),
    ).to.deep.equal(['unreachable']);

    // Later tells are dead letters at once, with the reason; later asks fail at once.
    sink.tell({ sender: 'after-outage', seq: 0 });
    const last = node.deadLetters.at(-1);
    expect(last?.recipient).to.equal('/user/sink');
    expect(last?.reason).to.equal('unreachable');
    expect(last?.message).to.deep.equal({ sender: 'after-outage', seq: 0 });
    const later = await rejectionOf(
      echo.ask<number>((replyTo) => ({ n: 3, replyTo }), { timeoutMs: 20_000 }),
      1000,
      'an ask to the unreachable node',
    );
    expect((later as Error & { code?: string }).code).to.equal('UNAVAILABLE');
    // Those sends redialled the dead node once; let that dial fail before the spec ends.
    await new Promise((resolve) => setTimeout(resolve, 200));
  });

  it('reconnects to a node restarted with the same data dir before it counted as unreachable, and delivers what was sent meanwhile', async () => {
    const dataDir = await newDataDir();
    const first = await startChild(dataDir);
    const node = await startNode({ unreachableAfterMs: 10_000, reconnect: { minMs: 50, maxMs: 400 } });
    await node.mesh.connect(first.address);
    const echo = node.system.resolve<EchoRequest>({ node: first.peerId, path: '/user/echo' });
    const sink = node.system.resolve<SinkMessage>({ node: first.peerId, path: '/user/sink' });
    expect(await echo.ask<number>((replyTo) => ({ n: 1, replyTo }))).to.equal(1);

    await first.kill('SIGKILL');
    for (let seq = 0; seq < 100; seq++) sink.tell({ sender: 'meanwhile', seq });
    const pending = echo.ask<number>((replyTo) => ({ n: 2, replyTo }), { timeoutMs: 15_000 });

    const second = await startChild(dataDir, ['--listen', `/ip4/127.0.0.1/tcp/${tcpPort(first.address)}`]);
    expect(second.peerId).to.equal(first.peerId);
    expect(await withDeadline(pending, 15_000, 'the ask sent while the node was down')).to.equal(2);
    const verdict = await sink.ask<Verdict>((replyTo) => ({ type: 'verdict', replyTo }));
    expect(verdict.counts).to.deep.equal({ meanwhile: 100 });
    expect(verdict.inOrder).to.equal(true);
    expect(node.deadLetters).to.deep.equal([]);
  });

  it('redials a node declared unreachable on the next send, and reaches it again once it restarted with the same PeerId', async () => {
    const unreachableAfterMs = 1000;
    const dataDir = await newDataDir();
    const first = await startChild(dataDir);
    const node = await startNode({ unreachableAfterMs, reconnect: { minMs: 50, maxMs: 400 } });
    await node.mesh.connect(first.address);
    const echo = node.system.resolve<EchoRequest>({ node: first.peerId, path: '/user/echo' });
    const watcher = spawnWatcher(node.system, echo as ActorRef<never>);
    expect(await echo.ask<number>((replyTo) => ({ n: 1, replyTo }))).to.equal(1);
    await first.kill('SIGKILL');
    await withDeadline(watcher.outcome, unreachableAfterMs + 3000, 'the killed node counting as unreachable');

    const second = await startChild(dataDir, ['--listen', `/ip4/127.0.0.1/tcp/${tcpPort(first.address)}`]);
    expect(second.peerId).to.equal(first.peerId);
    // The first send after the outage is refused at once (and redials); a retry then gets through.
    let refused = 0;
    const reply = await until(
      async () => {
        try {
          return await echo.ask<number>((replyTo) => ({ n: 2, replyTo }), { timeoutMs: 2000 });
        } catch (error) {
          expect((error as Error & { code?: string }).code).to.equal('UNAVAILABLE');
          refused++;
          return undefined;
        }
      },
      10_000,
      'an answer from the restarted node',
      50,
    );
    expect(reply).to.equal(2);
    expect(refused).to.be.at.least(1);
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, n) => echo.ask<number>((replyTo) => ({ n, replyTo }))),
    );
    expect(replies).to.deep.equal(Array.from({ length: 20 }, (_, n) => n));
  });

  it('reaches a node declared unreachable again at once when connect() succeeds after its restart', async () => {
    const unreachableAfterMs = 1000;
    const dataDir = await newDataDir();
    const first = await startChild(dataDir);
    const node = await startNode({ unreachableAfterMs });
    await node.mesh.connect(first.address);
    const echo = node.system.resolve<EchoRequest>({ node: first.peerId, path: '/user/echo' });
    const watcher = spawnWatcher(node.system, echo as ActorRef<never>);
    expect(await echo.ask<number>((replyTo) => ({ n: 1, replyTo }))).to.equal(1);
    await first.kill('SIGKILL');
    await withDeadline(watcher.outcome, unreachableAfterMs + 3000, 'the killed node counting as unreachable');

    const second = await startChild(dataDir);
    expect(await node.mesh.connect(second.address)).to.equal(first.peerId);
    expect(await echo.ask<number>((replyTo) => ({ n: 2, replyTo }))).to.equal(2);
    expect(node.deadLetters).to.deep.equal([]);
  });

  describe('connection gate', () => {
    it('refuses a connection from a PeerId the gate denies, and serves one it admits', async () => {
      const deniedKey = await generateKeyPair('Ed25519');
      const deniedId = peerIdFromPrivateKey(deniedKey).toString();
      const gated = await startChild(await newDataDir(), ['--deny', deniedId]);
      const denied = await startNode({ privateKey: deniedKey, dialTimeoutMs: 3000 });
      const admitted = await startNode({});

      const refusal = await rejectionOf(denied.mesh.connect(gated.address), 5000, 'a denied connect');
      expect((refusal as Error & { code?: string }).code).to.equal('UNAVAILABLE');
      const rawRefusal = await rejectionOf(
        denied.mesh.node.dialProtocol(multiaddr(gated.address), actorProtocol, {
          signal: AbortSignal.timeout(3000),
        }),
        5000,
        'a denied actor-protocol stream',
      );
      // libp2p rejects with the stream's close event here, not always an Error.
      expect(rawRefusal).to.not.equal(undefined);

      expect(await admitted.mesh.connect(gated.address)).to.equal(gated.peerId);
      const echo = admitted.system.resolve<EchoRequest>({ node: gated.peerId, path: '/user/echo' });
      expect(await echo.ask<number>((replyTo) => ({ n: 9, replyTo }))).to.equal(9);
    });

    it('does not dial a peer its own gate denies, and asks the gate with the PeerId', async () => {
      const child = await startChild(await newDataDir());
      const asked: string[] = [];
      const node = await startNode({
        gate: {
          admit: (peerId) => {
            asked.push(peerId);
            return peerId !== child.peerId;
          },
        },
      });
      const refusal = await rejectionOf(node.mesh.connect(child.address), 5000, 'a connect the gate denies');
      expect((refusal as Error & { code?: string }).code).to.equal('UNAVAILABLE');
      expect(asked).to.include(child.peerId);

      const admitting = await startNode({ gate: { admit: async () => true } });
      expect(await admitting.mesh.connect(child.address)).to.equal(child.peerId);
    });
  });
});
