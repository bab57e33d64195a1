/**
 * Starting actor systems in specs: silent logs, optional simulated clock, and a probe actor that
 * records what it receives so specs can await messages instead of sleeping.
 */
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { ActorSystem, type ActorSystemOptions } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { TimeoutError } from '../../runtime/errors.ts';

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
