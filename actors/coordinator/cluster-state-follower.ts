/**
 * A `ClusterState` kept current from this node's KV front door: the store follower over the cluster
 * state's prefixes, applying each step to the state. The leader-side workload actors (controller,
 * scheduler shards, plan applier) each own one; records the state refuses are logged.
 */
import type { ActorContext } from '../../runtime/actor-context.ts';
import { type KvServiceRequest, kvServicePath } from '../raft/kv-service-protocol.ts';
import { ClusterState, clusterStatePrefixes } from './cluster-state.ts';
import { type StoreFeed, StoreFollower, type StoreUpdate } from './store-follower.ts';

export class ClusterStateFollower<TMsg> {
  readonly state = new ClusterState();
  /** The state has been loaded from the store at least once since the last `reload`. */
  loaded = false;
  readonly #follower: StoreFollower<TMsg>;

  constructor(ctx: ActorContext<TMsg>, wrap: (feed: StoreFeed) => TMsg) {
    this.state.onRefused = (refused) => ctx.log.warn('store record refused', refused);
    // This node's own front door: these actors run on a coordinator, next to its member.
    const front = ctx.system.resolve<KvServiceRequest>({ node: ctx.system.nodeId, path: kvServicePath });
    this.#follower = new StoreFollower(ctx, front, clusterStatePrefixes, wrap);
  }

  /** Starts from a fresh load (what is applied meanwhile is replaced when it arrives). */
  reload(delayMs = 0): void {
    this.loaded = false;
    this.#follower.load(delayMs);
  }

  /** Applies one feed message to the state; returns what it brought, or undefined for a stale one. */
  apply(feed: StoreFeed): StoreUpdate | undefined {
    const update = this.#follower.handle(feed);
    if (update === undefined) return undefined;
    if (update.kind === 'loaded') {
      this.state.load(update.kvs, update.revision);
      this.loaded = true;
    } else this.state.applyEvents(update.events);
    return update;
  }

  stop(): void {
    this.#follower.stop();
  }
}
