/**
 * The workload controller (docs/workloads.md), run on the Raft leader only, next to its member:
 *
 * - keeps a `ClusterState` from the store (workloads, replicas, members, node failures);
 * - on every change (at most once per turn) and every `reconcileEveryMs`, runs the pure
 *   `reconcile` and commits its writes, each a txn with a compare on the record's revision;
 * - hands pending replicas to the scheduler shard that owns their workload (again after
 *   `rescheduleAfterMs` while still pending);
 * - tells each agent node the whole set of attempts it should run, when the set changes and every
 *   `pushEveryMs`, with `from` = this node, which agents check is the leader;
 * - commits the agents' status reports, after checking the report comes from the node the attempt
 *   is placed on and is about the current attempt;
 * - counts each node's transitions to down (`/cloudless/node-failures/<id>`), which the scheduler
 *   scores as reliability.
 */
import { randomUUID } from 'node:crypto';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import {
  type AssignedReplica,
  type Assignments,
  agentLimits,
  agentPath,
  type ReplicaStatusReport,
  type ReplicaStatusUpdate,
  reportedStates,
} from '../agent/agent-protocol.ts';
import { membersPrefix } from '../membership/member-record.ts';
import type { KvCommand, KvEvent, KvTxnOp } from '../raft/kv-types.ts';
import type { RaftMemberMessage, RaftProposeReply } from '../raft/raft-member.ts';
import { ClusterState } from './cluster-state.ts';
import { ClusterStateFollower } from './cluster-state-follower.ts';
import { type ControlWrite, reconcile } from './reconcile.ts';
import type { StoreFeed } from './store-follower.ts';
import {
  encodeReplicaRecord,
  nodeFailuresKey,
  parseReplicaKey,
  parseWorkloadKey,
  type ReplicaRecord,
  replicaIdOf,
  replicaKey,
  workloadsPrefix,
} from './workload-records.ts';

export interface ScheduleRequest {
  readonly type: 'schedule';
  readonly keys: readonly string[];
}

export type WorkloadControllerMessage =
  | StoreFeed
  | ReplicaStatusReport
  | { readonly type: 'controller:reconcile' }
  | { readonly type: 'controller:tick' }
  | { readonly type: 'controller:push' }
  | { readonly type: 'controller:push-all' }
  | { readonly type: 'controller:written'; readonly keys: readonly string[]; readonly ok: boolean }
  | {
      readonly type: 'controller:reported';
      readonly settled: readonly string[];
      readonly replyTo: ReplicaStatusReport['replyTo'];
    };

export interface WorkloadControllerProps {
  /** The local Raft member (this node is its leader). */
  readonly member: ActorRef<RaftMemberMessage>;
  /** The shard that schedules a workload. */
  readonly shardFor: (workloadId: string) => ActorRef<ScheduleRequest>;
  readonly term: number;
  readonly reconcileEveryMs?: number;
  readonly pushEveryMs?: number;
  readonly rescheduleAfterMs?: number;
  /** Where agents run; default `agentPath`. */
  readonly agentPath?: string;
}

/** Parses `<ns>/<name>/<index>#<attempt>`. */
export function parseReplicaId(
  replicaId: string,
): { workloadId: string; index: number; attempt: number } | undefined {
  const match = /^([a-z0-9-]{1,63}\/[a-z0-9-]{1,63})\/(\d{1,6})#(\d{1,9})$/.exec(replicaId);
  if (match === null) return undefined;
  return { workloadId: match[1] as string, index: Number(match[2]), attempt: Number(match[3]) };
}

