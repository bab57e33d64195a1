/**
 * A scheduler shard (docs/workloads.md), on the Raft leader only: it owns the workloads whose
 * hash falls in its range (`shardIndexOf`), keeps its own view of the nodes from the store's
 * watch, and turns pending replicas into plans: filter → score every node → select, or preempt
 * lower-priority replicas when nothing fits. Its own decisions count in its view at once, so a
 * batch of replicas spreads; the plan applier has the last word, and a refused plan is decided
 * again on the refreshed view.
 *
 * It remembers the last decision per replica (bounded) for `cloudless explain`, and decides
 * afresh, without changing anything, for a replica it has no decision for.
 */
import { randomUUID } from 'node:crypto';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { kvLimits } from '../raft/kv-validate.ts';
import type { RaftMemberMessage } from '../raft/raft-member.ts';
import { applyPlacement, removePlacement } from '../scheduler/placement.ts';
import type { Decision, Eviction, PlacementRequest, SchedulerWeights } from '../scheduler/scheduler-types.ts';
import { defaultWeights } from '../scheduler/scores.ts';
import { decide } from '../scheduler/select.ts';
import { ClusterStateFollower } from './cluster-state-follower.ts';
import type { PlanApplierMessage, PlanResult } from './plan-applier.ts';
import { decideBatch, undoBatch } from './plan-batch.ts';
import type { StoreFeed } from './store-follower.ts';
import type { ScheduleRequest } from './workload-controller.ts';
import { replicaIdOf } from './workload-records.ts';

/** FNV-1a: which shard owns a workload (stable across nodes and restarts). */
export function shardIndexOf(workloadId: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < workloadId.length; i++) {
    hash ^= workloadId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  // The top bits pick the range: shard i owns [i·2³²/n, (i+1)·2³²/n).
  return Math.floor((hash / 2 ** 32) * shards);
}

export interface ReplicaExplanation {
  readonly index: number;
  readonly replicaId: string;
  readonly state: string;
  readonly node: string | undefined;
  /** When it was decided (ms since the epoch), or undefined for a decision made for this answer. */
  readonly decidedAt: number | undefined;
  readonly decision: Decision;
}

export interface ExplainReply {
  readonly type: 'explanation';
  readonly workloadId: string;
  readonly found: boolean;
  readonly replicas: readonly ReplicaExplanation[];
}

export type SchedulerShardMessage =
  | StoreFeed
  | ScheduleRequest
  | PlanResult
  | { readonly type: 'explain'; readonly workloadId: string; readonly replyTo: ActorRef<ExplainReply> }
  | { readonly type: 'shard:retry' };

export interface SchedulerShardProps {
  readonly member: ActorRef<RaftMemberMessage>;
  readonly applier: ActorRef<PlanApplierMessage>;
  readonly weights?: SchedulerWeights;
  /** Placements per plan, at most; default (and bound) the store's txn limit. */
  readonly maxPlanSize?: number;
  /** Decisions remembered for explain; default 20,000. */
  readonly maxDecisions?: number;
}

interface InFlight {
  readonly planId: string;
  readonly requests: readonly PlacementRequest[];
  readonly placements: readonly { readonly replicaId: string; readonly node: string }[];
  readonly evictions: readonly Eviction[];
}

