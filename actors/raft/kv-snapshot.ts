/**
 * The snapshot format of the key-value store: msgpackr bytes of
 * `{ format: 'cloudless-kv', version: 1, sha256, body }`, where `body` is the msgpackr encoding
 * of the replicated state and `sha256` its SHA-256 digest. Decoding checks the format, version,
 * digest and the shape of every field before anything is used, since a snapshot may come from a
 * peer (InstallSnapshot).
 */
import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { KvSnapshotCorruptError } from './kv-errors.ts';
import type { KeyValue, KvEvent, KvResult } from './kv-types.ts';

export const kvSnapshotVersion = 1;
const kvSnapshotFormat = 'cloudless-kv';

export interface KvSnapshotState {
  readonly maxHistoryEvents: number;
  readonly maxClients: number;
  readonly revision: number;
  readonly compactRevision: number;
  /** Sorted by key. */
  readonly kvs: readonly KeyValue[];
  /** Retained events, in revision order. */
  readonly history: readonly KvEvent[];
  /** `[clientId, seq, result]`, least recently applied first. */
  readonly clients: readonly (readonly [string, number, KvResult])[];
}

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

function digest(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

export function encodeKvSnapshot(state: KvSnapshotState): Uint8Array {
  const body = Uint8Array.from(packr.pack(state));
  return Uint8Array.from(
    packr.pack({ format: kvSnapshotFormat, version: kvSnapshotVersion, sha256: digest(body), body }),
  );
}

function fail(message: string, cause?: unknown): never {
  throw new KvSnapshotCorruptError(message, cause === undefined ? undefined : { cause });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function checkKv(value: unknown, where: string): KeyValue {
  if (
    !isRecord(value) ||
    typeof value.key !== 'string' ||
    typeof value.value !== 'string' ||
    !isCount(value.createRevision) ||
    !isCount(value.modRevision) ||
    !isCount(value.version)
  ) {
    fail(`${where} is not a key-value`);
  }
  return value as unknown as KeyValue;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function unpack(bytes: Uint8Array, what: string): unknown {
  try {
    return packr.unpack(bytes);
  } catch (error) {
    return fail(`${what} is not valid msgpack`, error);
  }
}

export function decodeKvSnapshot(bytes: Uint8Array): KvSnapshotState {
  if (!(bytes instanceof Uint8Array)) fail('snapshot must be a Uint8Array');
  const outer = unpack(bytes, 'envelope');
  if (!isRecord(outer) || outer.format !== kvSnapshotFormat) fail(`not a ${kvSnapshotFormat} snapshot`);
  if (outer.version !== kvSnapshotVersion) {
    fail(`format version ${String(outer.version)} is not supported (this build reads ${kvSnapshotVersion})`);
  }
  const { body, sha256 } = outer;
  if (!(body instanceof Uint8Array) || !(sha256 instanceof Uint8Array)) fail('envelope lacks body or sha256');
  if (!sameBytes(digest(body), sha256)) fail('SHA-256 checksum mismatch; the snapshot is damaged');
  const state = unpack(body, 'body');
  if (!isRecord(state)) fail('body is not an object');
  const { maxHistoryEvents, maxClients, revision, compactRevision, kvs, history, clients } = state;
  if (!isCount(maxHistoryEvents) || maxHistoryEvents < 1 || !isCount(maxClients) || maxClients < 1) {
    fail('limits are missing or out of range');
  }
  if (!isCount(revision) || !isCount(compactRevision) || compactRevision > revision) {
    fail('revision or compactRevision is out of range');
  }
  if (!Array.isArray(kvs) || !Array.isArray(history) || !Array.isArray(clients)) {
    fail('kvs, history or clients is not an array');
  }
  let lastKey: string | undefined;
  kvs.forEach((value, i) => {
    const kv = checkKv(value, `kvs[${i}]`);
    if (kv.key.length === 0 || (lastKey !== undefined && kv.key <= lastKey) || kv.modRevision > revision) {
      fail(`kvs[${i}] is empty, out of order or newer than the revision`);
    }
    lastKey = kv.key;
  });
  let lastRevision = compactRevision;
  history.forEach((event, i) => {
    if (!isRecord(event) || (event.type !== 'put' && event.type !== 'delete'))
      fail(`history[${i}] is not an event`);
    const kv = checkKv(event.kv, `history[${i}].kv`);
    if (event.prevKv !== undefined) checkKv(event.prevKv, `history[${i}].prevKv`);
    if (kv.modRevision <= compactRevision || kv.modRevision < lastRevision || kv.modRevision > revision) {
      fail(`history[${i}] has revision ${kv.modRevision} out of order`);
    }
    lastRevision = kv.modRevision;
  });
  if (history.length > maxHistoryEvents) fail('history is longer than maxHistoryEvents');
  if (clients.length > maxClients) fail('more clients than maxClients');
  const seen = new Set<string>();
  clients.forEach((entry, i) => {
    if (
      !Array.isArray(entry) ||
      entry.length !== 3 ||
      typeof entry[0] !== 'string' ||
      seen.has(entry[0]) ||
      !isCount(entry[1]) ||
      !isRecord(entry[2]) ||
      !['put', 'delete', 'txn'].includes(entry[2].type as string)
    ) {
      fail(`clients[${i}] is not a unique [clientId, seq, result] entry`);
    }
    seen.add(entry[0]);
  });
  return state as unknown as KvSnapshotState;
}
