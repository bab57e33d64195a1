/**
 * Introspection: a read-only snapshot of this node's actor tree (path, kind, lifecycle, mailbox
 * size, restart count), and the small actor at `introspectionPath` that answers it to admin
 * clients (`cloudless status --tree`). The snapshot is plain data copied out of the cells (no
 * reference to a cell escapes) and bounded in actors and bytes, so a remote asker can neither
 * change the tree nor make the reply outgrow a frame.
 *
 * Actors on worker threads (`dispatcher: 'worker'`) live in their thread's kernel; the main
 * thread holds a proxy at the same path. The introspection actor asks every worker host for the
 * actors it hosts (`introspect` in host-protocol.ts) and puts each in place of its proxy, with its
 * descendants, marked with the thread it runs on (`thread`).
 */
import type { ActorCell } from './actor-cell.ts';
import type { ActorRef } from './actor-ref.ts';
import { type Behavior, Behaviors } from './behavior.ts';
import type { Kernel } from './kernel.ts';
import { PlacedActorRef } from './placed-actor-proxy.ts';
import { WorkerHost } from './worker-host.ts';
import type { WorkerThreads } from './worker-threads.ts';

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
  /** The worker thread it runs on (`<dispatcher>/<host tag>`); absent on the main thread. */
  readonly thread?: string;
}

export interface ActorTreeSnapshot {
  readonly node: string;
  /** Pre-order: every actor comes after its parent. */
  readonly actors: readonly ActorSnapshot[];
  /** Actors alive on this node's threads (a worker actor's proxy not counted twice), listed or not. */
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

/** The worker thread a main-thread proxy stands for, else undefined. */
function threadOf(cell: ActorCell<unknown>): string | undefined {
  const self = cell.self;
  if (!(self instanceof PlacedActorRef) || !(self.host instanceof WorkerHost)) return undefined;
  return `${self.host.dispatcher}/${self.host.tag}`;
}

function limitOf(maxActors: number | undefined): number {
  return Math.min(Math.max(1, Math.trunc(maxActors ?? maxSnapshotActors)), maxSnapshotActors);
}

/**
 * Walks the actors of `kernel` from its roots, depth first in spawn order, copying at most
 * `maxActors` of them (default and ceiling `maxSnapshotActors`). Synchronous: it sees one
 * consistent tree, between two dispatcher turns. A worker actor appears as its main-thread proxy,
 * marked with its thread; `introspectionBehavior` fills in what the thread itself knows.
 */
export function snapshotActorTree(kernel: Kernel, options: { maxActors?: number } = {}): ActorTreeSnapshot {
  const roots = [...kernel.registry.values()].filter((cell) => cell.parentCell === undefined);
  const walked = walk(roots, limitOf(options.maxActors));
  return {
    node: kernel.nodeId,
    actors: walked.actors,
    total: kernel.registry.size,
    truncated: walked.truncated,
  };
}

/** What a worker thread hosts, as `snapshotHostedActors` lists it. */
export interface HostedSnapshot {
  /** Pre-order; each hosted actor at depth 0, its descendants below it. */
  readonly actors: readonly ActorSnapshot[];
  /** Hosted actors and their descendants alive on the thread, listed or not. */
  readonly total: number;
  readonly truncated: boolean;
}

/**
 * On a worker thread: the actors the main thread placed here (the children of `/host`, each at
 * the path its proxy has on the main thread) and their descendants, at most `maxActors`.
 */
export function snapshotHostedActors(kernel: Kernel, options: { maxActors?: number } = {}): HostedSnapshot {
  const roots = kernel.registry.get('/host')?.childCells() ?? [];
  const walked = walk(roots, limitOf(options.maxActors));
  // Everything on the thread but its four guardians (root, user, system, host).
  let total = 0;
  for (const cell of kernel.registry.values()) if (!guardianPaths.has(cell.self.path)) total++;
  return {
    // A hosted actor's real parent is on the main thread: here it is an actor or a supervisor.
    actors: walked.actors.map((actor) => (actor.kind === 'hosted' ? { ...actor, kind: 'actor' } : actor)),
    total,
    truncated: walked.truncated,
  };
}

function walk(
  roots: readonly ActorCell<unknown>[],
  limit: number,
): { actors: ActorSnapshot[]; truncated: boolean } {
  const actors: ActorSnapshot[] = [];
  let pathChars = 0;
  let truncated = false;
  // An explicit stack: a deep tree must not exhaust the JS stack.
  const stack: { cell: ActorCell<unknown>; depth: number }[] = [...roots]
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
    const thread = threadOf(cell);
    actors.push({
      path,
      depth,
      kind: kindOf(cell),
      lifecycle: cell.lifecycle,
      mailbox: cell.mailboxSize,
      restarts: cell.restartCount,
      children: children.length,
      ...(thread === undefined ? {} : { thread }),
    });
    for (let i = children.length - 1; i >= 0; i--)
      stack.push({ cell: children[i] as ActorCell<unknown>, depth: depth + 1 });
  }
  return { actors, truncated };
}

