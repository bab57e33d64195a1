/**
 * How a node agent runs one replica (docs/workloads.md): a driver starts it and hands back a
 * handle that reports its exit once, can be stopped, and says whether its limits are enforced.
 * The restart policy, health checks and state reporting live in the agent, not in drivers.
 */
import type { DriverSpec, ResourceRequest } from '../coordinator/workload-spec.ts';

export interface ReplicaLaunch {
  /** `<namespace>/<name>/<index>#<attempt id>`; unique per placement. */
  readonly replicaId: string;
  readonly driver: DriverSpec;
  readonly resources: ResourceRequest;
  /** The replica's own directory (working dir by default; logs go in `<dir>/logs`). */
  readonly dir: string;
  /** Extra environment: CLOUDLESS_WORKLOAD, CLOUDLESS_REPLICA, CLOUDLESS_NODE. */
  readonly env: Readonly<Record<string, string>>;
}

export interface ReplicaExit {
  /** The exit code, or undefined when a signal ended it. */
  readonly code: number | undefined;
  readonly signal: string | undefined;
  /** In words: "exited with code 3", "killed by SIGKILL (memory limit)", "worker threw: …". */
  readonly reason: string;
}

/** Whether the replica's resource limits are enforced, and how; never pretended. */
export interface LimitsReport {
  readonly enforced: boolean;
  /** `cgroup v2 <path>`, `worker resourceLimits`, or why not ("cgroup v2 not writable: …"). */
  readonly detail: string;
}

export interface ReplicaHandle {
  /** OS pid (process driver) or thread id (worker driver). */
  readonly pid: number;
  readonly limits: LimitsReport;
  /** Settles once, when the replica has ended (never rejects). */
  readonly exited: Promise<ReplicaExit>;
  /** SIGTERM to the process group (worker: terminate), SIGKILL after `graceMs`; resolves on exit. */
  stop(graceMs: number): Promise<ReplicaExit>;
}

export interface Driver {
  readonly type: DriverSpec['type'];
  /** Rejects when it cannot start at all (no such command, module not found), with a clear error. */
  start(launch: ReplicaLaunch, options?: { signal?: AbortSignal }): Promise<ReplicaHandle>;
}
