/**
 * The public surface of the compute pool and the system handle, for `runtime/index.ts` to
 * re-export (`export * from './compute-exports.ts';`) once `ActorSystem` wires them in. The
 * worker entry (`compute-worker.ts`), `ownsItsBuffer` and `checkMessageSize` stay internal.
 */
export { gunzipTask, gzipTask, sha256Task } from './builtin-compute-tasks.ts';
export type { ComputeDestroyOptions, ComputePoolInit, ComputeRunOptions } from './compute-pool.ts';
export { ComputePool } from './compute-pool.ts';
export type { ComputeFn } from './compute-task.ts';
export { ComputeTask, defineComputeTask, isComputeTask } from './compute-task.ts';
export type {
  RemoteAskOptions,
  RemoteSystemHandle,
  SystemHandle,
  SystemHandleAskOptions,
  SystemHandleClientInit,
  SystemHandleInit,
  WireError,
} from './system-handle.ts';
export { connectSystemHandle, exposeSystemHandle } from './system-handle.ts';
