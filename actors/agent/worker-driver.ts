/**
 * Runs a worker replica: a function exported by a JS/TS module, in its own `worker_threads`
 * Worker, with a V8 heap limit and stdout/stderr in rotated log files.
 *
 * The module's export (`default` unless the spec names another) is called with a
 * `WorkerContext` and awaited:
 *
 * ```ts
 * export default async function main(context: WorkerContext): Promise<void> {
 *   context.log('started as', context.replicaId, 'with', context.env.GREETING);
 *   while (!context.signal.aborted) await work(context.signal);
 * }
 * ```
 *
 * - It returns (or its promise resolves): the replica exits with code 0.
 * - It throws (or rejects): code 1, reason `worker threw: <message>`.
 * - No such module, or no function under that name: `start` rejects (`ReplicaStartError`).
 * - `stop(graceMs)` aborts `context.signal` first; a function still running after `graceMs` has
 *   its thread terminated (code and signal undefined, reason says so).
 * - `context.log(...args)` and `console.log` write to the replica's stdout log.
 * - `process.env` in the thread is PATH, HOME, LANG of the agent plus the spec's and launch env;
 *   `context.env` is the spec's env plus the launch env (CLOUDLESS_*).
 *
 * Limits: V8's `resourceLimits.maxOldGenerationSizeMb` from `memoryBytes` (at least 32 MiB):
 * a heap that outgrows it ends the thread (ERR_WORKER_OUT_OF_MEMORY). Only the old-generation
 * heap is bounded; the young generation, ArrayBuffers, native memory and CPU are not, and a
 * thread shares the agent's process, so a worker replica can still hurt the agent.
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { InvalidRequestError } from '../../runtime/errors.ts';
import type { WorkerDriverSpec } from '../coordinator/workload-spec.ts';
import type { Driver, LimitsReport, ReplicaExit, ReplicaHandle, ReplicaLaunch } from './driver.ts';
import { LogWriter } from './log-files.ts';
import { ReplicaStartError, type ReplicaStartFailure } from './replica-start-error.ts';

/** What a worker replica's function receives. */
export interface WorkerContext {
  /** The spec's env plus the launch env (CLOUDLESS_WORKLOAD, CLOUDLESS_REPLICA, CLOUDLESS_NODE). */
  readonly env: Readonly<Record<string, string>>;
  /** Aborted when the replica is asked to stop; return soon after. */
  readonly signal: AbortSignal;
  readonly replicaId: string;
  /** Writes one line (util.format of the arguments) to the replica's stdout log. */
  log(...args: unknown[]): void;
}

/** `workerData` of worker-entry.ts. */
export interface WorkerEntryData {
  readonly module: string;
  readonly exportName: string;
  readonly env: Readonly<Record<string, string>>;
  readonly replicaId: string;
}

/** From worker-entry.ts to the driver. */
export type WorkerEntryMessage =
  | { readonly t: 'started' }
  | { readonly t: 'ended'; readonly ok: boolean; readonly message: string }
  | { readonly t: 'failed'; readonly failure: ReplicaStartFailure; readonly message: string };

/** The entry next to this file: `.ts` from source, `.js` from the built package. */
const entry = new URL(`./worker-entry${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export const minWorkerHeapMb = 32;

export interface WorkerDriverInit {
  readonly logMaxBytes?: number;
  readonly logKeepRotated?: number;
  /** Bound on loading the module and reaching its function; default 30 000 ms. */
  readonly startTimeoutMs?: number;
  /** Variables copied from the agent's environment into the thread's; default PATH, HOME, LANG. */
  readonly baseEnvNames?: readonly string[];
}

/** The heap limit for a memory request: whole MiB, at least `minWorkerHeapMb`. */
export function workerHeapMb(memoryBytes: number): number {
  return Math.max(minWorkerHeapMb, Math.floor(memoryBytes / (1024 * 1024)));
}

function moduleUrl(module: string): string {
  if (module.startsWith('file:')) return module;
  if (path.isAbsolute(module)) return pathToFileURL(module).href;
  throw new ReplicaStartError(
    'invalid-launch',
    `worker module ${module} must be an absolute path or a file: URL on the agent's machine`,
  );
}

