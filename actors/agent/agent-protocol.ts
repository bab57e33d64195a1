/**
 * What the leader's workload controller and a node agent say to each other (docs/workloads.md).
 *
 * - `assignments`: the leader tells an agent the whole set of replica attempts its node should run
 *   (sent when it changes and every few seconds). The agent runs what is new, stops what is no
 *   longer listed, and refuses (and logs) a set from anyone but the leader it knows. Because the
 *   set is whole, an agent that was cut off stops, on the first set after it reconnects, every
 *   replica the cluster has meanwhile replaced elsewhere.
 * - `replica-status`: the agent reports state changes of its attempts to the leader, which
 *   commits them and answers with the ids it committed; unanswered reports are sent again.
 * - `read-logs`: a coordinator reads a replica's captured output for `cloudless logs`.
 *
 * `from` is checked by the transport against the connection's PeerId (docs/cluster.md), so the
 * agent can trust it to name the sender.
 */
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type {
  DriverSpec,
  HealthCheck,
  ResourceRequest,
  RestartPolicy,
  WorkloadKind,
} from '../coordinator/workload-spec.ts';

export const agentPath = '/user/agent';

export interface AssignedReplica {
  /** `<namespace>/<name>/<index>#<attempt>`. */
  readonly replicaId: string;
  readonly workloadId: string;
  readonly index: number;
  readonly attempt: number;
  readonly kind: WorkloadKind;
  readonly driver: DriverSpec;
  readonly resources: ResourceRequest;
  readonly restartPolicy: RestartPolicy;
  readonly healthCheck?: HealthCheck;
}

export interface Assignments {
  readonly type: 'assignments';
  /** The leader's PeerId (checked by the transport). */
  readonly from: string;
  readonly term: number;
  readonly replicas: readonly AssignedReplica[];
}

export const reportedStates = ['starting', 'running', 'succeeded', 'failed'] as const;
export type ReportedState = (typeof reportedStates)[number];

export interface ReplicaStatusUpdate {
  readonly replicaId: string;
  readonly state: ReportedState;
  readonly ready: boolean;
  readonly restarts: number;
  readonly exitCode?: number;
  readonly reason?: string;
  readonly limits?: string;
}

export interface ReplicaStatusReport {
  readonly type: 'replica-status';
  /** The agent's PeerId (checked by the transport); must be the node the replicas are placed on. */
  readonly from: string;
  readonly updates: readonly ReplicaStatusUpdate[];
  readonly replyTo: ActorRef<ReplicaStatusAck>;
}

export interface ReplicaStatusAck {
  readonly type: 'replica-status-ack';
  /** Updates that are committed, or that no longer matter (an attempt the cluster replaced). */
  readonly settled: readonly string[];
}

export interface ReadLogsRequest {
  readonly type: 'read-logs';
  readonly replicaId: string;
  readonly stream: 'stdout' | 'stderr';
  /** Logical byte offset; negative: the last that many bytes. */
  readonly fromOffset: number;
  readonly maxBytes: number;
  readonly replyTo: ActorRef<ReadLogsReply>;
}

export type ReadLogsReply =
  | {
      readonly ok: true;
      readonly data: string;
      readonly nextOffset: number;
      /** Output between `fromOffset` and the data was rotated away. */
      readonly truncated: boolean;
    }
  | { readonly ok: false; readonly error: { readonly code: string; readonly message: string } };

/** Bounds on what an agent accepts from the wire. */
export const agentLimits = {
  maxAssignedReplicas: 10_000,
  maxLogBytes: 1024 * 1024,
  maxUpdatesPerReport: 1000,
} as const;
