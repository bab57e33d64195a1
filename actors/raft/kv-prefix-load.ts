/**
 * Reads every key under a prefix through a KV front door, page by page, serializable (the answering
 * coordinator's applied state): what a node loads before it watches the prefix from the revision
 * after the load (membership's view, the leader-side workload actors' cluster state).
 */
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { errorFromWire, UnavailableError } from '../../runtime/errors.ts';
import type { KvQueryValue, KvServiceReply, KvServiceRequest } from './kv-service-protocol.ts';
import type { KeyValue } from './kv-types.ts';

const pageLimit = 1000;
const maxPages = 10_000;

/** A front door's answer, or its error rebuilt as the class it was thrown as. */
export function unwrapKvReply<TValue>(reply: KvServiceReply<TValue>): TValue {
  if (!reply.ok) throw errorFromWire(reply.error);
  return reply.value;
}

/**
 * Keys under `prefix`, every page, and the revision of the first page. Pages of one load may come
 * from different revisions; a watch from that revision + 1 replays whatever changed in between.
 */
export async function loadPrefix(
  front: ActorRef<KvServiceRequest>,
  prefix: string,
  signal: AbortSignal,
): Promise<{ kvs: KeyValue[]; revision: number }> {
  const kvs: KeyValue[] = [];
  let fromKey: string | undefined;
  let revision = 0;
  for (let page = 0; page < maxPages; page++) {
    const value = unwrapKvReply(
      await front.ask<KvServiceReply<KvQueryValue>>(
        (replyTo) => ({
          type: 'query',
          key: prefix,
          prefix: true,
          limit: pageLimit,
          consistency: 'serializable',
          ...(fromKey === undefined ? {} : { fromKey }),
          timeoutMs: 5000,
          replyTo,
        }),
        { timeoutMs: 6000, signal },
      ),
    );
    kvs.push(...value.result.kvs);
    if (page === 0) revision = value.result.revision;
    if (!value.result.more || value.result.nextKey === undefined) return { kvs, revision };
    fromKey = value.result.nextKey;
  }
  throw new UnavailableError(`${prefix} has more than ${maxPages * pageLimit} keys; refusing to load it`);
}
