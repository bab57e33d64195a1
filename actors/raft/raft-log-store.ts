/**
 * The durable store of one Raft member: its hard state and its log, in hand-written files in one
 * directory.
 *
 * - `hard-state`: u32 magic, u16 format version, u16 zero, u32 body length, u32 CRC-32C (of every
 *   other byte of the file), then the JSON body `{ term, votedFor, commit }`;
 *   replaced with `writeFileDurably` (temp file, fsync, rename, fsync directory).
 * - `log-<first index, 20 digits>.seg`: segment files of records (see `raft-log-record.ts`). A
 *   segment rolls once it would pass `segmentBytes`; only the last segment is ever written, the
 *   others are sealed (fsynced before the next one was created).
 *
 * `persist(effect)` applies a Raft `persist` effect to the in-memory view at once (so later calls
 * validate against it) and resolves only once the entries and hard state are fsynced. Calls made
 * while a flush is in flight are written and fsynced together by the next flush (group commit).
 *
 * On open, a torn tail — a last record cut short (fewer bytes than its header, or than the length
 * its verified header gives) or a run of zeros to the end of the last segment, with no valid record
 * after it — is what a crash leaves of a write no fsync completed for, so it was never acknowledged
 * and is truncated away (reported in `recovery`). Anything else is corruption and open fails with
 * `RaftLogCorruptError`: a complete record that fails its checksum (even the last one: that is
 * damage after the write, not a torn write), a bad record followed by a valid one, a bad sealed
 * segment, a gap between segments, or a hard-state commit index past the log.
 */

import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { removeStaleTempFiles, writeFileDurably } from '../../runtime/durable-file.ts';
import { AbortError, InvalidRequestError, UnavailableError } from '../../runtime/errors.ts';
import { crc32c } from './crc32c.ts';
import { decodeRecord, encodeRecord, RECORD_HEADER_BYTES, RECORD_MAGIC } from './raft-log-record.ts';
import { RaftLogCorruptError } from './raft-log-store-errors.ts';
import type { HardState, LogEntry, RaftEffect } from './raft-types.ts';

export interface RaftLogStoreOptions {
  /** A segment rolls once a record would take it past this size (default 64 MiB). */
  readonly segmentBytes?: number;
  /** Largest accepted record, header included (default 16 MiB). */
  readonly maxRecordBytes?: number;
  /** Most persist calls waiting for a flush; one more is rejected with `UnavailableError` (default 4096). */
  readonly maxPendingPersists?: number;
}

/** What open found and repaired. */
export interface RaftLogRecovery {
  /** Bytes of a torn tail truncated from the last segment (0 if none). */
  readonly truncatedBytes: number;
  /** Why the tail was judged torn, if it was. */
  readonly tornTail: string | undefined;
}

export type PersistEffect = Extract<RaftEffect, { type: 'persist' }>;

interface Segment {
  readonly firstIndex: number;
  readonly file: string;
  /** Byte offset of each entry, `offsets[i]` for index `firstIndex + i`. */
  readonly offsets: number[];
  size: number;
}

interface PendingWrite {
  readonly firstIndex: number;
  readonly records: readonly Buffer[];
  readonly hardState: HardState | undefined;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

const HARD_STATE_FILE = 'hard-state';
const HARD_STATE_MAGIC = 0x53484c43; // 'CLHS'
const HARD_STATE_VERSION = 1;
const HARD_STATE_HEADER_BYTES = 16;
const SEGMENT_PATTERN = /^log-(\d{20})\.seg$/;

export class RaftLogStore {
  /** fsync calls made so far (segment files, the directory, and 2 per hard-state write). */
  fsyncCount = 0;
  /** Flushes completed so far; each acknowledges every persist call it took. */
  flushCount = 0;
  readonly dir: string;
  readonly recovery: RaftLogRecovery;

  readonly #segmentBytes: number;
  readonly #maxRecordBytes: number;
  readonly #maxPending: number;
  readonly #log: LogEntry[];
  #hardState: HardState | undefined;
  readonly #segments: Segment[];
  #active: FileHandle | undefined;
  #queue: PendingWrite[] = [];
  #flushing: Promise<void> | undefined;
  #failure: Error | undefined;
  #closed = false;

