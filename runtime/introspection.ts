/**
 * Introspection: a read-only snapshot of this node's actor tree (path, kind, lifecycle, mailbox
 * size, restart count), and the small actor at `introspectionPath` that answers it to admin
 * clients (`cloudless status --tree`). The snapshot is plain data copied out of the cells (no
 * reference to a cell escapes) and bounded in actors and bytes, so a remote asker can neither
 * change the tree nor make the reply outgrow a frame.
 */
import type { ActorCell } from './actor-cell.ts';
import type { ActorRef } from './actor-ref.ts';
import { type Behavior, Behaviors } from './behavior.ts';
import type { Kernel } from './kernel.ts';

/** Where every node runs its introspection actor (`system.spawnSystemActor`, name `introspection`). */
export const introspectionPath = '/system/introspection';

/** Most actors one snapshot lists; the rest are counted but left out. */
export const maxSnapshotActors = 10_000;
/** Most path characters one snapshot carries, so the reply stays well under the mesh's frame limit. */
const maxSnapshotPathChars = 1024 * 1024;

export type ActorKind = 'guardian' | 'supervisor' | 'hosted' | 'actor';

/** One actor, in a pre-order walk of the tree: its children follow it with `depth + 1`. */
export interface ActorSnapshot {
  readonly path: string;
  readonly depth: number;
  readonly kind: ActorKind;
  readonly lifecycle: 'running' | 'restarting' | 'terminating' | 'dead';
  /** User messages waiting in its mailbox. */
  readonly mailbox: number;
  /** Restarts by its own strategy, plus those of incarnations its OTP supervisor replaced. */
  readonly restarts: number;
  readonly children: number;
}

export interface ActorTreeSnapshot {
  readonly node: string;
  /** Pre-order: every actor comes after its parent. */
  readonly actors: readonly ActorSnapshot[];
  /** Actors alive on this thread, listed or not. */
  readonly total: number;
  /** True when `actors` stops short of `total` (the limit was reached). */
  readonly truncated: boolean;
}

const guardianPaths = new Set(['/', '/user', '/system', '/host']);

function kindOf(cell: ActorCell<unknown>): ActorKind {
  if (guardianPaths.has(cell.self.path)) return 'guardian';
  if (cell.childStopOrder !== undefined) return 'supervisor';
  // A cell the host guardian holds for an actor whose real parent is on another thread.
  if (cell.parentCell !== undefined && cell.parent !== cell.parentCell.self) return 'hosted';
  return 'actor';
}

/**
 * Walks the actors of `kernel` from its roots, depth first in spawn order, copying at most
 * `maxActors` of them (default and ceiling `maxSnapshotActors`). Synchronous: it sees one
 * consistent tree, between two dispatcher turns.
 */
export function snapshotActorTree(kernel: Kernel, options: { maxActors?: number } = {}): ActorTreeSnapshot {
  const limit = Math.min(Math.max(1, Math.trunc(options.maxActors ?? maxSnapshotActors)), maxSnapshotActors);
  const roots = [...kernel.registry.values()].filter((cell) => cell.parentCell === undefined);
  const actors: ActorSnapshot[] = [];
  let pathChars = 0;
  let truncated = false;
  // An explicit stack: a deep tree must not exhaust the JS stack.
  const stack: { cell: ActorCell<unknown>; depth: number }[] = roots
    .reverse()
    .map((cell) => ({ cell, depth: 0 }));
  while (stack.length > 0) {
    const { cell, depth } = stack.pop() as { cell: ActorCell<unknown>; depth: number };
    const path = cell.self.path;
    if (actors.length >= limit || pathChars + path.length > maxSnapshotPathChars) {
      truncated = true;
      break;
    }
    pathChars += path.length;
    const children = cell.childCells();
    actors.push({
      path,
      depth,
      kind: kindOf(cell),
      lifecycle: cell.lifecycle,
      mailbox: cell.mailboxSize,
      restarts: cell.restartCount,
      children: children.length,
    });
    for (let i = children.length - 1; i >= 0; i--)
      stack.push({ cell: children[i] as ActorCell<unknown>, depth: depth + 1 });
  }
  return { node: kernel.nodeId, actors, total: kernel.registry.size, truncated };
}

export interface IntrospectRequest {
  readonly type: 'introspect';
  /** At most this many actors (1 to `maxSnapshotActors`; default the ceiling). */
  readonly maxActors?: number;
  readonly replyTo: ActorRef<IntrospectReply>;
}

export type IntrospectReply =
  | { readonly ok: true; readonly value: ActorTreeSnapshot }
  | { readonly ok: false; readonly error: { readonly code: string; readonly message: string } };

/**
 * The introspection actor. Requests come from other processes, so anything that is not a
 * well-formed request is dropped as unhandled (a dead letter), and a bad `maxActors` is answered
 * with INVALID_REQUEST.
 */
export function introspectionBehavior(): Behavior<IntrospectRequest> {
  return Behaviors.receive<IntrospectRequest>((ctx, message) => {
    const request = message as Partial<IntrospectRequest> | null;
    if (request === null || typeof request !== 'object' || request.type !== 'introspect')
      return Behaviors.unhandled;
    const replyTo = request.replyTo;
    if (replyTo === undefined || typeof (replyTo as { tell?: unknown }).tell !== 'function') {
      return Behaviors.unhandled;
    }
    const max = request.maxActors;
    if (
      max !== undefined &&
      (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > maxSnapshotActors)
    ) {
      replyTo.tell({
        ok: false,
        error: {
          code: 'INVALID_REQUEST',
          message: `maxActors must be a whole number from 1 to ${maxSnapshotActors}, got ${JSON.stringify(max)}`,
        },
      });
      return Behaviors.same;
    }
    replyTo.tell({ ok: true, value: snapshotActorTree(ctx.system.internals, { maxActors: max }) });
    return Behaviors.same;
  });
}
