/**
 * A scheduler shard's decisions for a batch of pending replicas, pure (the shard actor and the
 * simulation both run it): highest priority first, `decide` each against the state's node view,
 * count each decision in that view at once (so the batch spreads), and gather the placements and
 * evictions into one plan that fits one txn of the store (placements, evictions, and a compare per
 * node and workload touched, at most `maxTxnOps`). What does not fit is deferred to the next plan.
 *
 * A preemption is taken only when its victims are committed placements on that node (not ones this
 * batch just made) and no earlier decision of the batch evicts them already.
 */
import { kvLimits } from '../raft/kv-validate.ts';
import { applyPlacement, removePlacement } from '../scheduler/placement.ts';
import type { Decision, Eviction, PlacementRequest, SchedulerWeights } from '../scheduler/scheduler-types.ts';
import { defaultWeights } from '../scheduler/scores.ts';
import { decide } from '../scheduler/select.ts';
import { ClusterState } from './cluster-state.ts';
import { replicaIdOf } from './workload-records.ts';

export interface BatchDecision {
  readonly key: string;
  readonly replicaId: string;
  readonly decision: Decision;
  /** Decided, but not in the plan: why. */
  readonly skipped?: 'victims-taken' | 'too-many-evictions';
}

export interface Batch {
  readonly requests: PlacementRequest[];
  readonly placements: { readonly replicaId: string; readonly node: string }[];
  readonly evictions: Eviction[];
  readonly decided: BatchDecision[];
  /** Keys this view does not have as pending: unknown here (`unknown`), `lost`, or another state. */
  readonly notPending: { readonly key: string; readonly state: string }[];
  /** Keys left for the next plan: this one was full. */
  readonly deferred: string[];
}

export interface BatchOptions {
  readonly weights?: SchedulerWeights;
  /** Placements per plan at most; default (and bound) `kvLimits.maxTxnOps`. */
  readonly maxPlanSize?: number;
}

export function decideBatch(state: ClusterState, keys: Iterable<string>, options: BatchOptions = {}): Batch {
  const weights = options.weights ?? defaultWeights;
  const maxPlanSize = Math.min(options.maxPlanSize ?? kvLimits.maxTxnOps, kvLimits.maxTxnOps);
  const batch: Batch = {
    requests: [],
    placements: [],
    evictions: [],
    decided: [],
    notPending: [],
    deferred: [],
  };
  const evicted = new Set<string>();
  const planNodes = new Set<string>();
  const planWorkloads = new Set<string>();
  let budget = 0;
  const priorityOf = (key: string): number => {
    const workloadId = state.replicas.get(key)?.record.workloadId;
    return workloadId === undefined ? 0 : (state.workloads.get(workloadId)?.record.spec.priority ?? 0);
  };
  const ordered = [...keys].sort((a, b) => priorityOf(b) - priorityOf(a));
  for (let i = 0; i < ordered.length; i++) {
    const key = ordered[i] as string;
    if (batch.placements.length >= maxPlanSize) {
      batch.deferred.push(...ordered.slice(i));
      break;
    }
    const stored = state.replicas.get(key);
    if (stored === undefined || stored.record.state !== 'pending' || stored.record.node !== undefined) {
      batch.notPending.push({ key, state: stored?.record.state ?? 'unknown' });
      continue;
    }
    const request = state.placementRequest(key);
    if (request === undefined) continue;
    const replicaId = replicaIdOf(stored.record);
    const decision = decide(state.nodeList(), request, weights);
    if (decision.type === 'pending') {
      batch.decided.push({ key, replicaId, decision });
      continue;
    }
    const node = state.nodes.get(decision.node);
    if (node === undefined) continue;
    const cost =
      1 +
      (decision.type === 'preempt' ? 2 * decision.evictions.length : 0) +
      (planNodes.has(decision.node) ? 0 : 1) +
      (planWorkloads.has(request.workloadId) ? 0 : 1);
    if (budget + cost > kvLimits.maxTxnOps) {
      if (budget === 0) {
        batch.decided.push({ key, replicaId, decision, skipped: 'too-many-evictions' });
        continue;
      }
      batch.deferred.push(...ordered.slice(i));
      break;
    }
    if (decision.type === 'preempt') {
      const committed = (victimKey: string): boolean => {
        const victim = state.replicas.get(victimKey)?.record;
        return victim !== undefined && ClusterState.holdsCapacity(victim) && victim.node === decision.node;
      };
      if (decision.evictions.some((e) => evicted.has(e.replicaId) || !committed(e.replicaId))) {
        batch.decided.push({ key, replicaId, decision, skipped: 'victims-taken' });
        continue;
      }
      for (const eviction of decision.evictions) {
        evicted.add(eviction.replicaId);
        batch.evictions.push(eviction);
        removePlacement(node, eviction.replicaId);
      }
    }
    batch.decided.push({ key, replicaId, decision });
    applyPlacement(node, request);
    batch.requests.push(request);
    batch.placements.push({ replicaId: key, node: decision.node });
    budget += cost;
    planNodes.add(decision.node);
    planWorkloads.add(request.workloadId);
  }
  return batch;
}

/**
 * Takes back from the view what a refused plan counted (placements the store does not have).
 * Returns true when the plan evicted replicas: the view's copies of those are then wrong, and the
 * simplest correct answer is a fresh load.
 */
export function undoBatch(
  state: ClusterState,
  plan: {
    readonly placements: readonly { replicaId: string; node: string }[];
    readonly evictions: readonly Eviction[];
  },
): boolean {
  for (const placement of plan.placements) {
    const stored = state.replicas.get(placement.replicaId);
    if (
      stored !== undefined &&
      ClusterState.holdsCapacity(stored.record) &&
      stored.record.node === placement.node
    )
      continue;
    const node = state.nodes.get(placement.node);
    if (node !== undefined) removePlacement(node, placement.replicaId);
  }
  return plan.evictions.length > 0;
}
