/**
 * What a behavior sees of its actor while it handles a message or a signal. Only the actor
 * itself may use its context, and only inside its handlers.
 */
import type { Logger } from 'winston';
import type { ActorRef } from './actor-ref.ts';
import type { ActorSystem } from './actor-system.ts';
import type { Behavior } from './behavior.ts';
import type { MailboxOptions } from './mailbox-options.ts';

/** How a parent stops this child: milliseconds to wait for a graceful stop, or OTP's words. */
export type ShutdownSpec = number | 'brutal_kill' | 'infinity';

export interface SpawnOptions {
  /** Unique among live siblings; letters, digits, `-`, `_`, `.`. Generated (`$…`) when absent. */
  name?: string;
  mailbox?: Partial<MailboxOptions>;
  /** How long the parent waits for this actor to stop before killing it; default 5000 ms. */
  shutdown?: ShutdownSpec;
  /**
   * Where the actor runs: `'main'` (this thread, the default) or a worker-thread dispatcher such
   * as `'worker'`. Off this thread only behaviors made with `defineBehavior` can run.
   */
  dispatcher?: string;
  /**
   * The node (PeerId) to run the actor on, when the mesh is up; its parent stays here. Like a
   * worker dispatcher, only behaviors made with `defineBehavior` can run elsewhere.
   */
  node?: string;
}

export type PipeOutcome<TValue> = { ok: true; value: TValue } | { ok: false; error: Error };

export interface ActorContext<TMsg> {
  readonly self: ActorRef<TMsg>;
  readonly system: ActorSystem;
  /** The parent's ref; the root guardian has none. */
  readonly parent: ActorRef<never> | undefined;
  readonly name: string;
  /** A winston logger with this actor's path in every line. */
  readonly log: Logger;
  spawn<TChild>(behavior: Behavior<TChild>, options?: SpawnOptions): ActorRef<TChild>;
  /** Stops a child of this actor (its children first, then its `PostStop`). Throws for a non-child. */
  stop(child: ActorRef<never>): void;
  children(): ActorRef<never>[];
  child(name: string): ActorRef<never> | undefined;
  /** Delivers `Terminated` (or `ChildFailed` for a failed child) when `target` stops. */
  watch(target: ActorRef<never>): void;
  /** Like `watch`, but delivers `message` instead of a signal. */
  watchWith(target: ActorRef<never>, message: TMsg): void;
  unwatch(target: ActorRef<never>): void;
  /** Turns a promise's outcome into a message to this actor; `map` runs inside the actor. */
  pipeToSelf<TValue>(promise: PromiseLike<TValue>, map: (outcome: PipeOutcome<TValue>) => TMsg): void;
}
