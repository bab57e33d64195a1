/**
 * The replicated state machine of a Raft member: a versioned key-value store in the etcd v3
 * model. Pure and deterministic: no I/O, no timers, no randomness, no clock. The Raft shell calls
 * `apply` for each committed command entry, in log order, on every member; every member then holds
 * the same keys, revisions, dedup table and history.
 *
 * Keys and values are strings, not Uint8Array: strings are immutable, so one stored value can be
 * shared by the map, the history, cached results and watch events without defensive copies; they
 * are usable as Map keys and compare with `<`; they encode natively in msgpackr and read in logs.
 * Binary payloads go in as base64 or as msgpack-then-base64. Sizes are counted in UTF-8 bytes
 * (key 1..1024, value ≤ 1 MiB) and lone surrogates are refused (they would not survive UTF-8).
 * Keys sort by UTF-16 code unit (JavaScript `<`), which matches UTF-8 byte order except between
 * astral characters and U+E000..U+FFFF.
 *
 * Revisions: one global revision, incremented once per command that changes at least one key (a
 * txn with several writes shares one revision; a delete of nothing and a read-only txn do not
 * increment it). Every key has createRevision, modRevision and version; a delete resets them.
 *
 * Rejected commands (invalid, stale) throw before anything changes, identically on every member;
 * the shell reports the error to the proposer and goes on with the next entry.
 */
import { KvCompactedError, KvStaleCommandError, KvTooManyWatchersError } from './kv-errors.ts';
import { decodeKvSnapshot, encodeKvSnapshot, type KvSnapshotState } from './kv-snapshot.ts';
import type {
  KeyValue,
  KvApplyOutcome,
  KvCommand,
  KvCommandMeta,
  KvCompare,
  KvDelete,
  KvDeleteResponse,
  KvEvent,
  KvEventsPage,
  KvGet,
  KvGetResponse,
  KvOpResponse,
  KvPut,
  KvPutResponse,
  KvRangeResult,
  KvResult,
  KvWatchNotification,
} from './kv-types.ts';
import {
  checkKey,
  checkLimit,
  checkPrefix,
  checkRevision,
  kvLimits,
  validateKvCommand,
  validateKvMeta,
} from './kv-validate.ts';

export interface KvStoreInit {
  /**
   * Events kept for watches from the past (default 10 000). Whole revisions are dropped, oldest
   * first. Part of the replicated state: it travels in snapshots and must match on every member.
   */
  readonly maxHistoryEvents?: number;
  /**
   * Clients with a dedup entry (default 10 000); the least recently applied client is evicted,
   * and a retry from an evicted client is applied again. Replicated like `maxHistoryEvents`.
   */
  readonly maxClients?: number;
  /** Local open watches (default 1 000). Not replicated. */
  readonly maxWatchers?: number;
}

export interface KvWatchOptions {
  /** First revision to deliver; 0 or absent: only changes after now. */
  readonly fromRevision?: number;
  /** Include `prevKv` in events (default false). */
  readonly prevKv?: boolean;
  /** Called by a notification's `deliver()` with live events, in revision order. */
  readonly onEvents: (events: readonly KvEvent[]) => void;
}

export interface KvWatchStart {
  readonly watchId: number;
  /** Retained events from `fromRevision` up to the current revision, to handle before live ones. */
  readonly history: readonly KvEvent[];
  /** The store revision when the watch started; live events start after it. */
  readonly revision: number;
}

interface ClientEntry {
  readonly seq: number;
  readonly result: KvResult;
}

interface Watcher {
  readonly prefix: string;
  /** Live events below this revision are not delivered (a watch may start in the future). */
  readonly fromRevision: number;
  readonly prevKv: boolean;
  readonly onEvents: (events: readonly KvEvent[]) => void;
}

/** Mutable scratch of one apply: the revision it would write at and the events it produced. */
interface ApplyContext {
  readonly revision: number;
  readonly events: KvEvent[];
}

function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function withoutPrevKv(event: KvEvent): KvEvent {
  return { type: event.type, kv: event.kv };
}

function compareWith<T extends string | number>(actual: T, op: KvCompare['op'], expected: T): boolean {
  switch (op) {
    case '=':
      return actual === expected;
    case '!=':
      return actual !== expected;
    case '<':
      return actual < expected;
    case '>':
      return actual > expected;
  }
}

export class KvStore {
  readonly #maxHistoryEvents: number;
  readonly #maxClients: number;
  readonly #maxWatchers: number;

