/**
 * Remote messaging benchmark: actors in this process talking to actors in another process over
 * the mesh on loopback (TCP, Noise, Yamux), against a bare libp2p stream between the same two
 * processes carrying the same msgpackr batches, measured in the same run.
 *
 *   node benchmarks/remote-messaging.ts --json
 *
 * - remote_tell_msgs_per_s: 1,000,000 numbers from a sender actor here to a receiver actor in the
 *   other process, windowed by acks (two windows in flight) so no bounded queue overflows; any
 *   dead letter fails the run.
 * - remote_ask_p50_us / remote_ask_p99_us: round trips of asks to an echo actor there, issued at
 *   a fixed 2,000 per second for 5 s.
 * - baseline raw_stream_msgs_per_s: the same messages as (path, traceId, message) triples,
 *   packed with msgpackr in frames of the mesh's batch size (4,096), windowed the same way, over a
 *   libp2p stream of a test protocol, with no actor system on either end.
 * - baseline raw_stream_round_trip_p50_us / _p99_us: an ask-sized packed message at the same
 *   fixed rate over a bare libp2p stream, echoed by the other process: libp2p's own round trip
 *   (TCP, Noise, Yamux) on this machine, the floor under remote_ask_p50_us.
 *
 * Prints progress to stderr and, as its last stdout line, one JSON object:
 * {"benchmark":"remote-messaging","results":{...},"baseline":{...},"targets":{...},"meets_targets":bool,"machine":{...}}
 * Each figure is the best of `--runs` runs (default 3) after a warm-up run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { Packr } from 'msgpackr';
import type { ActorRef } from '../runtime/actor-ref.ts';
import { ActorSystem } from '../runtime/actor-system.ts';
import { Behaviors } from '../runtime/behavior.ts';
import { FrameDecoder, frameHeader } from '../transport/frame-codec.ts';
import { createMeshNode } from '../transport/mesh-node.ts';
import { MeshTransport } from '../transport/mesh-transport.ts';
import { best, progress, report } from './bench-harness.ts';
import {
  type EchoRequest,
  type ReceiverMessage,
  rawEchoProtocol,
  rawProtocol,
} from './remote-messaging-protocol.ts';

const total = 1_000_000;
/** Messages per ack; divides `total`, so the last ack marks the end. */
const window = 10_000;
/** Windows in flight: at most this × `window` messages queued anywhere, far below every bound. */
const inFlight = 2;
/** The mesh's default envelopes per frame (MeshTransportInit.maxBatch). */
const maxBatch = 4096;
const askRate = 2000;
const askSeconds = 5;

const targets = {
  remote_tell_msgs_per_s: 500_000,
  remote_tell_fraction_of_baseline: 0.6,
  remote_ask_p50_us_max: 300,
};

interface Peer {
  readonly process: ChildProcess;
  readonly peerId: string;
  readonly address: string;
  readonly exited: Promise<number | null>;
}

async function startPeer(): Promise<Peer> {
  const entry = new URL('./remote-messaging-peer.ts', import.meta.url).pathname;
  const extra = process.env.BENCH_PEER_NODE_OPTIONS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...extra, entry, String(window)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let timer: NodeJS.Timeout | undefined;
  try {
    const line = await new Promise<string>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error('the benchmark peer gave no ready line within 20 s')),
        20_000,
      );
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve);
      void exited.then((code) => reject(new Error(`the benchmark peer exited with code ${code}`)));
    });
    const ready = JSON.parse(line) as { peerId: string; multiaddrs: string[] };
    const address = ready.multiaddrs[0];
    if (address === undefined) throw new Error('the benchmark peer listens on nothing');
    return { process: child, peerId: ready.peerId, address, exited };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** A sender actor here → the receiver there, windowed by acks (two windows in flight). */
