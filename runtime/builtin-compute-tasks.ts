/**
 * The compute tasks every pool thread has without loading a module: SHA-256 and gzip. Their
 * objects are exported so callers get typed results: `pool.run(sha256Task, bytes)`.
 */
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { type ComputeTask, defineComputeTask } from './compute-task.ts';
import { InvalidRequestError } from './errors.ts';

function bytesOf(task: string, input: unknown, accepted = 'a Uint8Array'): Uint8Array {
  if (input instanceof Uint8Array) return input;
  throw new InvalidRequestError(
    `compute task '${task}' takes ${accepted}, got ${input === null ? 'null' : typeof input}`,
  );
}

/** Hex SHA-256 of bytes, or of a string's UTF-8 encoding. */
export const sha256Task: ComputeTask<Uint8Array | string, string> = defineComputeTask('sha256', (input) => {
  if (typeof input !== 'string') bytesOf('sha256', input, 'a Uint8Array or a string');
  return createHash('sha256').update(input).digest('hex');
});

export const gzipTask: ComputeTask<Uint8Array, Uint8Array> = defineComputeTask('gzip', (input) =>
  gzipSync(bytesOf('gzip', input)),
);

/** Rejects with the zlib error (its `code`, such as `Z_DATA_ERROR`, is on the `cause`) for data that is not gzip. */
export const gunzipTask: ComputeTask<Uint8Array, Uint8Array> = defineComputeTask('gunzip', (input) =>
  gunzipSync(bytesOf('gunzip', input)),
);

export const builtinComputeTasks: readonly ComputeTask<never, unknown>[] = [sha256Task, gzipTask, gunzipTask];
