/**
 * A bounded buffer where an actor sets aside messages it cannot handle yet (`Behaviors.withStash`).
 * Unstashed messages are handled before anything that arrived after them.
 */
import type { Behavior } from './behavior.ts';

export interface StashBuffer<TMsg> {
  readonly capacity: number;
  readonly size: number;
  readonly isEmpty: boolean;
  readonly isFull: boolean;
  /** Sets the message aside; throws `StashOverflowError` (failing the actor) when full. */
  stash(message: TMsg): void;
  /** Puts every stashed message back at the head of the mailbox, in order, and returns `behavior`. */
  unstashAll(behavior: Behavior<TMsg>): Behavior<TMsg>;
  forEach(visit: (message: TMsg) => void): void;
  /** Drops every stashed message (to dead letters). */
  clear(): void;
}