async function remoteTell(system: ActorSystem, receiver: ActorRef<ReceiverMessage>): Promise<number> {
  let finish!: (ms: number) => void;
  let fail!: (error: Error) => void;
  const finished = new Promise<number>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const timeout = setTimeout(() => fail(new Error('remote tell run did not finish within 120 s')), 120_000);
  system
    .spawn(
      Behaviors.setup<'go' | 'ack'>((ctx) => {
        let sent = 0;
        let acked = 0;
        let started = 0;
        const burst = (): void => {
          const end = Math.min(total, sent + window);
          while (sent < end) receiver.tell(sent++);
        };
        return Behaviors.receiveMessage((message) => {
          if (message === 'go') {
            receiver.tell({ type: 'hello', ackTo: ctx.self as ActorRef<'ack'>, window });
            started = performance.now();
            for (let i = 0; i < inFlight; i++) burst();
          } else if (++acked * window >= total) {
            finish(performance.now() - started);
            return Behaviors.stopped;
          } else {
            burst();
          }
          return Behaviors.same;
        });
      }),
    )
    .tell('go');
  try {
    const elapsed = await finished;
    return Math.round((total / elapsed) * 1000);
  } finally {
    clearTimeout(timeout);
  }
}

/** Asks at a fixed rate; every round trip measured. Returns microseconds, sorted. */
async function askLatencies(echo: ActorRef<EchoRequest>): Promise<Float64Array> {
  const count = askRate * askSeconds;
  const latencies = new Float64Array(count);
  let issued = 0;
  let answered = 0;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const tick = (): void => {
      const due = Math.min(count, Math.floor(((performance.now() - started) * askRate) / 1000) + 1);
      while (issued < due) {
        const i = issued++;
        const sentAt = performance.now();
        echo
          .ask<number>((replyTo) => ({ value: i, replyTo }), { timeoutMs: 5000 })
          .then((value) => {
            latencies[i] = (performance.now() - sentAt) * 1000;
            if (value !== i) reject(new Error(`echo answered ${value} to ${i}`));
            else if (++answered === count) resolve();
          }, reject);
      }
      if (issued < count) setTimeout(tick, 1);
    };
    tick();
  });
  return latencies.sort();
}

/**
 * The round-trip baseline: a small packed message at the same fixed rate over a bare libp2p
 * stream, sent straight back by the other process. Returns microseconds, sorted.
 */
async function rawEchoLatencies(stream: Stream): Promise<Float64Array> {
  const packr = new Packr({ useRecords: false, moreTypes: true });
  const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
  const count = askRate * askSeconds;
  const sentAt = new Float64Array(count);
  const latencies = new Float64Array(count);
  let issued = 0;
  let answered = 0;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    stream.addEventListener('message', (event) => {
      const data = event.data;
      for (const _frame of decoder.push(data instanceof Uint8Array ? data : data.subarray())) {
        const i = answered++;
        latencies[i] = (performance.now() - (sentAt[i] as number)) * 1000;
        if (answered === count) resolve();
      }
    });
    stream.addEventListener('close', () => reject(new Error('the echo stream closed before the end')));
    const tick = (): void => {
      const due = Math.min(count, Math.floor(((performance.now() - started) * askRate) / 1000) + 1);
      while (issued < due) {
        const i = issued++;
        // About the size of an ask: path, trace id, { value, replyTo } with a ref-sized address.
        const body = packr.pack(['/user/echo', i, { value: i, replyTo: [stream.id, `/temp/$${i}`] }]);
        const frame = new Uint8Array(5 + body.length);
        frame.set(frameHeader(body.length + 1), 0);
        frame.set(body, 5);
        sentAt[i] = performance.now();
        stream.send(frame);
      }
      if (issued < count) setTimeout(tick, 1);
    };
    tick();
  });
  return latencies.sort();
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

/** The baseline: the same triples, packed in frames of `maxBatch`, over a bare libp2p stream. */
async function rawStream(stream: Stream): Promise<number> {
  const packr = new Packr({ useRecords: false, moreTypes: true });
  const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
  let sent = 0;
  let acked = 0;
  let trace = 0;
  const sendWindow = async (): Promise<void> => {
    const end = Math.min(total, sent + window);
    while (sent < end) {
      const size = Math.min(maxBatch, end - sent);
      const batch = new Array<unknown>(size * 3);
      for (let i = 0; i < size * 3; i += 3) {
        batch[i] = '/user/receiver';
        batch[i + 1] = ++trace;
        batch[i + 2] = sent++;
      }
      // As the mesh does: a standalone copy of the packed bytes, then one frame buffer.
      const body = Uint8Array.prototype.slice.call(packr.pack(batch));
      const frame = new Uint8Array(5 + body.length);
      frame.set(frameHeader(body.length + 1), 0);
      frame[4] = 0;
      frame.set(body, 5);
      if (!stream.send(frame)) await stream.onDrain();
    }
  };
  const started = performance.now();
  const done = new Promise<void>((resolve, reject) => {
    stream.addEventListener('message', (event) => {
      const data = event.data;
      for (const frame of decoder.push(data instanceof Uint8Array ? data : data.subarray())) {
        acked += new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0);
        if (acked >= total) resolve();
        else sendWindow().catch(reject);
      }
    });
    stream.addEventListener('close', () => reject(new Error('the raw stream closed before the end')));
  });
  for (let i = 0; i < inFlight; i++) await sendWindow();
  await done;
  return Math.round((total / (performance.now() - started)) * 1000);
}

