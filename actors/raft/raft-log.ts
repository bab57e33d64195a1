import type { LogEntry } from './raft-types.ts';

/**
 * Index arithmetic over an in-memory Raft log. Entries are numbered from 1 and `log[i]` holds
 * index `i + 1`; every lookup goes through these functions so that a snapshot offset can be
 * introduced in one place later.
 */
export function lastIndex(log: readonly LogEntry[]): number {
  return log.length;
}

export function lastTerm(log: readonly LogEntry[]): number {
  return log[log.length - 1]?.term ?? 0;
}

/** The term of the entry at `index`; 0 for index 0 (the empty prefix) or past the end. */
export function termAt(log: readonly LogEntry[], index: number): number {
  if (index <= 0) return 0;
  return log[index - 1]?.term ?? 0;
}

/** Entries with indexes in [from, to] (inclusive), clamped to the log. */
export function entriesBetween(log: readonly LogEntry[], from: number, to: number): LogEntry[] {
  return log.slice(Math.max(from, 1) - 1, Math.max(to, 0));
}

/** The first index of the run of entries with the same term that contains `index`. */
export function firstIndexOfTermAt(log: readonly LogEntry[], index: number): number {
  const term = termAt(log, index);
  let i = index;
  while (i > 1 && termAt(log, i - 1) === term) i--;
  return i;
}

/** The last index at or below `atOrBelow` whose entry has `term`, or 0 if there is none. */
export function lastIndexOfTerm(log: readonly LogEntry[], term: number, atOrBelow: number): number {
  for (let i = Math.min(atOrBelow, lastIndex(log)); i > 0; i--) {
    const t = termAt(log, i);
    if (t === term) return i;
    if (t < term) return 0;
  }
  return 0;
}