export function schedulerShard(props: SchedulerShardProps): Behavior<SchedulerShardMessage> {
  const weights = props.weights ?? defaultWeights;
  const maxPlanSize = props.maxPlanSize ?? kvLimits.maxTxnOps;
  const maxDecisions = props.maxDecisions ?? 20_000;

  return Behaviors.setup((ctx) =>
    Behaviors.withTimers<SchedulerShardMessage>((timers) => {
      const view = new ClusterStateFollower<SchedulerShardMessage>(ctx, (feed) => feed);
      const state = view.state;
      const queue = new Set<string>();
      const decisions = new Map<string, { decision: Decision; at: number; replicaId: string }>();
      let inFlight: InFlight | undefined;
      let retryQueued = false;
      /** Keys scheduled before this view saw them pending, with when they were first seen. */
      const waiting = new Map<string, number>();
      /** Plans refused in a row: each retry waits longer. */
      let refusals = 0;

      function remember(key: string, decision: Decision, replicaId: string): void {
        decisions.delete(key);
        decisions.set(key, { decision, at: Date.now(), replicaId });
        if (decisions.size > maxDecisions) {
          const oldest = decisions.keys().next().value;
          if (oldest !== undefined) decisions.delete(oldest);
        }
      }

      function planBatch(): void {
        if (inFlight !== undefined || !view.loaded || queue.size === 0) return;
        const keys = [...queue];
        queue.clear();
        const batch = decideBatch(state, keys, {
          ...(props.weights === undefined ? {} : { weights: props.weights }),
          maxPlanSize,
        });
        for (const key of batch.deferred) queue.add(key);
        const now = Date.now();
        for (const { key, state: seen } of batch.notPending) {
          // The controller may be ahead of this view: keep a key that may yet turn pending here
          // (unknown or lost) until the watch brings it, for a while.
          const since = waiting.get(key) ?? now;
          if ((seen === 'unknown' || seen === 'lost') && now - since < 10_000) waiting.set(key, since);
          else waiting.delete(key);
        }
        // Keys that never turned pending here are forgotten after their 10 s.
        if (waiting.size > 10_000) {
          for (const [key, since] of waiting) if (now - since >= 10_000) waiting.delete(key);
        }
        for (const { key, replicaId, decision, skipped } of batch.decided) {
          waiting.delete(key);
          remember(key, decision, replicaId);
          if (skipped === 'too-many-evictions')
            ctx.log.warn('replica left pending: its preemption evicts too many replicas for one plan', {
              replica: replicaId,
            });
          else if (decision.type === 'pending')
            ctx.log.debug('replica pending', { replica: replicaId, reason: decision.reason });
          else if (decision.type === 'preempt' && skipped === undefined)
            ctx.log.info('preempting', { replica: replicaId, node: decision.node, reason: decision.reason });
        }
        if (batch.placements.length === 0) return;
        const { placements, evictions, requests } = batch;
        const planId = randomUUID();
        inFlight = { planId, requests, placements, evictions };
        props.applier.tell({
          type: 'plan',
          plan: { planId, placements, evictions },
          requests,
          replyTo: ctx.self as ActorRef<PlanResult>,
        });
      }

      /** Takes back what a refused plan counted in this view. */
      function undo(plan: InFlight): void {
        if (undoBatch(state, plan)) view.reload();
      }

      function explain(workloadId: string): ExplainReply {
        const slots = state.slotsOf(workloadId);
        const replicas: ReplicaExplanation[] = [];
        for (const [index, stored] of [...slots].sort((a, b) => a[0] - b[0])) {
          const known = decisions.get(stored.key);
          const replicaId = replicaIdOf(stored.record);
          let decision: Decision | undefined;
          let decidedAt: number | undefined;
          if (known !== undefined && known.replicaId === replicaId) {
            decision = known.decision;
            decidedAt = known.at;
          } else {
            const request = state.placementRequest(stored.key);
            if (request === undefined) continue;
            // Decide as if the replica were not placed yet, then put it back: nothing changes.
            const node = stored.record.node === undefined ? undefined : state.nodes.get(stored.record.node);
            const placed = node === undefined ? undefined : removePlacement(node, stored.key);
            try {
              decision = decide(state.nodeList(), request, weights);
            } finally {
              if (node !== undefined && placed !== undefined)
                applyPlacement(node, { ...request, resources: placed.resources, priority: placed.priority });
            }
          }
          replicas.push({
            index,
            replicaId,
            state: stored.record.state,
            node: stored.record.node,
            decidedAt,
            decision,
          });
        }
        return { type: 'explanation', workloadId, found: state.workloads.has(workloadId), replicas };
      }

      view.reload();
      return Behaviors.receive<SchedulerShardMessage>((_c, message) => {
        switch (message.type) {
          case 'store-feed': {
            const update = view.apply(message);
            if (update?.kind === 'loaded') planBatch();
            else if (update !== undefined && waiting.size > 0) {
              for (const key of waiting.keys())
                if (state.replicas.get(key)?.record.state === 'pending') queue.add(key);
              planBatch();
            }
            return Behaviors.same;
          }
          case 'schedule':
            if (!Array.isArray(message.keys)) return Behaviors.same;
            for (const key of message.keys)
              if (typeof key === 'string' && queue.size < 100_000) queue.add(key);
            planBatch();
            return Behaviors.same;
          case 'plan-result': {
            const plan = inFlight;
            if (plan === undefined || plan.planId !== message.planId) return Behaviors.same;
            inFlight = undefined;
            if (message.ok) {
              refusals = 0;
              state.applyCommitted(message.writes, message.revision);
            } else {
              ctx.log.debug('plan refused; deciding again', { conflicts: message.conflicts.slice(0, 3) });
              undo(plan);
              for (const placement of plan.placements) queue.add(placement.replicaId);
              if (!retryQueued) {
                retryQueued = true;
                // Give the watch a moment to bring what changed before deciding again.
                refusals = Math.min(refusals + 1, 10);
                timers.startSingleTimer(
                  'retry',
                  { type: 'shard:retry' },
                  Math.min(2000, 20 * 2 ** (refusals - 1)),
                );
              }
              return Behaviors.same;
            }
            planBatch();
            return Behaviors.same;
          }
          case 'shard:retry':
            retryQueued = false;
            planBatch();
            return Behaviors.same;
          case 'explain':
            message.replyTo.tell(
              view.loaded
                ? explain(message.workloadId)
                : { type: 'explanation', workloadId: message.workloadId, found: false, replicas: [] },
            );
            return Behaviors.same;
        }
      }).receiveSignal((_c, signal) => {
        if (signal.type === 'PostStop' || signal.type === 'PreRestart') view.stop();
        return Behaviors.same;
      });
    }),
  );
}
