/**
 * A replica's stdout and stderr as size-bounded, rotated files, and a reader that serves them by
 * logical offset so that a follower polling with `nextOffset` never sees a byte twice and learns
 * when it fell behind rotation.
 *
 * Files, per stream (`stdout`, `stderr`) in `<dir>/logs`:
 *   - `<stream>.log`    the current file, appended to;
 *   - `<stream>.log.1` … `<stream>.log.N`, older files (`.1` the newest), rotated by rename;
 *   - `<stream>.base`   `{"v":1,"base":B,"ino":I,"sha256":…}`: the logical offset B of byte 0 of
 *     the file whose inode is I (the current file when it was written).
 *
 * Offsets. Every byte ever written to a stream has a logical offset that only grows, across
 * rotations and writer restarts: the current file starts at B, the file before it at
 * B − size(.1), and so on. A rotation renames `.log` → `.log.1` (… `.N-1` → `.N`, the oldest
 * dropped), creates an empty `.log`, and then rewrites the base file with B + size(old current)
 * and the new file's inode. Because the base file names its file by inode (renames keep inodes),
 * a reader — or a writer reopening after a crash between the renames and the base rewrite — can
 * always tell which file B belongs to: if the inode is now `.log.1`, the rotation did not finish
 * and the current file starts at B + size(.1). Readers open the files newest first and re-read
 * the base file afterwards; a rotation in between is seen (a repeated inode or a changed base)
 * and the read is retried.
 *
 * One writer per stream at a time (the agent owns it); readers may run concurrently.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { DataCorruptError, InvalidRequestError, UnavailableError } from '../../runtime/errors.ts';

export type LogStream = 'stdout' | 'stderr';

export const defaultLogMaxBytes = 10 * 1024 * 1024;
export const defaultLogKeepRotated = 3;
/** Default and upper bound of one `readLogs` answer. */
export const defaultReadMaxBytes = 64 * 1024;
export const maxReadMaxBytes = 1024 * 1024;

export interface LogWriterInit {
  /** The replica's directory; files go in `<dir>/logs`. */
  readonly dir: string;
  readonly stream: LogStream;
  /** A file is rotated before it would grow past this; default 10 MiB. */
  readonly maxBytes?: number;
  /** Rotated files kept (`.1` … `.N`); default 3, so at most 4 files per stream. */
  readonly keepRotated?: number;
}

interface BaseRecord {
  readonly base: number;
  readonly ino: number;
}

function logsDir(dir: string): string {
  return path.join(dir, 'logs');
}

function fileName(stream: LogStream, index: number): string {
  return index === 0 ? `${stream}.log` : `${stream}.log.${index}`;
}

function baseChecksum(record: BaseRecord): string {
  return createHash('sha256').update(`1:${record.base}:${record.ino}`).digest('hex');
}

function encodeBase(record: BaseRecord): string {
  return `${JSON.stringify({ v: 1, base: record.base, ino: record.ino, sha256: baseChecksum(record) })}\n`;
}

/** Reads `<stream>.base`; undefined when it does not exist, DataCorruptError when it is damaged. */
async function readBase(file: string): Promise<BaseRecord | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: { v?: unknown; base?: unknown; ino?: unknown; sha256?: unknown };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch (error) {
    throw new DataCorruptError(`log base file ${file} is not JSON; remove the logs directory to reset it`, {
      cause: error,
    });
  }
  if (parsed.v !== 1 || typeof parsed.base !== 'number' || typeof parsed.ino !== 'number') {
    throw new DataCorruptError(
      `log base file ${file} has an unknown format (version ${String(parsed.v)}); remove it to reset`,
    );
  }
  const record = { base: parsed.base, ino: parsed.ino };
  if (parsed.sha256 !== baseChecksum(record)) {
    throw new DataCorruptError(`log base file ${file} failed its checksum; remove it to reset the offsets`);
  }
  return record;
}

