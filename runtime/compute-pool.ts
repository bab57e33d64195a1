/**
 * The compute pool: stateless CPU work that is not an actor (hashing, compression, function
 * workloads) runs here, on a piscina pool of worker threads. Tasks are named functions from the
 * built-in set (`sha256`, `gzip`, `gunzip`) or from task modules every thread imports; inputs
 * cross threads by structured clone (or are moved, on request), and byte-array results are moved.
 *
 * The queue of waiting tasks is bounded, every task has a deadline and can be aborted, and
 * `destroy()` terminates every thread and waits until each has exited.
 */
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Logger } from 'winston';
import { assertTaskName, type ComputeTask, isComputeTask, unknownTaskMessage } from './compute-task.ts';
import type { ComputeRequest, ComputeResponse, ComputeWorkerData } from './compute-worker.ts';
import {
  AbortError,
  errorFromWire,
  InvalidRequestError,
  NotFoundError,
  TimeoutError,
  UnavailableError,
} from './errors.ts';
import { createLogger } from './logging.ts';
import { moduleSpecifier } from './module-specifier.ts';
import { ownsItsBuffer } from './owns-its-buffer.ts';

export interface ComputePoolInit {
  /**
   * Task modules every thread imports: URLs (`import.meta.resolve('pkg/tasks')` gives one for a
   * package), or paths, relative ones from the working directory. Their named exports made with
   * `defineComputeTask` become tasks. At most 256.
   */
  modules?: readonly string[];
  /** Most threads; default one fewer than the cores, at least 1. */
  maxThreads?: number;
  /** Threads kept even when idle; default 1 (at most `maxThreads`). */
  minThreads?: number;
  /** Most tasks waiting for a thread; one more is refused with `UnavailableError`. Default 1024. */
  maxQueue?: number;
  /** A thread above `minThreads` idle this long is stopped; default 10,000 ms. */
  idleTimeoutMs?: number;
  /** Deadline of a task that gives none, from the call to the result; default 60,000 ms. */
  timeoutMs?: number;
  /** Deadline for the first thread to load the task modules; default 30,000 ms. */
  startTimeoutMs?: number;
  logger?: Logger;
}

export interface ComputeRunOptions {
  /** Aborting rejects with `AbortError`: a waiting task leaves the queue, a running one's thread is terminated. */
  signal?: AbortSignal;
  /** Rejects with `TimeoutError` after this long (waiting included) and terminates the thread; default the pool's `timeoutMs`. */
  timeoutMs?: number;
  /**
   * Move a `Uint8Array` input's buffer to the thread instead of copying it: the caller's array is
   * detached (length 0) once `run` returns. Worth it from about 64 KiB; see `transferListFor`.
   * An array that is a view into a larger buffer (a pooled `Buffer`) is copied anyway.
   */
  transfer?: boolean;
}

export interface ComputeDestroyOptions {
  /** Rejects with `TimeoutError` when threads have not exited by then; default 10,000 ms. */
  timeoutMs?: number;
}

/** Longest delay `setTimeout` honours. */
const maxDelayMs = 2_147_483_647;
const maxModules = 256;
const maxSpecifierLength = 4096;

/**
 * The worker entry beside this file, with this file's own extension: `.ts` when running from
 * source, `.js` in `dist/` (`rewriteRelativeImportExtensions` rewrites imports, not URL strings).
 */
const workerEntry = new URL(
  `./compute-worker${path.extname(fileURLToPath(import.meta.url))}`,
  import.meta.url,
).href;

function checkCount(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InvalidRequestError(
      `ComputePool option ${name} must be an integer ≥ ${min}, got ${String(value)}`,
    );
  }
  return value;
}

function checkDelay(what: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || value > maxDelayMs) {
    throw new InvalidRequestError(
      `${what} must be a positive number of milliseconds up to ${maxDelayMs}, got ${String(value)}`,
    );
  }
  return value;
}

