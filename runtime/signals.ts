/**
 * Lifecycle signals. They reach a behavior's signal handler, never its message handler, so an
 * actor's message type stays exactly what its senders may send.
 */
import type { ActorRef } from './actor-ref.ts';

/** The actor has stopped; release resources. A returned promise delays termination until it settles. */
export interface PostStop {
  readonly type: 'PostStop';
}

/** The actor failed and is about to be restarted from its initial behavior. */
export interface PreRestart {
  readonly type: 'PreRestart';
}

/** A watched actor terminated (normally, by being stopped, or by failing if it is not our child). */
export interface Terminated {
  readonly type: 'Terminated';
  readonly ref: ActorRef<never>;
}

/** A watched child stopped because it failed; `error` is why. */
export interface ChildFailed {
  readonly type: 'ChildFailed';
  readonly ref: ActorRef<never>;
  readonly error: Error;
}

export type Signal = PostStop | PreRestart | Terminated | ChildFailed;

export const PostStop: PostStop = Object.freeze({ type: 'PostStop' });
export const PreRestart: PreRestart = Object.freeze({ type: 'PreRestart' });
