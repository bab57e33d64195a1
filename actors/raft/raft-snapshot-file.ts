/**
 * The on-disk form of a Raft member's current snapshot, the file `snapshot` in its log store's
 * directory, little-endian:
 *
 * ```
 *  0  u32  magic 'CLSN'
 *  4  u16  format version (1)
 *  6  u16  zero
 *  8  u32  meta length in bytes
 * 12  u64  data length in bytes
 * 20  ...  meta: UTF-8 JSON `{ index, term, membership: { voters, learners, addresses } }`
 *  …  ...  data: the state machine's snapshot, opaque bytes
 *  …  u32  CRC-32C of every byte before it
 * ```
 *
 * The checksum is a trailer rather than a header field so it covers one contiguous range: a large
 * snapshot is checksummed where it lies instead of being copied around its checksum field, and a
 * file cut short anywhere fails it. Meta is JSON because it is small plain data and readable when
 * inspecting a damaged member.
 */
import { readFile } from 'node:fs/promises';
import { AbortError } from '../../runtime/errors.ts';
import { crc32c } from './crc32c.ts';
import { RaftLogCorruptError } from './raft-log-store-errors.ts';
import type { Membership, SnapshotMeta } from './raft-types.ts';

/** A snapshot as the log store holds it: what it covers and the state machine's bytes. */
export interface RaftSnapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

export const SNAPSHOT_FILE = 'snapshot';
export const SNAPSHOT_MAGIC = 0x4e534c43; // 'CLSN'
export const SNAPSHOT_VERSION = 1;
const HEADER_BYTES = 20;
const TRAILER_BYTES = 4;

export function encodeSnapshotFile(snapshot: RaftSnapshot): Buffer {
  const meta = Buffer.from(JSON.stringify(normalizeSnapshotMeta(snapshot.meta)), 'utf8');
  const data = snapshot.data;
  const out = Buffer.allocUnsafe(HEADER_BYTES + meta.length + data.length + TRAILER_BYTES);
  out.writeUInt32LE(SNAPSHOT_MAGIC, 0);
  out.writeUInt16LE(SNAPSHOT_VERSION, 4);
  out.writeUInt16LE(0, 6);
  out.writeUInt32LE(meta.length, 8);
  out.writeBigUInt64LE(BigInt(data.length), 12);
  meta.copy(out, HEADER_BYTES);
  out.set(data, HEADER_BYTES + meta.length);
  const end = out.length - TRAILER_BYTES;
  out.writeUInt32LE(crc32c(out, 0, end), end);
  return out;
}

/** Verifies and decodes a snapshot file's bytes; any failed check is `RaftLogCorruptError` naming `file`. */
export function decodeSnapshotFile(buf: Buffer, file: string): RaftSnapshot {
  if (buf.length < HEADER_BYTES + TRAILER_BYTES || buf.readUInt32LE(0) !== SNAPSHOT_MAGIC) {
    throw new RaftLogCorruptError(file, 'snapshot header is missing or has a bad magic number');
  }
  const version = buf.readUInt16LE(4);
  if (version !== SNAPSHOT_VERSION) {
    throw new RaftLogCorruptError(file, `unsupported snapshot format version ${version}`);
  }
  const end = buf.length - TRAILER_BYTES;
  if (crc32c(buf, 0, end) !== buf.readUInt32LE(end)) {
    throw new RaftLogCorruptError(file, 'snapshot checksum mismatch');
  }
  const metaLength = buf.readUInt32LE(8);
  const dataLength = buf.readBigUInt64LE(12);
  if (buf.readUInt16LE(6) !== 0 || BigInt(HEADER_BYTES + metaLength) + dataLength !== BigInt(end)) {
    throw new RaftLogCorruptError(
      file,
      `snapshot lengths (meta ${metaLength}, data ${dataLength}) do not add up to the file size ${buf.length}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8', HEADER_BYTES, HEADER_BYTES + metaLength));
  } catch (error) {
    throw new RaftLogCorruptError(file, 'snapshot meta is not JSON', { cause: error });
  }
  const problem = snapshotMetaProblem(parsed);
  if (problem !== undefined) throw new RaftLogCorruptError(file, `snapshot meta is invalid: ${problem}`);
  const start = HEADER_BYTES + metaLength;
  return {
    meta: normalizeSnapshotMeta(parsed as SnapshotMeta),
    data: new Uint8Array(buf.buffer, buf.byteOffset + start, end - start),
  };
}

/** Reads and verifies the snapshot file; `undefined` if there is none. */
export async function readSnapshotFile(
  file: string,
  options: { signal?: AbortSignal } = {},
): Promise<RaftSnapshot | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(file, options.signal === undefined ? {} : { signal: options.signal });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (options.signal?.aborted === true) {
      throw new AbortError(`reading the raft snapshot ${file} aborted`, { cause: error });
    }
    throw error;
  }
  return decodeSnapshotFile(buf, file);
}

/** Why `meta` is not a valid `SnapshotMeta`, or `undefined` if it is. */
export function snapshotMetaProblem(meta: unknown): string | undefined {
  if (!isRecord(meta)) return 'meta is not an object';
  if (!Number.isSafeInteger(meta.index) || (meta.index as number) < 1) {
    return `index ${String(meta.index)} is not an integer ≥ 1`;
  }
  if (!Number.isSafeInteger(meta.term) || (meta.term as number) < 0) {
    return `term ${String(meta.term)} is not an integer ≥ 0`;
  }
  const membership = meta.membership;
  if (!isRecord(membership)) return 'membership is not an object';
  if (!isStringArray(membership.voters)) return 'membership.voters is not an array of strings';
  if (!isStringArray(membership.learners)) return 'membership.learners is not an array of strings';
  if (!isRecord(membership.addresses) || !Object.values(membership.addresses).every(isStringArray)) {
    return 'membership.addresses is not a record of string arrays';
  }
  return undefined;
}

/**
 * A fresh copy holding only the known fields, so a caller mutating its object later (or extra
 * fields it carried) cannot change what the store holds or writes.
 */
export function normalizeSnapshotMeta(meta: SnapshotMeta): SnapshotMeta {
  const membership: Membership = {
    voters: [...meta.membership.voters],
    learners: [...meta.membership.learners],
    addresses: Object.fromEntries(
      Object.entries(meta.membership.addresses).map(([id, addresses]) => [id, [...addresses]]),
    ),
  };
  return { index: meta.index, term: meta.term, membership };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
