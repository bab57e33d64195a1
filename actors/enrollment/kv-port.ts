/**
 * The slice of the KV store enrollment needs, so the same token logic runs in the CLI (over a
 * `KvClient`) and inside a coordinator (over its own front door, which forwards to the leader).
 */
import { randomUUID } from 'node:crypto';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { errorFromWire, UnavailableError } from '../../runtime/errors.ts';
import type { KvClient } from '../raft/kv-client.ts';
import type { KvServiceMessage } from '../raft/kv-service.ts';
import type { KvCommandValue, KvQueryValue, KvServiceReply } from '../raft/kv-service-protocol.ts';
import type { KeyValue, KvCompare, KvOpResponse, KvRangeResult, KvTxnOp } from '../raft/kv-types.ts';

export interface KvTxnRequest {
  readonly compare: readonly KvCompare[];
  readonly success: readonly KvTxnOp[];
  readonly failure: readonly KvTxnOp[];
}

export interface KvTxnOutcome {
  readonly revision: number;
  readonly succeeded: boolean;
  readonly responses: readonly KvOpResponse[];
}

export interface KvPort {
  /** A linearizable read of one key. */
  get(key: string, options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<KeyValue | undefined>;
  range(
    prefix: string,
    options?: { limit?: number; fromKey?: string; signal?: AbortSignal; timeoutMs?: number },
  ): Promise<KvRangeResult>;
  txn(txn: KvTxnRequest, options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<KvTxnOutcome>;
}

export function kvClientPort(client: KvClient): KvPort {
  return client;
}

/**
 * A coordinator's own front door as a port. Each write takes a fresh client id with seq 1: writes
 * here are rare (enrollments, bootstrap) and may run concurrently, and the store keeps a bounded
 * number of client ids (least recently used first out), so nothing piles up.
 */
export function frontDoorPort(front: ActorRef<KvServiceMessage>, defaultTimeoutMs = 10_000): KvPort {
  async function call<TValue>(
    build: (replyTo: ActorRef<KvServiceReply<TValue>>, timeoutMs: number) => KvServiceMessage,
    options: { signal?: AbortSignal; timeoutMs?: number },
  ): Promise<TValue> {
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    const reply = await front.ask<KvServiceReply<TValue>>(
      (replyTo) => build(replyTo, Math.max(1, timeoutMs - 250)),
      { timeoutMs, ...(options.signal === undefined ? {} : { signal: options.signal }) },
    );
    if (!reply.ok) throw errorFromWire(reply.error);
    return reply.value;
  }
  return {
    async get(key, options = {}) {
      const value = await call<KvQueryValue>(
        (replyTo, timeoutMs) => ({ type: 'query', key, limit: 1, timeoutMs, replyTo }),
        options,
      );
      return value.result.kvs.find((kv) => kv.key === key);
    },
    async range(prefix, options = {}) {
      const value = await call<KvQueryValue>(
        (replyTo, timeoutMs) => ({
          type: 'query',
          key: prefix,
          prefix: true,
          ...(options.limit === undefined ? {} : { limit: options.limit }),
          ...(options.fromKey === undefined ? {} : { fromKey: options.fromKey }),
          timeoutMs,
          replyTo,
        }),
        options,
      );
      return value.result;
    },
    async txn(txn, options = {}) {
      const value = await call<KvCommandValue>(
        (replyTo, timeoutMs) => ({
          type: 'command',
          command: { type: 'txn', ...txn },
          clientId: `enroll-${randomUUID()}`,
          seq: 1,
          timeoutMs,
          replyTo,
        }),
        options,
      );
      const { result } = value;
      if (result.type !== 'txn')
        throw new UnavailableError(`a txn was answered with a ${result.type} result`);
      return { revision: result.revision, succeeded: result.succeeded, responses: result.responses };
    },
  };
}