function isWorkerSpec(spec: ReplicaLaunch['driver']): spec is WorkerDriverSpec {
  return spec.type === 'worker';
}

export class WorkerDriver implements Driver {
  readonly type = 'worker' as const;
  readonly #init: WorkerDriverInit;

  constructor(init: WorkerDriverInit = {}) {
    this.#init = init;
  }

  async start(launch: ReplicaLaunch, options: { signal?: AbortSignal } = {}): Promise<ReplicaHandle> {
    const spec = launch.driver;
    if (!isWorkerSpec(spec)) {
      throw new ReplicaStartError('invalid-launch', `WorkerDriver cannot run a ${spec.type} replica`);
    }
    if (options.signal?.aborted) {
      throw new ReplicaStartError('aborted', `start of replica ${launch.replicaId} was aborted`);
    }
    const module = moduleUrl(spec.module);
    const logInit = {
      dir: launch.dir,
      maxBytes: this.#init.logMaxBytes,
      keepRotated: this.#init.logKeepRotated,
    };
    const logs = [
      new LogWriter({ ...logInit, stream: 'stdout' }),
      new LogWriter({ ...logInit, stream: 'stderr' }),
    ];
    const logErrors: Error[] = [];
    for (const log of logs) log.on('error', (error) => logErrors.push(error));
    try {
      await Promise.all(logs.map((log) => log.opened));
    } catch (error) {
      await Promise.all(logs.map((log) => log.close().catch(() => {})));
      throw error;
    }
    const threadEnv: Record<string, string> = {};
    for (const name of this.#init.baseEnvNames ?? ['PATH', 'HOME', 'LANG']) {
      const value = process.env[name];
      if (value !== undefined) threadEnv[name] = value;
    }
    Object.assign(threadEnv, spec.env, launch.env);
    const heapMb = workerHeapMb(launch.resources.memoryBytes);
    const worker = new Worker(entry, {
      workerData: {
        module,
        exportName: spec.export,
        env: { ...spec.env, ...launch.env },
        replicaId: launch.replicaId,
      } satisfies WorkerEntryData,
      env: threadEnv,
      resourceLimits: { maxOldGenerationSizeMb: heapMb },
      stdout: true,
      stderr: true,
      name: `replica ${launch.replicaId}`,
    });
    worker.stdout.pipe(logs[0] as LogWriter, { end: false });
    worker.stderr.pipe(logs[1] as LogWriter, { end: false });
    const limits: LimitsReport = {
      enforced: true,
      detail:
        `worker resourceLimits: heap ≤ ${heapMb} MiB (V8 old generation only; young generation, ` +
        'buffers and native memory not bounded); CPU not enforced',
    };
    const replica = new WorkerReplica(worker, limits, heapMb, logs, logErrors);
    const startTimeoutMs = this.#init.startTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void =>
      replica.failStart('aborted', `start of replica ${launch.replicaId} was aborted`);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await Promise.race([
        replica.started,
        new Promise<void>((_, reject) => {
          timer = setTimeout(() => {
            reject(
              new ReplicaStartError(
                'spawn-failed',
                `worker replica ${launch.replicaId} did not reach ${spec.export}() of ${spec.module} within ${startTimeoutMs} ms`,
              ),
            );
          }, startTimeoutMs);
        }),
      ]);
    } catch (error) {
      await worker.terminate();
      await replica.exited;
      throw error;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    }
    return replica;
  }
}

class WorkerReplica implements ReplicaHandle {
  readonly pid: number;
  readonly limits: LimitsReport;
  readonly exited: Promise<ReplicaExit>;
  /** Resolves when the function was called; rejects when the thread could not get there. */
  readonly started: Promise<void>;
  readonly #worker: Worker;
  #markStarted!: (error?: Error) => void;
  #ended: { ok: boolean; message: string } | undefined;
  #startFailure: ReplicaStartError | undefined;
  #error: Error | undefined;
  #stopGraceMs: number | undefined;
  #terminated = false;
  #killTimer: NodeJS.Timeout | undefined;

