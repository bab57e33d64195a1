/**
 * The workload front door every coordinator runs at `/user/workloads` (docs/workloads.md):
 * deploy, scale, rm, ps, explain and logs for the CLI, and status reports from agents.
 *
 * Writes and explain are served by the leader: a coordinator that is not leader asks the
 * leader's front door and relays the answer (a CLI reaches only the coordinator it dialed).
 * While its node leads, the front door runs the leader-side actors as its children:
 *
 *   /user/workloads/controller      reconcile, dispatch to agents, status reports
 *   /user/workloads/applier         the plan applier
 *   /user/workloads/shard-<i>       scheduler shards
 *
 * and stops them as soon as its member reports another role. Leadership is polled from the local
 * member every `leaderPollMs`.
 *
 * Every spec is validated (all problems at once) and passed to the admission hook before it is
 * written. Submitting the same spec again changes nothing; a changed spec (other than its replica
 * count) is a new revision, which the controller rolls out one replica at a time.
 */
import { randomUUID } from 'node:crypto';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import {
  CloudlessError,
  InvalidRequestError,
  NotFoundError,
  UnavailableError,
} from '../../runtime/errors.ts';
import { agentPath, type ReadLogsReply, type ReplicaStatusReport } from '../agent/agent-protocol.ts';
import type { KeyValue, KvCommand } from '../raft/kv-types.ts';
import type {
  RaftMemberMessage,
  RaftProposeReply,
  RaftQueryReply,
  RaftStatusReply,
} from '../raft/raft-member.ts';
import type { SchedulerWeights } from '../scheduler/scheduler-types.ts';
import { type AdmissionHook, admit, allowAll } from './admission-hook.ts';
import { type PlanApplierMessage, planApplier } from './plan-applier.ts';
import {
  type ExplainReply,
  type SchedulerShardMessage,
  schedulerShard,
  shardIndexOf,
} from './scheduler-shard.ts';
import { specDigest } from './spec-digest.ts';
import { type WorkloadControllerMessage, workloadController } from './workload-controller.ts';
import {
  decodeReplicaRecord,
  decodeWorkloadRecord,
  encodeWorkloadRecord,
  type ReplicaRecord,
  replicaKey,
  replicaPrefixOf,
  replicasPrefix,
  type WorkloadRecord,
  workloadKey,
  workloadsPrefix,
} from './workload-records.ts';
import type { WorkloadSpec } from './workload-spec.ts';
import { validateWorkloadSpec } from './workload-validate.ts';

export const workloadServicePath = '/user/workloads';

export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly [extra: string]: unknown;
}

export type WorkloadReply<TValue> =
  | { readonly ok: true; readonly value: TValue }
  | { readonly ok: false; readonly error: WireError };

export interface DeployResult {
  readonly workloadId: string;
  readonly revision: number;
  /** `unchanged`: the same spec was there already. `scaled`: only the replica count changed. */
  readonly outcome: 'created' | 'updated' | 'scaled' | 'unchanged';
}

export interface WorkloadStatus {
  readonly workloadId: string;
  readonly kind: WorkloadSpec['kind'];
  readonly driver: WorkloadSpec['driver']['type'];
  readonly desired: number;
  readonly revision: number;
  readonly priority: number;
  readonly createdAt: number;
  readonly replicas: readonly ReplicaRecord[];
}

export interface LogsQuery {
  readonly workloadId: string;
  readonly index: number;
  readonly stream: 'stdout' | 'stderr';
  readonly fromOffset: number;
  readonly maxBytes: number;
}

export interface LogsResult {
  readonly replicaId: string;
  readonly node: string;
  readonly state: string;
  readonly data: string;
  readonly nextOffset: number;
  readonly truncated: boolean;
}