  readonly #kvs = new Map<string, KeyValue>();
  /** Every key in #kvs, sorted. */
  #keys: string[] = [];
  #revision = 0;
  /** Events with a revision ≤ this are no longer retained. */
  #compactRevision = 0;
  /** Retained events are #history[#historyStart..]; the head is spliced off in batches. */
  #history: KvEvent[] = [];
  #historyStart = 0;
  /** Insertion order is least-recently-applied first. */
  readonly #clients = new Map<string, ClientEntry>();

  readonly #watchers = new Map<number, Watcher>();
  #nextWatchId = 1;

  constructor(init: KvStoreInit = {}) {
    this.#maxHistoryEvents = KvStore.#positive(init.maxHistoryEvents, 10_000, 'maxHistoryEvents');
    this.#maxClients = KvStore.#positive(init.maxClients, 10_000, 'maxClients');
    this.#maxWatchers = KvStore.#positive(init.maxWatchers, 1_000, 'maxWatchers');
  }

  static #positive(value: number | undefined, fallback: number, what: string): number {
    if (value === undefined) return fallback;
    if (!Number.isSafeInteger(value) || value < 1)
      throw new RangeError(`${what} must be a positive integer, got ${value}`);
    return value;
  }

  /** Rebuilds a store from `snapshot()` bytes; throws KvSnapshotCorruptError if they fail a check. */
  static restore(bytes: Uint8Array, init: Pick<KvStoreInit, 'maxWatchers'> = {}): KvStore {
    const state = decodeKvSnapshot(bytes);
    const store = new KvStore({
      maxHistoryEvents: state.maxHistoryEvents,
      maxClients: state.maxClients,
      ...(init.maxWatchers === undefined ? {} : { maxWatchers: init.maxWatchers }),
    });
    store.#revision = state.revision;
    store.#compactRevision = state.compactRevision;
    for (const kv of state.kvs) {
      store.#kvs.set(kv.key, kv);
      store.#keys.push(kv.key);
    }
    store.#history = [...state.history];
    for (const [clientId, seq, result] of state.clients) store.#clients.set(clientId, { seq, result });
    return store;
  }

  /** The revision of the last write. */
  get revision(): number {
    return this.#revision;
  }

  /** The newest revision whose events are no longer retained (0: none dropped yet). */
  get compactRevision(): number {
    return this.#compactRevision;
  }

  get size(): number {
    return this.#kvs.size;
  }

  /** Applies a committed command once per `(clientId, seq)`; see the module comment for errors. */
  apply(command: KvCommand, meta: KvCommandMeta): KvApplyOutcome {
    validateKvMeta(meta);
    const cached = this.#clients.get(meta.clientId);
    if (cached !== undefined) {
      if (meta.seq === cached.seq) return { result: cached.result, duplicate: true, notifications: [] };
      if (meta.seq < cached.seq) throw new KvStaleCommandError(meta.clientId, meta.seq, cached.seq);
    }
    validateKvCommand(command);

    const ctx: ApplyContext = { revision: this.#revision + 1, events: [] };
    let result: KvResult;
    switch (command.type) {
      case 'put':
        result = { ...this.#put(command, ctx), revision: 0 };
        break;
      case 'delete':
        result = { ...this.#delete(command, ctx), revision: 0 };
        break;
      case 'txn': {
        const succeeded = command.compare.every((c) => this.#compare(c));
        const ops = succeeded ? command.success : command.failure;
        const responses: KvOpResponse[] = [];
        for (const op of ops) {
          if (op.type === 'put') responses.push(this.#put(op, ctx));
          else if (op.type === 'delete') responses.push(this.#delete(op, ctx));
          else responses.push(this.#get(op));
        }
        result = { type: 'txn', revision: 0, succeeded, responses };
        break;
      }
    }
    if (ctx.events.length > 0) {
      this.#revision = ctx.revision;
      this.#record(ctx.events);
    }
    result = { ...result, revision: this.#revision };

    this.#clients.delete(meta.clientId);
    this.#clients.set(meta.clientId, { seq: meta.seq, result });
    if (this.#clients.size > this.#maxClients) {
      const oldest = this.#clients.keys().next().value as string;
      this.#clients.delete(oldest);
    }
    return { result, duplicate: false, notifications: this.#notify(ctx.events) };
  }

  #put(op: KvPut, ctx: ApplyContext): KvPutResponse {
    const prev = this.#kvs.get(op.key);
    const kv: KeyValue = {
      key: op.key,
      value: op.value,
      createRevision: prev === undefined ? ctx.revision : prev.createRevision,
      modRevision: ctx.revision,
      version: prev === undefined ? 1 : prev.version + 1,
    };
    if (prev === undefined) this.#keys.splice(lowerBound(this.#keys, op.key), 0, op.key);
    this.#kvs.set(op.key, kv);
    ctx.events.push(prev === undefined ? { type: 'put', kv } : { type: 'put', kv, prevKv: prev });
    return op.prevKv === true && prev !== undefined ? { type: 'put', prevKv: prev } : { type: 'put' };
  }

  #delete(op: KvDelete, ctx: ApplyContext): KvDeleteResponse {
    const start = lowerBound(this.#keys, op.key);
    let end = start;
    if (op.prefix === true) {
      while (end < this.#keys.length && (this.#keys[end] as string).startsWith(op.key)) end++;
    } else if (this.#keys[start] === op.key) {
      end = start + 1;
    }
    const removed = this.#keys.splice(start, end - start);
    const prevKvs: KeyValue[] = [];
    for (const key of removed) {
      const prev = this.#kvs.get(key) as KeyValue;
      this.#kvs.delete(key);
      prevKvs.push(prev);
      const kv: KeyValue = { key, value: '', createRevision: 0, modRevision: ctx.revision, version: 0 };
      ctx.events.push({ type: 'delete', kv, prevKv: prev });
    }
    return op.prevKv === true
      ? { type: 'delete', deleted: removed.length, prevKvs }
      : { type: 'delete', deleted: removed.length };
  }

  #get(op: KvGet): KvGetResponse {
    if (op.prefix !== true) {
      const kv = this.#kvs.get(op.key);
      return { type: 'get', kvs: kv === undefined ? [] : [kv], more: false };
    }
    const page = this.#scan(op.key, op.key, op.limit ?? kvLimits.maxRangeLimit);
    return { type: 'get', kvs: page.kvs, more: page.more };
  }

  #compare(c: KvCompare): boolean {
    const kv = this.#kvs.get(c.key);
    if (c.target === 'value') {
      return kv !== undefined && compareWith(kv.value, c.op, c.value as string);
    }
    return compareWith(kv === undefined ? 0 : kv[c.target], c.op, c.value as number);
  }

  #scan(
    prefix: string,
    fromKey: string,
    limit: number,
  ): { kvs: KeyValue[]; more: boolean; nextKey?: string } {
    const kvs: KeyValue[] = [];
    let i = lowerBound(this.#keys, fromKey > prefix ? fromKey : prefix);
    for (; i < this.#keys.length; i++) {
      const key = this.#keys[i] as string;
      if (!key.startsWith(prefix)) break;
      if (kvs.length === limit) return { kvs, more: true, nextKey: key };
      kvs.push(this.#kvs.get(key) as KeyValue);
    }
    return { kvs, more: false };
  }

  #record(events: readonly KvEvent[]): void {
    for (const event of events) this.#history.push(event);
    let retained = this.#history.length - this.#historyStart;
    while (retained > this.#maxHistoryEvents) {
      // Drop the oldest whole revision so a watch never sees half of a command's events.
      const rev = (this.#history[this.#historyStart] as KvEvent).kv.modRevision;
      while (
        this.#historyStart < this.#history.length &&
        (this.#history[this.#historyStart] as KvEvent).kv.modRevision === rev
      ) {
        this.#historyStart++;
        retained--;
      }
      this.#compactRevision = rev;
    }
    if (this.#historyStart > 1024 && this.#historyStart * 2 > this.#history.length) {
      this.#history = this.#history.slice(this.#historyStart);
      this.#historyStart = 0;
    }
  }

  #notify(events: readonly KvEvent[]): KvWatchNotification[] {
    if (events.length === 0) return [];
    const out: KvWatchNotification[] = [];
    for (const [watchId, watcher] of this.#watchers) {
      const matched = events
        .filter((e) => e.kv.modRevision >= watcher.fromRevision && e.kv.key.startsWith(watcher.prefix))
        .map((e) => (watcher.prevKv ? e : withoutPrevKv(e)));
      if (matched.length === 0) continue;
      out.push({
        watchId,
        events: matched,
        // A watch cancelled between the apply and the delivery gets nothing more.
        deliver: () => {
          if (this.#watchers.get(watchId) === watcher) watcher.onEvents(matched);
        },
      });
    }
    return out;
  }

  /** The key-value of `key`, if present. A local read: no revision change. */
  get(key: string): KeyValue | undefined {
    return this.#kvs.get(checkKey(key));
  }

  /**
   * Keys starting with `prefix` ('' for all), sorted, from `fromKey` (inclusive) on, at most
   * `limit` (default and maximum 10 000). With `more`, `nextKey` is the `fromKey` of the next page.
   */
  range(prefix: string, options: { readonly limit?: number; readonly fromKey?: string } = {}): KvRangeResult {
    checkPrefix(prefix);
    const limit = checkLimit(options.limit);
    const fromKey = options.fromKey === undefined ? prefix : checkPrefix(options.fromKey, 'fromKey');
    const page = this.#scan(prefix, fromKey, limit);
    return page.nextKey === undefined
      ? { kvs: page.kvs, more: page.more, revision: this.#revision }
      : { kvs: page.kvs, more: page.more, nextKey: page.nextKey, revision: this.#revision };
  }

  /**
   * Retained events on keys starting with `prefix`, from `fromRevision` on, in revision order.
   * A page holds whole revisions: it stops at the first revision boundary at or past `limit`
   * events, so `nextRevision` always resumes without gaps or repeats. Throws KvCompactedError if
   * `fromRevision` is at or below the compact revision.
   */
  eventsSince(prefix: string, fromRevision: number, limit: number = kvLimits.maxRangeLimit): KvEventsPage {
    checkPrefix(prefix);
    checkRevision(fromRevision, 'fromRevision');
    checkLimit(limit);
    const from = Math.max(fromRevision, 1);
    if (from <= this.#compactRevision) throw new KvCompactedError(from, this.#compactRevision);
    let lo = this.#historyStart;
    let hi = this.#history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#history[mid] as KvEvent).kv.modRevision < from) lo = mid + 1;
      else hi = mid;
    }
    const events: KvEvent[] = [];
    let nextRevision = from;
    for (let i = lo; i < this.#history.length; i++) {
      const event = this.#history[i] as KvEvent;
      const rev = event.kv.modRevision;
      if (rev >= nextRevision && events.length >= limit) {
        return { events, nextRevision, more: true };
      }
      if (event.kv.key.startsWith(prefix)) events.push(event);
      nextRevision = rev + 1;
    }
    return { events, nextRevision: Math.max(nextRevision, this.#revision + 1), more: false };
  }

  /**
   * Opens a local watch on keys starting with `prefix`. Retained events from `fromRevision` come
   * back in `history`; later changes come through the notifications `apply` returns. To resume
   * after a reconnect, watch again from the last seen revision + 1.
   */
  watch(prefix: string, options: KvWatchOptions): KvWatchStart {
    checkPrefix(prefix);
    const fromRevision = checkRevision(options.fromRevision ?? 0, 'fromRevision');
    if (typeof options.onEvents !== 'function') throw new TypeError('watch needs an onEvents callback');
    if (this.#watchers.size >= this.#maxWatchers) throw new KvTooManyWatchersError(this.#maxWatchers);
    const prevKv = options.prevKv === true;
    let history: readonly KvEvent[] = [];
    if (fromRevision !== 0 && fromRevision <= this.#revision) {
      const page = this.eventsSince(prefix, fromRevision, kvLimits.maxRangeLimit);
      // History is bounded by maxHistoryEvents, which may exceed one page: read every page.
      const all = [...page.events];
      let next = page;
      while (next.more) {
        next = this.eventsSince(prefix, next.nextRevision, kvLimits.maxRangeLimit);
        all.push(...next.events);
      }
      history = prevKv ? all : all.map(withoutPrevKv);
    }
    const watchId = this.#nextWatchId++;
    this.#watchers.set(watchId, { prefix, fromRevision, prevKv, onEvents: options.onEvents });
    return { watchId, history, revision: this.#revision };
  }

  /** Closes a watch; returns false if it was not open. */
  cancelWatch(watchId: number): boolean {
    return this.#watchers.delete(watchId);
  }

  get watchCount(): number {
    return this.#watchers.size;
  }

  /** The replicated state (not the watches), versioned and checksummed. */
  snapshot(): Uint8Array {
    const state: KvSnapshotState = {
      maxHistoryEvents: this.#maxHistoryEvents,
      maxClients: this.#maxClients,
      revision: this.#revision,
      compactRevision: this.#compactRevision,
      kvs: this.#keys.map((key) => this.#kvs.get(key) as KeyValue),
      history: this.#history.slice(this.#historyStart),
      clients: [...this.#clients].map(([clientId, entry]) => [clientId, entry.seq, entry.result] as const),
    };
    return encodeKvSnapshot(state);
  }
}
