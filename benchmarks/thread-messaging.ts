/**
 * Cross-thread messaging benchmark: actors on worker threads against a plain MessagePort that
 * posts the same batch size, measured in the same run.
 *
 *   node benchmarks/thread-messaging.ts --json
 *
 * Prints progress to stderr and, as its last stdout line, one JSON object:
 * {"benchmark":"thread-messaging","results":{...},"baseline":{...},"targets":{...},"meets_targets":bool,"machine":{...}}
 * Each figure is the best of `--runs` runs (default 3) after a warm-up run.
 */

import { MessageChannel, Worker } from 'node:worker_threads';
import type { ActorRef } from '../runtime/actor-ref.ts';
import { ActorSystem } from '../runtime/actor-system.ts';
import { Behaviors } from '../runtime/behavior.ts';
import { best, progress, report } from './bench-harness.ts';
import { burn, cruncher, echo, windowedReceiver } from './thread-behaviors.ts';

const modules = [new URL('./thread-behaviors.ts', import.meta.url).href];
const total = 2_000_000;
const window = 4000; // divides `total`, so the last ack marks the end

const targets = {
  cross_thread_tell_msgs_per_s: 2_000_000,
  cross_thread_tell_fraction_of_baseline: 0.4,
  cpu_bound_speedup: 1.6,
};

function startSystem(threads: number): Promise<ActorSystem> {
  return ActorSystem.start({
    logLevel: 'warn',
    behaviorModules: modules,
    dispatchers: { worker: { threads } },
  });
}

/** Main-thread sender actor → receiver on a worker, windowed by acks (two windows in flight). */
async function crossThreadTell(): Promise<number> {
  const system = await startSystem(1);
  const receiver = system.spawn(windowedReceiver.with({}), { dispatcher: 'worker', name: 'receiver' });
  let finish!: (ms: number) => void;
  const finished = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const sender = system.spawn(
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
          receiver.tell({ type: 'hello', ackTo: ctx.self, window, total });
          started = performance.now();
          burst();
          burst();
        } else if (++acked * window >= total) {
          finish(performance.now() - started);
        } else {
          burst();
        }
        return Behaviors.same;
      });
    }),
    { name: 'sender' },
  );
  sender.tell('go');
  const elapsed = await finished;
  await system.stop();
  return Math.round((total / elapsed) * 1000);
}

async function crossThreadAsk(): Promise<number> {
  const system = await startSystem(1);
  const target = system.spawn(echo.with({}), { dispatcher: 'worker', name: 'echo' });
  const asks = 200_000;
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < asks) {
      const value = next++;
      await target.ask<number>((replyTo) => ({ value, replyTo }));
    }
  };
  await Promise.all(Array.from({ length: 256 }, worker));
  const elapsed = performance.now() - started;
  await system.stop();
  return Math.round((asks / elapsed) * 1000);
}

/** The same fixed work on two actors: both on one worker thread, then on two. */
async function cpuBoundSeconds(threads: number): Promise<number> {
  const system = await startSystem(threads);
  const actors: ActorRef<{ rounds: number; replyTo: ActorRef<number> }>[] = [
    system.spawn(cruncher.with({}), { dispatcher: 'worker', name: 'a' }),
    system.spawn(cruncher.with({}), { dispatcher: 'worker', name: 'b' }),
  ];
  const requests = 40;
  const rounds = 4_000_000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: requests }, (_, i) =>
      (actors[i % 2] as (typeof actors)[number]).ask<number>((replyTo) => ({ rounds, replyTo }), {
        timeoutMs: 120_000,
      }),
    ),
  );
  const elapsed = performance.now() - started;
  await system.stop();
  return elapsed;
}

async function cpuBoundSpeedup(): Promise<number> {
  const oneThread = await cpuBoundSeconds(1);
  const twoThreads = await cpuBoundSeconds(2);
  return Math.round((oneThread / twoThreads) * 100) / 100;
}

