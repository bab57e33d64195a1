/**
 * Compute tasks: named, stateless functions that the compute pool runs on its worker threads.
 * A task module is any module whose named exports include `ComputeTask` objects (made with
 * `defineComputeTask`); every pool thread imports the modules it is given and registers the
 * tasks it finds by name. Input and output cross threads by structured clone, so both must be
 * plain data (numbers, strings, arrays, plain objects, typed arrays, Map, Set, Date, Error).
 */
import { InvalidRequestError } from './errors.ts';

/** What a task does with one input; it may be async. It must not keep state between calls. */
export type ComputeFn<TIn, TOut> = (input: TIn) => TOut | Promise<TOut>;

/**
 * Marks task objects across module instances (a task module that imports the published package
 * while the pool runs from source still gets its tasks recognised), so recognition does not rest
 * on `instanceof` alone.
 */
const computeTaskBrand: unique symbol = Symbol.for('cloudless.compute-task');

/** Task names: 1–128 characters of letters, digits, `.`, `_`, `:` and `-`, starting with a letter or digit. */
const taskNamePattern = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export class ComputeTask<TIn, TOut> {
  readonly name: string;
  readonly fn: ComputeFn<TIn, TOut>;
  readonly [computeTaskBrand] = true;

  constructor(name: string, fn: ComputeFn<TIn, TOut>) {
    assertTaskName(name);
    if (typeof fn !== 'function') {
      throw new InvalidRequestError(`compute task '${name}' needs a function, got ${typeof fn}`);
    }
    this.name = name;
    this.fn = fn;
  }

  toString(): string {
    return `ComputeTask(${this.name})`;
  }
}

/** Defines a task to export from a task module: `export const resize = defineComputeTask('resize', fn)`. */
export function defineComputeTask<TIn, TOut>(name: string, fn: ComputeFn<TIn, TOut>): ComputeTask<TIn, TOut> {
  return new ComputeTask(name, fn);
}

export function isComputeTask(value: unknown): value is ComputeTask<unknown, unknown> {
  if (value instanceof ComputeTask) return true;
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { [computeTaskBrand]?: unknown })[computeTaskBrand] === true &&
    typeof (value as { name?: unknown }).name === 'string' &&
    typeof (value as { fn?: unknown }).fn === 'function'
  );
}

export function assertTaskName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !taskNamePattern.test(name)) {
    throw new InvalidRequestError(
      `a compute task name is 1-128 characters of letters, digits, '.', '_', ':' and '-' ` +
        `starting with a letter or digit; got ${typeof name === 'string' ? `'${name.slice(0, 140)}'` : typeof name}`,
    );
  }
}

/** The message of the `NotFoundError` for a task name no pool thread knows. */
export function unknownTaskMessage(
  name: string,
  tasks: Iterable<string>,
  modules: readonly string[],
): string {
  const loaded = modules.length === 0 ? 'no task modules' : `modules ${modules.join(', ')}`;
  return (
    `no compute task named '${name}'; the pool knows ${[...tasks].sort().join(', ')} ` +
    `(built-in tasks and ${loaded}); export it from a task module given to ComputePool.start({ modules })`
  );
}
