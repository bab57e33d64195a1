import { RaftInvariantError } from './raft-errors.ts';
import type { LogEntry } from './raft-types.ts';

/**
 * A member's in-memory log: the entries after its last snapshot, numbered from
 * `snapshotIndex + 1`. Plain readonly data, like the rest of `RaftState`.
 *
 * `entries` may be shared between an old state and the state derived from it, with the newer
 * one owning a longer prefix: `length` says how many belong to this view. Appending to the view
 * that owns the whole array pushes in place (amortised O(1) per entry, which is what keeps a
 * leader's proposal path cheap); any other change copies. An older state therefore never sees
 * its entries change, the same discipline as Go slices. Never read `entries` past `length`.
 */
export interface RaftLog {
  readonly snapshotIndex: number;
  readonly snapshotTerm: number;
  readonly entries: readonly LogEntry[];
  readonly length: number;
}

export const emptyLog: RaftLog = { snapshotIndex: 0, snapshotTerm: 0, entries: [], length: 0 };

/** A log of `entries` (contiguous, starting right after `snapshotIndex`). */
export function logOf(entries: readonly LogEntry[], snapshotIndex = 0, snapshotTerm = 0): RaftLog {
  entries.forEach((entry, i) => {
    if (entry.index !== snapshotIndex + i + 1) {
      throw new RaftInvariantError(`log has index ${entry.index} where ${snapshotIndex + i + 1} belongs`);
    }
  });
  return { snapshotIndex, snapshotTerm, entries: [...entries], length: entries.length };
}

export function lastIndex(log: RaftLog): number {
  return log.snapshotIndex + log.length;
}

export function lastTerm(log: RaftLog): number {
  return log.length === 0 ? log.snapshotTerm : (log.entries[log.length - 1] as LogEntry).term;
}

/** The first index still held as an entry (one past the snapshot). */
export function firstIndex(log: RaftLog): number {
  return log.snapshotIndex + 1;
}

/** Whether `index` is covered by the snapshot (its term is unknown unless it is the snapshot's own). */
export function isCompacted(log: RaftLog, index: number): boolean {
  return index < log.snapshotIndex;
}

export function entryAt(log: RaftLog, index: number): LogEntry | undefined {
  const i = index - log.snapshotIndex - 1;
  return i >= 0 && i < log.length ? log.entries[i] : undefined;
}

/**
 * The term of the entry at `index`; 0 for index 0 (the empty prefix), past the end, or below the
 * snapshot (check `isCompacted` first where that matters).
 */
export function termAt(log: RaftLog, index: number): number {
  if (index === log.snapshotIndex) return log.snapshotTerm;
  return entryAt(log, index)?.term ?? 0;
}

/** Entries with indexes in [from, to] (inclusive), clamped to what the log holds; a fresh array. */
export function entriesBetween(log: RaftLog, from: number, to: number): LogEntry[] {
  const lo = Math.max(from - log.snapshotIndex - 1, 0);
  const hi = Math.min(to - log.snapshotIndex, log.length);
  return hi <= lo ? [] : log.entries.slice(lo, hi);
}

/** Every entry the log holds, as a fresh array. */
export function allEntries(log: RaftLog): LogEntry[] {
  return log.entries.slice(0, log.length);
}

/** The log with `entries` written from `entries[0].index` on (replacing any suffix there). */
export function appendEntries(log: RaftLog, entries: readonly LogEntry[]): RaftLog {
  const first = entries[0];
  if (first === undefined) return log;
  const at = first.index - log.snapshotIndex - 1;
  if (at < 0 || at > log.length) {
    throw new RaftInvariantError(
      `cannot write index ${first.index} into a log holding ${log.snapshotIndex + 1}..${lastIndex(log)}`,
    );
  }
  if (at === log.length && log.entries.length === log.length) {
    (log.entries as LogEntry[]).push(...entries);
    return { ...log, length: log.length + entries.length };
  }
  const next = log.entries.slice(0, at);
  next.push(...entries);
  return { ...log, entries: next, length: next.length };
}

/** Drops the entries up to `index` (which must be held, or be the snapshot itself). */
export function compactLog(log: RaftLog, index: number): RaftLog {
  if (index <= log.snapshotIndex) return log;
  const term = termAt(log, index);
  if (index > lastIndex(log)) {
    throw new RaftInvariantError(`cannot compact to ${index}: the log ends at ${lastIndex(log)}`);
  }
  const kept = log.entries.slice(index - log.snapshotIndex, log.length);
  return { snapshotIndex: index, snapshotTerm: term, entries: kept, length: kept.length };
}

/**
 * The log after installing a snapshot of `index`/`term`: the entries after it survive only if
 * the entry at `index` has the same term (then they extend the snapshot); otherwise none do.
 */
export function restoreLog(log: RaftLog, index: number, term: number): RaftLog {
  if (termAt(log, index) === term && index <= lastIndex(log) && index >= log.snapshotIndex) {
    return compactLog(log, index);
  }
  return { snapshotIndex: index, snapshotTerm: term, entries: [], length: 0 };
}

/** The first index of the run of entries with the same term that contains `index`. */
export function firstIndexOfTermAt(log: RaftLog, index: number): number {
  const term = termAt(log, index);
  let i = index;
  while (i > log.snapshotIndex + 1 && termAt(log, i - 1) === term) i--;
  return i;
}

/** The last index at or below `atOrBelow` whose entry has `term`, or 0 if there is none. */
export function lastIndexOfTerm(log: RaftLog, term: number, atOrBelow: number): number {
  for (let i = Math.min(atOrBelow, lastIndex(log)); i >= log.snapshotIndex && i > 0; i--) {
    const t = termAt(log, i);
    if (t === term) return i;
    if (t < term) return 0;
  }
  return 0;
}
