/**
 * Local messaging benchmark: the actor kernel on one thread against a plain array queue that
 * calls a function per message, measured in the same process.
 *
 *   node benchmarks/local-messaging.ts --json
 *
 * Prints progress to stderr and, as its last stdout line, one JSON object:
 * {"benchmark":"local-messaging","results":{...},"baseline":{...},"targets":{...},"meets_targets":bool,"machine":{...}}
 * Each figure is the best of `--runs` runs (default 3) after a warm-up run.
 */

import v8 from 'node:v8';
import vm from 'node:vm';
import type { ActorRef } from '../runtime/actor-ref.ts';
import { ActorSystem } from '../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../runtime/behavior.ts';
import { best, report } from './bench-harness.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const targets = {
  tell_msgs_per_s: 5_000_000,
  ask_per_s: 300_000,
  spawn_per_s: 200_000,
  idle_actor_bytes_max: 1_000,
};

function newSystem(): Promise<ActorSystem> {
  return ActorSystem.start({ logLevel: 'silent' });
}

/** One sender, one receiver; the receiver acks every window so the bounded mailbox never overflows. */
async function tellThroughput(total: number): Promise<number> {
  const system = await newSystem();
  const window = 2000;
  type ReceiverMsg = number | { type: 'hello'; sender: ActorRef<'ack'> };
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const receiver = system.spawn(
    Behaviors.setup<ReceiverMsg>(() => {
      let count = 0;
      let sender: ActorRef<'ack'> | undefined;
      return Behaviors.receiveMessage<ReceiverMsg>((message) => {
        if (typeof message === 'number') {
          count++;
          if (count % window === 0) sender?.tell('ack');
          if (count === total) finish();
        } else {
          sender = message.sender;
        }
        return Behaviors.same;
      });
    }),
    { name: 'receiver' },
  );
  const sender = system.spawn(
    Behaviors.setup<'go' | 'ack'>((ctx) => {
      let sent = 0;
      const burst = (): void => {
        const end = Math.min(total, sent + window);
        while (sent < end) receiver.tell(sent++);
      };
      return Behaviors.receiveMessage((message) => {
        if (message === 'go') {
          receiver.tell({ type: 'hello', sender: ctx.self });
          burst();
          burst();
        } else {
          burst();
        }
        return Behaviors.same;
      });
    }),
    { name: 'sender' },
  );
  const started = performance.now();
  sender.tell('go');
  await finished;
  const elapsed = performance.now() - started;
  await system.stop();
  return (total / elapsed) * 1000;
}

async function pingPong(roundTrips: number): Promise<number> {
  const system = await newSystem();
  type Ball = { n: number; from: ActorRef<Ball> };
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const player: Behavior<Ball> = Behaviors.receive<Ball>((ctx, ball) => {
    if (ball.n >= roundTrips * 2) finish();
    else ball.from.tell({ n: ball.n + 1, from: ctx.self });
    return Behaviors.same;
  });
  const ping = system.spawn(player, { name: 'ping' });
  const pong = system.spawn(player, { name: 'pong' });
  const started = performance.now();
  pong.tell({ n: 0, from: ping });
  await finished;
  const elapsed = performance.now() - started;
  await system.stop();
  return (roundTrips / elapsed) * 1000;
}

async function askThroughput(total: number, inFlight: number): Promise<number> {
  const system = await newSystem();
  type Request = { value: number; replyTo: ActorRef<number> };
  const echo = system.spawn(
    Behaviors.receiveMessage<Request>((request) => {
      request.replyTo.tell(request.value);
      return Behaviors.same;
    }),
    { name: 'echo' },
  );
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const value = next++;
      await echo.ask<number>((replyTo) => ({ value, replyTo }));
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsed = performance.now() - started;
  await system.stop();
  return (total / elapsed) * 1000;
}

async function spawnThroughput(total: number): Promise<number> {
  const system = await newSystem();
  const behavior = Behaviors.setup<number>(() => Behaviors.ignore<number>());
  const started = performance.now();
  for (let i = 0; i < total; i++) system.spawn(behavior);
  const elapsed = performance.now() - started;
  await system.stop();
  return (total / elapsed) * 1000;
}

async function idleActorBytes(count: number): Promise<number> {
  const system = await newSystem();
  const behavior = Behaviors.receiveMessage<number>(() => Behaviors.same);
  const refs: ActorRef<number>[] = new Array(count);
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) refs[i] = system.spawn(behavior);
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  await system.stop();
  // The refs array is the benchmark's, not the actors': 8 bytes a slot, preallocated before `before`.
  return (after - before) / count;
}

function rawDispatch(total: number): number {
  const queue: number[] = [];
  let sum = 0;
  const handle = (value: number): void => {
    sum += value;
  };
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    queue.push(i);
    if (queue.length === 2000) {
      for (let j = 0; j < queue.length; j++) handle(queue[j] as number);
      queue.length = 0;
    }
  }
  for (let j = 0; j < queue.length; j++) handle(queue[j] as number);
  const elapsed = performance.now() - started;
  if (sum < 0) throw new Error('unreachable');
  return (total / elapsed) * 1000;
}

const results = {
  tell_msgs_per_s: await best('tell_msgs_per_s (5M, 1 sender → 1 receiver)', () => tellThroughput(5_000_000)),
  ping_pong_round_trips_per_s: await best('ping_pong_round_trips_per_s (2 actors)', () =>
    pingPong(1_000_000),
  ),
  ask_per_s: await best('ask_per_s (1000 in flight)', () => askThroughput(500_000, 1000)),
  spawn_per_s: await best('spawn_per_s (200k)', () => spawnThroughput(200_000)),
  idle_actor_bytes: await best('idle_actor_bytes (100k actors)', () => idleActorBytes(100_000), {
    higherIsBetter: false,
  }),
};
const baseline = {
  raw_dispatch_per_s: await best('raw_dispatch_per_s (array queue + function call)', async () =>
    rawDispatch(5_000_000),
  ),
};
const meets =
  results.tell_msgs_per_s >= targets.tell_msgs_per_s &&
  results.ask_per_s >= targets.ask_per_s &&
  results.spawn_per_s >= targets.spawn_per_s &&
  results.idle_actor_bytes <= targets.idle_actor_bytes_max;
const line = {
  benchmark: 'local-messaging',
  results,
  baseline,
  targets,
  meets_targets: meets,
};
report(line);