/** File URLs for paths (relative ones from the working directory); URLs as given. */
function moduleSpecifiers(modules: unknown): string[] {
  if (modules === undefined) return [];
  if (!Array.isArray(modules) || modules.length > maxModules) {
    throw new InvalidRequestError(
      `ComputePool option modules must be an array of at most ${maxModules} strings`,
    );
  }
  return modules.map((module: unknown) => {
    if (typeof module !== 'string' || module.length === 0 || module.length > maxSpecifierLength) {
      throw new InvalidRequestError(
        `a compute task module is a non-empty path or URL of at most ${maxSpecifierLength} characters, got ${typeof module}`,
      );
    }
    return moduleSpecifier(module);
  });
}

/**
 * What to move rather than copy for `run(…, { transfer: true })`. Measured on Node 22.23 with 2
 * cores, a round trip of a byte-array input took, copied vs moved: 1 KiB 0.10 vs 0.06 ms, 1 MiB
 * 0.5–0.9 vs 0.2 ms, 16 MiB 16–39 vs 1.8 ms. Moving detaches the caller's array, so it is opt-in;
 * copying first and then moving was measured no faster than a plain copy, so there is no hidden
 * copy. Results are always moved when they own their buffer (see `compute-worker.ts`).
 */
function transferListFor(input: unknown, transfer: boolean | undefined): ArrayBuffer[] {
  if (transfer !== true || !ownsItsBuffer(input)) return [];
  return [input.buffer];
}

/** Rebuilds the error a thread returned for a failed task. */
function taskFailure(response: Extract<ComputeResponse, { type: 'failed' }>): Error {
  const cause = response.error;
  if (response.code !== undefined && cause instanceof Error && !('code' in cause)) {
    // Structured clone drops `code`; put it back on the error that crossed.
    Object.defineProperty(cause, 'code', { value: response.code, enumerable: true, configurable: true });
  }
  if (response.cloudless) {
    const error = errorFromWire({ code: response.code, message: response.message });
    Object.defineProperty(error, 'cause', { value: cause, writable: true, configurable: true });
    return error;
  }
  return new Error(response.message, { cause });
}

export class ComputePool {
  readonly #piscina: Piscina<ComputeRequest, ComputeResponse>;
  readonly #log: Logger;
  readonly #maxQueue: number;
  readonly #timeoutMs: number;
  /** Filled in by `start()` from the first thread's catalogue. */
  #tasks: ReadonlySet<string> = new Set();
  readonly #modules: readonly string[];
  /** Every thread seen and not yet exited, so `destroy()` also waits for threads piscina already let go. */
  readonly #live = new Set<Worker>();
  #destroying: Promise<void> | undefined;

