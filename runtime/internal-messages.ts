/**
 * Kernel items that travel in an actor's user mailbox so they keep their place in the order of
 * arrival: timer ticks, death notices (as Erlang's EXIT messages do) and piped results. They are
 * never counted against the mailbox capacity and never published as dead letters.
 */
import type { ActorRef } from './actor-ref.ts';

export abstract class InternalMessage {}

export class TimerTick extends InternalMessage {
  readonly key: unknown;
  readonly generation: number;
  constructor(key: unknown, generation: number) {
    super();
    this.key = key;
    this.generation = generation;
  }
}

export class DeathNotice extends InternalMessage {
  readonly ref: ActorRef<never>;
  /** The failure that stopped the actor; undefined for a normal stop or a stop by its parent. */
  readonly error: Error | undefined;
  /** True when the watcher is the dead actor's parent (decides ChildFailed over Terminated). */
  readonly fromChild: boolean;
  constructor(ref: ActorRef<never>, error: Error | undefined, fromChild: boolean) {
    super();
    this.ref = ref;
    this.error = error;
    this.fromChild = fromChild;
  }
}

export class PipedOutcome extends InternalMessage {
  readonly run: () => unknown;
  constructor(run: () => unknown) {
    super();
    this.run = run;
  }
}