const peer = await startPeer();
const privateKey = await generateKeyPair('Ed25519');
const system = await ActorSystem.start({
  nodeId: peerIdFromPrivateKey(privateKey).toString(),
  logLevel: 'warn',
  dispatchers: {},
});
let deadLetters = 0;
system.on('dead-letter:publish', () => deadLetters++);
const mesh = await MeshTransport.start(system, { privateKey });
const bare = await createMeshNode({ privateKey: await generateKeyPair('Ed25519'), listen: [] });
try {
  await mesh.connect(peer.address);
  const receiver = system.resolve<ReceiverMessage>({ node: peer.peerId, path: '/user/receiver' });
  const echo = system.resolve<EchoRequest>({ node: peer.peerId, path: '/user/echo' });

  const checked = async (): Promise<number> => {
    const rate = await remoteTell(system, receiver);
    if (deadLetters > 0) throw new Error(`remote tell run produced ${deadLetters} dead letters`);
    return rate;
  };
  const tell = await best(`remote_tell_msgs_per_s (1M, windows of ${window})`, checked);

  const p99s: number[] = [];
  const p50 = await best(
    `remote_ask_p50_us (${askRate}/s for ${askSeconds} s)`,
    async () => {
      const sorted = await askLatencies(echo);
      p99s.push(percentile(sorted, 0.99));
      return percentile(sorted, 0.5);
    },
    { higherIsBetter: false },
  );
  // Best of the measured runs (the first was the warm-up), like every other figure.
  const p99 = Math.round(Math.min(...p99s.slice(1)));
  progress(`remote_ask_p99_us: ${p99}`);

  const connection = await bare.dial(multiaddr(peer.address), { signal: AbortSignal.timeout(5000) });
  const raw = await best(`raw_stream_msgs_per_s (frames of ${maxBatch})`, async () => {
    const stream = await connection.newStream(rawProtocol, { signal: AbortSignal.timeout(5000) });
    try {
      return await rawStream(stream);
    } finally {
      await stream.close();
    }
  });

  const echoP99s: number[] = [];
  const echoP50 = await best(
    `raw_stream_round_trip_p50_us (${askRate}/s for ${askSeconds} s)`,
    async () => {
      const stream = await connection.newStream(rawEchoProtocol, { signal: AbortSignal.timeout(5000) });
      try {
        const sorted = await rawEchoLatencies(stream);
        echoP99s.push(percentile(sorted, 0.99));
        return percentile(sorted, 0.5);
      } finally {
        await stream.close();
      }
    },
    { higherIsBetter: false },
  );
  const echoP99 = Math.round(Math.min(...echoP99s.slice(1)));
  progress(`raw_stream_round_trip_p99_us: ${echoP99}`);

  const fraction = Math.round((tell / raw) * 100) / 100;
  const results = {
    remote_tell_msgs_per_s: tell,
    remote_tell_fraction_of_baseline: fraction,
    remote_ask_p50_us: Math.round(p50),
    remote_ask_p99_us: p99,
  };
  report({
    benchmark: 'remote-messaging',
    results,
    baseline: {
      raw_stream_msgs_per_s: raw,
      raw_stream_round_trip_p50_us: Math.round(echoP50),
      raw_stream_round_trip_p99_us: echoP99,
    },
    dead_letters: deadLetters,
    targets,
    meets_targets:
      results.remote_tell_msgs_per_s >= targets.remote_tell_msgs_per_s &&
      fraction >= targets.remote_tell_fraction_of_baseline &&
      results.remote_ask_p50_us <= targets.remote_ask_p50_us_max,
  });
} finally {
  await bare.stop();
  await mesh.stop();
  await system.stop();
  peer.process.kill('SIGTERM');
  await peer.exited;
}
