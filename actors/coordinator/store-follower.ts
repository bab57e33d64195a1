/**
 * Keeps an actor's copy of some store prefixes current: loads them through a KV front door
 * (serializable, paged), then watches each from the revision after the load; a watch that ends
 * (history compacted, member restarted) starts a fresh load. The owner receives every step as a
 * `StoreFeed` message and passes it to `handle`, which drops what belongs to an older load.
 *
 * Used by the leader-side workload actors (controller, scheduler shards, plan applier) with their
 * own node's front door, so reads are local and cheap.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ActorContext } from '../../runtime/actor-context.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { loadPrefix } from '../raft/kv-prefix-load.ts';
import type { KvServiceRequest } from '../raft/kv-service-protocol.ts';
import type { KeyValue, KvEvent } from '../raft/kv-types.ts';
import type { RaftWatchEvent } from '../raft/raft-member.ts';

export type StoreFeed =
  | {
      readonly type: 'store-feed';
      readonly generation: number;
      readonly kind: 'loaded';
      readonly kvs: readonly KeyValue[];
      readonly revision: number;
    }
  | {
      readonly type: 'store-feed';
      readonly generation: number;
      readonly kind: 'events';
      readonly events: readonly KvEvent[];
    }
  | {
      readonly type: 'store-feed';
      readonly generation: number;
      readonly kind: 'ended';
      readonly reason: string;
    };

export type StoreUpdate =
  | { readonly kind: 'loaded'; readonly kvs: readonly KeyValue[]; readonly revision: number }
  | { readonly kind: 'events'; readonly events: readonly KvEvent[] };

export class StoreFollower<TMsg> {
  readonly #ctx: ActorContext<TMsg>;
  readonly #front: ActorRef<KvServiceRequest>;
  readonly #prefixes: readonly string[];
  readonly #wrap: (feed: StoreFeed) => TMsg;
  readonly #stopping = new AbortController();
  readonly #subscribers: ActorRef<RaftWatchEvent>[] = [];
  #generation = 0;

  constructor(
    ctx: ActorContext<TMsg>,
    front: ActorRef<KvServiceRequest>,
    prefixes: readonly string[],
    wrap: (feed: StoreFeed) => TMsg,
  ) {
    this.#ctx = ctx;
    this.#front = front;
    this.#prefixes = prefixes;
    this.#wrap = wrap;
  }

  /** Starts a (fresh) load, after `delayMs`. */
  load(delayMs = 0): void {
    const generation = ++this.#generation;
    for (const subscriber of this.#subscribers.splice(0)) this.#ctx.stop(subscriber as ActorRef<never>);
    const signal = this.#stopping.signal;
    const work = (async () => {
      if (delayMs > 0) await sleep(delayMs, undefined, { signal });
      const kvs: KeyValue[] = [];
      let revision = Number.POSITIVE_INFINITY;
      for (const prefix of this.#prefixes) {
        const loaded = await loadPrefix(this.#front, prefix, signal);
        kvs.push(...loaded.kvs);
        revision = Math.min(revision, loaded.revision);
      }
      return { kvs, revision: Number.isFinite(revision) ? revision : 0 };
    })();
    this.#ctx.pipeToSelf(work, (outcome) =>
      this.#wrap(
        outcome.ok
          ? {
              type: 'store-feed',
              generation,
              kind: 'loaded',
              kvs: outcome.value.kvs,
              revision: outcome.value.revision,
            }
          : {
              type: 'store-feed',
              generation,
              kind: 'ended',
              reason: `load failed: ${outcome.error.message}`,
            },
      ),
    );
  }

  /** The update to apply, or undefined for a feed of an older load (or one that started a reload). */
  handle(feed: StoreFeed): StoreUpdate | undefined {
    if (feed.generation !== this.#generation || this.#stopping.signal.aborted) return undefined;
    switch (feed.kind) {
      case 'loaded':
        for (const prefix of this.#prefixes) this.#watch(prefix, feed.revision + 1, feed.generation);
        return { kind: 'loaded', kvs: feed.kvs, revision: feed.revision };
      case 'events':
        return { kind: 'events', events: feed.events };
      case 'ended':
        this.#ctx.log.info('store view reloading', { reason: feed.reason });
        this.load(200);
        return undefined;
    }
  }

  stop(): void {
    this.#stopping.abort();
    for (const subscriber of this.#subscribers.splice(0)) this.#ctx.stop(subscriber as ActorRef<never>);
  }

  #watch(prefix: string, fromRevision: number, generation: number): void {
    const parent = this.#ctx.self;
    const wrap = this.#wrap;
    const front = this.#front;
    const subscriber = this.#ctx.spawn(
      Behaviors.setup<RaftWatchEvent>((child) => {
        child.watch(front as ActorRef<never>);
        return Behaviors.receive<RaftWatchEvent>((_c, event) => {
          if (event.type === 'watch-started') {
            if (event.history.length > 0)
              parent.tell(wrap({ type: 'store-feed', generation, kind: 'events', events: event.history }));
          } else if (event.type === 'watch-events') {
            parent.tell(wrap({ type: 'store-feed', generation, kind: 'events', events: event.events }));
          } else {
            parent.tell(wrap({ type: 'store-feed', generation, kind: 'ended', reason: event.error.message }));
            return Behaviors.stopped;
          }
          return Behaviors.same;
        }).receiveSignal((_c, signal) => {
          if (signal.type === 'Terminated') {
            parent.tell(
              wrap({ type: 'store-feed', generation, kind: 'ended', reason: 'the KV front door stopped' }),
            );
            return Behaviors.stopped;
          }
          return Behaviors.same;
        });
      }),
    );
    this.#subscribers.push(subscriber);
    front.tell({ type: 'watch', prefix, fromRevision, subscriber });
  }
}