  constructor(worker: Worker, limits: LimitsReport, heapMb: number, logs: LogWriter[], logErrors: Error[]) {
    this.#worker = worker;
    this.pid = worker.threadId;
    this.limits = limits;
    this.started = new Promise<void>((resolve, reject) => {
      this.#markStarted = (error) => (error === undefined ? resolve() : reject(error));
    });
    this.started.catch(() => {});
    worker.on('message', (message: WorkerEntryMessage) => {
      switch (message.t) {
        case 'started':
          this.#markStarted();
          return;
        case 'ended':
          this.#ended = { ok: message.ok, message: message.message };
          return;
        case 'failed':
          this.failStart(message.failure, message.message);
          return;
      }
    });
    worker.on('error', (error) => {
      this.#error = error;
    });
    this.exited = new Promise<ReplicaExit>((resolve) => {
      worker.once('exit', (exitCode) => {
        clearTimeout(this.#killTimer);
        const exit = this.#describe(exitCode, heapMb);
        this.failStart('spawn-failed', `worker replica ended before its function ran: ${exit.reason}`);
        void closeLogs(worker, logs, logErrors).then(() => {
          resolve(
            logErrors.length > 0
              ? { ...exit, reason: `${exit.reason}; logs incomplete: ${logErrors[0]?.message}` }
              : exit,
          );
        });
      });
    });
  }

  failStart(failure: ReplicaStartFailure, message: string): void {
    this.#startFailure ??= new ReplicaStartError(failure, message);
    this.#markStarted(this.#startFailure);
  }

  #describe(exitCode: number, heapMb: number): ReplicaExit {
    const stopped = this.#stopGraceMs !== undefined ? ' (stopped)' : '';
    if (this.#ended !== undefined) {
      return this.#ended.ok
        ? { code: 0, signal: undefined, reason: `exited with code 0${stopped}` }
        : { code: 1, signal: undefined, reason: `worker threw: ${this.#ended.message}` };
    }
    const error = this.#error;
    if ((error as NodeJS.ErrnoException | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      return {
        code: undefined,
        signal: undefined,
        reason: `worker ran out of memory: heap limit ${heapMb} MiB (memory limit)`,
      };
    }
    if (error !== undefined) {
      return { code: 1, signal: undefined, reason: `worker threw: ${error.message}` };
    }
    if (this.#terminated) {
      return {
        code: undefined,
        signal: undefined,
        reason: `worker terminated: did not return within ${this.#stopGraceMs} ms of stop`,
      };
    }
    if (this.#startFailure !== undefined) {
      return { code: 1, signal: undefined, reason: this.#startFailure.message };
    }
    return { code: exitCode, signal: undefined, reason: `worker exited with code ${exitCode}` };
  }

  stop(graceMs: number): Promise<ReplicaExit> {
    if (this.#stopGraceMs === undefined) {
      if (!Number.isFinite(graceMs) || graceMs < 0) {
        return Promise.reject(new InvalidRequestError(`stop grace must be ≥ 0 ms, got ${graceMs}`));
      }
      this.#stopGraceMs = graceMs;
      this.#worker.postMessage({ t: 'abort' });
      this.#killTimer = setTimeout(() => {
        this.#terminated = true;
        void this.#worker.terminate();
      }, graceMs);
    }
    return this.exited;
  }
}

async function closeLogs(worker: Worker, logs: LogWriter[], logErrors: Error[]): Promise<void> {
  // The thread's stdio streams end with it; wait for them (bounded) so the logs are complete.
  await Promise.all(
    [worker.stdout, worker.stderr].map(
      (stream) =>
        new Promise<void>((resolve) => {
          if (stream.readableEnded || stream.destroyed) {
            resolve();
            return;
          }
          const timer = setTimeout(() => {
            stream.destroy();
            resolve();
          }, 1000);
          stream.once('end', () => {
            clearTimeout(timer);
            resolve();
          });
          stream.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  for (const log of logs) await log.close().catch((error: unknown) => logErrors.push(error as Error));
}
