/**
 * The control messages between a placing side and a host: the main thread and a worker-thread
 * host (envelopes travel in encoded `batch` messages, see thread-channel.ts; control messages are
 * structured-cloned), and two nodes over the mesh (control frames of the actor protocol, see
 * transport/peer-link.ts).
 */

import type { HostedSnapshot } from './introspection.ts';

/** An error as it crosses a thread: rebuilt with `errorFromWire`. */
export interface WireError {
  readonly code?: string;
  readonly name?: string;
  readonly message: string;
}

/** A per-actor strategy as data, so a worker can rebuild `Behaviors.supervise` around a behavior. */
export interface StrategyData {
  readonly kind: 'resume' | 'stop' | 'restart' | 'backoff';
  readonly maxRestarts?: number;
  readonly withinMs?: number;
  readonly minMs?: number;
  readonly maxMs?: number;
  readonly jitter?: number;
  readonly resetAfterMs?: number;
  /** Matches failures by their class name (classes cannot cross threads). */
  readonly errorClassName?: string;
}

export interface SpawnMailbox {
  readonly capacity?: number;
  readonly overflow?: 'drop-newest' | 'drop-oldest';
}

export type ControlMessage =
  // both directions
  | { readonly t: 'batch'; readonly data: Uint8Array; readonly n: number }
  | { readonly t: 'ack'; readonly n: number }
  | { readonly t: 'watch'; readonly id: number; readonly path: string }
  | { readonly t: 'unwatch'; readonly id: number }
  | { readonly t: 'death'; readonly id: number; readonly error?: WireError }
  // main → worker
  | {
      readonly t: 'spawn';
      /** This incarnation, unique per host: its `terminated` carries it back. */
      readonly id: number;
      readonly path: string;
      readonly behavior: string;
      /** Props encoded with the thread codec (refs inside stay live). */
      readonly props: Uint8Array;
      readonly strategies: readonly StrategyData[];
      readonly parent: string;
      readonly mailbox?: SpawnMailbox;
    }
  | { readonly t: 'stop'; readonly path: string }
  | { readonly t: 'kill'; readonly path: string }
  | { readonly t: 'shutdown' }
  /** Asks for the actors the worker hosts and their descendants (`cloudless status --tree`). */
  | { readonly t: 'introspect'; readonly id: number; readonly maxActors: number }
  // worker → main
  | { readonly t: 'ready' }
  | { readonly t: 'init-failed'; readonly error: WireError }
  | { readonly t: 'introspected'; readonly id: number; readonly hosted: HostedSnapshot }
  | {
      readonly t: 'terminated';
      /** The incarnation that ended: a later one may already live at the same path. */
      readonly id: number;
      readonly path: string;
      readonly error?: WireError;
    };

export function toWireError(error: Error | undefined): WireError | undefined {
  if (error === undefined) return undefined;
  const code = (error as { code?: unknown }).code;
  return { code: typeof code === 'string' ? code : undefined, name: error.name, message: error.message };
}
