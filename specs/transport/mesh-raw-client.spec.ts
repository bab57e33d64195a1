/**
 * Hostile peers: a bare libp2p node (no actor system, no mesh) dials `/cloudless/actor/1.0.0` on a
 * node process and sends what no Cloudless node would: garbage, an oversized frame header, a
 * MessagePack bomb, a data frame with a non-string recipient, more streams than allowed. Each time
 * the node resets the stream, logs a warning, and keeps serving a well-behaved peer (this spec
 * process's node).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Connection, Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { expect } from 'chai';
import { Packr } from 'msgpackr';
import { encodeFrame } from '../../transport/frame-codec.ts';
import { createMeshNode, type MeshNode } from '../../transport/mesh-node.ts';
import { actorProtocol } from '../../transport/peer-link.ts';
import { until, withDeadline } from '../support/deadline.ts';
import type { EchoRequest, SinkMessage, Verdict } from '../support/mesh-fixture-actors.ts';
import { MeshNodeChild } from '../support/mesh-node-child.ts';
import { type SpecNode, settleLibp2pTimersAfterEach, startSpecNode } from '../support/mesh-spec-node.ts';

const maxInboundStreams = 4;
const maxFrameBytes = 1024 * 1024;

/** Bytes from a fixed-seed xorshift generator: the same "random" garbage on every run. */
function garbage(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed | 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** A frame of the actor protocol: kind byte (0 data, 1 control), then the body. */
function actorFrame(kind: number, body: Uint8Array): Uint8Array {
  const payload = new Uint8Array(1 + body.length);
  payload[0] = kind;
  payload.set(body, 1);
  return encodeFrame(payload);
}

interface Closed {
  readonly status: string;
  readonly error: Error | undefined;
}

/** Resolves when `stream` closes, however it closes. */
function closeOf(stream: Stream): Promise<Closed> {
  if (stream.status !== 'open') return Promise.resolve({ status: stream.status, error: undefined });
  return new Promise((resolve) => {
    stream.addEventListener('close', (event) => resolve({ status: stream.status, error: event.error }), {
      once: true,
    });
  });
}

describe('mesh against a hostile raw libp2p client', function () {
  settleLibp2pTimersAfterEach();
  this.timeout(30_000);

  let dataDir: string;
  let child: MeshNodeChild | undefined;
  let node: SpecNode | undefined;
  let raw: MeshNode | undefined;
  let connection: Connection;

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-mesh-raw-'));
    child = await MeshNodeChild.start({
      dataDir,
      args: ['--max-inbound-streams', String(maxInboundStreams), '--max-frame-bytes', String(maxFrameBytes)],
    });
    node = await startSpecNode();
    await node.mesh.connect(child.address);
    // No listen address: the node process cannot dial this client back.
    raw = await createMeshNode({ privateKey: await generateKeyPair('Ed25519'), listen: [] });
    connection = await raw.dial(multiaddr(child.address), { signal: AbortSignal.timeout(5000) });
  });

  after(async () => {
    try {
      await raw?.stop();
      await node?.stop();
    } finally {
      // Whatever happened above, the node process goes (stop() falls back to SIGKILL).
      const exit = await child?.stop();
      await rm(dataDir, { recursive: true, force: true });
      expect(exit).to.deep.equal({ code: 0, signal: null });
    }
  });

  function proc(): MeshNodeChild {
    if (child === undefined) throw new Error('the node process did not start');
    return child;
  }

  /** The well-behaved peer still gets answers, and the node process is alive. */
  async function stillServes(): Promise<void> {
    const target = proc();
    const echo = node?.system.resolve<EchoRequest>({ node: target.peerId, path: '/user/echo' });
    expect(await echo?.ask<number>((replyTo) => ({ n: 11, replyTo }), { timeoutMs: 5000 })).to.equal(11);
    expect(target.running).to.equal(true);
  }

  async function sendAndExpectReset(bytes: Uint8Array, warning: RegExp): Promise<void> {
    const mark = proc().logMark;
    const stream = await connection.newStream(actorProtocol, { signal: AbortSignal.timeout(5000) });
    const closed = closeOf(stream);
    stream.send(bytes);
    const { status } = await withDeadline(closed, 5000, 'the node resetting the stream');
    expect(status).to.equal('reset');
    const line = await proc().waitForLog(warning, 5000, mark);
    expect(JSON.parse(line)).to.include({ level: 'warn' });
    await stillServes();
  }

  it('resets a stream that carries garbage', async () => {
    await sendAndExpectReset(garbage(64 * 1024, 0x5eed), /broke the actor protocol/);
  });

  it('resets a stream whose frame header announces more than maxFrameBytes, before the body arrives', async () => {
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, maxFrameBytes + 1);
    await sendAndExpectReset(header, /broke the actor protocol \(frame header announces/);
  });

  it('resets a stream that sends a MessagePack value nested 10,000 deep', async () => {
    const depth = 10_000;
    const body = new Uint8Array(depth + 1).fill(0x91); // fixarray of 1, 10,000 times …
    body[depth] = 0xc0; // … around a nil
    await sendAndExpectReset(actorFrame(0, body), /broke the actor protocol \(MessagePack nesting depth/);
  });

  it('resets a stream whose data frame names a recipient that is not a path string', async () => {
    const packr = new Packr({ useRecords: false, moreTypes: true });
    const body = packr.pack([42, 1, { type: 'hello' }]);
    await sendAndExpectReset(actorFrame(0, body), /broke the actor protocol \(invalid recipient path 42\)/);
  });

  it('resets a stream whose data frame starts with "same recipient as before" (null)', async () => {
    const packr = new Packr({ useRecords: false, moreTypes: true });
    const body = packr.pack([null, 1, { type: 'hello' }]);
    await sendAndExpectReset(actorFrame(0, body), /broke the actor protocol \(invalid recipient path null\)/);
  });

  it('refuses actor streams beyond maxInboundStreams from one peer and keeps serving others', async () => {
    const attempts = 12;
    const mark = proc().logMark;
    const opened = await Promise.allSettled(
      Array.from({ length: attempts }, () =>
        connection.newStream(actorProtocol, { signal: AbortSignal.timeout(5000) }),
      ),
    );
    const streams = opened.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
    // Refused streams are reset by the node right after negotiation; give that a moment.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const open = streams.filter((stream) => stream.status === 'open');
    expect(open.length, 'streams left open').to.equal(maxInboundStreams);
    expect(attempts - open.length, 'streams refused').to.equal(attempts - maxInboundStreams);
    await proc().waitForLog(
      new RegExp(
        `broke the actor protocol \\(more than ${maxInboundStreams} actor-protocol streams at once\\)`,
      ),
      5000,
      mark,
    );
    await stillServes();
    // The accepted streams work: a well-formed frame on one of them reaches an actor.
    const packr = new Packr({ useRecords: false, moreTypes: true });
    open[0]?.send(actorFrame(0, packr.pack(['/user/sink', 1, { sender: 'raw', seq: 0 }])));
    const sink = node?.system.resolve<SinkMessage>({ node: proc().peerId, path: '/user/sink' });
    // Another peer's frames have no order with this one's: poll until the message shows.
    const verdict = await until(
      async () => {
        const current = await sink?.ask<Verdict>((replyTo) => ({ type: 'verdict', replyTo }));
        return current?.counts.raw === undefined ? undefined : current;
      },
      5000,
      'the raw peer’s message reaching the sink',
    );
    expect(verdict.counts.raw).to.equal(1);
    await Promise.all(open.map((stream) => stream.close({ signal: AbortSignal.timeout(2000) })));
  });
});
