/**
 * The plan applier (docs/workloads.md), on the Raft leader only: the one place placements become
 * committed state. Shards decide on their own, possibly stale, views; the applier checks each plan
 * against its copy of the committed state (`checkPlan`: capacity after the plan's own evictions,
 * node still an alive agent, every replica still pending and unchanged) and commits it as one
 * txn whose compares pin every record the plan touches. A plan that no longer fits, or whose txn
 * finds a record changed, is refused whole, never half-applied; the shard decides again.
 *
 * Plans are handled one at a time, so each is checked against the state its predecessors left.
 */
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { memberKey } from '../membership/member-record.ts';
import type { KvCompare, KvTxnOp } from '../raft/kv-types.ts';
import { kvLimits } from '../raft/kv-validate.ts';
import type { RaftMemberMessage, RaftProposeReply } from '../raft/raft-member.ts';
import { checkPlan, type PlanConflict } from '../scheduler/plan-check.ts';
import type { PlacementRequest, Plan } from '../scheduler/scheduler-types.ts';
import { ClusterState } from './cluster-state.ts';
import { ClusterStateFollower } from './cluster-state-follower.ts';
import { newAttempt } from './reconcile.ts';
import type { StoreFeed } from './store-follower.ts';
import { encodeReplicaRecord, type ReplicaRecord, workloadKey } from './workload-records.ts';

export type PlanResult =
  | {
      readonly type: 'plan-result';
      readonly planId: string;
      readonly ok: true;
      readonly revision: number;
      readonly writes: readonly { readonly key: string; readonly value: string }[];
    }
  | {
      readonly type: 'plan-result';
      readonly planId: string;
      readonly ok: false;
      readonly conflicts: readonly PlanConflict[];
    };

export interface SubmitPlan {
  readonly type: 'plan';
  readonly plan: Plan;
  /** The requests of the plan's placements (replicaId = replica key). */
  readonly requests: readonly PlacementRequest[];
  readonly replyTo: ActorRef<PlanResult>;
}

export type PlanApplierMessage =
  | StoreFeed
  | SubmitPlan
  | {
      readonly type: 'applier:committed';
      readonly submit: SubmitPlan;
      readonly writes: readonly { readonly key: string; readonly value: string }[];
      readonly revision: number | undefined;
      readonly error: string | undefined;
    };

export interface PlanApplierProps {
  readonly member: ActorRef<RaftMemberMessage>;
  readonly clientId: string;
}

export function planApplier(props: PlanApplierProps): Behavior<PlanApplierMessage> {
  return Behaviors.setup((ctx) => {
    const view = new ClusterStateFollower<PlanApplierMessage>(ctx, props.member, (feed) => feed);
    const state = view.state;
    const queue: SubmitPlan[] = [];
    let busy = false;
    let seq = 0;

    function refuse(submit: SubmitPlan, conflicts: PlanConflict[]): void {
      submit.replyTo.tell({ type: 'plan-result', planId: submit.plan.planId, ok: false, conflicts });
    }

    /** Checks the plan's records against the committed ones; conflicts, or the txn to commit. */
    function prepare(
      submit: SubmitPlan,
    ): { conflicts: PlanConflict[] } | { compare: KvCompare[]; writes: { key: string; value: string }[] } {
      const { plan } = submit;
      const conflicts: PlanConflict[] = [];
      const compare: KvCompare[] = [];
      const writes: { key: string; value: string }[] = [];
      const now = Date.now();
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
              stored === undefined
                ? 'the replica no longer exists'
                : `the replica is ${stored.record.state} now`,
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
        const workload =
          stored === undefined ? undefined : state.workloads.get(stored.record.workloadId)?.record;
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

    function next(): void {
      while (!busy && view.loaded) {
        const submit = queue.shift();
        if (submit === undefined) return;
        const prepared = prepare(submit);
        if ('conflicts' in prepared) {
          refuse(submit, prepared.conflicts);
          continue;
        }
        busy = true;
        const success: KvTxnOp[] = prepared.writes.map((w) => ({ type: 'put', key: w.key, value: w.value }));
        const reply = props.member.ask<RaftProposeReply>(
          (replyTo) => ({
            type: 'propose',
            command: { type: 'txn', compare: prepared.compare, success, failure: [] },
            clientId: props.clientId,
            seq: ++seq,
            replyTo,
          }),
          { timeoutMs: 5000 },
        );
        ctx.pipeToSelf(reply, (outcome) => ({
          type: 'applier:committed',
          submit,
          writes: prepared.writes,
          revision:
            outcome.ok &&
            outcome.value.ok &&
            outcome.value.result.type === 'txn' &&
            outcome.value.result.succeeded
              ? outcome.value.result.revision
              : undefined,
          error: !outcome.ok
            ? outcome.error.message
            : !outcome.value.ok
              ? `${outcome.value.error.code}: ${outcome.value.error.message}`
              : 'a record changed before the plan committed',
        }));
      }
    }

    view.reload();
    return Behaviors.receive<PlanApplierMessage>((_c, message) => {
      switch (message.type) {
        case 'store-feed':
          if (view.apply(message)?.kind === 'loaded') next();
          return Behaviors.same;
        case 'plan':
          if (queue.length >= 1024) {
            refuse(message, [
              { replicaId: '', node: '', reason: 'the plan applier is overloaded; try again' },
            ]);
            return Behaviors.same;
          }
          queue.push(message);
          next();
          return Behaviors.same;
        case 'applier:committed': {
          busy = false;
          const { submit } = message;
          if (message.revision !== undefined) {
            state.applyCommitted(message.writes, message.revision);
            submit.replyTo.tell({
              type: 'plan-result',
              planId: submit.plan.planId,
              ok: true,
              revision: message.revision,
              writes: message.writes,
            });
          } else {
            // checkPlan counted the plan in the view already: start from the store again.
            view.reload();
            refuse(submit, [{ replicaId: '', node: '', reason: message.error ?? 'not committed' }]);
          }
          next();
          return Behaviors.same;
        }
      }
    }).receiveSignal((_c, signal) => {
      if (signal.type === 'PostStop' || signal.type === 'PreRestart') view.stop();
      return Behaviors.same;
    });
  });
}