export function workloadController(props: WorkloadControllerProps): Behavior<WorkloadControllerMessage> {
  const reconcileEveryMs = props.reconcileEveryMs ?? 1000;
  const pushEveryMs = props.pushEveryMs ?? 2000;
  const rescheduleAfterMs = props.rescheduleAfterMs ?? 2000;
  const agentAt = props.agentPath ?? agentPath;

  return Behaviors.setup((ctx) =>
    Behaviors.withTimers((timers) => {
      const self = ctx.system.nodeId;
      const view = new ClusterStateFollower<WorkloadControllerMessage>(ctx, (feed) => feed);
      const state = view.state;
      // A node's transitions to down are counted: the scheduler scores reliability from them.
      state.onMemberStatus = (id, _before, after) => {
        if (after !== 'down') return;
        const count = (state.nodes.get(id)?.failures ?? 0) + 1;
        propose(
          { type: 'put', key: nodeFailuresKey(id), value: JSON.stringify({ count, lastAt: Date.now() }) },
          [],
        );
      };
      const clientId = `workload-controller/${self}/${randomUUID().slice(0, 8)}`;
      let seq = 0;
      let reconcileQueued = false;
      let pushQueued = false;
      const writing = new Set<string>();
      const scheduledAt = new Map<string, number>();
      const pushed = new Map<string, string>();

      /**
       * Changes are reconciled in batches, at most every `batchMs`, and only for the workloads they
       * touched (a member change touches all): a cluster with thousands of replicas makes thousands
       * of changes, and a whole reconcile per change would grow with the square of its size.
       */
      const batchMs = 20;
      const dirty = new Set<string>();
      let everything = false;

      function queueReconcile(workloadId?: string): void {
        if (workloadId === undefined) everything = true;
        else dirty.add(workloadId);
        if (reconcileQueued || !view.loaded) return;
        reconcileQueued = true;
        timers.startSingleTimer('reconcile', { type: 'controller:reconcile' }, batchMs);
      }

      function queuePush(): void {
        if (pushQueued || !view.loaded) return;
        pushQueued = true;
        timers.startSingleTimer('push-changed', { type: 'controller:push' }, batchMs);
      }

      /** What each event touches: its workload, or everything for a member. */
      function markDirty(events: readonly KvEvent[]): void {
        for (const event of events) {
          const key = event.kv.key;
          const slot = parseReplicaKey(key);
          if (slot !== undefined) queueReconcile(slot.workloadId);
          else if (key.startsWith(workloadsPrefix)) {
            const id = parseWorkloadKey(key);
            if (id !== undefined) queueReconcile(id);
          } else if (key.startsWith(membersPrefix)) queueReconcile();
        }
      }

      const writesPerTxn = 64;
      const maxTxnsInFlight = 16;
      let txnsInFlight = 0;
      /** Writes were left for later because too many txns were in flight. */
      let backlog = false;

      function propose(command: KvCommand, keys: readonly string[]): void {
        for (const key of keys) writing.add(key);
        txnsInFlight++;
        const reply = props.member.ask<RaftProposeReply>(
          (replyTo) => ({ type: 'propose', command, clientId, seq: ++seq, replyTo }),
          { timeoutMs: 5000 },
        );
        ctx.pipeToSelf(reply, (outcome) => ({
          type: 'controller:written',
          keys,
          ok:
            outcome.ok &&
            outcome.value.ok &&
            (outcome.value.result.type !== 'txn' || outcome.value.result.succeeded),
        }));
      }

      /**
       * Commits writes in txns of up to `writesPerTxn` (each write pinned by its own compare), with
       * at most `maxTxnsInFlight` in flight: a deploy of a thousand replicas is a few dozen
       * proposals, not a thousand that would fill the leader's proposal queue. What is left over
       * is found again by the next reconcile.
       */
      function commit(writes: readonly ControlWrite[]): void {
        let batch: ControlWrite[] = [];
        const flush = (): void => {
          if (batch.length === 0) return;
          const compare = batch.map((write) =>
            write.type === 'create'
              ? { key: write.key, target: 'version' as const, op: '=' as const, value: 0 }
              : {
                  key: write.key,
                  target: 'modRevision' as const,
                  op: '=' as const,
                  value: write.expectedModRevision,
                },
          );
          const success = batch.map(
            (write): KvTxnOp =>
              write.type === 'delete'
                ? { type: 'delete', key: write.key }
                : { type: 'put', key: write.key, value: encodeReplicaRecord(write.record) },
          );
          propose(
            { type: 'txn', compare, success, failure: [] },
            batch.map((write) => write.key),
          );
          batch = [];
        };
        for (const write of writes) {
          if (writing.has(write.key)) continue;
          if (txnsInFlight >= maxTxnsInFlight) {
            backlog = true;
            break;
          }
          if (write.type === 'update' && write.record.state === 'lost')
            ctx.log.info('replica lost', { replica: replicaIdOf(write.record), reason: write.record.reason });
          batch.push(write);
          if (batch.length >= writesPerTxn) flush();
        }
        flush();
      }

      function runReconcile(full: boolean): void {
        const now = Date.now();
        const scope = full || everything ? {} : { workloads: [...dirty] };
        dirty.clear();
        everything = false;
        const { writes, unplaced } = reconcile(state, now, { ...scope, inFlight: writing });
        commit(writes);
        const byShard = new Map<ActorRef<ScheduleRequest>, string[]>();
        for (const key of unplaced) {
          const record = state.replicas.get(key)?.record;
          if (record === undefined) continue;
          // Per attempt: a new attempt goes to the scheduler at once, a pending one again later.
          const attempt = replicaIdOf(record);
          const last = scheduledAt.get(attempt);
          if (last !== undefined && now - last < rescheduleAfterMs) continue;
          scheduledAt.set(attempt, now);
          const shard = props.shardFor(record.workloadId);
          const keys = byShard.get(shard) ?? [];
          keys.push(key);
          byShard.set(shard, keys);
        }
        for (const [shard, keys] of byShard) shard.tell({ type: 'schedule', keys });
        if (scheduledAt.size > 2 * state.replicas.size + 1000) {
          const current = new Set([...state.replicas.values()].map((stored) => replicaIdOf(stored.record)));
          for (const attempt of scheduledAt.keys()) if (!current.has(attempt)) scheduledAt.delete(attempt);
        }
      }

      function assignmentsOf(): Map<string, AssignedReplica[]> {
        const byNode = new Map<string, AssignedReplica[]>();
        for (const [id, { record }] of state.members) {
          if (record.roles.includes('agent') && record.status !== 'left') byNode.set(id, []);
        }
        for (const { record } of state.replicas.values()) {
          if (!ClusterState.holdsCapacity(record)) continue;
          const list = byNode.get(record.node as string);
          const spec = state.workloads.get(record.workloadId)?.record.spec;
          if (list === undefined || spec === undefined) continue;
          list.push({
            replicaId: replicaIdOf(record),
            workloadId: record.workloadId,
            index: record.index,
            attempt: record.attempt,
            kind: spec.kind,
            driver: spec.driver,
            resources: spec.resources,
            restartPolicy: spec.restartPolicy,
            ...(spec.healthCheck === undefined ? {} : { healthCheck: spec.healthCheck }),
          });
        }
        return byNode;
      }

      function push(all: boolean): void {
        for (const [node, replicas] of assignmentsOf()) {
          const signature = replicas
            .map((r) => r.replicaId)
            .sort()
            .join(',');
          if (!all && pushed.get(node) === signature) continue;
          pushed.set(node, signature);
          const message: Assignments = {
            type: 'assignments',
            from: self,
            term: props.term,
            replicas: replicas.slice(0, agentLimits.maxAssignedReplicas),
          };
          ctx.system.resolve<Assignments>({ node, path: agentAt }).tell(message);
        }
      }

      function validUpdate(update: ReplicaStatusUpdate): boolean {
        return (
          typeof update === 'object' &&
          update !== null &&
          typeof update.replicaId === 'string' &&
          (reportedStates as readonly unknown[]).includes(update.state) &&
          typeof update.ready === 'boolean' &&
          Number.isSafeInteger(update.restarts) &&
          update.restarts >= 0 &&
          (update.exitCode === undefined || Number.isSafeInteger(update.exitCode)) &&
          (update.reason === undefined ||
            (typeof update.reason === 'string' && update.reason.length <= 2048)) &&
          (update.limits === undefined || (typeof update.limits === 'string' && update.limits.length <= 512))
        );
      }

      function handleReport(report: ReplicaStatusReport): void {
        const { from, updates, replyTo } = report;
        if (
          typeof from !== 'string' ||
          typeof replyTo?.tell !== 'function' ||
          !Array.isArray(updates) ||
          updates.length > agentLimits.maxUpdatesPerReport
        ) {
          ctx.log.warn('status report refused: malformed', { node: from });
          return;
        }
        const settled: string[] = [];
        const pending: Promise<string | undefined>[] = [];
        for (const update of updates) {
          if (!validUpdate(update)) {
            ctx.log.warn('status update refused: malformed', { node: from });
            continue;
          }
          const id = parseReplicaId(update.replicaId);
          const key = id === undefined ? undefined : replicaKey(id.workloadId, id.index);
          const stored = key === undefined ? undefined : state.replicas.get(key);
          if (
            id === undefined ||
            key === undefined ||
            stored === undefined ||
            stored.record.attempt !== id.attempt
          ) {
            settled.push(update.replicaId);
            continue;
          }
          const { record } = stored;
          if (record.node !== from) {
            ctx.log.warn('status update refused: the replica is not placed on the reporting node', {
              replica: update.replicaId,
              node: from,
              placedOn: record.node,
            });
            settled.push(update.replicaId);
            continue;
          }
          if (record.state === 'lost' || record.state === 'succeeded' || record.state === 'failed') {
            settled.push(update.replicaId);
            continue;
          }
          const next: ReplicaRecord = {
            ...record,
            state: update.state,
            ready: update.ready,
            restarts: update.restarts,
            exitCode: update.exitCode,
            reason: update.reason,
            limits: update.limits ?? record.limits,
            updatedAt: Date.now(),
          };
          const reply = props.member.ask<RaftProposeReply>(
            (r) => ({
              type: 'propose',
              command: {
                type: 'txn',
                compare: [{ key: stored.key, target: 'modRevision', op: '=', value: stored.modRevision }],
                success: [{ type: 'put', key: stored.key, value: encodeReplicaRecord(next) }],
                failure: [],
              },
              clientId,
              seq: ++seq,
              replyTo: r,
            }),
            { timeoutMs: 5000 },
          );
          pending.push(
            reply.then(
              (value) =>
                value.ok && (value.result.type !== 'txn' || value.result.succeeded)
                  ? update.replicaId
                  : undefined,
              () => undefined,
            ),
          );
        }
        ctx.pipeToSelf(Promise.all(pending), (outcome) => ({
          type: 'controller:reported',
          settled: [
            ...settled,
            ...(outcome.ok ? outcome.value.filter((v): v is string => v !== undefined) : []),
          ],
          replyTo,
        }));
      }

      view.reload();
      timers.startTimerWithFixedDelay('tick', { type: 'controller:tick' }, reconcileEveryMs);
      timers.startTimerWithFixedDelay('push', { type: 'controller:push-all' }, pushEveryMs);
      ctx.log.info('workload controller started', { term: props.term });

      return Behaviors.receive<WorkloadControllerMessage>((_c, message) => {
        switch (message.type) {
          case 'store-feed': {
            const update = view.apply(message);
            if (update === undefined) return Behaviors.same;
            if (update.kind === 'loaded') queueReconcile();
            else markDirty(update.events);
            queuePush();
            return Behaviors.same;
          }
          case 'controller:reconcile':
            reconcileQueued = false;
            runReconcile(false);
            return Behaviors.same;
          case 'controller:tick':
            if (view.loaded) runReconcile(true);
            return Behaviors.same;
          case 'controller:push':
            pushQueued = false;
            push(false);
            return Behaviors.same;
          case 'controller:written':
            txnsInFlight--;
            // A change that arrived while the write was in flight was skipped: look again.
            if (backlog) {
              backlog = false;
              queueReconcile();
            }
            for (const key of message.keys) {
              writing.delete(key);
              const slot = parseReplicaKey(key);
              if (slot !== undefined) queueReconcile(slot.workloadId);
            }
            return Behaviors.same;
          case 'replica-status':
            if (view.loaded) handleReport(message);
            return Behaviors.same;
          case 'controller:reported':
            message.replyTo?.tell({ type: 'replica-status-ack', settled: message.settled });
            return Behaviors.same;
          case 'controller:push-all':
            if (view.loaded) push(true);
            return Behaviors.same;
        }
      }).receiveSignal((_c, signal) => {
        if (signal.type === 'PostStop' || signal.type === 'PreRestart') view.stop();
        return Behaviors.same;
      });
    }),
  );
}
