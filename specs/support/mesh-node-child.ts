/**
 * The parent's handle on a mesh node process (mesh-node-process.ts): start it and wait for its
 * ready line, read its log lines, stop it with SIGTERM or kill it with SIGKILL. Every wait has a
 * deadline, and `stop()` falls back to SIGKILL, so a spec's `after` never hangs on a child.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { TimeoutError } from '../../runtime/errors.ts';

const entry = new URL('./mesh-node-process.ts', import.meta.url).pathname;

export interface MeshNodeChildInit {
  /** The node's data dir: its identity lives there, so a restart with it keeps the PeerId. */
  dataDir: string;
  /** More options for mesh-node-process.ts (`--listen`, `--deny`, …). */
  args?: string[];
  /** Deadline for the ready line; default 20 s. */
  readyTimeoutMs?: number;
}

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Lines kept from a child's stderr, at most (the oldest are dropped). */
const maxLogLines = 2000;

export class MeshNodeChild {
  readonly peerId: string;
  readonly multiaddrs: string[];
  readonly process: ChildProcess;
  /** The child's stderr (its JSON log lines), most recent last. */
  readonly logLines: string[];
  readonly exited: Promise<ChildExit>;
  readonly #lineWaiters: Set<() => void>;
  readonly #dropped: { count: number };

  private constructor(
    ready: { peerId: string; multiaddrs: string[] },
    child: ChildProcess,
    logs: { lines: string[]; dropped: { count: number } },
    exited: Promise<ChildExit>,
    lineWaiters: Set<() => void>,
  ) {
    this.peerId = ready.peerId;
    this.multiaddrs = ready.multiaddrs;
    this.process = child;
    this.logLines = logs.lines;
    this.#dropped = logs.dropped;
    this.exited = exited;
    this.#lineWaiters = lineWaiters;
  }

  static async start(init: MeshNodeChildInit): Promise<MeshNodeChild> {
    const child = spawn(
      process.execPath,
      ['--conditions=development', entry, '--data-dir', init.dataDir, ...(init.args ?? [])],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const logLines: string[] = [];
    const dropped = { count: 0 };
    const lineWaiters = new Set<() => void>();
    const verbose = process.env.MESH_SPEC_VERBOSE === '1';
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      if (verbose) process.stderr.write(`[child ${child.pid}] ${line}\n`);
      logLines.push(line);
      if (logLines.length > maxLogLines) {
        logLines.shift();
        dropped.count++;
      }
      for (const wake of [...lineWaiters]) wake();
    });
    const exited = new Promise<ChildExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const stdout = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const timeoutMs = init.readyTimeoutMs ?? 20_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const ready = await new Promise<{ peerId: string; multiaddrs: string[] }>((resolve, reject) => {
        timer = setTimeout(
          () => reject(new TimeoutError(`mesh node process gave no ready line within ${timeoutMs} ms`)),
          timeoutMs,
        );
        stdout.once('line', (line) => {
          try {
            resolve(JSON.parse(line) as { peerId: string; multiaddrs: string[] });
          } catch (error) {
            reject(
              new Error(`mesh node process printed '${line}' instead of its ready line`, { cause: error }),
            );
          }
        });
        void exited.then(({ code, signal }) =>
          reject(
            new Error(
              `mesh node process exited (code ${code}, signal ${signal}) before it was ready:\n` +
                logLines.slice(-20).join('\n'),
            ),
          ),
        );
      });
      return new MeshNodeChild(ready, child, { lines: logLines, dropped }, exited, lineWaiters);
    } catch (error) {
      child.kill('SIGKILL');
      await exited;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Log lines seen so far, dropped ones included: a mark for `waitForLog`. */
  get logMark(): number {
    return this.#dropped.count + this.logLines.length;
  }

  /**
   * Resolves with the first log line that matches `pattern`, among those from `since` (a
   * `logMark`; default all lines kept) on, already seen or yet to come.
   */
  async waitForLog(pattern: RegExp, timeoutMs = 5000, since = 0): Promise<string> {
    const find = (): string | undefined => {
      const from = Math.max(0, since - this.#dropped.count);
      for (let i = from; i < this.logLines.length; i++) {
        const line = this.logLines[i] as string;
        if (pattern.test(line)) return line;
      }
      return undefined;
    };
    const found = find();
    if (found !== undefined) return found;
    return new Promise<string>((resolve, reject) => {
      const wake = (): void => {
        const line = find();
        if (line === undefined) return;
        clearTimeout(timer);
        this.#lineWaiters.delete(wake);
        resolve(line);
      };
      const timer = setTimeout(() => {
        this.#lineWaiters.delete(wake);
        reject(new TimeoutError(`no log line of the child matched ${pattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#lineWaiters.add(wake);
    });
  }

  /** The first dialable address (loopback TCP, ending in /p2p/PeerId). */
  get address(): string {
    const address = this.multiaddrs[0];
    if (address === undefined) throw new Error(`mesh node ${this.peerId} listens on nothing`);
    return address;
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Sends `signal` (default SIGKILL) and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ChildExit> {
    if (this.running) this.process.kill(signal);
    return this.exited;
  }

  /** SIGTERM, then SIGKILL if the process has not exited within `timeoutMs`. */
  async stop(timeoutMs = 8000): Promise<ChildExit> {
    if (!this.running) return this.exited;
    this.process.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    const outcome = await Promise.race([this.exited, forced]);
    clearTimeout(timer);
    if (outcome !== undefined) return outcome;
    return this.kill('SIGKILL');
  }
}
