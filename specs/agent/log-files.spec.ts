import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { LogWriter, readLogs } from '../../actors/agent/log-files.ts';
import { DataCorruptError, InvalidRequestError } from '../../runtime/errors.ts';

function write(writer: LogWriter, text: string): Promise<void> {
  return new Promise((resolve, reject) => writer.write(text, (error) => (error ? reject(error) : resolve())));
}

describe('agent log files', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cloudless-logs-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('appends to <dir>/logs/stdout.log and reads it back from offset 0', async () => {
    const writer = new LogWriter({ dir, stream: 'stdout' });
    await write(writer, 'one\n');
    await write(writer, 'two\n');
    await writer.close();
    expect(await readFile(path.join(dir, 'logs', 'stdout.log'), 'utf8')).to.equal('one\ntwo\n');
    const chunk = await readLogs(dir, { stream: 'stdout' });
    expect(chunk).to.deep.equal({ data: 'one\ntwo\n', nextOffset: 8, truncated: false });
    expect(await readLogs(dir, { stream: 'stdout', fromOffset: 8 })).to.deep.equal({
      data: '',
      nextOffset: 8,
      truncated: false,
    });
  });

  it('rotates by rename past maxBytes and keeps only keepRotated old files', async () => {
    const writer = new LogWriter({ dir, stream: 'stdout', maxBytes: 20, keepRotated: 2 });
    for (let i = 0; i < 10; i++) await write(writer, `line-${i}\n`); // 7 bytes each, 70 in all
    await writer.close();
    const files = (await readdir(path.join(dir, 'logs'))).sort();
    expect(files).to.deep.equal(['stdout.base', 'stdout.log', 'stdout.log.1', 'stdout.log.2']);
    for (const file of ['stdout.log', 'stdout.log.1', 'stdout.log.2']) {
      expect((await readFile(path.join(dir, 'logs', file))).length).to.be.at.most(20);
    }
    expect(writer.offset).to.equal(70);
  });

  it('gives a follower every line exactly once across rotations, and flags what it missed', async () => {
    const writer = new LogWriter({ dir, stream: 'stderr', maxBytes: 32, keepRotated: 2 });
    const lines = Array.from({ length: 40 }, (_, i) => `entry ${String(i).padStart(2, '0')}\n`); // 9 bytes
    let offset = 0;
    let seen = '';
    for (let i = 0; i < lines.length; i++) {
      await write(writer, lines[i] as string);
      if (i % 3 !== 0) continue;
      // Polls in small reads until caught up, as a follower of a busy replica does.
      for (;;) {
        const chunk = await readLogs(dir, { stream: 'stderr', fromOffset: offset, maxBytes: 16 });
        expect(chunk.truncated).to.equal(false);
        expect(chunk.nextOffset).to.equal(offset + Buffer.byteLength(chunk.data));
        if (chunk.data === '') break;
        seen += chunk.data;
        offset = chunk.nextOffset;
      }
    }
    for (;;) {
      const chunk = await readLogs(dir, { stream: 'stderr', fromOffset: offset, maxBytes: 16 });
      if (chunk.data === '') break;
      seen += chunk.data;
      offset = chunk.nextOffset;
    }
    await writer.close();
    expect(seen).to.equal(lines.join(''));
    expect(offset).to.equal(360);

    // A follower that slept through rotations learns it missed data and resumes at the oldest kept byte.
    const late = await readLogs(dir, { stream: 'stderr', fromOffset: 10, maxBytes: 1024 });
    expect(late.truncated).to.equal(true);
    expect(late.nextOffset).to.equal(360);
    expect(lines.join('').endsWith(late.data)).to.equal(true);
    expect(Buffer.byteLength(late.data)).to.be.lessThan(360 - 10);
  });

  it('stays consistent when reads run concurrently with rotations', async () => {
    const writer = new LogWriter({ dir, stream: 'stdout', maxBytes: 64, keepRotated: 50 });
    const lines = Array.from({ length: 300 }, (_, i) => `l${String(i).padStart(3, '0')}\n`); // 5 bytes
    let writing = true;
    const producer = (async () => {
      for (const line of lines) await write(writer, line);
      writing = false;
    })();
    let offset = 0;
    let seen = '';
    while (writing || offset < 1500) {
      const chunk = await readLogs(dir, { stream: 'stdout', fromOffset: offset, maxBytes: 37 });
      expect(chunk.truncated).to.equal(false);
      seen += chunk.data;
      offset = chunk.nextOffset;
    }
    await producer;
    await writer.close();
    expect(seen).to.equal(lines.join(''));
  });

  it('serves a tail with a negative fromOffset', async () => {
    const writer = new LogWriter({ dir, stream: 'stdout', maxBytes: 10, keepRotated: 3 });
    await write(writer, 'aaaa\nbbbb\ncccc\ndddd\n');
    await writer.close();
    const tail = await readLogs(dir, { stream: 'stdout', fromOffset: -10 });
    expect(tail).to.deep.equal({ data: 'cccc\ndddd\n', nextOffset: 20, truncated: false });
  });

  it('keeps offsets growing when a writer reopens the stream, even after an unfinished rotation', async () => {
    const first = new LogWriter({ dir, stream: 'stdout', maxBytes: 8 });
    await write(first, 'abcdefgh');
    await write(first, '12');
    await first.close();
    expect((await readLogs(dir, { stream: 'stdout' })).data).to.equal('abcdefgh12');

    const second = new LogWriter({ dir, stream: 'stdout', maxBytes: 8 });
    await write(second, '34');
    await second.close();
    expect(second.offset).to.equal(12);

    // A crash between the renames and the base rewrite: the base names the file now at `.1`.
    const logs = path.join(dir, 'logs');
    const { rename } = await import('node:fs/promises');
    await rename(path.join(logs, 'stdout.log.1'), path.join(logs, 'stdout.log.2'));
    await rename(path.join(logs, 'stdout.log'), path.join(logs, 'stdout.log.1'));
    const third = new LogWriter({ dir, stream: 'stdout', maxBytes: 8 });
    await write(third, 'zz');
    await third.close();
    expect(third.offset).to.equal(14);
    expect(await readLogs(dir, { stream: 'stdout' })).to.deep.equal({
      data: 'abcdefgh1234zz',
      nextOffset: 14,
      truncated: false,
    });
  });

  it('never splits a UTF-8 character at the end of a chunk', async () => {
    const writer = new LogWriter({ dir, stream: 'stdout' });
    await write(writer, 'héllo'); // é is two bytes
    await writer.close();
    const chunk = await readLogs(dir, { stream: 'stdout', maxBytes: 2 });
    expect(chunk).to.deep.equal({ data: 'h', nextOffset: 1, truncated: false });
    const rest = await readLogs(dir, { stream: 'stdout', fromOffset: 1 });
    expect(rest.data).to.equal('éllo');
  });

  it('reads nothing from a replica that wrote nothing', async () => {
    expect(await readLogs(dir, { stream: 'stdout' })).to.deep.equal({
      data: '',
      nextOffset: 0,
      truncated: false,
    });
  });

  it('refuses a damaged base file and bad read options', async () => {
    const writer = new LogWriter({ dir, stream: 'stdout' });
    await write(writer, 'x');
    await writer.close();
    await writeFile(path.join(dir, 'logs', 'stdout.base'), '{"v":1,"base":5,"ino":1,"sha256":"00"}');
    let error: unknown;
    try {
      await readLogs(dir, { stream: 'stdout' });
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(DataCorruptError);
    error = undefined;
    try {
      await readLogs(dir, { stream: 'stdout', maxBytes: 0 });
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(InvalidRequestError);
  });
});
