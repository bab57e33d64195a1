/**
 * The durable store of one Raft member: its hard state, its current snapshot and its log, in
 * hand-written files in one directory.
 *
 * - `hard-state`: u32 magic, u16 format version, u16 zero, u32 body length, u32 CRC-32C (of every
 *   other byte of the file), then the JSON body `{ term, votedFor, commit }`;
 *   replaced with `writeFileDurably` (temp file, fsync, rename, fsync directory).
 * - `snapshot`: the one current snapshot (meta and state-machine bytes, checksummed; see
 *   `raft-snapshot-file.ts`), replaced with `writeFileDurably` like the hard state.
 * - `log-<first index, 20 digits>.seg`: segment files of records (see `raft-log-record.ts`). A
 *   segment rolls once it would pass `segmentBytes`; only the last segment is ever written, the
 *   others are sealed (fsynced before the next one was created).
 *
 * The log served is (snapshot index, last index]; `firstIndex` is the snapshot index + 1. A
 * segment may still hold entries at or below the snapshot index (one straddling it): they are
 * verified on open but never served. Segments holding nothing past the snapshot are leftovers
 * and are deleted.
 *
 * `persist(effect)` and `saveSnapshot` apply to the in-memory view at once (so later calls
 * validate against it) and resolve only once everything they wrote is fsynced. Calls made while
 * a flush is in flight are written and fsynced together by the next flush (group commit), in
 * call order, so a snapshot never overtakes or falls behind the appends around it.
 *
 * Crash ordering. A snapshot step (compaction or install) in a flush first fsyncs what the flush
 * wrote before it, then writes the snapshot file durably, and only then touches the segments, so
 * a crash at any instant leaves either the old snapshot with an untouched log, or the new
 * snapshot with the log in some intermediate state of one of these removals:
 *
 * - Compaction, and an install whose entry at `meta.index` has `meta.term`: segments whose every
 *   entry is ≤ the snapshot index are unlinked. Any subset of them surviving a crash is harmless:
 *   on open, a segment whose successor starts at or below the snapshot index, or whose entries
 *   all lie at or below it, is a leftover and is deleted without being needed.
 * - An install whose entry at `meta.index` is missing or of another term (the whole log is
 *   replaced): first the segments starting past the snapshot index are unlinked, newest first,
 *   and the directory is fsynced; then the rest (the one holding `meta.index` and older) are
 *   unlinked and the directory fsynced again (unlinks may reach the disk in any order; the fsync
 *   between is what orders the two groups). Until that first fsync the segment holding the
 *   mismatched entry at the snapshot index is untouched (open always reads that segment), and a
 *   stored entry at the snapshot index whose term differs from the snapshot's can only mean this
 *   interrupted install — compactions and keeping installs leave the snapshot's term there — so
 *   open finishes it: every segment is removed (`recovery.interruptedInstall`),
 *   whatever subset of the later ones survived (gaps among them included). After the first
 *   fsync no entry past the snapshot index exists any more, so whatever survives is a leftover.
 *   Either way the conflicting entries never reappear, and the fsyncs happen before the install
 *   resolves or any new segment (which starts at index + 1) is created.
 *
 * The hard state of a flush is written after all of this, so a crash never leaves a new hard
 * state beside an older snapshot or log. Any other gap is corruption: the first kept segment must start at or below snapshot index + 1
 * and the rest must follow on without a gap.
 *
 * On open, a torn tail — a last record cut short (fewer bytes than its header, or than the length
 * its verified header gives) or a run of zeros to the end of the last segment, with no valid record
 * after it — is what a crash leaves of a write no fsync completed for, so it was never acknowledged
 * and is truncated away (reported in `recovery`). Anything else is corruption and open fails with
 * `RaftLogCorruptError`: a complete record that fails its checksum (even the last one: that is
 * damage after the write, not a torn write), a bad record followed by a valid one, a bad sealed
 * segment, a gap, a snapshot file that fails its magic, version, checksum or meta checks, or a
 * hard-state commit index past max(snapshot index, last entry index). A temp file left by a crash
 * during a hard-state or snapshot write is removed.
 *
 * The snapshot's data is not kept in memory after it is durable (it can be large):
 * `readSnapshot` reads it back from the file and verifies it again. Only a snapshot still waiting
 * for its flush is served from memory.
 */

