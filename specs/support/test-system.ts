/**
 * Starting actor systems in specs: silent logs, optional simulated clock, and a probe actor that
 * records what it receives so specs can await messages instead of sleeping.
 */
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { ActorSystem, type ActorSystemOptions } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { TimeoutError } from '../../runtime/errors.ts';
import type { DeadLetter } from '../../runtime/kernel.ts';

export function startTestSystem(options: ActorSystemOptions = {}): Promise<ActorSystem> {
  return ActorSystem.start({ logLevel: 'silent', ...options });
}

export interface Probe<TMsg> {
  readonly ref: ActorRef<TMsg>;
  readonly received: TMsg[];
  /** Resolves with the next message not yet taken, waiting up to `timeoutMs` (real time). */
  next(timeoutMs?: number): Promise<TMsg>;
  /** Resolves once `count` messages have arrived in total. */
  waitFor(count: number, timeoutMs?: number): Promise<TMsg[]>;
}

export function spawnProbe<TMsg>(system: ActorSystem, name?: string): Probe<TMsg> {
  const received: TMsg[] = [];
  let taken = 0;
  let wake: (() => void) | undefined;
  const ref = system.spawn(
    Behaviors.receiveMessage<TMsg>((message) => {
      received.push(message);
      wake?.();
      return Behaviors.same;
    }),
    name === undefined ? undefined : { name },
  );
  const waitUntil = async (ready: () => boolean, timeoutMs: number, what: string): Promise<void> => {
    if (ready()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        wake = undefined;
        reject(
          new TimeoutError(`probe ${ref.path}: ${what} within ${timeoutMs} ms (got ${received.length})`),
        );
      }, timeoutMs);
      wake = () => {
        if (!ready()) return;
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
    });
  };
  return {
    ref,
    received,
    async next(timeoutMs = 2000) {
      await waitUntil(() => received.length > taken, timeoutMs, 'no next message');
      return received[taken++] as TMsg;
    },
    async waitFor(count, timeoutMs = 2000) {
      await waitUntil(() => received.length >= count, timeoutMs, `fewer than ${count} messages`);
      return received.slice(0, count);
    },
  };
}

/** Lets the dispatcher run everything that is ready (several event-loop turns). */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Records every dead letter the system publishes from now on. */
export function collectDeadLetters(system: ActorSystem): DeadLetter[] {
  const letters: DeadLetter[] = [];
  system.on('dead-letter:publish', (letter) => letters.push(letter));
  return letters;
}

/** Records every actor failure the system reports from now on. */
export function collectFailures(system: ActorSystem): { path: string; error: Error }[] {
  const failures: { path: string; error: Error }[] = [];
  system.on('actor:failure', ({ ref, error }) => failures.push({ path: ref.path, error }));
  return failures;
}

export interface Tracked<T> {
  readonly settled: boolean;
  readonly value: T | undefined;
  readonly error: unknown;
}

/** Watches a promise's outcome without awaiting it (and marks its rejection as handled). */
export function track<T>(promise: Promise<T>): Tracked<T> {
  const state: { settled: boolean; value: T | undefined; error: unknown } = {
    settled: false,
    value: undefined,
    error: undefined,
  };
  promise.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    (error: unknown) => {
      state.settled = true;
      state.error = error;
    },
  );
  return state;
}

/** The value of one sample in Prometheus text format, or undefined when absent. */
export function sampleValue(text: string, name: string, labels = ''): number | undefined {
  const key = labels === '' ? name : `${name}{${labels}}`;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${key} `)) return Number(line.slice(key.length + 1));
  }
  return undefined;
}
