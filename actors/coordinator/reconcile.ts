/**
 * The workload controller's pure core (docs/workloads.md): compares what the store says should
 * run (workload records) with what it says runs (replica slots, member status) and returns the
 * writes that close the gap. The controller actor commits each write with a compare on the
 * record's revision, so a decision made on a stale view fails instead of overwriting newer state,
 * and it runs this again on the next change.
 *
 * Rules, per workload:
 * - slots 0..replicas-1 exist; a missing slot is created pending; slots past `replicas` are
 *   deleted (their agents stop them when the slot leaves their assignment);
 * - a replica placed on a node that is down, has left or is unknown is marked `lost`;
 * - a `lost` slot gets a new attempt, pending, unless its work is done (a batch slot that
 *   succeeded is never redone; a `succeeded` or `failed` slot is not lost);
 * - a service whose spec changed is rolled one slot at a time: a slot of an older revision gets a
 *   new attempt only when every other slot is running and ready;
 * - a pending slot without a node is handed to the scheduler.
 */
import type { ClusterState, StoredReplica } from './cluster-state.ts';
import { type ReplicaRecord, replicaKey, type WorkloadRecord } from './workload-records.ts';

export type ControlWrite =
  | { readonly type: 'create'; readonly key: string; readonly record: ReplicaRecord }
  | {
      readonly type: 'update';
      readonly key: string;
      readonly expectedModRevision: number;
      readonly record: ReplicaRecord;
    }
  | { readonly type: 'delete'; readonly key: string; readonly expectedModRevision: number };

export interface ReconcileResult {
  readonly writes: readonly ControlWrite[];
  /** Replica keys that are pending without a node: for the scheduler. */
  readonly unplaced: readonly string[];
}

function nodeGone(state: ClusterState, node: string): string | undefined {
  const member = state.members.get(node)?.record;
  if (member === undefined) return `node ${node} is not a member`;
  if (member.status === 'down') return `node ${node} is down`;
  if (member.status === 'left') return `node ${node} has left`;
  return undefined;
}

export function newAttempt(
  stored: StoredReplica,
  workload: WorkloadRecord,
  reason: string,
  now: number,
  lost: boolean,
): ReplicaRecord {
  const { record } = stored;
  return {
    workloadId: record.workloadId,
    index: record.index,
    attempt: record.attempt + 1,
    specRevision: workload.revision,
    node: undefined,
    state: 'pending',
    ready: false,
    restarts: 0,
    exitCode: undefined,
    reason,
    limits: undefined,
    lostCount: record.lostCount + (lost ? 1 : 0),
    createdAt: record.createdAt,
    updatedAt: now,
  };
}

export interface ReconcileScope {
  /**
   * Only these workloads (their records or replicas changed); default every workload, and then
   * also the slots whose workload is gone. A controller runs the whole reconcile periodically
   * and the scoped one on changes, so the cost of a change does not grow with the cluster.
   */
  readonly workloads?: Iterable<string>;
  /** Slot keys with a write in flight: left alone until it settles. */
  readonly inFlight?: ReadonlySet<string>;
}

export function reconcile(state: ClusterState, now: number, scope: ReconcileScope = {}): ReconcileResult {
  const writes: ControlWrite[] = [];
  const unplaced: string[] = [];
  const inFlight = scope.inFlight;
  const workloads =
    scope.workloads === undefined
      ? state.workloads.keys()
      : [...new Set(scope.workloads)].filter((id) => state.workloads.has(id));
  for (const workloadId of workloads) {
    const workload = state.workloads.get(workloadId)?.record as WorkloadRecord;
    const { spec } = workload;
    const slots = state.slotsOf(workloadId);
    let settled = 0;
    const stale: StoredReplica[] = [];
    for (let index = 0; index < spec.replicas; index++) {
      const stored = slots.get(index);
      if (
        inFlight !== undefined &&
        inFlight.size > 0 &&
        inFlight.has(stored?.key ?? replicaKey(workloadId, index))
      )
        continue;
      if (stored === undefined) {
        writes.push({
          type: 'create',
          key: replicaKey(workloadId, index),
          record: {
            workloadId,
            index,
            attempt: 1,
            specRevision: workload.revision,
            node: undefined,
            state: 'pending',
            ready: false,
            restarts: 0,
            exitCode: undefined,
            reason: undefined,
            limits: undefined,
            lostCount: 0,
            createdAt: now,
            updatedAt: now,
          },
        });
        continue;
      }
      const { record } = stored;
      if (record.state === 'lost') {
        writes.push({
          type: 'update',
          key: stored.key,
          expectedModRevision: stored.modRevision,
          record: newAttempt(
            stored,
            workload,
            `attempt ${record.attempt} lost: ${record.reason ?? 'unknown'}`,
            now,
            true,
          ),
        });
        continue;
      }
      if (record.node !== undefined && record.state !== 'succeeded' && record.state !== 'failed') {
        const gone = nodeGone(state, record.node);
        if (gone !== undefined) {
          writes.push({
            type: 'update',
            key: stored.key,
            expectedModRevision: stored.modRevision,
            record: { ...record, state: 'lost', ready: false, reason: gone, updatedAt: now },
          });
          continue;
        }
      }
      if (record.state === 'pending' && record.node === undefined) {
        unplaced.push(stored.key);
        continue;
      }
      if (record.specRevision < workload.revision && spec.kind === 'service' && record.state !== 'failed')
        stale.push(stored);
      else if ((record.state === 'running' && record.ready) || record.state === 'succeeded') settled++;
    }
    // Roll one slot at a time: only when every other slot is up on the current revision.
    const first = stale[0];
    if (first !== undefined && settled + stale.length === spec.replicas && stale.every(isUp)) {
      writes.push({
        type: 'update',
        key: first.key,
        expectedModRevision: first.modRevision,
        record: newAttempt(first, workload, `rolled to revision ${workload.revision}`, now, false),
      });
    }
    for (const [index, stored] of slots) {
      if (index >= spec.replicas && !inFlight?.has(stored.key))
        writes.push({ type: 'delete', key: stored.key, expectedModRevision: stored.modRevision });
    }
  }
  // Slots whose workload is gone (deleted without its replicas): remove them.
  if (scope.workloads !== undefined) return { writes, unplaced };
  for (const stored of state.replicas.values()) {
    if (!state.workloads.has(stored.record.workloadId) && !inFlight?.has(stored.key))
      writes.push({ type: 'delete', key: stored.key, expectedModRevision: stored.modRevision });
  }
  return { writes, unplaced };
}

function isUp(stored: StoredReplica): boolean {
  return stored.record.state === 'running' && stored.record.ready;
}