import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { removeStaleTempFiles, writeFileDurably } from '../../runtime/durable-file.ts';
import { AbortError, InvalidRequestError, UnavailableError } from '../../runtime/errors.ts';
import { crc32c } from './crc32c.ts';
import { decodeRecord, encodeRecord, RECORD_HEADER_BYTES, RECORD_MAGIC } from './raft-log-record.ts';
import { RaftLogCorruptError } from './raft-log-store-errors.ts';
import {
  encodeSnapshotFile,
  normalizeSnapshotMeta,
  type RaftSnapshot,
  readSnapshotFile,
  SNAPSHOT_FILE,
  snapshotMetaProblem,
} from './raft-snapshot-file.ts';
import type { HardState, LogEntry, RaftEffect, SnapshotMeta } from './raft-types.ts';

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
  /** Segment files deleted because they held nothing past the snapshot (a compaction or install cut short). */
  readonly removedSegments: number;
  /**
   * A snapshot install that replaces the whole log was cut short after the snapshot was written:
   * the stored entry at the snapshot index had another term, so the log was removed as the
   * install would have done.
   */
  readonly interruptedInstall: boolean;
}

export type PersistEffect = Extract<RaftEffect, { type: 'persist' }>;

interface Segment {
  readonly firstIndex: number;
  readonly file: string;
  /** Byte offset of each entry, `offsets[i]` for index `firstIndex + i`. */
  readonly offsets: number[];
  size: number;
}

interface PendingSnapshot extends RaftSnapshot {
  /** An install whose entry at `meta.index` is missing or of another term: the whole log goes. */
  readonly dropLog: boolean;
}

interface PendingWrite {
  readonly snapshot: PendingSnapshot | undefined;
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
  /** fsync calls made so far (segment files, the directory, and 2 per hard-state or snapshot write). */
  fsyncCount = 0;
  /** Flushes completed so far; each acknowledges every persist call it took. */
  flushCount = 0;
  readonly dir: string;
  readonly recovery: RaftLogRecovery;

