/**
 * The node agent's side of running workloads (docs/workloads.md): drivers that start replicas
 * as OS processes (`ProcessDriver`, in their own process group, limited by cgroup v2 where the
 * agent may) or as functions of a module in a worker thread (`WorkerDriver`, heap-limited), the
 * rotated per-replica log files and their offset-based reader, the restart decision with
 * backoff (pure), and health probes. The agent actor that ties them together lives here too.
 */

export {
  type CgroupFiles,
  CgroupManager,
  type CgroupManagerInit,
  type CgroupSupport,
  cgroupName,
  cpuMaxValue,
  memoryMaxValue,
  nodeCgroupFiles,
  plainDirCgroupFiles,
  ReplicaCgroup,
} from './cgroup.ts';
export type {
  Driver,
  LimitsReport,
  ReplicaExit,
  ReplicaHandle,
  ReplicaLaunch,
} from './driver.ts';
export {
  HealthMonitor,
  type HealthMonitorInit,
  type HealthTransition,
  type ProbeResult,
  type RunProbeOptions,
  runProbe,
} from './health-check.ts';
export {
  defaultLogKeepRotated,
  defaultLogMaxBytes,
  type LogChunk,
  type LogStream,
  LogWriter,
  type LogWriterInit,
  type ReadLogsOptions,
  readLogs,
} from './log-files.ts';
export {
  ProcessDriver,
  type ProcessDriverComponents,
  type ProcessDriverInit,
} from './process-driver.ts';
export { ReplicaStartError, type ReplicaStartFailure } from './replica-start-error.ts';
export {
  backoffDelayMs,
  decideRestart,
  defaultStableAfterMs,
  type ReplicaRunOutcome,
  type RestartBackoffOptions,
  type RestartDecision,
} from './restart-backoff.ts';
export {
  type WorkerContext,
  WorkerDriver,
  type WorkerDriverInit,
  workerHeapMb,
} from './worker-driver.ts';
