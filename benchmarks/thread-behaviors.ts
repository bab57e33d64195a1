/**
 * Behaviors the thread-messaging benchmark places on worker threads. Every host loads this
 * module (it is listed in the benchmark's `behaviorModules`).
 */
import type { ActorRef } from '../runtime/actor-ref.ts';
import { Behaviors } from '../runtime/behavior.ts';
import { defineBehavior } from '../runtime/registered-behavior.ts';

export type CounterMessage =
  | number
  | { type: 'hello'; ackTo: ActorRef<'ack'>; window: number; total: number };

/** Counts numbers; acks every `window` so the sender never overruns the bounded mailbox. */
export const windowedReceiver = defineBehavior('bench/windowed-receiver', (_props: Record<string, never>) =>
  Behaviors.setup<CounterMessage>(() => {
    let count = 0;
    let ackTo: ActorRef<'ack'> | undefined;
    let window = 1;
    return Behaviors.receiveMessage<CounterMessage>((message) => {
      if (typeof message === 'number') {
        count++;
        if (count % window === 0) ackTo?.tell('ack');
      } else {
        ackTo = message.ackTo;
        window = message.window;
        count = 0;
      }
      return Behaviors.same;
    });
  }),
);

export type EchoRequest = { value: number; replyTo: ActorRef<number> };

export const echo = defineBehavior('bench/echo', (_props: Record<string, never>) =>
  Behaviors.receiveMessage<EchoRequest>((request) => {
    request.replyTo.tell(request.value);
    return Behaviors.same;
  }),
);

export type WorkRequest = { rounds: number; replyTo: ActorRef<number> };

/** A fixed amount of pure CPU work per request (an integer hash loop). */
export function burn(rounds: number): number {
  let x = 0x9e3779b9;
  for (let i = 0; i < rounds; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x = (x + i) | 0;
  }
  return x;
}

export const cruncher = defineBehavior('bench/cruncher', (_props: Record<string, never>) =>
  Behaviors.receiveMessage<WorkRequest>((request) => {
    request.replyTo.tell(burn(request.rounds));
    return Behaviors.same;
  }),
);
