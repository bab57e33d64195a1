/**
 * The data of the replicated key-value store (the etcd v3 model): commands that travel through
 * the Raft log, their results, stored key-values and watch events. Everything is plain data
 * (strings, integers, arrays, objects without `undefined` fields) so it encodes with msgpackr and
 * compares deeply after a round trip.
 */

/** A stored key. Keys and values are strings; see kv-store.ts for why. */
export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** Revision of the put that created the key (since its last delete). */
  readonly createRevision: number;
  /** Revision of the last put. */
  readonly modRevision: number;
  /** Puts since creation: 1 after the first put, reset by a delete. */
  readonly version: number;
}

export interface KvPut {
  readonly type: 'put';
  readonly key: string;
  readonly value: string;
  /** Return the previous key-value in the result. */
  readonly prevKv?: boolean;
}

export interface KvDelete {
  readonly type: 'delete';
  /** The key, or with `prefix: true` every key starting with it (must still be non-empty). */
  readonly key: string;
  readonly prefix?: boolean;
  readonly prevKv?: boolean;
}

export interface KvGet {
  readonly type: 'get';
  readonly key: string;
  readonly prefix?: boolean;
  /** Most key-values returned (prefix only); default and maximum `maxRangeLimit`. */
  readonly limit?: number;
}

export type KvCompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision';
export type KvCompareOp = '=' | '!=' | '<' | '>';

/**
 * `key`'s `target` `op` `value`. A missing key has version, createRevision and modRevision 0; a
 * compare on the value of a missing key is false whatever the op (as in etcd).
 */
export interface KvCompare {
  readonly key: string;
  readonly target: KvCompareTarget;
  readonly op: KvCompareOp;
  /** A string for `value`, a non-negative integer otherwise. */
  readonly value: string | number;
}

export type KvTxnOp = KvPut | KvDelete | KvGet;

/** All compares true → `success` ops, else `failure` ops; ops run in order, later ops see earlier ones. */
export interface KvTxn {
  readonly type: 'txn';
  readonly compare: readonly KvCompare[];
  readonly success: readonly KvTxnOp[];
  readonly failure: readonly KvTxnOp[];
}

export type KvCommand = KvPut | KvDelete | KvTxn;

/** Who sent a command: a retried `(clientId, seq)` is answered from the cache, not re-applied. */
export interface KvCommandMeta {
  readonly clientId: string;
  /** Positive, increasing per client (gaps allowed). */
  readonly seq: number;
}

export interface KvPutResponse {
  readonly type: 'put';
  readonly prevKv?: KeyValue;
}

export interface KvDeleteResponse {
  readonly type: 'delete';
  readonly deleted: number;
  readonly prevKvs?: readonly KeyValue[];
}

export interface KvGetResponse {
  readonly type: 'get';
  readonly kvs: readonly KeyValue[];
  /** More keys matched than `limit` allowed. */
  readonly more: boolean;
}

export type KvOpResponse = KvPutResponse | KvDeleteResponse | KvGetResponse;

/** `revision` is the store revision after the command (unchanged if it wrote nothing). */
export type KvResult =
  | (KvPutResponse & { readonly revision: number })
  | (KvDeleteResponse & { readonly revision: number })
  | {
      readonly type: 'txn';
      readonly revision: number;
      readonly succeeded: boolean;
      readonly responses: readonly KvOpResponse[];
    };

/** One change. For a delete, `kv` has the key, an empty value, version 0 and the delete's revision as modRevision. */
export interface KvEvent {
  readonly type: 'put' | 'delete';
  readonly kv: KeyValue;
  readonly prevKv?: KeyValue;
}

/** Events for one watch from one applied command; `deliver()` hands them to the watch's callback. */
export interface KvWatchNotification {
  readonly watchId: number;
  readonly events: readonly KvEvent[];
  readonly deliver: () => void;
}

export interface KvApplyOutcome {
  readonly result: KvResult;
  /** True when the result came from the dedup cache and nothing was applied. */
  readonly duplicate: boolean;
  /** To be delivered by the shell after the apply, in order. Empty for a duplicate. */
  readonly notifications: readonly KvWatchNotification[];
}

export interface KvRangeResult {
  readonly kvs: readonly KeyValue[];
  readonly more: boolean;
  /** With `more`: the first key not returned; pass it as `fromKey` for the next page. */
  readonly nextKey?: string;
  readonly revision: number;
}

export interface KvEventsPage {
  readonly events: readonly KvEvent[];
  /** Revision to ask from next (last revision returned + 1, or the request's if nothing was returned). */
  readonly nextRevision: number;
  /** More events are retained after this page. */
  readonly more: boolean;
}
