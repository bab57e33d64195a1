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
import type { KvTxnOp } from '../raft/kv-types.ts';
import type { RaftMemberMessage, RaftProposeReply } from '../raft/raft-member.ts';
import type { PlanConflict } from '../scheduler/plan-check.ts';
import type { PlacementRequest, Plan } from '../scheduler/scheduler-types.ts';
import { ClusterStateFollower } from './cluster-state-follower.ts';
import { preparePlanTxn } from './plan-txn.ts';
import type { StoreFeed } from './store-follower.ts';

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
    const view = new ClusterStateFollower<PlanApplierMessage>(ctx, (feed) => feed);
    const state = view.state;
    const queue: SubmitPlan[] = [];
    let busy = false;
    let seq = 0;

    function refuse(submit: SubmitPlan, conflicts: PlanConflict[]): void {
      submit.replyTo.tell({ type: 'plan-result', planId: submit.plan.planId, ok: false, conflicts });
    }

    function next(): void {
      while (!busy && view.loaded) {
        const submit = queue.shift();
        if (submit === undefined) return;
        const prepared = preparePlanTxn(state, submit, Date.now());
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
