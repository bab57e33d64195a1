import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { RaftLogStore } from '../../actors/raft/raft-log-store.ts';
import { RaftLogCorruptError } from '../../actors/raft/raft-log-store-errors.ts';
import type { LogEntry } from '../../actors/raft/raft-types.ts';
import { fixtureEntry } from '../fixtures/raft-log-store-writer.ts';

const writer = fileURLToPath(new URL('../fixtures/raft-log-store-writer.ts', import.meta.url));

function entry(index: number, term = 1, data: unknown = { n: index, s: `entry-${index}` }): LogEntry {
  return { type: 'command', term, index, data };
}

function range(from: number, to: number, term = 1): LogEntry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
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
    expect((error as RaftLogCorruptError).code).to.equal('UNAVAILABLE');
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

  it('round-trips entries of both types, with and without data, across a reopen', async () => {
    const store = await openStore();
    const entries: LogEntry[] = [
      entry(1, 1, { nested: { a: [1, 2, 3] }, big: 2 ** 40, text: 'héllo' }),
      { type: 'noop', term: 2, index: 2 },
      entry(3, 2, 'plain string'),
      entry(4, 3, null),
    ];
    await store.append(entries);
    expect(store.lastIndex).to.equal(4);
    await store.close();
    const reopened = await openStore();
    expect(reopened.lastIndex).to.equal(4);
    expect(reopened.entries(1, 5)).to.deep.equal(entries);
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
});
