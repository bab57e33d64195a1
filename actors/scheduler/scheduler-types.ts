/**
 * The data the scheduler's pure core works on (docs/workloads.md): a view of the nodes, a request
 * for one replica, and the decision with its explanation. No I/O here: the shard actor builds the
 * view from the store's watch, and the plan applier re-checks a decision against committed state.
 */
import type { Constraints, ResourceRequest } from '../coordinator/workload-spec.ts';

/** A node as the scheduler sees it. Mutable on purpose: the view updates nodes in place. */
export interface SchedulerNode {
  readonly id: string;
  zone: string | undefined;
  labels: Readonly<Record<string, string>>;
  /** Only `alive` nodes with the agent role take replicas. */
  status: 'alive' | 'suspect' | 'down' | 'left';
  isAgent: boolean;
  /** From the node's heartbeated resources: cores × 1000 and total memory. */
  capacity: ResourceRequest;
  /** Sum of the requests of the replicas placed on it that are not finished. */
  allocated: { cpuMillicores: number; memoryBytes: number };
  /** Times the node was marked down, decayed (see reliability score); 0 for a node never down. */
  failures: number;
  /**
   * From the node's `taint.<name>` labels: the names (`taintsOf(labels)` in filters.ts), kept in
   * step with `labels` by the view like `cost`. Optional: when absent, the taints filter scans the
   * labels on every decision (correct, but the slowest filter at scale).
   */
  taints?: readonly string[];
  /** From the node's `cost` label (a non-negative number); 0 when absent. */
  cost: number;
  /** Replicas per workload id (`namespace/name`) placed on the node and not finished. */
  workloads: Map<string, number>;
  /** Placed replicas, for preemption: replica id → its priority and request. */
  replicas: Map<string, PlacedReplica>;
}

export interface PlacedReplica {
  readonly replicaId: string;
  readonly workloadId: string;
  readonly priority: number;
  readonly resources: ResourceRequest;
}

/** What is to be placed: one replica of one workload. */
export interface PlacementRequest {
  readonly replicaId: string;
  readonly workloadId: string;
  readonly namespace: string;
  readonly resources: ResourceRequest;
  readonly constraints: Constraints;
  readonly priority: number;
  /** Replicas of this workload already placed, per zone (for spreadAcrossZones). */
  readonly zoneCounts: ReadonlyMap<string, number>;
}

export const scoreCriteria = ['locality', 'reliability', 'cost', 'utilization'] as const;
export type ScoreCriterion = (typeof scoreCriteria)[number];

export interface SchedulerWeights {
  readonly locality: number;
  readonly reliability: number;
  readonly cost: number;
  readonly utilization: number;
  /** `binpack` prefers fuller nodes, `spread` emptier ones. */
  readonly utilizationMode: 'binpack' | 'spread';
}

export const filterNames = [
  'node-status',
  'taints',
  'node-labels',
  'zones',
  'resources',
  'affinity',
  'anti-affinity',
  'zone-spread',
] as const;
export type FilterName = (typeof filterNames)[number];

/** One scored candidate: every criterion in [0, 1], and the weighted total. */
export interface CandidateScore {
  readonly node: string;
  readonly total: number;
  readonly scores: Readonly<Record<ScoreCriterion, number>>;
}

/** Why nodes were not feasible: per filter, how many nodes it removed and one example reason. */
export type FilterReport = Readonly<Partial<Record<FilterName, { count: number; example: string }>>>;

export interface Eviction {
  readonly replicaId: string;
  readonly workloadId: string;
  readonly node: string;
  readonly priority: number;
}

export type Decision =
  | {
      readonly type: 'placed';
      readonly node: string;
      /** The best candidates, best first (at most `topCandidates`). */
      readonly candidates: readonly CandidateScore[];
      readonly feasible: number;
      readonly filtered: FilterReport;
    }
  | {
      readonly type: 'preempt';
      readonly node: string;
      readonly evictions: readonly Eviction[];
      /** Why this node and these victims, in words. */
      readonly reason: string;
      readonly filtered: FilterReport;
    }
  | {
      readonly type: 'pending';
      readonly nodes: number;
      readonly filtered: FilterReport;
      readonly reason: string;
    };

/** A shard's proposal to the plan applier: all of it commits, or none of it. */
export interface Plan {
  readonly planId: string;
  readonly placements: readonly { readonly replicaId: string; readonly node: string }[];
  readonly evictions: readonly Eviction[];
}
