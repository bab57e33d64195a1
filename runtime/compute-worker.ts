/**
 * The piscina worker entry of the compute pool: each pool thread loads this module, builds its
 * task catalogue from the built-in tasks and the task modules named in piscina's `workerData`,
 * and answers `ComputeRequest`s with `ComputeResponse`s.
 *
 * Piscina loads this `.ts` file directly: its worker `require()`s the filename, and Node ≥ 22.18
 * strips the types and loads the ES module through `require(esm)` (measured on Node 22.23). The
 * module therefore has no top-level `await`, which `require(esm)` refuses.
 *
 * Failures are returned, not thrown: piscina posts a thrown error by structured clone, which
 * keeps `message`, `stack` and `cause` but drops `code` and the class, so the response carries
 * the code beside the error and the pool rebuilds the class from it.
 */
import { workerData } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { builtinComputeTasks } from './builtin-compute-tasks.ts';
import { type ComputeTask, isComputeTask, unknownTaskMessage } from './compute-task.ts';
import { CloudlessError, InvalidRequestError, NotFoundError } from './errors.ts';
import { ownsItsBuffer } from './owns-its-buffer.ts';

/** What the pool gives every thread through piscina's `workerData`. */
export interface ComputeWorkerData {
  /** Task modules to import, as URLs. */
  readonly modules: readonly string[];
}

export type ComputeRequest =
  | { readonly type: 'run'; readonly task: string; readonly input: unknown }
  | { readonly type: 'describe' };

export type ComputeResponse =
  | { readonly type: 'done'; readonly value: unknown }
  | { readonly type: 'catalogue'; readonly tasks: readonly string[]; readonly modules: readonly string[] }
  | {
      readonly type: 'failed';
      /** The thrown value as structured clone carries it (message, stack and cause). */
      readonly error: unknown;
      readonly message: string;
      /** The thrown error's `code`, when it had a string one. */
      readonly code: string | undefined;
      /** True when `code` is a Cloudless `ErrorCode`, so the pool rebuilds the same class. */
      readonly cloudless: boolean;
    };

export interface ComputeCatalogue {
  readonly tasks: ReadonlyMap<string, ComputeTask<unknown, unknown>>;
  readonly modules: readonly string[];
}

export async function loadCatalogue(modules: readonly string[]): Promise<ComputeCatalogue> {
  const tasks = new Map<string, ComputeTask<unknown, unknown>>();
  const sources = new Map<string, string>();
  const add = (task: ComputeTask<unknown, unknown>, source: string): void => {
    const existing = tasks.get(task.name);
    if (existing !== undefined && existing !== task) {
      throw new InvalidRequestError(
        `compute task '${task.name}' is defined twice, in ${sources.get(task.name)} and in ${source}; rename one`,
      );
    }
    tasks.set(task.name, task);
    sources.set(task.name, source);
  };
  for (const task of builtinComputeTasks) add(task as ComputeTask<unknown, unknown>, 'the built-in tasks');
  for (const specifier of modules) {
    let namespace: Record<string, unknown>;
    try {
      namespace = (await import(specifier)) as Record<string, unknown>;
    } catch (error) {
      throw new InvalidRequestError(
        `compute task module ${specifier} could not be loaded: ${(error as Error)?.message}; ` +
          'check the path and that the module runs on this Node',
        { cause: error },
      );
    }
    let found = 0;
    for (const [exportName, value] of Object.entries(namespace)) {
      if (!isComputeTask(value)) continue;
      add(value, `${specifier} (export ${exportName})`);
      found++;
    }
    if (found === 0) {
      throw new InvalidRequestError(
        `compute task module ${specifier} exports no compute tasks; export objects made with defineComputeTask`,
      );
    }
  }
  return { tasks, modules };
}

function parseWorkerData(data: unknown): ComputeWorkerData {
  const modules = (data as Partial<ComputeWorkerData> | null)?.modules;
  if (!Array.isArray(modules) || !modules.every((m) => typeof m === 'string')) {
    throw new InvalidRequestError(
      'the compute worker needs workerData { modules: string[] }; start it through ComputePool.start',
    );
  }
  return { modules };
}

function failure(error: unknown): ComputeResponse {
  const code = (error as { code?: unknown } | null)?.code;
  const message =
    error instanceof Error ? error.message : `compute task threw a non-Error value: ${String(error)}`;
  let cloneable: unknown = error;
  try {
    structuredClone(error);
  } catch {
    // An error holding something uncloneable (a function, a socket) would make piscina's
    // postMessage throw and take the thread down; send what can be sent.
    cloneable = new Error(message);
  }
  return {
    type: 'failed',
    error: cloneable,
    message,
    code: typeof code === 'string' ? code : undefined,
    cloudless: error instanceof CloudlessError,
  };
}

/**
 * Built once per thread from `workerData`: a constant for the life of the thread, not a mutable
 * singleton. A load failure is not lost: every request awaits this promise and returns the error.
 */
const catalogue: Promise<ComputeCatalogue> = (async () =>
  loadCatalogue(parseWorkerData(workerData).modules))();
catalogue.catch(() => undefined);

/**
 * A byte-array result that owns its buffer is moved to the pool thread instead of copied: this
 * thread drops it anyway, and moving 16 MiB took about 2 ms where a copy took 16–39 ms (Node
 * 22.23, 2 cores). A view into a larger buffer (a pooled small `Buffer`) is copied, since moving
 * would detach the rest of that buffer.
 */
function respond(value: unknown): ComputeResponse {
  const response: ComputeResponse = { type: 'done', value };
  if (!ownsItsBuffer(value)) return response;
  // Piscina posts `valueSymbol` and transfers `transferableSymbol` of an object marked by move().
  const movable = { [Piscina.transferableSymbol]: value.buffer, [Piscina.valueSymbol]: response };
  return Piscina.move(movable as unknown as Parameters<typeof Piscina.move>[0]) as unknown as ComputeResponse;
}

/** Piscina calls the default export with each task. */
export default async function runComputeRequest(request: ComputeRequest): Promise<ComputeResponse> {
  try {
    const { tasks, modules } = await catalogue;
    if (request.type === 'describe') return { type: 'catalogue', tasks: [...tasks.keys()], modules };
    const task = tasks.get(request.task);
    if (task === undefined) throw new NotFoundError(unknownTaskMessage(request.task, tasks.keys(), modules));
    return respond(await task.fn(request.input));
  } catch (error) {
    return failure(error);
  }
}