  private constructor(
    piscina: Piscina<ComputeRequest, ComputeResponse>,
    log: Logger,
    settings: { maxQueue: number; timeoutMs: number; modules: readonly string[] },
  ) {
    this.#piscina = piscina;
    this.#log = log;
    this.#maxQueue = settings.maxQueue;
    this.#timeoutMs = settings.timeoutMs;
    this.#modules = settings.modules;
    piscina.on('workerCreate', () => this.#trackThreads());
    this.#trackThreads();
  }

  /** Starts the threads and loads the task modules; rejects if a module does not load or exports no task. */
  static async start(init: ComputePoolInit = {}): Promise<ComputePool> {
    if (typeof init !== 'object' || init === null) {
      throw new InvalidRequestError('ComputePool.start takes an options object');
    }
    const modules = moduleSpecifiers(init.modules);
    const maxThreads = checkCount('maxThreads', init.maxThreads, Math.max(1, availableParallelism() - 1), 1);
    const minThreads = Math.min(checkCount('minThreads', init.minThreads, 1, 0), maxThreads);
    const maxQueue = checkCount('maxQueue', init.maxQueue, 1024, 1);
    const idleTimeoutMs = checkDelay('ComputePool option idleTimeoutMs', init.idleTimeoutMs, 10_000);
    const timeoutMs = checkDelay('ComputePool option timeoutMs', init.timeoutMs, 60_000);
    const startTimeoutMs = checkDelay('ComputePool option startTimeoutMs', init.startTimeoutMs, 30_000);
    const log =
      init.logger?.child({ component: 'compute' }) ??
      createLogger({ level: 'info', node: 'unknown', component: 'compute' });

    const workerData: ComputeWorkerData = { modules };
    const piscina = new Piscina<ComputeRequest, ComputeResponse>({
      filename: workerEntry,
      minThreads,
      maxThreads,
      maxQueue,
      idleTimeout: idleTimeoutMs,
      workerData,
    });
    // A thread that fails with no task on it is reported as an 'error' event, which would
    // throw if nothing listened; tasks on a failed thread are rejected with the error anyway.
    piscina.on('error', (error: unknown) => {
      log.warn('compute thread failed', { error: (error as Error)?.message });
    });
    const pool = new ComputePool(piscina, log, { maxQueue, timeoutMs, modules });
    try {
      pool.#tasks = await pool.#describe(startTimeoutMs);
    } catch (error) {
      await pool.destroy().catch((failure: unknown) => {
        log.warn('compute pool did not stop cleanly after failing to start', {
          error: (failure as Error)?.message,
        });
      });
      throw error;
    }
    log.debug('compute pool started', { maxThreads, minThreads, maxQueue, tasks: pool.tasks, modules });
    return pool;
  }

  /** Asks one thread for its catalogue, which proves the task modules load. */
  async #describe(startTimeoutMs: number): Promise<ReadonlySet<string>> {
    const controller = new AbortController();
    const timer = setTimeout(() => {
      this.#trackThreads();
      controller.abort();
    }, startTimeoutMs);
    let response: ComputeResponse;
    try {
      response = await this.#piscina.run({ type: 'describe' }, { signal: controller.signal });
    } catch (error) {
      if (controller.signal.aborted) {
        throw new TimeoutError(
          `compute pool threads did not load their task modules within ${startTimeoutMs} ms; ` +
            'check the modules for slow top-level work or raise startTimeoutMs',
          { cause: error },
        );
      }
      throw new UnavailableError(`compute pool threads did not start: ${(error as Error)?.message}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
    if (response.type === 'catalogue') return new Set(response.tasks);
    throw response.type === 'failed'
      ? taskFailure(response)
      : new UnavailableError(`compute worker answered describe with '${response.type}'`);
  }

  /**
   * Runs a task on a pool thread and resolves with its result. Rejects with `NotFoundError` for
   * an unknown task, `UnavailableError` when `maxQueue` tasks are already waiting or the pool is
   * destroyed, `AbortError`, `TimeoutError`, `InvalidRequestError` for input or a result that
   * cannot be cloned, and an `Error` with the task's own message (the error that crossed is its
   * `cause`) when the task throws. A `ComputeTask` object is run by its name, as the threads
   * registered it from the task modules.
   */
  run<TIn, TOut>(task: ComputeTask<TIn, TOut>, input: TIn, options?: ComputeRunOptions): Promise<TOut>;
  run<TOut = unknown>(task: string, input: unknown, options?: ComputeRunOptions): Promise<TOut>;
  async run<TOut>(
    task: string | ComputeTask<unknown, TOut>,
    input: unknown,
    options: ComputeRunOptions = {},
  ): Promise<TOut> {
    const name = isComputeTask(task) ? task.name : task;
    assertTaskName(name);
    if (typeof options !== 'object' || options === null) {
      throw new InvalidRequestError(`options of compute task '${name}' must be an object`);
    }
    const { signal, transfer } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidRequestError(`options.signal of compute task '${name}' must be an AbortSignal`);
    }
    if (transfer !== undefined && typeof transfer !== 'boolean') {
      throw new InvalidRequestError(`options.transfer of compute task '${name}' must be a boolean`);
    }
    const timeoutMs = checkDelay(
      `options.timeoutMs of compute task '${name}'`,
      options.timeoutMs,
      this.#timeoutMs,
    );
    if (this.#destroying !== undefined) {
      throw new UnavailableError(`compute pool is destroyed; it cannot run task '${name}'`);
    }
    if (!this.#tasks.has(name)) throw new NotFoundError(unknownTaskMessage(name, this.#tasks, this.#modules));
    if (signal?.aborted) {
      throw new AbortError(`compute task '${name}' was aborted before it was queued`, {
        cause: signal.reason,
      });
    }
    if (this.#piscina.queueSize >= this.#maxQueue) throw this.#queueFull(name);

    // One controller carries both the caller's abort and the deadline to piscina, which takes a
    // waiting task off the queue and terminates the thread of a running one.
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#trackThreads();
      controller.abort();
    }, timeoutMs);
    const onAbort = (): void => {
      this.#trackThreads();
      controller.abort();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let response: ComputeResponse;
    try {
      response = await this.#piscina.run(
        { type: 'run', task: name, input },
        { signal: controller.signal, transferList: transferListFor(input, transfer) },
      );
    } catch (error) {
      if (timedOut) {
        throw new TimeoutError(
          `compute task '${name}' did not finish within ${timeoutMs} ms (waiting included); ` +
            'its thread was terminated. Raise timeoutMs or split the work',
          { cause: error },
        );
      }
      if (signal?.aborted) {
        throw new AbortError(`compute task '${name}' was aborted`, { cause: signal.reason });
      }
      throw this.#translate(name, error);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    if (response.type === 'done') return response.value as TOut;
    if (response.type === 'failed') throw taskFailure(response);
    throw new UnavailableError(`compute worker answered task '${name}' with '${response.type}'`);
  }

  /** Tasks waiting for a thread. */
  get queueSize(): number {
    return this.#piscina.queueSize;
  }

  /** Threads running now. */
  get threads(): number {
    return this.#piscina.threads.length;
  }

  /** Names of the tasks this pool can run. */
  get tasks(): readonly string[] {
    return [...this.#tasks].sort();
  }

  /**
   * Rejects every waiting and running task with `UnavailableError`, terminates every thread and
   * resolves once all have exited. Idempotent.
   */
  destroy(options: ComputeDestroyOptions = {}): Promise<void> {
    if (this.#destroying === undefined) {
      const timeoutMs = checkDelay('ComputePool destroy timeoutMs', options.timeoutMs, 10_000);
      this.#destroying = this.#destroy(timeoutMs);
    }
    return this.#destroying;
  }

  async #destroy(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let expired = false;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        expired = true;
        reject(
          new TimeoutError(
            `compute pool threads did not exit within ${timeoutMs} ms (${this.#live.size} left); ` +
              'a task may be stuck in native code',
          ),
        );
      }, timeoutMs);
    });
    const drain = async (): Promise<void> => {
      // piscina 5.3 starts a replacement for a thread it terminated on an abort when that
      // thread's exit arrives after its destroy() has finished, so go again until no thread is
      // left, waiting each round for every thread seen, including those piscina already let go.
      while (!expired) {
        this.#trackThreads();
        const exited = [...this.#live].map(
          (worker) => new Promise<void>((resolve) => worker.once('exit', () => resolve())),
        );
        await this.#piscina.destroy();
        await Promise.all(exited);
        if (this.#piscina.threads.length === 0 && this.#live.size === 0) return;
      }
    };
    try {
      await Promise.race([drain(), deadline]);
    } finally {
      clearTimeout(timer);
    }
    this.#log.debug('compute pool destroyed');
  }

  #trackThreads(): void {
    for (const worker of this.#piscina.threads) {
      if (this.#live.has(worker)) continue;
      this.#live.add(worker);
      worker.once('exit', () => this.#live.delete(worker));
    }
  }

  #queueFull(name: string): UnavailableError {
    return new UnavailableError(
      `compute pool queue is full (${this.#piscina.queueSize} tasks waiting, maxQueue ${this.#maxQueue}); ` +
        `task '${name}' was refused. Wait for tasks to finish, or raise maxQueue or maxThreads`,
    );
  }

  #translate(name: string, error: unknown): Error {
    const message = (error as Error)?.message;
    if (this.#destroying !== undefined) {
      return new UnavailableError(`compute pool was destroyed before task '${name}' finished`, {
        cause: error,
      });
    }
    // piscina's own queue bound, should its count differ from the check in run().
    if (message === 'Task queue is at limit') return this.#queueFull(name);
    if ((error as Error)?.name === 'DataCloneError') {
      return new InvalidRequestError(
        `the input or result of compute task '${name}' cannot be cloned between threads (${message}); ` +
          'use plain data: no functions, class instances with private state, or handles',
        { cause: error },
      );
    }
    return new UnavailableError(`compute thread running task '${name}' failed: ${message}`, { cause: error });
  }
}