async function writeBase(file: string, record: BaseRecord): Promise<void> {
  const temp = `${file}.tmp`;
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(encodeBase(record));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  const dirHandle = await open(path.dirname(file), fsConstants.O_RDONLY);
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

async function statOrUndefined(file: string): Promise<{ ino: number; size: number } | undefined> {
  try {
    const s = await stat(file);
    return { ino: s.ino, size: s.size };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Appends one stream of a replica to `<dir>/logs/<stream>.log`, rotating by size. A `Writable`,
 * so a child's pipe goes straight in with backpressure (`child.stdout.pipe(writer)`): a chunk is
 * acknowledged once it is in the file, and nothing is buffered beyond the stream's highWaterMark.
 */
export class LogWriter extends Writable {
  readonly file: string;
  readonly #dir: string;
  readonly #stream: LogStream;
  readonly #maxBytes: number;
  readonly #keepRotated: number;
  /** Settles once the file is open (rejects when it cannot be; 'error' is emitted too). */
  readonly opened: Promise<void>;
  #markOpened!: (error?: Error) => void;
  #handle: FileHandle | undefined;
  #size = 0;
  #base = 0;

  constructor(init: LogWriterInit) {
    super({ decodeStrings: true });
    const maxBytes = init.maxBytes ?? defaultLogMaxBytes;
    const keepRotated = init.keepRotated ?? defaultLogKeepRotated;
    if (!Number.isInteger(maxBytes) || maxBytes < 1) {
      throw new InvalidRequestError(`log maxBytes must be a positive integer, got ${maxBytes}`);
    }
    if (!Number.isInteger(keepRotated) || keepRotated < 1) {
      throw new InvalidRequestError(`log keepRotated must be a positive integer, got ${keepRotated}`);
    }
    this.#dir = logsDir(init.dir);
    this.#stream = init.stream;
    this.#maxBytes = maxBytes;
    this.#keepRotated = keepRotated;
    this.file = path.join(this.#dir, fileName(init.stream, 0));
    this.opened = new Promise<void>((resolve, reject) => {
      this.#markOpened = (error) => (error === undefined ? resolve() : reject(error));
    });
    // Whoever cares awaits `opened` or listens for 'error'; the rejection is not unhandled.
    this.opened.catch(() => {});
  }

  /** The logical offset just past the last byte written. */
  get offset(): number {
    return this.#base + this.#size;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.#open().then(
      () => {
        this.#markOpened();
        callback();
      },
      (error: Error) => {
        this.#markOpened(error);
        callback(error);
      },
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#append(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#closeHandle().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#closeHandle().then(
      () => callback(error),
      (closeError: unknown) => callback(error ?? (closeError as Error)),
    );
  }

  /** Ends the stream: everything written so far is in the file when this resolves. */
  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.writableFinished || this.destroyed) {
        resolve();
        return;
      }
      this.once('error', reject);
      this.end(() => {
        this.off('error', reject);
        resolve();
      });
    });
  }

  get #baseFile(): string {
    return path.join(this.#dir, `${this.#stream}.base`);
  }

  async #open(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    const stored = await readBase(this.#baseFile);
    let current = await statOrUndefined(this.file);
    let base = stored?.base ?? 0;
    if (stored !== undefined && current?.ino !== stored.ino) {
      // The base names another file: a rotation that did not finish (the base still names the
      // old current, now `.1`), or files removed by hand. Offsets must only grow either way.
      const previous = await statOrUndefined(path.join(this.#dir, fileName(this.#stream, 1)));
      if (previous?.ino === stored.ino) base = stored.base + previous.size;
      if (current === undefined) base = Math.max(base, stored.base);
    }
    this.#handle = await open(this.file, 'a');
    const opened = await this.#handle.stat();
    current = { ino: opened.ino, size: opened.size };
    this.#size = current.size;
    this.#base = base;
    if (stored === undefined || stored.ino !== current.ino || stored.base !== base) {
      await writeBase(this.#baseFile, { base, ino: current.ino });
    }
  }

  async #append(chunk: Buffer): Promise<void> {
    let at = 0;
    while (at < chunk.length) {
      if (this.#size >= this.#maxBytes) await this.#rotate();
      const take = Math.min(chunk.length - at, this.#maxBytes - this.#size);
      const handle = this.#handle;
      if (handle === undefined) throw new UnavailableError(`log file ${this.file} is closed`);
      let written = 0;
      while (written < take) {
        const { bytesWritten } = await handle.write(chunk, at + written, take - written);
        written += bytesWritten;
      }
      this.#size += take;
      at += take;
    }
  }

  async #rotate(): Promise<void> {
    await this.#closeHandle();
    for (let index = this.#keepRotated - 1; index >= 0; index--) {
      const from = path.join(this.#dir, fileName(this.#stream, index));
      try {
        await rename(from, path.join(this.#dir, fileName(this.#stream, index + 1)));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    const base = this.#base + this.#size;
    this.#handle = await open(this.file, 'a');
    const opened = await this.#handle.stat();
    this.#base = base;
    this.#size = opened.size;
    await writeBase(this.#baseFile, { base, ino: opened.ino });
  }

  async #closeHandle(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle !== undefined) await handle.close();
  }
}

export interface ReadLogsOptions {
  readonly stream: LogStream;
  /**
   * Logical offset to read from (a previous `nextOffset`); default 0. Negative: the last
   * `-fromOffset` bytes (tail).
   */
  readonly fromOffset?: number;
  /** At most this many bytes; default 64 KiB, at most 1 MiB. */
  readonly maxBytes?: number;
}

export interface LogChunk {
  readonly data: string;
  /** Where the next read continues; never goes back. */
  readonly nextOffset: number;
  /** Bytes between the requested offset and `data` had already been rotated away. */
  readonly truncated: boolean;
}

interface OpenedFile {
  readonly handle: FileHandle;
  readonly ino: number;
  readonly size: number;
}

async function openIfExists(file: string): Promise<OpenedFile | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const s = await handle.stat();
    return { handle, ino: s.ino, size: s.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** Logical starts of files listed newest first, given that file `anchor` starts at `base`. */
function startsOf(newestFirst: readonly OpenedFile[], anchor: number, base: number): number[] {
  const starts = new Array<number>(newestFirst.length);
  starts[anchor] = base;
  for (let i = anchor - 1; i >= 0; i--) {
    starts[i] = (starts[i + 1] as number) + (newestFirst[i + 1] as OpenedFile).size;
  }
  for (let i = anchor + 1; i < newestFirst.length; i++) {
    starts[i] = (starts[i - 1] as number) - (newestFirst[i] as OpenedFile).size;
  }
  return starts;
}

/**
 * The files a read from `fromOffset` needs, oldest first, each with its logical start; undefined
 * when a rotation interleaved (the caller retries). Opens newest first and stops at the first
 * file that starts at or before the wanted offset, so a follower near the end opens one or two.
 */
async function snapshot(
  dir: string,
  stream: LogStream,
  fromOffset: number,
  opened: OpenedFile[],
): Promise<{ files: { file: OpenedFile; start: number }[] } | undefined> {
  const baseFile = path.join(dir, `${stream}.base`);
  const before = await readBase(baseFile);
  // Newest first: a rotation in between moves a file we already hold to a higher index, so we
  // meet its inode twice instead of missing a file.
  for (let index = 0; index <= 10_000; index++) {
    const file = await openIfExists(path.join(dir, fileName(stream, index)));
    if (file === undefined) {
      if (index === 0) continue; // no current file (yet, or mid-rotation): look for older ones
      break;
    }
    opened.push(file);
    const anchor = before === undefined ? 0 : opened.findIndex((f) => f.ino === before.ino);
    if (anchor < 0) continue;
    const starts = startsOf(opened, anchor, before?.base ?? 0);
    const end = (starts[0] as number) + (opened[0] as OpenedFile).size;
    const wanted = fromOffset < 0 ? end + fromOffset : fromOffset;
    if ((starts.at(-1) as number) <= wanted) break;
  }
  const after = await readBase(baseFile);
  if (before?.base !== after?.base || before?.ino !== after?.ino) return undefined;
  if (new Set(opened.map((f) => f.ino)).size !== opened.length) return undefined;
  const anchor = after === undefined ? 0 : opened.findIndex((f) => f.ino === after.ino);
  if (anchor < 0) return opened.length === 0 ? { files: [] } : undefined;
  const starts = startsOf(opened, anchor, after?.base ?? 0);
  return { files: opened.map((file, i) => ({ file, start: starts[i] as number })).reverse() };
}

/** Length of `bytes` without a trailing incomplete UTF-8 sequence. */
function completeUtf8Length(bytes: Buffer): number {
  const n = bytes.length;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const byte = bytes[n - back] as number;
    if ((byte & 0xc0) === 0x80) continue; // continuation byte
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

/**
 * Reads a stream of a replica's logs by logical offset (see the file comment). A follower polls
 * with the previous `nextOffset`; `truncated` says data it had not read was rotated away. The
 * answer never ends inside a UTF-8 character (the rest comes with the next read).
 */
export async function readLogs(dir: string, options: ReadLogsOptions): Promise<LogChunk> {
  const fromOffset = options.fromOffset ?? 0;
  const maxBytes = options.maxBytes ?? defaultReadMaxBytes;
  if (!Number.isSafeInteger(fromOffset)) {
    throw new InvalidRequestError(`log fromOffset must be an integer, got ${fromOffset}`);
  }
  if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > maxReadMaxBytes) {
    throw new InvalidRequestError(
      `log maxBytes must be an integer in 1..${maxReadMaxBytes}, got ${maxBytes}`,
    );
  }
  if (options.stream !== 'stdout' && options.stream !== 'stderr') {
    throw new InvalidRequestError(`log stream must be stdout or stderr, got ${String(options.stream)}`);
  }
  const logs = logsDir(dir);
  for (let attempt = 0; attempt < 20; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setImmediate(resolve));
    const opened: OpenedFile[] = [];
    try {
      const view = await snapshot(logs, options.stream, fromOffset, opened);
      if (view === undefined) continue;
      return await readFrom(view.files, fromOffset, maxBytes);
    } finally {
      await Promise.all(opened.map((f) => f.handle.close()));
    }
  }
  throw new UnavailableError(
    `logs of ${options.stream} in ${logs} kept rotating while being read; retry the read`,
  );
}

async function readFrom(
  files: readonly { file: OpenedFile; start: number }[],
  fromOffset: number,
  maxBytes: number,
): Promise<LogChunk> {
  const first = files[0];
  const last = files.at(-1);
  if (first === undefined || last === undefined) {
    return { data: '', nextOffset: Math.max(0, fromOffset), truncated: false };
  }
  const oldest = first.start;
  const end = last.start + last.file.size;
  const tail = fromOffset < 0;
  const wanted = tail ? end + fromOffset : fromOffset;
  const from = Math.min(Math.max(wanted, oldest), end);
  const truncated = wanted < oldest && !(tail && oldest === 0);
  const until = Math.min(end, from + maxBytes);
  const parts: Buffer[] = [];
  for (const { file, start } of files) {
    const fileEnd = start + file.size;
    if (fileEnd <= from || start >= until) continue;
    const readStart = Math.max(from, start);
    const length = Math.min(until, fileEnd) - readStart;
    const buffer = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await file.handle.read(buffer, got, length - got, readStart - start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    parts.push(got === length ? buffer : buffer.subarray(0, got));
  }
  let bytes = Buffer.concat(parts);
  let skipped = 0;
  if (tail) {
    // A tail may start inside a character: skip to the next character boundary.
    while (skipped < bytes.length && skipped < 3 && ((bytes[skipped] as number) & 0xc0) === 0x80) skipped++;
    bytes = bytes.subarray(skipped);
  }
  const complete = completeUtf8Length(bytes);
  if (complete > 0) bytes = bytes.subarray(0, complete);
  return { data: bytes.toString('utf8'), nextOffset: from + skipped + bytes.length, truncated };
}
