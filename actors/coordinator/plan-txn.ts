/**
 * The plan applier's check of one plan against its copy of the committed state, pure: every
 * placement's replica must still be pending and unchanged, its workload's size the one the shard
 * decided with, every eviction's replica still on its node; the capacity check (`checkPlan`) runs
 * with the plan's own evictions first. The answer is the txn that commits the plan, with compares
 * pinning every replica, node and workload record the check read (so one that changed meanwhile
 * fails the txn), within the store's txn limits — or every conflict found.
 *
 * On success the plan is applied to `state`'s node view (what `checkPlan` does); the caller
 * reloads the state if the txn then fails.
 */
import { memberKey } from '../membership/member-record.ts';
import type { KvCompare } from '../raft/kv-types.ts';
import { kvLimits } from '../raft/kv-validate.ts';
import { checkPlan, type PlanConflict } from '../scheduler/plan-check.ts';
import type { PlacementRequest, Plan } from '../scheduler/scheduler-types.ts';
import { ClusterState } from './cluster-state.ts';
import { newAttempt } from './reconcile.ts';
import { encodeReplicaRecord, type ReplicaRecord, workloadKey } from './workload-records.ts';

export type PreparedPlan =
  | { readonly conflicts: PlanConflict[] }
  | { readonly compare: KvCompare[]; readonly writes: { key: string; value: string }[] };

export function preparePlanTxn(
  state: ClusterState,
  submit: { readonly plan: Plan; readonly requests: readonly PlacementRequest[] },
  now: number,
): PreparedPlan {
  const { plan } = submit;
  const conflicts: PlanConflict[] = [];
  const compare: KvCompare[] = [];
  const writes: { key: string; value: string }[] = [];
  const touched = new Set<string>();
  const requests = new Map(submit.requests.map((r) => [r.replicaId, r]));
  for (const placement of plan.placements) {
    const stored = state.replicas.get(placement.replicaId);
    if (touched.has(placement.replicaId)) {
      conflicts.push({
        replicaId: placement.replicaId,
        node: placement.node,
        reason: 'placed twice in one plan',
      });
      continue;
    }
    touched.add(placement.replicaId);
    if (stored === undefined || stored.record.state !== 'pending' || stored.record.node !== undefined) {
      conflicts.push({
        replicaId: placement.replicaId,
        node: placement.node,
        reason:
          stored === undefined ? 'the replica no longer exists' : `the replica is ${stored.record.state} now`,
      });
      continue;
    }
    // The request's size must still be the workload's: checkPlan counts what the request says.
    const workload = state.workloads.get(stored.record.workloadId);
    const request = requests.get(placement.replicaId);
    if (
      workload === undefined ||
      request === undefined ||
      request.resources.cpuMillicores !== workload.record.spec.resources.cpuMillicores ||
      request.resources.memoryBytes !== workload.record.spec.resources.memoryBytes
    ) {
      conflicts.push({
        replicaId: placement.replicaId,
        node: placement.node,
        reason:
          workload === undefined
            ? 'the workload no longer exists'
            : 'the workload changed since the plan was decided',
      });
      continue;
    }
    compare.push({ key: stored.key, target: 'modRevision', op: '=', value: stored.modRevision });
    const record: ReplicaRecord = {
      ...stored.record,
      node: placement.node,
      state: 'starting',
      reason: undefined,
      updatedAt: now,
    };
    writes.push({ key: stored.key, value: encodeReplicaRecord(record) });
  }
  for (const eviction of plan.evictions) {
    const stored = state.replicas.get(eviction.replicaId);
    const workload = stored === undefined ? undefined : state.workloads.get(stored.record.workloadId)?.record;
    if (
      stored === undefined ||
      workload === undefined ||
      stored.record.node !== eviction.node ||
      !ClusterState.holdsCapacity(stored.record)
    ) {
      conflicts.push({
        replicaId: eviction.replicaId,
        node: eviction.node,
        reason: 'the replica to evict is no longer there',
      });
      continue;
    }
    const by = plan.placements.map((p) => p.replicaId).join(', ');
    compare.push({ key: stored.key, target: 'modRevision', op: '=', value: stored.modRevision });
    writes.push({
      key: stored.key,
      value: encodeReplicaRecord(
        newAttempt(
          stored,
          workload,
          `preempted on ${eviction.node} by ${by} (priority ${eviction.priority} < theirs)`,
          now,
          true,
        ),
      ),
    });
  }
  if (conflicts.length > 0) return { conflicts };
  // Pin what the check read besides the replicas: the nodes (alive, capacity) and the
  // workloads (size), so that one marked down or changed meanwhile fails the txn.
  for (const node of new Set(plan.placements.map((p) => p.node)))
    compare.push({
      key: memberKey(node),
      target: 'modRevision',
      op: '=',
      value: state.members.get(node)?.modRevision ?? 0,
    });
  for (const workloadId of new Set(
    plan.placements.map((p) => state.replicas.get(p.replicaId)?.record.workloadId ?? ''),
  ))
    compare.push({
      key: workloadKey(workloadId),
      target: 'modRevision',
      op: '=',
      value: state.workloads.get(workloadId)?.modRevision ?? 0,
    });
  if (compare.length > kvLimits.maxTxnOps || writes.length > kvLimits.maxTxnOps)
    return {
      conflicts: [
        {
          replicaId: '',
          node: '',
          reason: `the plan needs ${compare.length} compares and ${writes.length} writes; one txn takes at most ${kvLimits.maxTxnOps} of each`,
        },
      ],
    };
  const checked = checkPlan(state.nodes, plan, submit.requests);
  if (!checked.ok) return { conflicts: checked.conflicts };
  return { compare, writes };
}
