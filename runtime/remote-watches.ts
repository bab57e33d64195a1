/**
 * Death watch across a thread or node boundary, one instance per side of a channel (a worker host
 * or a mesh peer link). The side whose actor watches sends `watch` with a fresh id; the other side
 * watches the target locally with a relay that answers `death` with that id. When the other side
 * is lost, every watch through it ends: watchers hear a death notice carrying the reason.
 */
import type { DeathWatcher } from './actor-cell.ts';
import type { ActorRef } from './actor-ref.ts';
import { errorFromWire } from './errors.ts';
import { type ControlMessage, toWireError, type WireError } from './host-protocol.ts';
import type { Kernel } from './kernel.ts';

/**
 * One watch across the thread: a watcher and a target path. Refs to an actor that is not on this
 * thread are not unique (each decoded address is a new ref), and the kernel watches by ref, so
 * every ref the watcher watched under that path hears the death.
 */
interface Requested {
  readonly watcher: DeathWatcher;
  readonly targets: Set<ActorRef<never>>;
}

interface Served {
  readonly target: ActorRef<never>;
  readonly relay: DeathWatcher;
}

export class RemoteWatches {
  readonly #kernel: Kernel;
  readonly #send: (message: ControlMessage) => void;
  #nextId = 1;
  readonly #requested = new Map<number, Requested>();
  /** watcher → target path → id, for unwatch. */
  readonly #ids = new Map<DeathWatcher, Map<string, number>>();
  readonly #served = new Map<number, Served>();

  constructor(kernel: Kernel, send: (message: ControlMessage) => void) {
    this.#kernel = kernel;
    this.#send = send;
  }

  /** Whether any actor here watches an actor on the other side. */
  get active(): boolean {
    return this.#requested.size > 0;
  }

  request(target: ActorRef<never>, watcher: DeathWatcher): void {
    let byPath = this.#ids.get(watcher);
    const existing = byPath?.get(target.path);
    if (existing !== undefined) {
      this.#requested.get(existing)?.targets.add(target);
      return;
    }
    const id = this.#nextId++;
    this.#requested.set(id, { watcher, targets: new Set([target]) });
    if (byPath === undefined) {
      byPath = new Map();
      this.#ids.set(watcher, byPath);
    }
    byPath.set(target.path, id);
    this.#send({ t: 'watch', id, path: target.path });
  }

  cancel(target: { readonly path: string }, watcher: DeathWatcher): void {
    const byPath = this.#ids.get(watcher);
    const id = byPath?.get(target.path);
    if (byPath === undefined || id === undefined) return;
    const targets = this.#requested.get(id)?.targets;
    if (targets !== undefined) {
      // The kernel unwatches with the ref it watched; other refs to the same actor stay watched.
      targets.delete(target as ActorRef<never>);
      if (targets.size > 0) return;
    }
    byPath.delete(target.path);
    if (byPath.size === 0) this.#ids.delete(watcher);
    this.#requested.delete(id);
    this.#send({ t: 'unwatch', id });
  }

  onDeath(id: number, error: WireError | undefined): void {
    const entry = this.#requested.get(id);
    if (entry === undefined) return;
    this.#forget(id, entry);
    const reason = error === undefined ? undefined : errorFromWire(error);
    for (const target of entry.targets) entry.watcher.deathNotice(target, reason, false);
  }

  serve(id: number, path: string): void {
    const target = this.#kernel.resolve<never>({ node: this.#kernel.nodeId, path });
    const relay: DeathWatcher = {
      deathNotice: (_ref, error) => {
        if (this.#served.get(id)?.relay !== relay) return;
        this.#served.delete(id);
        this.#send({ t: 'death', id, error: toWireError(error) });
      },
    };
    this.#served.set(id, { target, relay });
    this.#kernel.watch(target, relay);
  }

  stopServing(id: number): void {
    const entry = this.#served.get(id);
    if (entry === undefined) return;
    this.#served.delete(id);
    this.#kernel.unwatch(entry.target, entry.relay);
  }

  /** The other thread is gone: every watch through it ends with `error`. */
  endAll(error: Error): void {
    for (const entry of this.#served.values()) this.#kernel.unwatch(entry.target, entry.relay);
    this.#served.clear();
    const requested = [...this.#requested.values()];
    this.#requested.clear();
    this.#ids.clear();
    for (const entry of requested) {
      for (const target of entry.targets) entry.watcher.deathNotice(target, error, false);
    }
  }

  #forget(id: number, entry: Requested): void {
    this.#requested.delete(id);
    const byPath = this.#ids.get(entry.watcher);
    const path = entry.targets.values().next().value?.path;
    if (path !== undefined && byPath?.get(path) === id) byPath.delete(path);
    if (byPath?.size === 0) this.#ids.delete(entry.watcher);
  }
}