  private constructor(
    dir: string,
    init: {
      options: RaftLogStoreOptions;
      log: LogEntry[];
      hardState: HardState | undefined;
      segments: Segment[];
      active: FileHandle | undefined;
      recovery: RaftLogRecovery;
    },
  ) {
    this.dir = dir;
    this.#segmentBytes = init.options.segmentBytes ?? 64 * 1024 * 1024;
    this.#maxRecordBytes = init.options.maxRecordBytes ?? 16 * 1024 * 1024;
    this.#maxPending = init.options.maxPendingPersists ?? 4096;
    this.#log = init.log;
    this.#hardState = init.hardState;
    this.#segments = init.segments;
    this.#active = init.active;
    this.recovery = init.recovery;
  }

  /** Opens (creating if needed) the store in `dir`, verifying every record and repairing a torn tail. */
  static async open(dir: string, options: RaftLogStoreOptions = {}): Promise<RaftLogStore> {
    const segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    const maxRecordBytes = options.maxRecordBytes ?? 16 * 1024 * 1024;
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < RECORD_HEADER_BYTES) {
      throw new InvalidRequestError(
        `segmentBytes must be an integer ≥ ${RECORD_HEADER_BYTES}, got ${segmentBytes}`,
      );
    }
    if (!Number.isSafeInteger(maxRecordBytes) || maxRecordBytes < 0) {
      throw new InvalidRequestError(`maxRecordBytes must be a non-negative integer, got ${maxRecordBytes}`);
    }
    await mkdir(dir, { recursive: true });
    const hardStatePath = path.join(dir, HARD_STATE_FILE);
    await removeStaleTempFiles(hardStatePath);
    const hardState = await readHardState(hardStatePath);

    const names = (await readdir(dir)).filter((name) => SEGMENT_PATTERN.test(name)).sort();
    const log: LogEntry[] = [];
    const segments: Segment[] = [];
    let truncatedBytes = 0;
    let tornTail: string | undefined;
    let fsyncs = 0;
    for (const [position, name] of names.entries()) {
      const file = path.join(dir, name);
      const firstIndex = Number(SEGMENT_PATTERN.exec(name)?.[1]);
      const expected = log.length + 1;
      if (firstIndex !== expected) {
        throw new RaftLogCorruptError(file, `segment starts at index ${firstIndex}, expected ${expected}`);
      }
      const isLast = position === names.length - 1;
      const buf = await readFile(file);
      const segment: Segment = { firstIndex, file, offsets: [], size: 0 };
      let offset = 0;
      while (offset < buf.length) {
        const result = decodeRecord(buf, offset, maxRecordBytes);
        const next = firstIndex + segment.offsets.length;
        if (result.ok && result.entry.index !== next) {
          throw new RaftLogCorruptError(
            file,
            `record at byte ${offset} has index ${result.entry.index}, expected ${next}`,
          );
        }
        if (result.ok) {
          log.push(result.entry);
          segment.offsets.push(offset);
          offset += result.size;
          continue;
        }
        if (!isLast) throw new RaftLogCorruptError(file, `${result.problem} in a sealed segment`);
        if (!result.incomplete && !isZeroFilled(buf, offset)) {
          throw new RaftLogCorruptError(
            file,
            `${result.problem}: the record is complete, so it was damaged after being written, not torn`,
          );
        }
        const later = findValidRecordAfter(buf, offset, maxRecordBytes);
        if (later !== undefined) {
          throw new RaftLogCorruptError(
            file,
            `${result.problem}, followed by a valid record at byte ${later}`,
          );
        }
        truncatedBytes = buf.length - offset;
        tornTail = `${result.problem} in ${name}`;
        const handle = await open(file, 'r+');
        try {
          await handle.truncate(offset);
          await handle.sync();
          fsyncs++;
        } finally {
          await handle.close();
        }
        break;
      }
      segment.size = offset;
      segments.push(segment);
    }
    if (hardState !== undefined && hardState.commit > log.length) {
      throw new RaftLogCorruptError(
        hardStatePath,
        `hard state commit ${hardState.commit} is past the last log index ${log.length}`,
      );
    }
    const last = segments.at(-1);
    const active = last === undefined ? undefined : await open(last.file, 'r+');
    const store = new RaftLogStore(dir, {
      options,
      log,
      hardState,
      segments,
      active,
      recovery: { truncatedBytes, tornTail },
    });
    store.fsyncCount = fsyncs;
    return store;
  }

