/**
 * The one seam between the kernel and the transport: envelopes for actors that do not live on
 * this thread go to the router. `runtime/` knows nothing of threads or libp2p; the worker-thread
 * hosts and the mesh plug in here.
 */

import type { DeathWatcher } from './actor-cell.ts';
import type { ActorAddress } from './actor-ref.ts';

export interface Router {
  /**
   * Takes a message for a non-local actor (`to` is often the ref itself: no envelope is allocated). Must not throw; undeliverable ones become dead
   * letters and make it return false (so an ask can fail at once).
   */
  deliver(to: ActorAddress, message: unknown): boolean;
  /** Watches a non-local actor; the watcher hears a death notice when it terminates or becomes unreachable. */
  watch(target: ActorAddress, watcher: DeathWatcher): void;
  unwatch(target: ActorAddress, watcher: DeathWatcher): void;
}