export type WorkloadRequest =
  | {
      readonly type: 'deploy';
      readonly spec: unknown;
      readonly replyTo: ActorRef<WorkloadReply<DeployResult>>;
    }
  | {
      readonly type: 'scale';
      readonly workloadId: string;
      readonly replicas: number;
      readonly replyTo: ActorRef<WorkloadReply<DeployResult>>;
    }
  | {
      readonly type: 'remove';
      readonly workloadId: string;
      readonly replyTo: ActorRef<WorkloadReply<{ readonly removed: boolean }>>;
    }
  | {
      readonly type: 'ps';
      readonly workloadId?: string;
      readonly replyTo: ActorRef<WorkloadReply<readonly WorkloadStatus[]>>;
    }
  | {
      readonly type: 'explain';
      readonly workloadId: string;
      readonly replyTo: ActorRef<WorkloadReply<ExplainReply>>;
    }
  | ({ readonly type: 'logs'; readonly replyTo: ActorRef<WorkloadReply<LogsResult>> } & LogsQuery);

export type WorkloadServiceMessage =
  | WorkloadRequest
  | ReplicaStatusReport
  | { readonly type: 'workloads:poll' }
  | { readonly type: 'workloads:status'; readonly status: RaftStatusReply | undefined }
  | { readonly type: 'workloads:noop' };

export interface WorkloadServiceProps {
  /** The local Raft member. */
  readonly member: ActorRef<RaftMemberMessage>;
  readonly admission?: AdmissionHook;
  /** Scheduler shards on the leader; default 2. */
  readonly shards?: number;
  readonly weights?: SchedulerWeights;
  readonly leaderPollMs?: number;
  /** Passed to the controller (tests make these short). */
  readonly controller?: {
    readonly reconcileEveryMs?: number;
    readonly pushEveryMs?: number;
    readonly rescheduleAfterMs?: number;
  };
}

const namePattern = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Checks a `<namespace>/<name>` (or a bare name, in namespace `default`) from a client. */
export function checkWorkloadId(value: unknown): string {
  if (typeof value !== 'string' || value.length > 127)
    throw new InvalidRequestError(
      `a workload is named <name> or <namespace>/<name>; got ${JSON.stringify(value)?.slice(0, 80)}`,
    );
  const parts = value.includes('/') ? value.split('/') : ['default', value];
  if (parts.length !== 2 || !parts.every((part) => namePattern.test(part)))
    throw new InvalidRequestError(
      `'${value}' is not a workload name: use <name> or <namespace>/<name>, each a DNS-1123 label (lowercase letters, digits, '-', at most 63)`,
    );
  return parts.join('/');
}