  /** Index of the last entry (0 when empty), including entries whose persist has not resolved yet. */
  get lastIndex(): number {
    return this.#log.length;
  }

  /** The last hard state given to the store (or loaded), if any. */
  get hardState(): HardState | undefined {
    return this.#hardState;
  }

  /** Entries with `from <= index < to` (clamped to the log). */
  entries(from: number, to: number = this.#log.length + 1): LogEntry[] {
    const lo = Math.max(1, Math.floor(from));
    const hi = Math.min(this.#log.length + 1, Math.floor(to));
    return hi <= lo ? [] : this.#log.slice(lo - 1, hi - 1);
  }

  /** Replaces the log from `entries[0].index` onwards; resolves once fsynced. */
  append(entries: readonly LogEntry[], options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.persist({ type: 'persist', entries }, options);
  }

  /** Stores the hard state durably; resolves once fsynced. */
  saveHardState(hardState: HardState, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.persist({ type: 'persist', hardState }, options);
  }

  /**
   * Performs a Raft `persist` effect: entries replace the log from `entries[0].index` onwards (a
   * conflicting suffix is truncated), then the hard state is written. Resolves once both are
   * fsynced. Aborting `signal` stops the wait only: the write may still reach the disk.
   */
  persist(effect: PersistEffect, options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      this.#checkUsable();
      if (this.#queue.length >= this.#maxPending) {
        throw new UnavailableError(
          `raft log store ${this.dir} has ${this.#queue.length} persists waiting for a flush (limit ` +
            `${this.#maxPending}); slow down or raise maxPendingPersists`,
        );
      }
      if (options.signal?.aborted === true) {
        throw new AbortError('raft log persist aborted before it started', { cause: options.signal.reason });
      }
      const entries = effect.entries ?? [];
      const hardState = effect.hardState;
      if (hardState !== undefined) validateHardState(hardState);
      const firstIndex = entries[0]?.index ?? 0;
      const records = entries.length === 0 ? [] : this.#encodeEntries(entries);
      if (entries.length === 0 && hardState === undefined) return Promise.resolve();
      if (entries.length > 0) this.#log.splice(firstIndex - 1, this.#log.length, ...entries);
      if (hardState !== undefined) this.#hardState = hardState;
      const done = new Promise<void>((resolve, reject) => {
        this.#queue.push({ firstIndex, records, hardState, resolve, reject });
      });
      this.#flushing ??= this.#flushLoop();
      return withAbort(done, options.signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Waits for queued persists to be flushed, then closes the files. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#flushing;
    const active = this.#active;
    this.#active = undefined;
    await active?.close();
  }

  #checkUsable(): void {
    if (this.#closed) throw new UnavailableError(`raft log store ${this.dir} is closed`);
    if (this.#failure !== undefined) {
      throw new UnavailableError(
        `raft log store ${this.dir} failed a write and must be reopened: ${this.#failure.message}`,
        { cause: this.#failure },
      );
    }
  }

  #encodeEntries(entries: readonly LogEntry[]): Buffer[] {
    const first = entries[0] as LogEntry;
    if (!Number.isSafeInteger(first.index) || first.index < 1 || first.index > this.#log.length + 1) {
      throw new InvalidRequestError(
        `entries start at index ${first.index} but the log ends at ${this.#log.length}; the first ` +
          `entry must be in 1..${this.#log.length + 1}`,
      );
    }
    let previousTerm = this.#log[first.index - 2]?.term ?? 0;
    return entries.map((entry, i) => {
      if (entry.index !== first.index + i) {
        throw new InvalidRequestError(`entry ${i} has index ${entry.index}, expected ${first.index + i}`);
      }
      if (!Number.isSafeInteger(entry.term) || entry.term < previousTerm) {
        throw new InvalidRequestError(
          `entry ${entry.index} has term ${entry.term}; terms must be integers that never decrease (previous ${previousTerm})`,
        );
      }
      previousTerm = entry.term;
      const record = encodeRecord(entry);
      if (record.length > this.#maxRecordBytes) {
        throw new InvalidRequestError(
          `entry ${entry.index} encodes to ${record.length} bytes, over maxRecordBytes ${this.#maxRecordBytes}`,
        );
      }
      return record;
    });
  }

  async #flushLoop(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      try {
        await this.#write(batch);
        this.flushCount++;
        for (const op of batch) op.resolve();
      } catch (error) {
        // After a failed write or fsync the file contents are unknown (and a retried fsync may
        // report success for lost pages): fail everything and require a reopen.
        this.#failure = error instanceof Error ? error : new Error(String(error));
        for (const op of [...batch, ...this.#queue]) op.reject(this.#failure);
        this.#queue = [];
      }
    }
    this.#flushing = undefined;
  }

  async #write(batch: readonly PendingWrite[]): Promise<void> {
    let hardState: HardState | undefined;
    let dirDirty = false;
    let activeDirty = false;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flushPending = async (): Promise<void> => {
      const segment = this.#segments.at(-1);
      if (pending.length === 0 || segment === undefined || this.#active === undefined) return;
      const data = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
      let written = 0;
      while (written < data.length) {
        const { bytesWritten } = await this.#active.write(
          data,
          written,
          data.length - written,
          segment.size + written,
        );
        written += bytesWritten;
      }
      segment.size += data.length;
      pending = [];
      pendingBytes = 0;
      activeDirty = true;
    };
    for (const op of batch) {
      if (op.hardState !== undefined) hardState = op.hardState;
      if (op.records.length === 0) continue;
      if (op.firstIndex <= this.#physicalLastIndex()) {
        await flushPending();
        if (await this.#truncateFrom(op.firstIndex)) dirDirty = true;
        activeDirty = true;
      }
      for (const [i, record] of op.records.entries()) {
        let segment = this.#segments.at(-1);
        if (
          segment !== undefined &&
          segment.offsets.length > 0 &&
          segment.size + pendingBytes + record.length > this.#segmentBytes
        ) {
          await flushPending();
          if (activeDirty) {
            await this.#active?.sync();
            this.fsyncCount++;
            activeDirty = false;
          }
          segment = undefined;
        }
        if (segment === undefined) {
          await this.#createSegment(op.firstIndex + i);
          dirDirty = true;
          segment = this.#segments.at(-1) as Segment;
        }
        segment.offsets.push(segment.size + pendingBytes);
        pending.push(record);
        pendingBytes += record.length;
      }
    }
    await flushPending();
    if (activeDirty && this.#active !== undefined) {
      await this.#active.sync();
      this.fsyncCount++;
    }
    if (dirDirty) {
      await this.#syncDir();
    }
    if (hardState !== undefined) {
      await writeFileDurably(path.join(this.dir, HARD_STATE_FILE), encodeHardState(hardState));
      this.fsyncCount += 2;
    }
  }

  #physicalLastIndex(): number {
    const segment = this.#segments.at(-1);
    return segment === undefined ? 0 : segment.firstIndex + segment.offsets.length - 1;
  }

