/**
 * What a user asks the fabric to run (docs/workloads.md): the validated form of a workload spec,
 * with every default filled in. `validateWorkloadSpec` (workload-validate.ts) turns untrusted
 * YAML/JSON into this or reports every problem at once; everything past the coordinator's front
 * door sees only this shape.
 *
 * Plain data only (no undefined fields, no class instances) so it goes through msgpackr and JSON
 * unchanged and two specs compare with a canonical JSON string (`specDigest`).
 */

export const workloadKinds = ['service', 'batch'] as const;
/** `service`: keep `replicas` running; `batch`: run `replicas` tasks to completion, with retries. */
export type WorkloadKind = (typeof workloadKinds)[number];

export const restartPolicies = ['always', 'on-failure', 'never'] as const;
export type RestartPolicyName = (typeof restartPolicies)[number];

export interface ProcessDriverSpec {
  readonly type: 'process';
  /** An executable: an absolute path, or a name looked up on the agent's PATH. */
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Absolute; default: the replica's own directory under the agent's data dir. */
  readonly workingDir?: string;
}

export interface WorkerDriverSpec {
  readonly type: 'worker';
  /** An absolute path or file: URL of a JS/TS module on the agent's machine. */
  readonly module: string;
  /** The export to call with a `WorkerContext`; default `default`. */
  readonly export: string;
  readonly env: Readonly<Record<string, string>>;
}

export type DriverSpec = ProcessDriverSpec | WorkerDriverSpec;

export interface ResourceRequest {
  /** 1000 = one core. */
  readonly cpuMillicores: number;
  readonly memoryBytes: number;
}

export interface RestartPolicy {
  readonly policy: RestartPolicyName;
  /** Delay before the first restart; doubled (times `multiplier`) per consecutive failure. */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly multiplier: number;
  /**
   * Restarts of one replica in a row before it is given up as failed (batch: attempts after the
   * first); undefined: no limit (a service with `always`).
   */
  readonly maxRetries?: number;
}

export interface Constraints {
  /** Every pair must equal a label of the node. */
  readonly nodeLabels: Readonly<Record<string, string>>;
  /** The node's zone must be one of these; empty: any zone. */
  readonly zones: readonly string[];
  /** Replicas are balanced across zones: a zone may hold at most one more than the emptiest. */
  readonly spreadAcrossZones: boolean;
  /** Workloads (same namespace) at least one replica of which must already run on the node. */
  readonly affinity: readonly string[];
  /** Workloads (same namespace; may name this one) none of whose replicas may run on the node. */
  readonly antiAffinity: readonly string[];
  /** Node taints (labels `taint.<name>`) this workload accepts. */
  readonly tolerations: readonly string[];
  /** Soft: nodes in these zones score higher on locality. */
  readonly preferredZones: readonly string[];
}

export type HealthProbe =
  | { readonly type: 'exec'; readonly command: string; readonly args: readonly string[] }
  | { readonly type: 'tcp'; readonly port: number; readonly host: string }
  | { readonly type: 'http'; readonly port: number; readonly host: string; readonly path: string };

export interface HealthCheck {
  readonly probe: HealthProbe;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly initialDelayMs: number;
  /** Consecutive failures after which a ready replica is reported not ready. */
  readonly failureThreshold: number;
}

export interface WorkloadSpec {
  /** DNS-1123 label, at most 63 characters. */
  readonly name: string;
  /** DNS-1123 label; default `default`. */
  readonly namespace: string;
  readonly kind: WorkloadKind;
  /** 0 to 1000. */
  readonly replicas: number;
  readonly driver: DriverSpec;
  readonly resources: ResourceRequest;
  readonly restartPolicy: RestartPolicy;
  readonly constraints: Constraints;
  /** 0 (lowest) to 1000; a higher one may preempt lower ones when nothing fits. */
  readonly priority: number;
  readonly healthCheck?: HealthCheck;
}

/** `<namespace>/<name>`: how workloads are named across the code and in the store. */
export function workloadId(spec: { readonly namespace: string; readonly name: string }): string {
  return `${spec.namespace}/${spec.name}`;
}
