/**
 * Durable Raft log benchmark: appends with fsync through RaftLogStore against the raw fsync rate of
 * the same disk, measured in the same run.
 *
 *   node benchmarks/raft-log-store.ts --json
 *
 * - appends_per_s_batch_1: persists of one entry, one after another (each waits for its fsync).
 * - entries_per_s_batch_64: persists of 64 entries, one after another.
 * - entries_per_s_64_writers: 64 concurrent single-entry persists at a time (group commit).
 * - baseline fsyncs_per_s: write 64 bytes + fsync on a plain file in the same directory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { RaftLogStore } from '../actors/raft/raft-log-store.ts';
import type { LogEntry } from '../actors/raft/raft-types.ts';
import { best, report } from './bench-harness.ts';
import { rawFsyncsPerSecond } from './raw-fsync-rate.ts';

const seconds = 2;
const payload = { op: 'put', key: 'bench/key', value: 'x'.repeat(64) };

async function withStore<T>(run: (store: RaftLogStore) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-bench-raft-log-'));
  const store = await RaftLogStore.open(dir);
  try {
    return await run(store);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function entries(from: number, count: number): LogEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    type: 'command',
    term: 1,
    index: from + i,
    data: payload,
  }));
}

/** Entries per second for `batch` entries a persist and `writers` persists in flight. */
async function measure(batch: number, writers: number): Promise<number> {
  return withStore(async (store) => {
    let next = 1;
    let written = 0;
    const deadline = performance.now() + seconds * 1000;
    const started = performance.now();
    while (performance.now() < deadline) {
      const round: Promise<void>[] = [];
      for (let w = 0; w < writers; w++) {
        round.push(store.persist({ type: 'persist', entries: entries(next, batch) }));
        next += batch;
      }
      await Promise.all(round);
      written += batch * writers;
    }
    return (written / (performance.now() - started)) * 1000;
  });
}

const results = {
  appends_per_s_batch_1: await best('appends_per_s_batch_1', () => measure(1, 1)),
  entries_per_s_batch_64: await best('entries_per_s_batch_64', () => measure(64, 1)),
  entries_per_s_64_writers: await best('entries_per_s_64_writers', () => measure(1, 64)),
};
const baseline = {
  fsyncs_per_s: await best('fsyncs_per_s (64-byte write + fsync)', () => rawFsyncsPerSecond(seconds)),
};
report({ benchmark: 'raft-log-store', results, baseline });
