/**
 * A `ClusterState` kept current from the local Raft member: the store follower over the cluster
 * state's prefixes, applying each step to the state. The leader-side workload actors (controller,
 * scheduler shards, plan applier) each own one; records the state refuses are logged.
 */
import type { ActorContext } from '../../runtime/actor-context.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { RaftMemberMessage } from '../raft/raft-member.ts';
import { ClusterState, clusterStatePrefixes } from './cluster-state.ts';
import { type StoreFeed, StoreFollower, type StoreUpdate } from './store-follower.ts';

export class ClusterStateFollower<TMsg> {
  readonly state = new ClusterState();
  /** The state has been loaded from the store at least once since the last `reload`. */
  loaded = false;
  readonly #follower: StoreFollower<TMsg>;

  constructor(ctx: ActorContext<TMsg>, member: ActorRef<RaftMemberMessage>, wrap: (feed: StoreFeed) => TMsg) {
    this.state.onRefused = (refused) => ctx.log.warn('store record refused', refused);
    this.#follower = new StoreFollower(ctx, member, clusterStatePrefixes, wrap);
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