  readonly #segmentBytes: number;
  readonly #maxRecordBytes: number;
  readonly #maxPending: number;
  /** The entries after the snapshot: `#log[i].index === this.firstIndex + i`. */
  readonly #log: LogEntry[];
  #snapshot: SnapshotMeta | undefined;
  /** The newest snapshot while its flush has not written it yet; `readSnapshot` serves it from here. */
  #unsavedSnapshot: PendingSnapshot | undefined;
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
      snapshot: SnapshotMeta | undefined;
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
    this.#snapshot = init.snapshot;
    this.#hardState = init.hardState;
    this.#segments = init.segments;
    this.#active = init.active;
    this.recovery = init.recovery;
  }

  /**
   * Opens (creating if needed) the store in `dir`: loads and verifies the snapshot, the hard state
   * and every record, repairs a torn tail and finishes a compaction or install a crash cut short.
   */
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
    const snapshotPath = path.join(dir, SNAPSHOT_FILE);
    await removeStaleTempFiles(hardStatePath);
    await removeStaleTempFiles(snapshotPath);
    // Only the meta is kept: the data was read to verify its checksum and is read again on demand.
    const snapshot = (await readSnapshotFile(snapshotPath))?.meta;
    const snapshotIndex = snapshot?.index ?? 0;
    const hardState = await readHardState(hardStatePath);

    const names = (await readdir(dir)).filter((name) => SEGMENT_PATTERN.test(name)).sort();
    const firstOf = (name: string): number => Number(SEGMENT_PATTERN.exec(name)?.[1]);
    // A segment whose successor starts at or below the snapshot index ends before it: a leftover
    // of a compaction or install, not read at all. The one holding the snapshot index is always
    // read, since its entry there is what reveals an interrupted install.
    let skip = 0;
    while (skip + 1 < names.length && firstOf(names[skip + 1] as string) <= snapshotIndex) skip++;
    const leftovers = names.slice(0, skip).map((name) => path.join(dir, name));

    const log: LogEntry[] = [];
    const segments: Segment[] = [];
    let truncatedBytes = 0;
    let tornTail: string | undefined;
    let interruptedInstall = false;
    let fsyncs = 0;
    let expected: number | undefined;
    for (const [position, name] of names.entries()) {
      if (position < skip) continue;
      const file = path.join(dir, name);
      const firstIndex = firstOf(name);
      if (
        expected === undefined ? firstIndex < 1 || firstIndex > snapshotIndex + 1 : firstIndex !== expected
      ) {
        throw new RaftLogCorruptError(
          file,
          expected === undefined
            ? `segment starts at index ${firstIndex}, but the log must go on from the snapshot at index ` +
                `${snapshotIndex}: entries ${snapshotIndex + 1}..${firstIndex - 1} are missing`
            : `segment starts at index ${firstIndex}, expected ${expected}`,
        );
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
          if (result.entry.index > snapshotIndex) log.push(result.entry);
          segment.offsets.push(offset);
          offset += result.size;
          if (result.entry.index === snapshotIndex && result.entry.term !== snapshot?.term) {
            interruptedInstall = true;
            break;
          }
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
      if (interruptedInstall) break;
      segment.size = offset;
      segments.push(segment);
      expected = firstIndex + segment.offsets.length;
    }

    let removedSegments = 0;
    if (interruptedInstall) {
      // Finish the install the same way it runs: later segments first, fsynced, then the rest.
      log.length = 0;
      segments.length = 0;
      const files = names.map((name) => ({ firstIndex: firstOf(name), file: path.join(dir, name) }));
      fsyncs += await removeSegmentFiles(dir, files, snapshotIndex);
      removedSegments = files.length;
    } else {
      while (segments[0] !== undefined && holdsNothingPast(segments[0], snapshotIndex)) {
        leftovers.push(segments[0].file);
        segments.shift();
      }
      for (const file of leftovers) await unlink(file);
      if (leftovers.length > 0) {
        await syncDir(dir);
        fsyncs++;
      }
      removedSegments = leftovers.length;
    }

    const lastIndex = snapshotIndex + log.length;
    if (hardState !== undefined && hardState.commit > lastIndex) {
      throw new RaftLogCorruptError(
        hardStatePath,
        `hard state commit ${hardState.commit} is past the last log index ${lastIndex}` +
          (snapshot === undefined ? '' : ` (snapshot at ${snapshotIndex})`),
      );
    }
    const last = segments.at(-1);
    const active = last === undefined ? undefined : await open(last.file, 'r+');
    const store = new RaftLogStore(dir, {
      options,
      log,
      snapshot,
      hardState,
      segments,
      active,
      recovery: { truncatedBytes, tornTail, removedSegments, interruptedInstall },
    });
    store.fsyncCount = fsyncs;
    return store;
  }

  /** The first index the log still serves: the snapshot index + 1, or 1 without a snapshot. */
  get firstIndex(): number {
    return (this.#snapshot?.index ?? 0) + 1;
  }

  /**
   * Index of the last entry, or the snapshot index if the log holds nothing past it (0 when
   * empty); includes entries whose persist has not resolved yet.
   */
  get lastIndex(): number {
    return (this.#snapshot?.index ?? 0) + this.#log.length;
  }

  /** The last hard state given to the store (or loaded), if any. */
  get hardState(): HardState | undefined {
    return this.#hardState;
  }

  /** The meta of the newest snapshot given to the store (or loaded), if any; pending ones included. */
  get snapshot(): SnapshotMeta | undefined {
    return this.#snapshot;
  }

  /** Entries with `from <= index < to`, clamped to `firstIndex..lastIndex`. */
  entries(from: number, to: number = this.lastIndex + 1): LogEntry[] {
    const first = this.firstIndex;
    const lo = Math.max(first, Math.floor(from));
    const hi = Math.min(this.lastIndex + 1, Math.floor(to));
    return hi <= lo ? [] : this.#log.slice(lo - first, hi - first);
  }

  /**
   * The newest snapshot with its data, verified against its checksum (read from the file; one not
   * flushed yet comes from memory), or `undefined` if there is none.
   */
  async readSnapshot(options: { signal?: AbortSignal } = {}): Promise<RaftSnapshot | undefined> {
    const unsaved = this.#unsavedSnapshot;
    if (unsaved !== undefined) return { meta: unsaved.meta, data: unsaved.data };
    if (this.#snapshot === undefined) return undefined;
    const file = path.join(this.dir, SNAPSHOT_FILE);
    const stored = await readSnapshotFile(file, options);
    if (stored === undefined) {
      throw new RaftLogCorruptError(
        file,
        `the snapshot file is gone although the store holds a snapshot at index ${this.#snapshot.index}`,
      );
    }
    return stored;
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
   * Compacts the log after the member snapshotted its state machine at `meta.index`: stores the
   * snapshot durably, then stops serving the entries up to `meta.index` and deletes the segment
   * files holding only those. `meta.index` must be past the current snapshot and at most
   * `lastIndex`, and `meta.term` must be the term of the entry there. `data` is written as given
   * and must not change until this resolves. Aborting `signal` stops the wait only.
   */
  saveSnapshot(meta: SnapshotMeta, data: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      this.#admit(options.signal);
      const snapshot = this.#checkSnapshot(meta, data);
      const term = this.#termAt(snapshot.index);
      if (snapshot.index > this.lastIndex || term !== snapshot.term) {
        throw new InvalidRequestError(
          `cannot compact to a snapshot at index ${snapshot.index} of term ${snapshot.term}: ` +
            (snapshot.index > this.lastIndex
              ? `the log ends at ${this.lastIndex}`
              : `the entry there has term ${term}`) +
            '; snapshot only applied entries of this log (install a leader snapshot with persist)',
        );
      }
      const pending: PendingSnapshot = { meta: snapshot, data, dropLog: false };
      this.#applySnapshot(pending);
      return this.#enqueue({ snapshot: pending, firstIndex: 0, records: [], hardState: undefined }, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Performs a Raft `persist` effect. A snapshot (installed from the leader) comes first: it is
   * stored durably, the entries up to its index are dropped, and so is every later entry unless
   * the stored entry at its index has its term. Then entries replace the log from
   * `entries[0].index` onwards (a conflicting suffix is truncated), then the hard state is
   * written. Resolves once all of it is fsynced. Aborting `signal` stops the wait only: the write
   * may still reach the disk.
   */
  persist(effect: PersistEffect, options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      this.#admit(options.signal);
      const entries = effect.entries ?? [];
      const hardState = effect.hardState;
      if (hardState !== undefined) validateHardState(hardState);
      let install: PendingSnapshot | undefined;
      if (effect.snapshot !== undefined) {
        const meta = this.#checkSnapshot(effect.snapshot.meta, effect.snapshot.data);
        install = { meta, data: effect.snapshot.data, dropLog: this.#termAt(meta.index) !== meta.term };
      }
      // Entries are checked against the log as it will be once the snapshot is installed, before
      // anything changes, so a rejected effect leaves the store as it was.
      const base = install?.meta ?? this.#snapshot;
      const baseIndex = base?.index ?? 0;
      const last = install?.dropLog === true ? baseIndex : this.lastIndex;
      const termAt = (index: number): number | undefined =>
        index === baseIndex ? (base?.term ?? 0) : this.#termAt(index);
      const records =
        entries.length === 0 ? [] : this.#encodeEntries(entries, baseIndex + 1, last + 1, termAt);
      if (install === undefined && entries.length === 0 && hardState === undefined) return Promise.resolve();
      if (install !== undefined) this.#applySnapshot(install);
      const firstIndex = entries[0]?.index ?? 0;
      if (entries.length > 0) this.#log.splice(firstIndex - this.firstIndex, this.#log.length, ...entries);
      if (hardState !== undefined) this.#hardState = hardState;
      return this.#enqueue({ snapshot: install, firstIndex, records, hardState }, options);
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

  /** Throws unless a new write may be queued now. */
  #admit(signal: AbortSignal | undefined): void {
    this.#checkUsable();
    if (this.#queue.length >= this.#maxPending) {
      throw new UnavailableError(
        `raft log store ${this.dir} has ${this.#queue.length} persists waiting for a flush (limit ` +
          `${this.#maxPending}); slow down or raise maxPendingPersists`,
      );
    }
    if (signal?.aborted === true) {
      throw new AbortError('raft log persist aborted before it started', { cause: signal.reason });
    }
  }

  #enqueue(
    write: Omit<PendingWrite, 'resolve' | 'reject'>,
    options: { signal?: AbortSignal },
  ): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.#queue.push({ ...write, resolve, reject });
    });
    this.#flushing ??= this.#flushLoop();
    return withAbort(done, options.signal);
  }

  /** Validates a snapshot given to the store and returns a copy of its meta. */
  #checkSnapshot(meta: SnapshotMeta, data: Uint8Array): SnapshotMeta {
    const problem = snapshotMetaProblem(meta);
    if (problem !== undefined) throw new InvalidRequestError(`invalid snapshot meta: ${problem}`);
    if (!(data instanceof Uint8Array)) throw new InvalidRequestError('snapshot data must be a Uint8Array');
    const current = this.#snapshot?.index ?? 0;
    if (meta.index <= current) {
      throw new InvalidRequestError(
        `snapshot at index ${meta.index} is not past the stored snapshot at index ${current}; ` +
          'only a newer snapshot can replace it',
      );
    }
    return normalizeSnapshotMeta(meta);
  }

  /** The term of the entry at `index`, the snapshot's term at its index, 0 at index 0. */
  #termAt(index: number): number | undefined {
    const snapshotIndex = this.#snapshot?.index ?? 0;
    if (index === snapshotIndex) return this.#snapshot?.term ?? 0;
    return index < snapshotIndex ? undefined : this.#log[index - snapshotIndex - 1]?.term;
  }

  #applySnapshot(snapshot: PendingSnapshot): void {
    if (snapshot.dropLog) this.#log.length = 0;
    else this.#log.splice(0, snapshot.meta.index - (this.#snapshot?.index ?? 0));
    this.#snapshot = snapshot.meta;
    this.#unsavedSnapshot = snapshot;
  }

  /** Encodes entries whose first index must lie in `lowest..highest`, checking order and terms. */
  #encodeEntries(
    entries: readonly LogEntry[],
    lowest: number,
    highest: number,
    termAt: (index: number) => number | undefined,
  ): Buffer[] {
    const first = entries[0] as LogEntry;
    if (!Number.isSafeInteger(first.index) || first.index < lowest || first.index > highest) {
      throw new InvalidRequestError(
        `entries start at index ${first.index} but the log holds ${lowest}..${highest - 1}; the first ` +
          `entry must be in ${lowest}..${highest}` +
          (lowest > 1 ? ` (entries up to ${lowest - 1} are in the snapshot)` : ''),
      );
    }
    let previousTerm = termAt(first.index - 1) ?? 0;
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
      if (op.snapshot !== undefined) {
        // What this flush wrote before the snapshot is durable before the snapshot is, and the
        // snapshot is durable before any segment is removed (see the module comment).
        await flushPending();
        if (activeDirty) {
          await this.#active?.sync();
          this.fsyncCount++;
          activeDirty = false;
        }
        if (dirDirty) {
          await this.#syncDir();
          dirDirty = false;
        }
        await this.#storeSnapshot(op.snapshot);
        if (op.snapshot.dropLog) await this.#removeAllSegments(op.snapshot.meta.index);
        else if (await this.#removeSegmentsThrough(op.snapshot.meta.index)) dirDirty = true;
      }
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

  async #storeSnapshot(snapshot: PendingSnapshot): Promise<void> {
    await writeFileDurably(path.join(this.dir, SNAPSHOT_FILE), encodeSnapshotFile(snapshot));
    this.fsyncCount += 2;
    // A newer snapshot queued meanwhile stays in memory until its own flush writes it.
    if (this.#unsavedSnapshot === snapshot) this.#unsavedSnapshot = undefined;
  }

  /** Deletes the oldest segments while they hold nothing past `index`; true if any went. */
  async #removeSegmentsThrough(index: number): Promise<boolean> {
    let removed = false;
    for (let segment = this.#segments[0]; segment !== undefined; segment = this.#segments[0]) {
      if (!holdsNothingPast(segment, index)) break;
      if (this.#segments.length === 1) await this.#closeActive();
      await unlink(segment.file);
      this.#segments.shift();
      removed = true;
    }
    return removed;
  }

  /** Deletes every segment in the crash-safe order of an install that replaces the whole log. */
  async #removeAllSegments(index: number): Promise<void> {
    await this.#closeActive();
    this.fsyncCount += await removeSegmentFiles(this.dir, this.#segments, index);
    this.#segments.length = 0;
  }

  async #closeActive(): Promise<void> {
    const active = this.#active;
    this.#active = undefined;
    await active?.close();
  }

  #physicalLastIndex(): number {
    const segment = this.#segments.at(-1);
    return segment === undefined ? 0 : segment.firstIndex + segment.offsets.length - 1;
  }

  /** Removes entries from `index` on: whole segments from the newest down, then a cut in one. */
  async #truncateFrom(index: number): Promise<boolean> {
    let removed = false;
    for (let segment = this.#segments.at(-1); segment !== undefined && segment.firstIndex >= index; ) {
      await this.#closeActive();
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
    await this.#closeActive();
    const file = path.join(this.dir, `log-${String(firstIndex).padStart(20, '0')}.seg`);
    this.#active = await open(file, 'w+', 0o600);
    this.#segments.push({ firstIndex, file, offsets: [], size: 0 });
  }

  async #syncDir(): Promise<void> {
    await syncDir(this.dir);
    this.fsyncCount++;
  }
}

/**
 * True if `segment` serves nothing past `index`: all its entries are at or below it, or it is
 * empty and the next entry (index + 1) could not be appended to it.
 */
function holdsNothingPast(segment: Segment, index: number): boolean {
  const count = segment.offsets.length;
  return count > 0 ? segment.firstIndex + count - 1 <= index : segment.firstIndex <= index;
}

/**
 * Unlinks `segments` (sorted by first index) for an install at `index` that replaces the whole
 * log: those starting past `index` newest first, then a directory fsync, then the rest (the one
 * holding `index` keeps telling a reopen that the later ones are void until they are gone for
 * good), then a directory fsync. Returns the fsyncs made.
 */
async function removeSegmentFiles(
  dir: string,
  segments: readonly { readonly firstIndex: number; readonly file: string }[],
  index: number,
): Promise<number> {
  let fsyncs = 0;
  const later = segments.filter((segment) => segment.firstIndex > index).reverse();
  const rest = segments.filter((segment) => segment.firstIndex <= index).reverse();
  for (const group of [later, rest]) {
    if (group.length === 0) continue;
    for (const segment of group) await unlink(segment.file);
    await syncDir(dir);
    fsyncs++;
  }
  return fsyncs;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
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