  /** Removes entries from `index` on: whole segments from the newest down, then a cut in one. */
  async #truncateFrom(index: number): Promise<boolean> {
    let removed = false;
    for (let segment = this.#segments.at(-1); segment !== undefined && segment.firstIndex >= index; ) {
      const active = this.#active;
      this.#active = undefined;
      await active?.close();
      await unlink(segment.file);
      this.#segments.pop();
      removed = true;
      segment = this.#segments.at(-1);
    }
    const segment = this.#segments.at(-1);
    if (segment === undefined) return removed;
    const cut = segment.offsets[index - segment.firstIndex];
    this.#active ??= await open(segment.file, 'r+');
    if (cut !== undefined) {
      await this.#active.truncate(cut);
      segment.offsets.length = index - segment.firstIndex;
      segment.size = cut;
    }
    return removed;
  }

  async #createSegment(firstIndex: number): Promise<void> {
    const active = this.#active;
    this.#active = undefined;
    await active?.close();
    const file = path.join(this.dir, `log-${String(firstIndex).padStart(20, '0')}.seg`);
    this.#active = await open(file, 'w+', 0o600);
    this.#segments.push({ firstIndex, file, offsets: [], size: 0 });
  }

  async #syncDir(): Promise<void> {
    const handle = await open(this.dir, 'r');
    try {
      await handle.sync();
      this.fsyncCount++;
    } finally {
      await handle.close();
    }
  }
}

