import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { RaftLogStore } from '../../actors/raft/raft-log-store.ts';
import { RaftLogCorruptError } from '../../actors/raft/raft-log-store-errors.ts';
import { encodeSnapshotFile } from '../../actors/raft/raft-snapshot-file.ts';
import type { LogEntry, SnapshotMeta } from '../../actors/raft/raft-types.ts';
import { fixtureEntry } from '../fixtures/raft-log-store-writer.ts';
import {
  snapshotWriterData,
  snapshotWriterEntry,
  snapshotWriterMembership,
} from '../fixtures/raft-snapshot-writer.ts';

const writer = fileURLToPath(new URL('../fixtures/raft-log-store-writer.ts', import.meta.url));
const snapshotWriter = fileURLToPath(new URL('../fixtures/raft-snapshot-writer.ts', import.meta.url));

function entry(index: number, term = 1, data: unknown = { n: index, s: `entry-${index}` }): LogEntry {
  return { type: 'command', term, index, data };
}

function range(from: number, to: number, term = 1): LogEntry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
}

function meta(index: number, term = 1): SnapshotMeta {
  return {
    index,
    term,
    membership: { voters: ['a', 'b', 'c'], learners: ['d'], addresses: { a: ['/ip4/10.0.0.1/tcp/7000'] } },
  };
}

function snapshotData(index: number, size = 3000): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (index * 31 + i) & 0xff);
}

/** First indexes of the segment files, from their names. */
async function segmentStarts(dir: string): Promise<number[]> {
  return (await segmentFiles(dir)).map((name) => Number(/\d{20}/.exec(name)?.[0]));
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    expect((error as { code?: string }).code).to.equal(code);
    return;
  }
  expect.fail(`expected a rejection with code ${code}`);
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.seg')).sort();
}

async function expectCorrupt(promise: Promise<RaftLogStore>): Promise<RaftLogCorruptError> {
  try {
    const store = await promise;
    await store.close();
  } catch (error) {
    expect(error).to.be.instanceOf(RaftLogCorruptError);
    expect((error as RaftLogCorruptError).code).to.equal('DATA_CORRUPT');
    expect((error as RaftLogCorruptError).reason).to.equal('RAFT_LOG_CORRUPT');
    return error as RaftLogCorruptError;
  }
  throw new Error('expected open to fail with RaftLogCorruptError');
}

