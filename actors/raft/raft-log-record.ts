/**
 * The on-disk form of one Raft log entry in a segment file, little-endian:
 *
 * ```
 *  0  u8   magic 0xCB
 *  1  u8   format version (1)
 *  2  u8   entry type: 1 command, 2 noop, 3 config (a reader that predates a type refuses it
 *           as damage rather than misreading it, so a new type needs no new format version)
 *  3  u8   flags: bit 0 = has data
 *  4  u32  payload length in bytes
 *  8  u64  term
 * 16  u64  index
 * 24  u32  CRC-32C of the payload
 * 28  u32  CRC-32C of bytes 0..27 (the header, so the length is trusted before it is used)
 * 32  ...  payload: the entry's `data` encoded with msgpackr (`useRecords: false`), if any
 * ```
 */
import { Packr } from 'msgpackr';
import { crc32c } from './crc32c.ts';
import type { LogEntry } from './raft-types.ts';

export const RECORD_MAGIC = 0xcb;
export const RECORD_VERSION = 1;

const entryTypeCodes: Readonly<Record<LogEntry['type'], number>> = { command: 1, noop: 2, config: 3 };
const entryTypesByCode: Readonly<Record<number, LogEntry['type']>> = { 1: 'command', 2: 'noop', 3: 'config' };
export const RECORD_HEADER_BYTES = 32;

const packr = new Packr({ useRecords: false });

export function encodeRecord(entry: LogEntry): Buffer {
  const payload = entry.data === undefined ? undefined : packr.pack(entry.data);
  const length = payload?.length ?? 0;
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + length);
  out[0] = RECORD_MAGIC;
  out[1] = RECORD_VERSION;
  out[2] = entryTypeCodes[entry.type];
  out[3] = payload === undefined ? 0 : 1;
  out.writeUInt32LE(length, 4);
  out.writeBigUInt64LE(BigInt(entry.term), 8);
  out.writeBigUInt64LE(BigInt(entry.index), 16);
  if (payload !== undefined) payload.copy(out, RECORD_HEADER_BYTES);
  out.writeUInt32LE(crc32c(out, RECORD_HEADER_BYTES, out.length), 24);
  out.writeUInt32LE(crc32c(out, 0, 28), 28);
  return out;
}

export type DecodeResult =
  | { readonly ok: true; readonly entry: LogEntry; readonly size: number }
  | {
      readonly ok: false;
      readonly problem: string;
      /** The bytes end before the record does (a write cut short), as opposed to a complete but bad record. */
      readonly incomplete: boolean;
    };

/** Decodes the record at `offset`; never throws, a bad record is reported as a problem. */
export function decodeRecord(buf: Buffer, offset: number, maxRecordBytes: number): DecodeResult {
  if (buf.length - offset < RECORD_HEADER_BYTES) {
    return { ok: false, problem: `incomplete header at byte ${offset}`, incomplete: true };
  }
  if (buf[offset] !== RECORD_MAGIC)
    return { ok: false, problem: `bad magic at byte ${offset}`, incomplete: false };
  if (buf.readUInt32LE(offset + 28) !== crc32c(buf, offset, offset + 28)) {
    return { ok: false, problem: `header checksum mismatch at byte ${offset}`, incomplete: false };
  }
  const version = buf[offset + 1];
  if (version !== RECORD_VERSION) {
    return {
      ok: false,
      problem: `unsupported record format version ${version} at byte ${offset}`,
      incomplete: false,
    };
  }
  const type = buf[offset + 2];
  const flags = buf[offset + 3] as number;
  const length = buf.readUInt32LE(offset + 4);
  const entryType = type === undefined ? undefined : entryTypesByCode[type];
  if (entryType === undefined || flags > 1 || length > maxRecordBytes || (flags === 0 && length > 0)) {
    return { ok: false, problem: `invalid header fields at byte ${offset}`, incomplete: false };
  }
  const end = offset + RECORD_HEADER_BYTES + length;
  if (end > buf.length)
    return { ok: false, problem: `incomplete payload at byte ${offset}`, incomplete: true };
  if (buf.readUInt32LE(offset + 24) !== crc32c(buf, offset + RECORD_HEADER_BYTES, end)) {
    return { ok: false, problem: `payload checksum mismatch at byte ${offset}`, incomplete: false };
  }
  const term = Number(buf.readBigUInt64LE(offset + 8));
  const index = Number(buf.readBigUInt64LE(offset + 16));
  let entry: LogEntry;
  try {
    const base = { type: entryType, term, index };
    entry =
      flags === 1 ? { ...base, data: packr.unpack(buf.subarray(offset + RECORD_HEADER_BYTES, end)) } : base;
  } catch (error) {
    return {
      ok: false,
      problem: `payload at byte ${offset} does not decode: ${String(error)}`,
      incomplete: false,
    };
  }
  return { ok: true, entry, size: end - offset };
}