/** The baseline: a plain MessagePort to a worker, posting arrays of `window` numbers, acked per batch. */
async function rawBatchedPostMessage(): Promise<number> {
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const port = workerData.port;
     let count = 0;
     port.on('message', (batch) => { for (let i = 0; i < batch.length; i++) count += 1; port.postMessage(batch.length); });`,
    { eval: true, workerData: { port: port2 }, transferList: [port2] },
  );
  const started = performance.now();
  let sent = 0;
  let acked = 0;
  const send = (): void => {
    const size = Math.min(window, total - sent);
    if (size <= 0) return;
    const batch = new Array<number>(size);
    for (let i = 0; i < size; i++) batch[i] = sent++;
    port1.postMessage(batch);
  };
  const done = new Promise<void>((resolve) => {
    port1.on('message', (count: number) => {
      acked += count;
      if (acked >= total) resolve();
      else send();
    });
  });
  send();
  send();
  await done;
  const elapsed = performance.now() - started;
  port1.close();
  await worker.terminate();
  return Math.round((total / elapsed) * 1000);
}

/** Encoding choice: msgpackr (refs swapped during encoding) vs structured clone plus a ref walk. */
async function codecComparison(): Promise<{
  msgpackr_msgs_per_s: number;
  structured_clone_with_walk_msgs_per_s: number;
}> {
  const { MessageCodec } = await import('../runtime/message-codec.ts');
  const system = await ActorSystem.start({ logLevel: 'silent' });
  const codec = new MessageCodec({ resolve: (address) => system.resolve(address) });
  const ref = system.receptionist;
  const batch: unknown[] = [];
  for (let i = 0; i < window; i++) batch.push('/user/receiver', { type: 'work', n: i, replyTo: ref });
  const rounds = 200;
  let started = performance.now();
  for (let r = 0; r < rounds; r++) codec.decode(codec.encode(batch));
  const msgpackr = (rounds * window * 1000) / (performance.now() - started);
  const walk = (value: unknown, swap: (ref: ActorRef<unknown>) => unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    if ('tell' in value && 'path' in value) return swap(value as ActorRef<unknown>);
    if (Array.isArray(value)) return value.map((item) => walk(item, swap));
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = walk(item, swap);
    return out;
  };
  const toAddress = (r: ActorRef<unknown>): unknown => ({ $ref: [r.node, r.path] });
  const revive = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map(revive);
    const record = value as Record<string, unknown>;
    if (Array.isArray(record.$ref))
      return system.resolve({ node: String(record.$ref[0]), path: String(record.$ref[1]) });
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(record)) out[key] = revive(item);
    return out;
  };
  started = performance.now();
  for (let r = 0; r < rounds; r++) revive(structuredClone(walk(batch, toAddress)));
  const cloned = (rounds * window * 1000) / (performance.now() - started);
  await system.stop();
  return {
    msgpackr_msgs_per_s: Math.round(msgpackr),
    structured_clone_with_walk_msgs_per_s: Math.round(cloned),
  };
}

if (burn(10) === 0) throw new Error('unreachable');
const results = {
  cross_thread_tell_msgs_per_s: await best(
    'cross_thread_tell_msgs_per_s (2M, main → worker actor)',
    crossThreadTell,
  ),
  cross_thread_ask_round_trips_per_s: await best(
    'cross_thread_ask_round_trips_per_s (256 in flight)',
    crossThreadAsk,
  ),
  cpu_bound_speedup: await best('cpu_bound_speedup (2 actors: 2 threads vs 1)', cpuBoundSpeedup, {
    digits: 2,
  }),
};
const baseline = {
  raw_batched_post_message_per_s: await best(
    `raw_batched_post_message_per_s (batches of ${window})`,
    rawBatchedPostMessage,
  ),
};
const codec = await codecComparison();
progress(`codec: ${JSON.stringify(codec)}`);
const fraction =
  Math.round((results.cross_thread_tell_msgs_per_s / baseline.raw_batched_post_message_per_s) * 100) / 100;
const meets =
  results.cross_thread_tell_msgs_per_s >= targets.cross_thread_tell_msgs_per_s &&
  fraction >= targets.cross_thread_tell_fraction_of_baseline &&
  results.cpu_bound_speedup >= targets.cpu_bound_speedup;
const line = {
  benchmark: 'thread-messaging',
  results: { ...results, cross_thread_tell_fraction_of_baseline: fraction },
  baseline,
  codec,
  targets,
  meets_targets: meets,
};
report(line);