describe('RaftLogStore', () => {
  let dir: string;
  const open: RaftLogStore[] = [];

  async function openStore(options: Parameters<typeof RaftLogStore.open>[1] = {}): Promise<RaftLogStore> {
    const store = await RaftLogStore.open(dir, options);
    open.push(store);
    return store;
  }

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'raft-log-store-'));
  });

  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips entries of every type, with and without data, across a reopen', async () => {
    const store = await openStore();
    const membership = { voters: ['a', 'b'], learners: ['c'], addresses: { a: ['/ip4/127.0.0.1/tcp/1'] } };
    const entries: LogEntry[] = [
      entry(1, 1, { nested: { a: [1, 2, 3] }, big: 2 ** 40, text: 'héllo' }),
      { type: 'noop', term: 2, index: 2 },
      entry(3, 2, 'plain string'),
      entry(4, 3, null),
      {
        type: 'config',
        term: 3,
        index: 5,
        data: { change: { type: 'add-learner', id: 'c', addresses: [] }, membership },
      },
    ];
    await store.append(entries);
    expect(store.lastIndex).to.equal(5);
    await store.close();
    const reopened = await openStore();
    expect(reopened.lastIndex).to.equal(5);
    expect(reopened.entries(1, 6)).to.deep.equal(entries);
    expect(reopened.entries(2, 4)).to.deep.equal(entries.slice(1, 3));
    expect(reopened.recovery.truncatedBytes).to.equal(0);
  });

  it('truncates a conflicting suffix and appends, across a reopen', async () => {
    const store = await openStore();
    await store.append(range(1, 10, 1));
    await store.append(range(6, 8, 2));
    expect(store.lastIndex).to.equal(8);
    await store.close();
    const reopened = await openStore();
    expect(reopened.lastIndex).to.equal(8);
    expect(reopened.entries(1, 9)).to.deep.equal([...range(1, 5, 1), ...range(6, 8, 2)]);
  });

  it('truncates a suffix spanning several segments and keeps rolling afterwards', async () => {
    const store = await openStore({ segmentBytes: 256 });
    await store.append(range(1, 40, 1));
    const before = await segmentFiles(dir);
    expect(before.length).to.be.greaterThan(4);
    await store.append(range(7, 12, 2));
    const after = await segmentFiles(dir);
    expect(after.length).to.be.lessThan(before.length);
    await store.append(range(13, 30, 3));
    await store.close();
    const reopened = await openStore({ segmentBytes: 256 });
    expect(reopened.entries(1, 100)).to.deep.equal([
      ...range(1, 6, 1),
      ...range(7, 12, 2),
      ...range(13, 30, 3),
    ]);
    // Truncating back to a segment's first index, then to index 1.
    await reopened.append(range(1, 3, 4));
    await reopened.close();
    const again = await openStore({ segmentBytes: 256 });
    expect(again.entries(1, 100)).to.deep.equal(range(1, 3, 4));
  });

  it('applies a truncation queued in the same flush as the entries it replaces', async () => {
    const store = await openStore({ segmentBytes: 200 });
    await store.append(range(1, 2, 1));
    // The hard-state write takes the first flush; the three appends queue behind it and share the next.
    const flushesBefore = store.flushCount;
    await Promise.all([
      store.saveHardState({ term: 1, votedFor: 'a', commit: 0 }),
      store.append(range(3, 20, 1)),
      store.append(range(5, 9, 2)),
      store.append(range(10, 11, 3)),
    ]);
    expect(store.flushCount - flushesBefore).to.equal(2);
    const expected = [...range(1, 4, 1), ...range(5, 9, 2), ...range(10, 11, 3)];
    expect(store.entries(1, 100)).to.deep.equal(expected);
    await store.close();
    const reopened = await openStore({ segmentBytes: 200 });
    expect(reopened.entries(1, 100)).to.deep.equal(expected);
  });

  it('rejects entries that leave a gap, do not run in order, or go back in term', async () => {
    const store = await openStore();
    await store.append(range(1, 3, 2));
    for (const bad of [[entry(5)], [entry(4, 2), entry(6, 2)], [entry(4, 1)]]) {
      try {
        await store.append(bad);
        expect.fail('append should have been rejected');
      } catch (error) {
        expect((error as { code?: string }).code).to.equal('INVALID_REQUEST');
      }
    }
    expect(store.lastIndex).to.equal(3);
  });

  it('truncates a torn last record at every byte offset and keeps the earlier entries', async function () {
    this.timeout(20_000);
    const store = await openStore();
    await store.append(range(1, 4));
    await store.close();
    open.length = 0;
    const [segment] = await segmentFiles(dir);
    const file = path.join(dir, segment as string);
    const full = await readFile(file);
    const store3 = await RaftLogStore.open(dir);
    await store3.append(range(1, 3, 1));
    await store3.close();
    const start = (await readFile(file)).length;
    for (let cut = start; cut < full.length; cut++) {
      await writeFile(file, full.subarray(0, cut));
      const reopened = await RaftLogStore.open(dir);
      try {
        expect(reopened.lastIndex, `cut at ${cut}`).to.equal(3);
        expect(reopened.entries(1, 4)).to.deep.equal(range(1, 3));
        expect(reopened.recovery.truncatedBytes).to.equal(cut - start);
        expect((await stat(file)).size).to.equal(start);
      } finally {
        await reopened.close();
      }
    }
  });

  it('refuses to open when a byte flips in an earlier record followed by valid ones', async () => {
    const store = await openStore();
    await store.append(range(1, 5));
    await store.close();
    open.length = 0;
    const [segment] = await segmentFiles(dir);
    const file = path.join(dir, segment as string);
    const bytes = await readFile(file);
    for (const position of [5, 20, 40, bytes.length >> 1]) {
      const copy = Buffer.from(bytes);
      copy[position] = (copy[position] as number) ^ 0x01;
      await writeFile(file, copy);
      const error = await expectCorrupt(RaftLogStore.open(dir));
      expect(error.file).to.equal(file);
    }
    // The damaged file was left untouched for inspection.
    expect((await stat(file)).size).to.equal(bytes.length);
  });

  it('refuses a flipped byte in the last record: a complete record that fails its checksum is damage', async () => {
    const store = await openStore();
    await store.append(range(1, 3));
    await store.close();
    open.length = 0;
    const [segment] = await segmentFiles(dir);
    const file = path.join(dir, segment as string);
    const bytes = await readFile(file);
    for (const position of [bytes.length - 1, bytes.length - 30]) {
      const copy = Buffer.from(bytes);
      copy[position] = (copy[position] as number) ^ 0x80;
      await writeFile(file, copy);
      await expectCorrupt(RaftLogStore.open(dir));
    }
  });

  it('truncates a zero-filled tail left by a crash after the file grew', async () => {
    const store = await openStore();
    await store.append(range(1, 3));
    await store.close();
    open.length = 0;
    const [segment] = await segmentFiles(dir);
    const file = path.join(dir, segment as string);
    const bytes = await readFile(file);
    await writeFile(file, Buffer.concat([bytes, Buffer.alloc(100)]));
    const reopened = await openStore();
    expect(reopened.entries(1, 10)).to.deep.equal(range(1, 3));
    expect(reopened.recovery.truncatedBytes).to.equal(100);
    expect((await stat(file)).size).to.equal(bytes.length);
  });

  it('refuses a flipped byte in a sealed segment and a gap between segments', async () => {
    const store = await openStore({ segmentBytes: 128 });
    await store.append(range(1, 10));
    await store.close();
    open.length = 0;
    const names = await segmentFiles(dir);
    expect(names.length).to.be.greaterThan(2);
    const sealed = path.join(dir, names[0] as string);
    const original = await readFile(sealed);
    await truncate(sealed, original.length - 1);
    await expectCorrupt(RaftLogStore.open(dir));
    await writeFile(sealed, original);
    await rm(path.join(dir, names[1] as string));
    await expectCorrupt(RaftLogStore.open(dir));
  });

  it('keeps the hard state across a reopen and refuses a corrupt hard-state file', async () => {
    const store = await openStore();
    await store.persist({
      type: 'persist',
      hardState: { term: 3, votedFor: 'b', commit: 2 },
      entries: range(1, 2),
    });
    await store.saveHardState({ term: 4, votedFor: undefined, commit: 2 });
    await store.close();
    const reopened = await openStore();
    expect(reopened.hardState).to.deep.equal({ term: 4, votedFor: undefined, commit: 2 });
    await reopened.close();
    open.length = 0;
    const file = path.join(dir, 'hard-state');
    const bytes = await readFile(file);
    for (let position = 0; position < bytes.length; position++) {
      const copy = Buffer.from(bytes);
      copy[position] = (copy[position] as number) ^ 0x10;
      await writeFile(file, copy);
      await expectCorrupt(RaftLogStore.open(dir));
    }
    await writeFile(file, bytes.subarray(0, bytes.length - 1));
    await expectCorrupt(RaftLogStore.open(dir));
  });

  it('refuses a hard state whose commit is past the log', async () => {
    const store = await openStore();
    await store.persist({
      type: 'persist',
      hardState: { term: 1, votedFor: 'a', commit: 2 },
      entries: range(1, 2),
    });
    await store.close();
    open.length = 0;
    for (const name of await segmentFiles(dir)) await rm(path.join(dir, name));
    await expectCorrupt(RaftLogStore.open(dir));
  });

  it('group-commits 100 concurrent persists with far fewer fsyncs than 100', async () => {
    const store = await openStore();
    const base = store.fsyncCount;
    await Promise.all(Array.from({ length: 100 }, (_, i) => store.append([entry(i + 1)])));
    expect(store.lastIndex).to.equal(100);
    expect(store.fsyncCount - base).to.be.at.most(10);
    expect(store.flushCount).to.be.at.most(5);
    await store.close();
    const reopened = await openStore();
    expect(reopened.entries(1, 101)).to.deep.equal(range(1, 100));
  });

  it('bounds the persists waiting for a flush and rejects one past the bound', async () => {
    const store = await openStore({ maxPendingPersists: 2 });
    const accepted = [store.append([entry(1)]), store.append([entry(2)]), store.append([entry(3)])];
    try {
      await store.append([entry(4)]);
      expect.fail('a persist past the bound should be rejected');
    } catch (error) {
      expect((error as { code?: string }).code).to.equal('UNAVAILABLE');
    }
    await Promise.all(accepted);
    expect(store.lastIndex).to.equal(3);
  });

  it('rejects a persist whose signal is already aborted without changing the log', async () => {
    const store = await openStore();
    try {
      await store.append([entry(1)], { signal: AbortSignal.abort() });
      expect.fail('an aborted persist should be rejected');
    } catch (error) {
      expect((error as { code?: string }).code).to.equal('ABORTED');
    }
    expect(store.lastIndex).to.equal(0);
  });

  it('rejects persists after close', async () => {
    const store = await openStore();
    await store.close();
    try {
      await store.append([entry(1)]);
      expect.fail('append after close should be rejected');
    } catch (error) {
      expect((error as { code?: string }).code).to.equal('UNAVAILABLE');
    }
  });

  it('keeps every acknowledged entry intact when the writer is killed with SIGKILL', async function () {
    this.timeout(30_000);
    for (let round = 0; round < 5; round++) {
      const child = spawn(process.execPath, [...process.execArgv, writer, dir], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
      let acked = 0;
      let ackedCommit = 0;
      let buffered = '';
      let firstAck: () => void = () => {};
      const started = new Promise<void>((resolve) => {
        firstAck = resolve;
      });
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) {
          const [, index, commit] = line.split(' ').map(Number);
          acked = Math.max(acked, index ?? 0);
          ackedCommit = Math.max(ackedCommit, commit ?? 0);
          firstAck();
        }
      });
      const startTimer = new Promise<void>((_, reject) => {
        const timer = setTimeout(() => reject(new Error('writer acknowledged nothing within 5 s')), 5000);
        void started.then(() => clearTimeout(timer));
      });
      await Promise.race([started, startTimer]);
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.floor(Math.random() * 400)));
      child.kill('SIGKILL');
      await exited;
      expect(child.signalCode).to.equal('SIGKILL');
      const store = await RaftLogStore.open(dir);
      try {
        expect(store.lastIndex, `round ${round}`).to.be.at.least(acked);
        expect(acked).to.be.greaterThan(0);
        expect(store.hardState?.commit).to.be.at.least(ackedCommit).and.at.most(store.lastIndex);
        expect(store.hardState?.votedFor).to.equal('n1');
        const entries = store.entries(1, store.lastIndex + 1);
        entries.forEach((e, i) => {
          expect(e).to.deep.equal(fixtureEntry(i + 1));
        });
      } finally {
        await store.close();
      }
    }
  });

  describe('snapshots and compaction', () => {
    it('compacts to a snapshot: serves firstIndex..lastIndex, deletes covered segments, keeps it across a reopen', async () => {
      const store = await openStore({ segmentBytes: 256 });
      await store.append(range(1, 40));
      const before = await segmentStarts(dir);
      expect(before.length).to.be.greaterThan(5);
      // Inside a segment, so that segment straddles the snapshot index and stays.
      const at = (before[3] as number) + 1;
      expect(before[4]).to.be.greaterThan(at + 1);
      const data = snapshotData(at);
      await store.saveSnapshot(meta(at), data);
      expect(store.snapshot).to.deep.equal(meta(at));
      expect(store.firstIndex).to.equal(at + 1);
      expect(store.lastIndex).to.equal(40);
      expect(store.entries(1, 100)).to.deep.equal(range(at + 1, 40));
      expect(store.entries(at - 5, at + 4)).to.deep.equal(range(at + 1, at + 3));
      expect(store.entries(1, at)).to.deep.equal([]);
      expect(await segmentStarts(dir)).to.deep.equal(before.slice(3));
      const read = await store.readSnapshot();
      expect(read?.meta).to.deep.equal(meta(at));
      expect(Buffer.from(read?.data ?? []).equals(Buffer.from(data))).to.equal(true);
      await store.append(range(41, 45));
      await store.close();
      const reopened = await openStore({ segmentBytes: 256 });
      expect(reopened.snapshot).to.deep.equal(meta(at));
      expect(reopened.firstIndex).to.equal(at + 1);
      expect(reopened.entries(1, 100)).to.deep.equal(range(at + 1, 45));
      expect(reopened.recovery.removedSegments).to.equal(0);
      const reread = await reopened.readSnapshot();
      expect(Buffer.from(reread?.data ?? []).equals(Buffer.from(data))).to.equal(true);
      // A newer snapshot replaces the older one; a compaction at a segment's last entry removes it.
      const end = (before[5] as number) - 1;
      await reopened.saveSnapshot(meta(end), snapshotData(end, 10));
      expect((await reopened.readSnapshot())?.meta.index).to.equal(end);
      expect((await segmentStarts(dir))[0]).to.equal(before[5]);
      expect((await readdir(dir)).filter((name) => name.includes('snapshot'))).to.deep.equal(['snapshot']);
    });

    it('compacts the whole log: lastIndex stays at the snapshot and the next append starts after it', async () => {
      const store = await openStore({ segmentBytes: 256 });
      await store.append(range(1, 10));
      await store.saveSnapshot(meta(10), snapshotData(10));
      expect(store.lastIndex).to.equal(10);
      expect(store.firstIndex).to.equal(11);
      expect(store.entries(1)).to.deep.equal([]);
      expect(await segmentFiles(dir)).to.deep.equal([]);
      await expectCode(store.append([entry(10)]), 'INVALID_REQUEST');
      await expectCode(store.append([entry(12)]), 'INVALID_REQUEST');
      await store.close();
      const empty = await openStore({ segmentBytes: 256 });
      expect(empty.lastIndex).to.equal(10);
      expect(empty.firstIndex).to.equal(11);
      await empty.append(range(11, 13));
      await empty.close();
      const reopened = await openStore({ segmentBytes: 256 });
      expect(reopened.entries(1)).to.deep.equal(range(11, 13));
      expect(await segmentStarts(dir)).to.deep.equal([11]);
    });

    it('rejects a snapshot that is not past the current one, past the log, of another term or malformed', async () => {
      const store = await openStore();
      await store.append([...range(1, 5, 1), ...range(6, 10, 2)]);
      await store.saveSnapshot(meta(4, 1), snapshotData(4));
      await expectCode(store.saveSnapshot(meta(4, 1), snapshotData(4)), 'INVALID_REQUEST');
      await expectCode(store.saveSnapshot(meta(3, 1), snapshotData(3)), 'INVALID_REQUEST');
      await expectCode(store.saveSnapshot(meta(11, 2), snapshotData(11)), 'INVALID_REQUEST');
      await expectCode(store.saveSnapshot(meta(7, 1), snapshotData(7)), 'INVALID_REQUEST');
      await expectCode(store.saveSnapshot({ ...meta(7, 2), index: 7.5 }, snapshotData(7)), 'INVALID_REQUEST');
      const noVoters = {
        ...meta(7, 2),
        membership: { learners: [], addresses: {} },
      } as unknown as SnapshotMeta;
      await expectCode(store.saveSnapshot(noVoters, snapshotData(7)), 'INVALID_REQUEST');
      await expectCode(store.saveSnapshot(meta(7, 2), 'text' as unknown as Uint8Array), 'INVALID_REQUEST');
      await expectCode(
        store.persist({ type: 'persist', snapshot: { meta: meta(3, 1), data: snapshotData(3) } }),
        'INVALID_REQUEST',
      );
      // Entries that do not follow the installed snapshot leave the store as it was.
      await expectCode(
        store.persist({
          type: 'persist',
          snapshot: { meta: meta(20, 3), data: snapshotData(20) },
          entries: [entry(22, 3)],
        }),
        'INVALID_REQUEST',
      );
      await expectCode(
        store.persist({
          type: 'persist',
          snapshot: { meta: meta(20, 3), data: snapshotData(20) },
          entries: [entry(21, 2)],
        }),
        'INVALID_REQUEST',
      );
      expect(store.snapshot).to.deep.equal(meta(4, 1));
      expect(store.entries(1)).to.deep.equal([entry(5, 1), ...range(6, 10, 2)]);
      await expectCode(
        store.saveSnapshot(meta(7, 2), snapshotData(7), { signal: AbortSignal.abort() }),
        'ABORTED',
      );
      expect(store.snapshot?.index).to.equal(4);
    });

    it('installs a leader snapshot whose term matches the stored entry and keeps the suffix', async () => {
      const store = await openStore({ segmentBytes: 256 });
      await store.append([...range(1, 10, 1), ...range(11, 20, 2)]);
      await store.persist({
        type: 'persist',
        snapshot: { meta: meta(12, 2), data: snapshotData(12) },
        entries: range(21, 22, 3),
        hardState: { term: 3, votedFor: 'a', commit: 12 },
      });
      const expected = [...range(13, 20, 2), ...range(21, 22, 3)];
      expect(store.firstIndex).to.equal(13);
      expect(store.entries(1)).to.deep.equal(expected);
      expect((await segmentStarts(dir))[0]).to.be.at.most(13);
      await store.close();
      const reopened = await openStore({ segmentBytes: 256 });
      expect(reopened.snapshot).to.deep.equal(meta(12, 2));
      expect(reopened.entries(1)).to.deep.equal(expected);
      expect(reopened.hardState).to.deep.equal({ term: 3, votedFor: 'a', commit: 12 });
      expect((await reopened.readSnapshot())?.meta).to.deep.equal(meta(12, 2));
    });

    it('installs a leader snapshot that conflicts with the stored entry and drops the whole log', async () => {
      const store = await openStore({ segmentBytes: 256 });
      await store.append(range(1, 30, 1));
      await store.persist({
        type: 'persist',
        snapshot: { meta: meta(15, 2), data: snapshotData(15) },
        entries: range(16, 17, 2),
        hardState: { term: 2, votedFor: undefined, commit: 15 },
      });
      expect(store.lastIndex).to.equal(17);
      expect(store.entries(1)).to.deep.equal(range(16, 17, 2));
      expect(await segmentStarts(dir)).to.deep.equal([16]);
      await store.close();
      const reopened = await openStore({ segmentBytes: 256 });
      expect(reopened.entries(1)).to.deep.equal(range(16, 17, 2));
      expect(reopened.recovery.interruptedInstall).to.equal(false);
      // A snapshot past the end of the log replaces it too, with no entries after it.
      await reopened.persist({ type: 'persist', snapshot: { meta: meta(40, 3), data: snapshotData(40) } });
      expect(reopened.lastIndex).to.equal(40);
      expect(reopened.entries(1)).to.deep.equal([]);
      expect(await segmentFiles(dir)).to.deep.equal([]);
      await reopened.close();
      const again = await openStore({ segmentBytes: 256 });
      expect(again.snapshot).to.deep.equal(meta(40, 3));
      expect(again.lastIndex).to.equal(40);
      await again.append(range(41, 42, 3));
      expect(again.entries(1)).to.deep.equal(range(41, 42, 3));
    });

    it('finishes an install a crash cut short and ignores the conflicting entries it left', async () => {
      const store = await openStore({ segmentBytes: 256 });
      await store.append(range(1, 40, 1));
      await store.close();
      open.length = 0;
      const starts = await segmentStarts(dir);
      const names = await segmentFiles(dir);
      // The snapshot was written, then a crash hit while the later segments were being removed:
      // one in the middle is gone (a gap), the newest is still there.
      await writeFile(
        path.join(dir, 'snapshot'),
        encodeSnapshotFile({ meta: meta(15, 2), data: snapshotData(15) }),
      );
      const middle = starts.findIndex((first) => first > 20);
      await rm(path.join(dir, names[middle] as string));
      const reopened = await openStore({ segmentBytes: 256 });
      expect(reopened.recovery.interruptedInstall).to.equal(true);
      expect(reopened.recovery.removedSegments).to.equal(names.length - 1);
      expect(reopened.lastIndex).to.equal(15);
      expect(reopened.entries(1)).to.deep.equal([]);
      expect(await segmentFiles(dir)).to.deep.equal([]);
      await reopened.append(range(16, 18, 2));
      await reopened.close();
      const again = await openStore({ segmentBytes: 256 });
      expect(again.entries(1)).to.deep.equal(range(16, 18, 2));
      expect(again.recovery.interruptedInstall).to.equal(false);
    });

    it('removes the segments a compaction cut short left behind and refuses a gap past the snapshot', async () => {
      const store = await openStore({ segmentBytes: 256 });
      await store.append(range(1, 40, 1));
      await store.close();
      open.length = 0;
      const starts = await segmentStarts(dir);
      const names = await segmentFiles(dir);
      // The snapshot at 25 was written; the crash came before any segment was removed, then
      // after only the second one was.
      await writeFile(
        path.join(dir, 'snapshot'),
        encodeSnapshotFile({ meta: meta(25, 1), data: snapshotData(25) }),
      );
      await rm(path.join(dir, names[1] as string));
      const reopened = await openStore({ segmentBytes: 256 });
      const kept = starts.filter(
        (first, i) => first > 25 || starts[i + 1] === undefined || (starts[i + 1] as number) > 26,
      );
      expect(reopened.recovery.removedSegments).to.equal(starts.length - 1 - kept.length);
      expect(await segmentStarts(dir)).to.deep.equal(kept);
      expect(reopened.entries(1)).to.deep.equal(range(26, 40));
      await reopened.close();
      open.length = 0;
      // Losing the segment that holds index 26 leaves entries 26.. missing: corruption.
      await rm(path.join(dir, (await segmentFiles(dir))[0] as string));
      await expectCorrupt(RaftLogStore.open(dir, { segmentBytes: 256 }));
    });

    it('refuses a corrupt snapshot file at every byte and removes a stale temp file', async () => {
      const store = await openStore();
      await store.append(range(1, 5));
      await store.saveSnapshot(meta(3), snapshotData(3, 40));
      await store.close();
      open.length = 0;
      const file = path.join(dir, 'snapshot');
      const bytes = await readFile(file);
      for (let position = 0; position < bytes.length; position++) {
        const copy = Buffer.from(bytes);
        copy[position] = (copy[position] as number) ^ 0x04;
        await writeFile(file, copy);
        const error = await expectCorrupt(RaftLogStore.open(dir));
        expect(error.file).to.equal(file);
      }
      for (const length of [0, 10, bytes.length - 1]) {
        await writeFile(file, bytes.subarray(0, length));
        await expectCorrupt(RaftLogStore.open(dir));
      }
      await writeFile(file, bytes);
      const temp = path.join(dir, '.snapshot.0123456789ab.tmp');
      await writeFile(temp, bytes.subarray(0, 7));
      const reopened = await openStore();
      expect(reopened.snapshot).to.deep.equal(meta(3));
      expect((await readdir(dir)).filter((name) => name.endsWith('.tmp'))).to.deep.equal([]);
    });

    it('refuses a hard-state commit past both the snapshot and the log', async () => {
      const store = await openStore();
      await store.persist({
        type: 'persist',
        entries: range(1, 30),
        hardState: { term: 1, votedFor: 'a', commit: 20 },
      });
      await store.saveSnapshot(meta(20), snapshotData(20));
      await store.close();
      open.length = 0;
      for (const name of await segmentFiles(dir)) await rm(path.join(dir, name));
      // A commit at the snapshot index needs no entries after it.
      const reopened = await RaftLogStore.open(dir);
      expect(reopened.lastIndex).to.equal(20);
      await reopened.saveHardState({ term: 1, votedFor: 'a', commit: 21 });
      await reopened.close();
      const error = await expectCorrupt(RaftLogStore.open(dir));
      expect(error.file).to.equal(path.join(dir, 'hard-state'));
    });

    it('orders compactions and installs with concurrent persists in one group-commit flush', async () => {
      const store = await openStore({ segmentBytes: 200 });
      await store.append(range(1, 2, 1));
      const flushesBefore = store.flushCount;
      // The hard-state write takes the first flush; everything after queues behind it and shares the next.
      const writes = [
        store.saveHardState({ term: 1, votedFor: 'a', commit: 2 }),
        store.append(range(3, 20, 1)),
        store.saveSnapshot(meta(10, 1), snapshotData(10)),
        store.append(range(15, 25, 2)),
        store.persist({ type: 'persist', snapshot: { meta: meta(12, 1), data: snapshotData(12) } }),
        store.persist({ type: 'persist', snapshot: { meta: meta(22, 2), data: snapshotData(22) } }),
        store.append(range(26, 30, 2)),
        store.persist({
          type: 'persist',
          snapshot: { meta: meta(28, 3), data: snapshotData(28) },
          entries: range(29, 31, 3),
        }),
        store.append(range(32, 35, 3)),
      ];
      // Before the flush, the newest snapshot is already what the store serves.
      expect(store.snapshot).to.deep.equal(meta(28, 3));
      const pending = await store.readSnapshot();
      expect(Buffer.from(pending?.data ?? []).equals(Buffer.from(snapshotData(28)))).to.equal(true);
      await Promise.all(writes);
      expect(store.flushCount - flushesBefore).to.equal(2);
      const expected = [...range(29, 31, 3), ...range(32, 35, 3)];
      expect(store.entries(1)).to.deep.equal(expected);
      await store.close();
      const reopened = await openStore({ segmentBytes: 200 });
      expect(reopened.snapshot).to.deep.equal(meta(28, 3));
      expect(reopened.entries(1)).to.deep.equal(expected);
      expect(reopened.recovery.removedSegments).to.equal(0);
      expect(Math.min(...(await segmentStarts(dir)))).to.equal(29);
    });

    it('keeps every acknowledged entry and snapshot when killed with SIGKILL during compactions and installs', async function () {
      this.timeout(30_000);
      type Op =
        | { kind: 'append'; first: number; last: number; term: number }
        | { kind: 'compact'; index: number; term: number }
        | { kind: 'install'; index: number; term: number; last: number };
      interface Model {
        snap: { index: number; term: number };
        log: Map<number, number>;
      }
      const applyOp = (model: Model, op: Op, withEntries = true): void => {
        if (op.kind === 'append') {
          for (let i = op.first; i <= op.last; i++) model.log.set(i, op.term);
          return;
        }
        if (op.kind === 'install' && model.log.get(op.index) !== op.term) model.log.clear();
        for (const i of [...model.log.keys()]) if (i <= op.index) model.log.delete(i);
        model.snap = { index: op.index, term: op.term };
        if (op.kind === 'install' && withEntries) {
          for (let i = op.index + 1; i <= op.last; i++) model.log.set(i, op.term);
        }
      };
      let baseline: Model = { snap: { index: 0, term: 0 }, log: new Map() };
      const ackedKinds = new Set<string>();
      for (let round = 0; round < 4; round++) {
        const child = spawn(process.execPath, [...process.execArgv, snapshotWriter, dir], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
        const ops = new Map<number, Op>();
        let acked = 0;
        let buffered = '';
        let firstAck: () => void = () => {};
        const started = new Promise<void>((resolve) => {
          firstAck = resolve;
        });
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          buffered += chunk;
          const lines = buffered.split('\n');
          buffered = lines.pop() ?? '';
          for (const line of lines) {
            const [word, n, kind, a, b, c] = line.split(' ');
            const [x, y, z] = [Number(a), Number(b), Number(c)];
            if (word === 'issue' && kind === 'append')
              ops.set(Number(n), { kind, first: x, last: y, term: z });
            if (word === 'issue' && kind === 'compact') ops.set(Number(n), { kind, index: x, term: y });
            if (word === 'issue' && kind === 'install')
              ops.set(Number(n), { kind, index: x, term: y, last: z });
            if (word === 'ack') {
              // Writes resolve in the order they were made: acknowledgements come without holes.
              expect(Number(n)).to.equal(acked + 1);
              acked = Number(n);
              ackedKinds.add(ops.get(acked)?.kind ?? '?');
              firstAck();
            }
          }
        });
        const startTimer = new Promise<void>((_, reject) => {
          const timer = setTimeout(() => reject(new Error('writer acknowledged nothing within 5 s')), 5000);
          void started.then(() => clearTimeout(timer));
        });
        await Promise.race([started, startTimer]);
        await new Promise((resolve) => setTimeout(resolve, 100 + Math.floor(Math.random() * 400)));
        child.kill('SIGKILL');
        await exited;
        expect(child.signalCode).to.equal('SIGKILL');

        // What must have survived: everything up to the last acknowledged write; and if a later
        // snapshot reached the disk, everything written before it (a snapshot step fsyncs what
        // precedes it first) with that snapshot's removals applied.
        const model: Model = { snap: { ...baseline.snap }, log: new Map(baseline.log) };
        for (let n = 1; n <= acked; n++) applyOp(model, ops.get(n) as Op);
        const store = await RaftLogStore.open(dir);
        try {
          const sIndex = store.snapshot?.index ?? 0;
          const sTerm = store.snapshot?.term ?? 0;
          if (sIndex !== model.snap.index) {
            let q = acked + 1;
            while (
              q <= ops.size &&
              !(ops.get(q)?.kind !== 'append' && (ops.get(q) as { index: number }).index === sIndex)
            )
              q++;
            expect(q, `round ${round}: snapshot ${sIndex} was never written`).to.be.at.most(ops.size);
            for (let n = acked + 1; n < q; n++) applyOp(model, ops.get(n) as Op);
            applyOp(model, ops.get(q) as Op, false);
          }
          expect({ index: sIndex, term: sTerm }, `round ${round}`).to.deep.equal(model.snap);
          for (const [index, term] of model.log) {
            expect(store.entries(index, index + 1), `round ${round} entry ${index}`).to.deep.equal([
              snapshotWriterEntry(index, term),
            ]);
          }
          expect(store.lastIndex).to.be.at.least(Math.max(model.snap.index, ...model.log.keys()));
          expect(store.firstIndex).to.equal(sIndex + 1);
          const entries = store.entries(store.firstIndex);
          expect(entries.length).to.equal(store.lastIndex - sIndex);
          let previousTerm = sTerm;
          for (const e of entries) {
            expect(e).to.deep.equal(snapshotWriterEntry(e.index, e.term));
            expect(e.term).to.be.at.least(previousTerm);
            previousTerm = e.term;
          }
          if (store.snapshot !== undefined) {
            const read = await store.readSnapshot();
            expect(read?.meta.membership).to.deep.equal(snapshotWriterMembership);
            expect(
              Buffer.from(read?.data ?? []).equals(Buffer.from(snapshotWriterData(sIndex, sTerm))),
            ).to.equal(true);
          }
          expect(acked).to.be.greaterThan(0);
          baseline = {
            snap: { index: sIndex, term: sTerm },
            log: new Map(entries.map((e) => [e.index, e.term])),
          };
        } finally {
          await store.close();
        }
      }
      expect([...ackedKinds].sort()).to.deep.equal(['append', 'compact', 'install']);
    });
  });
});