function toWire(error: unknown): WireError {
  if (error instanceof CloudlessError) {
    const json = error.toJSON() as unknown as WireError;
    return json;
  }
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

export function workloadService(props: WorkloadServiceProps): Behavior<WorkloadServiceMessage> {
  const shardCount = Math.max(1, props.shards ?? 2);
  const admission = props.admission ?? allowAll;

  return Behaviors.setup((ctx) =>
    Behaviors.withTimers<WorkloadServiceMessage>((timers) => {
      const self = ctx.system.nodeId;
      const clientBase = `workloads/${self}/${randomUUID().slice(0, 8)}`;
      let seq = 0;
      let leaderId: string | undefined;
      let leading:
        | {
            term: number;
            controller: ActorRef<WorkloadControllerMessage>;
            shards: ActorRef<SchedulerShardMessage>[];
          }
        | undefined;
      let polling = false;

      async function query(
        key: string,
        prefix: boolean,
        consistency: 'linearizable' | 'serializable',
      ): Promise<KeyValue[]> {
        const kvs: KeyValue[] = [];
        let fromKey: string | undefined;
        for (let page = 0; page < 1000; page++) {
          const reply = await props.member.ask<RaftQueryReply>(
            (replyTo) => ({
              type: 'query',
              key,
              prefix,
              limit: 1000,
              consistency,
              ...(fromKey === undefined ? {} : { fromKey }),
              replyTo,
            }),
            { timeoutMs: 5000 },
          );
          if (!reply.ok) throw new UnavailableError(`reading ${key}: ${reply.error.message}`);
          kvs.push(...reply.result.kvs);
          if (!prefix || !reply.result.more || reply.result.nextKey === undefined) return kvs;
          fromKey = reply.result.nextKey;
        }
        return kvs;
      }

      async function write(command: KvCommand): Promise<{ succeeded: boolean; revision: number }> {
        const reply = await props.member.ask<RaftProposeReply>(
          (replyTo) => ({ type: 'propose', command, clientId: clientBase, seq: ++seq, replyTo }),
          { timeoutMs: 10_000 },
        );
        if (!reply.ok) throw new UnavailableError(`the write did not commit: ${reply.error.message}`);
        return {
          succeeded: reply.result.type !== 'txn' || reply.result.succeeded,
          revision: reply.result.revision,
        };
      }

      async function readWorkload(
        workloadId: string,
      ): Promise<{ record: WorkloadRecord; modRevision: number } | undefined> {
        const key = workloadKey(workloadId);
        const [kv] = await query(key, false, 'linearizable');
        return kv === undefined
          ? undefined
          : { record: decodeWorkloadRecord(kv.value, key), modRevision: kv.modRevision };
      }

      async function putSpec(spec: WorkloadSpec, operation: 'deploy' | 'scale'): Promise<DeployResult> {
        const workloadId = `${spec.namespace}/${spec.name}`;
        for (let attempt = 0; attempt < 5; attempt++) {
          const existing = await readWorkload(workloadId);
          await admit(admission, {
            operation: operation === 'scale' ? 'scale' : existing === undefined ? 'create' : 'update',
            spec,
            workloadId,
          });
          const digest = specDigest(spec);
          if (existing?.record.digest === digest)
            return { workloadId, revision: existing.record.revision, outcome: 'unchanged' };
          const onlyScaled =
            existing !== undefined &&
            specDigest({ ...existing.record.spec, replicas: 0 }) === specDigest({ ...spec, replicas: 0 });
          const now = Date.now();
          const revision =
            existing === undefined ? 1 : onlyScaled ? existing.record.revision : existing.record.revision + 1;
          const record: WorkloadRecord = {
            spec,
            digest,
            revision,
            createdAt: existing?.record.createdAt ?? now,
            updatedAt: now,
          };
          const key = workloadKey(workloadId);
          const result = await write({
            type: 'txn',
            compare: [
              existing === undefined
                ? { key, target: 'version', op: '=', value: 0 }
                : { key, target: 'modRevision', op: '=', value: existing.modRevision },
            ],
            success: [{ type: 'put', key, value: encodeWorkloadRecord(record) }],
            failure: [],
          });
          if (result.succeeded) {
            ctx.log.info('workload written', { workload: workloadId, revision, operation });
            return {
              workloadId,
              revision,
              outcome: existing === undefined ? 'created' : onlyScaled ? 'scaled' : 'updated',
            };
          }
        }
        throw new UnavailableError(`workload ${workloadId} kept changing while it was written; try again`);
      }

      async function deploy(input: unknown): Promise<DeployResult> {
        return putSpec(validateWorkloadSpec(input), 'deploy');
      }

      async function scale(workloadIdInput: unknown, replicas: unknown): Promise<DeployResult> {
        const workloadId = checkWorkloadId(workloadIdInput);
        const existing = await readWorkload(workloadId);
        if (existing === undefined)
          throw new NotFoundError(`there is no workload ${workloadId}; deploy it first`);
        const spec = validateWorkloadSpec({ ...existing.record.spec, replicas });
        return putSpec(spec, 'scale');
      }

      async function remove(workloadIdInput: unknown): Promise<{ removed: boolean }> {
        const workloadId = checkWorkloadId(workloadIdInput);
        const existing = await readWorkload(workloadId);
        if (existing === undefined) throw new NotFoundError(`there is no workload ${workloadId}`);
        await admit(admission, { operation: 'delete', workloadId });
        await write({
          type: 'txn',
          compare: [],
          success: [
            { type: 'delete', key: workloadKey(workloadId) },
            { type: 'delete', key: replicaPrefixOf(workloadId), prefix: true },
          ],
          failure: [],
        });
        ctx.log.info('workload removed', { workload: workloadId });
        return { removed: true };
      }

      async function ps(workloadIdInput: unknown): Promise<WorkloadStatus[]> {
        const only = workloadIdInput === undefined ? undefined : checkWorkloadId(workloadIdInput);
        const workloads = await query(
          only === undefined ? workloadsPrefix : workloadKey(only),
          only === undefined,
          'linearizable',
        );
        if (only !== undefined && workloads.length === 0)
          throw new NotFoundError(`there is no workload ${only}`);
        const replicas = await query(
          only === undefined ? replicasPrefix : replicaPrefixOf(only),
          true,
          'linearizable',
        );
        const byWorkload = new Map<string, ReplicaRecord[]>();
        for (const kv of replicas) {
          try {
            const record = decodeReplicaRecord(kv.value, kv.key);
            const list = byWorkload.get(record.workloadId) ?? [];
            list.push(record);
            byWorkload.set(record.workloadId, list);
          } catch (error) {
            ctx.log.warn('replica record refused', { key: kv.key, error: (error as Error).message });
          }
        }
        const out: WorkloadStatus[] = [];
        for (const kv of workloads) {
          const { spec, revision, createdAt } = decodeWorkloadRecord(kv.value, kv.key);
          const workloadId = `${spec.namespace}/${spec.name}`;
          out.push({
            workloadId,
            kind: spec.kind,
            driver: spec.driver.type,
            desired: spec.replicas,
            revision,
            priority: spec.priority,
            createdAt,
            replicas: (byWorkload.get(workloadId) ?? []).sort((a, b) => a.index - b.index),
          });
        }
        return out;
      }

      async function logs(request: LogsQuery): Promise<LogsResult> {
        const workloadId = checkWorkloadId(request.workloadId);
        const { index, stream, fromOffset, maxBytes } = request;
        if (!Number.isSafeInteger(index) || index < 0 || index > 1000)
          throw new InvalidRequestError(`--replica must be an integer from 0 to 1000, got ${String(index)}`);
        if (stream !== 'stdout' && stream !== 'stderr')
          throw new InvalidRequestError(`the stream is stdout or stderr, got ${String(stream)}`);
        if (
          !Number.isSafeInteger(fromOffset) ||
          !Number.isSafeInteger(maxBytes) ||
          maxBytes <= 0 ||
          maxBytes > 1024 * 1024
        )
          throw new InvalidRequestError('fromOffset must be an integer and maxBytes from 1 to 1 MiB');
        const key = replicaKey(workloadId, index);
        const [kv] = await query(key, false, 'serializable');
        if (kv === undefined) throw new NotFoundError(`workload ${workloadId} has no replica ${index}`);
        const record = decodeReplicaRecord(kv.value, key);
        if (record.node === undefined)
          throw new UnavailableError(
            `replica ${index} of ${workloadId} is ${record.state} and has no node yet`,
          );
        const replicaId = `${workloadId}/${index}#${record.attempt}`;
        const reply = await ctx.system
          .resolve<{ type: 'read-logs' } & Record<string, unknown>>({ node: record.node, path: agentPath })
          .ask<ReadLogsReply>(
            (replyTo) => ({ type: 'read-logs', replicaId, stream, fromOffset, maxBytes, replyTo }),
            { timeoutMs: 5000 },
          );
        if (!reply.ok)
          throw new UnavailableError(
            `the agent on ${record.node} could not read the logs: ${reply.error.message}`,
          );
        return {
          replicaId,
          node: record.node,
          state: record.state,
          data: reply.data,
          nextOffset: reply.nextOffset,
          truncated: reply.truncated,
        };
      }

      async function explain(workloadIdInput: unknown): Promise<ExplainReply> {
        const workloadId = checkWorkloadId(workloadIdInput);
        const shard = leading?.shards[shardIndexOf(workloadId, shardCount)];
        if (shard === undefined) throw new UnavailableError('this coordinator stopped leading; ask again');
        const reply = await shard.ask<ExplainReply>((replyTo) => ({ type: 'explain', workloadId, replyTo }), {
          timeoutMs: 5000,
        });
        if (!reply.found) throw new NotFoundError(`there is no workload ${workloadId}`);
        return reply;
      }

      function answer<TValue>(replyTo: ActorRef<WorkloadReply<TValue>>, work: () => Promise<TValue>): void {
        const done = (async () => work())();
        done.then(
          (value) => replyTo.tell({ ok: true, value }),
          (error: unknown) => replyTo.tell({ ok: false, error: toWire(error) }),
        );
      }

      /** Asks the leader's front door and relays its answer. */
      function relay(request: WorkloadRequest): void {
        const replyTo = request.replyTo as ActorRef<WorkloadReply<unknown>>;
        if (leaderId === undefined || leaderId === self) {
          replyTo.tell({
            ok: false,
            error: {
              code: 'UNAVAILABLE',
              message: 'no coordinator leads right now (an election may be under way); try again',
            },
          });
          return;
        }
        const leader = ctx.system.resolve<WorkloadRequest>({ node: leaderId, path: workloadServicePath });
        leader
          .ask<WorkloadReply<unknown>>((r) => ({ ...request, replyTo: r }) as WorkloadRequest, {
            timeoutMs: 15_000,
          })
          .then(
            (reply) => replyTo.tell(reply),
            (error: unknown) => replyTo.tell({ ok: false, error: toWire(error) }),
          );
      }

      function startLeading(term: number): void {
        const member = props.member;
        const applier = ctx.spawn<PlanApplierMessage>(
          planApplier({ member, clientId: `${clientBase}/applier/${term}` }),
          {
            name: 'applier',
          },
        );
        const shards: ActorRef<SchedulerShardMessage>[] = [];
        for (let i = 0; i < shardCount; i++)
          shards.push(
            ctx.spawn(
              schedulerShard({
                member,
                applier,
                ...(props.weights === undefined ? {} : { weights: props.weights }),
              }),
              {
                name: `shard-${i}`,
              },
            ),
          );
        const controller = ctx.spawn<WorkloadControllerMessage>(
          workloadController({
            member,
            term,
            shardFor: (workloadId) =>
              shards[shardIndexOf(workloadId, shardCount)] as ActorRef<SchedulerShardMessage>,
            ...props.controller,
          }),
          { name: 'controller' },
        );
        leading = { term, controller, shards };
        ctx.log.info('leading workloads', { term, shards: shardCount });
      }

      function stopLeading(): void {
        if (leading === undefined) return;
        for (const child of ctx.children()) ctx.stop(child);
        ctx.log.info('no longer leading workloads', { term: leading.term });
        leading = undefined;
      }

      timers.startTimerWithFixedDelay('poll', { type: 'workloads:poll' }, props.leaderPollMs ?? 200, 0);

      return Behaviors.receive<WorkloadServiceMessage>((_c, message) => {
        switch (message.type) {
          case 'workloads:poll':
            if (polling) return Behaviors.same;
            polling = true;
            ctx.pipeToSelf(
              props.member.ask<RaftStatusReply>((replyTo) => ({ type: 'status', replyTo }), {
                timeoutMs: 1000,
              }),
              (outcome) => ({ type: 'workloads:status', status: outcome.ok ? outcome.value : undefined }),
            );
            return Behaviors.same;
          case 'workloads:status': {
            polling = false;
            const status = message.status;
            if (status === undefined) return Behaviors.same;
            leaderId = status.leaderId;
            const leads = status.role === 'leader' && status.leaderId === self;
            if (leading !== undefined && (!leads || leading.term !== status.term)) stopLeading();
            // Children stop asynchronously; names are free again on a later poll.
            if (leads && leading === undefined && ctx.children().length === 0) startLeading(status.term);
            return Behaviors.same;
          }
          case 'replica-status':
            if (leading !== undefined) leading.controller.tell(message);
            return Behaviors.same;
          case 'workloads:noop':
            return Behaviors.same;
          default: {
            const request = message;
            if (typeof request.replyTo?.tell !== 'function') return Behaviors.same;
            if (leading === undefined) {
              relay(request);
              return Behaviors.same;
            }
            switch (request.type) {
              case 'deploy':
                answer(request.replyTo, () => deploy(request.spec));
                break;
              case 'scale':
                answer(request.replyTo, () => scale(request.workloadId, request.replicas));
                break;
              case 'remove':
                answer(request.replyTo, () => remove(request.workloadId));
                break;
              case 'ps':
                answer(request.replyTo, () => ps(request.workloadId));
                break;
              case 'explain':
                answer(request.replyTo, () => explain(request.workloadId));
                break;
              case 'logs':
                answer(request.replyTo, () => logs(request));
                break;
            }
            return Behaviors.same;
          }
        }
      });
    }),
  );
}