/** A tail of zeros is space the file system allocated but the crashed write never filled. */
function isZeroFilled(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

function findValidRecordAfter(buf: Buffer, badOffset: number, maxRecordBytes: number): number | undefined {
  for (let offset = buf.indexOf(RECORD_MAGIC, badOffset + 1); offset !== -1; ) {
    if (decodeRecord(buf, offset, maxRecordBytes).ok) return offset;
    offset = buf.indexOf(RECORD_MAGIC, offset + 1);
  }
  return undefined;
}

function validateHardState(hs: HardState): void {
  const ok =
    Number.isSafeInteger(hs.term) &&
    hs.term >= 0 &&
    Number.isSafeInteger(hs.commit) &&
    hs.commit >= 0 &&
    (hs.votedFor === undefined || typeof hs.votedFor === 'string');
  if (!ok) throw new InvalidRequestError(`invalid hard state ${JSON.stringify(hs)}`);
}

function encodeHardState(hs: HardState): Buffer {
  const body = Buffer.from(
    JSON.stringify({ term: hs.term, votedFor: hs.votedFor ?? null, commit: hs.commit }),
    'utf8',
  );
  const out = Buffer.alloc(HARD_STATE_HEADER_BYTES + body.length);
  out.writeUInt32LE(HARD_STATE_MAGIC, 0);
  out.writeUInt16LE(HARD_STATE_VERSION, 4);
  out.writeUInt32LE(body.length, 8);
  body.copy(out, HARD_STATE_HEADER_BYTES);
  out.writeUInt32LE(hardStateChecksum(out), 12);
  return out;
}

/** CRC-32C of the whole hard-state file except the checksum field (bytes 12..15) itself. */
function hardStateChecksum(file: Buffer): number {
  return crc32c(Buffer.concat([file.subarray(0, 12), file.subarray(HARD_STATE_HEADER_BYTES)]));
}

async function readHardState(file: string): Promise<HardState | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (buf.length < HARD_STATE_HEADER_BYTES || buf.readUInt32LE(0) !== HARD_STATE_MAGIC) {
    throw new RaftLogCorruptError(file, 'hard state header is missing or has a bad magic number');
  }
  const version = buf.readUInt16LE(4);
  if (version !== HARD_STATE_VERSION) {
    throw new RaftLogCorruptError(file, `unsupported hard state format version ${version}`);
  }
  const length = buf.readUInt32LE(8);
  const body = buf.subarray(HARD_STATE_HEADER_BYTES);
  if (body.length !== length || hardStateChecksum(buf) !== buf.readUInt32LE(12)) {
    throw new RaftLogCorruptError(file, 'hard state length or checksum mismatch');
  }
  let parsed: { term?: unknown; votedFor?: unknown; commit?: unknown };
  try {
    parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
  } catch (error) {
    throw new RaftLogCorruptError(file, 'hard state body is not JSON', { cause: error });
  }
  const hs = {
    term: parsed.term as number,
    votedFor: parsed.votedFor === null ? undefined : (parsed.votedFor as string),
    commit: parsed.commit as number,
  };
  try {
    validateHardState(hs);
  } catch (error) {
    throw new RaftLogCorruptError(file, 'hard state fields are invalid', { cause: error });
  }
  return hs;
}

function withAbort(done: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return done;
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void =>
      reject(new AbortError('wait for raft log persist aborted; the write may still complete'));
    signal.addEventListener('abort', onAbort, { once: true });
    done.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