/**
 * Puts what each worker thread reported in place of the proxies of `main`: a proxy's entry takes
 * the hosted actor's own figures (lifecycle, mailbox, restarts, children), and the actor's
 * descendants on the thread follow it, all marked with the thread. A proxy whose thread did not
 * answer stays as it is. At most `limit` actors in all.
 */
export function mergeThreadSnapshots(
  main: ActorTreeSnapshot,
  threads: readonly { readonly thread: string; readonly hosted: HostedSnapshot }[],
  limit: number = maxSnapshotActors,
): ActorTreeSnapshot {
  // Path of each hosted actor → its entry and descendants, from the thread that hosts it.
  const subtrees = new Map<string, { thread: string; actors: ActorSnapshot[] }>();
  let extra = 0;
  let truncated = main.truncated;
  for (const { thread, hosted } of threads) {
    truncated ||= hosted.truncated;
    let current: ActorSnapshot[] | undefined;
    let roots = 0;
    for (const actor of hosted.actors) {
      if (actor.depth === 0) {
        current = [];
        roots++;
        subtrees.set(actor.path, { thread, actors: current });
      }
      current?.push(actor);
    }
    extra += hosted.total - roots;
  }
  const actors: ActorSnapshot[] = [];
  for (const entry of main.actors) {
    if (actors.length >= limit) {
      truncated = true;
      break;
    }
    const subtree = entry.thread === undefined ? undefined : subtrees.get(entry.path);
    if (subtree === undefined) {
      actors.push(entry);
      continue;
    }
    for (const actor of subtree.actors) {
      if (actors.length >= limit) {
        truncated = true;
        break;
      }
      actors.push({ ...actor, depth: entry.depth + actor.depth, thread: subtree.thread });
    }
  }
  return { node: main.node, actors, total: main.total + extra, truncated };
}

/** How long the introspection actor waits for a worker thread's list. */
const threadIntrospectionTimeoutMs = 2000;

/** This node's tree with what its worker threads host; a thread that does not answer in time keeps its proxies. */
export async function snapshotNodeTree(
  kernel: Kernel,
  threads: WorkerThreads | undefined,
  options: { maxActors?: number } = {},
): Promise<ActorTreeSnapshot> {
  const limit = limitOf(options.maxActors);
  const main = snapshotActorTree(kernel, { maxActors: limit });
  if (threads === undefined) return main;
  const hosted = await threads.introspect(limit, threadIntrospectionTimeoutMs);
  return mergeThreadSnapshots(main, hosted, limit);
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
  return Behaviors.receive<IntrospectRequest | IntrospectionDone>((ctx, message) => {
    if ((message as IntrospectionDone | null)?.type === 'introspection:done' && message instanceof Done) {
      message.replyTo.tell(message.reply);
      return Behaviors.same;
    }
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
    const threads = ctx.system.workerThreads;
    if (threads === undefined) {
      replyTo.tell({ ok: true, value: snapshotActorTree(ctx.system.internals, { maxActors: max }) });
      return Behaviors.same;
    }
    ctx.pipeToSelf(
      snapshotNodeTree(ctx.system.internals, threads, { maxActors: max }),
      (outcome) =>
        new Done(
          replyTo,
          outcome.ok
            ? { ok: true, value: outcome.value }
            : { ok: false, error: { code: 'UNAVAILABLE', message: outcome.error.message } },
        ),
    );
    return Behaviors.same;
  }) as unknown as Behavior<IntrospectRequest>;
}

/**
 * The snapshot with the worker threads' lists, back in the actor. A class, so a remote peer
 * cannot forge one (a decoded message is a plain object, never an instance).
 */
class Done {
  readonly type = 'introspection:done';
  readonly replyTo: ActorRef<IntrospectReply>;
  readonly reply: IntrospectReply;
  constructor(replyTo: ActorRef<IntrospectReply>, reply: IntrospectReply) {
    this.replyTo = replyTo;
    this.reply = reply;
  }
}
type IntrospectionDone = Done;
