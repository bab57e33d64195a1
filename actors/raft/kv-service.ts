/**
 * The KV front door: the actor every coordinator runs at `kvServicePath` for clients. It checks
 * each request (kv-service-validate.ts), then:
 *
 * - writes, linearizable reads and membership changes go to this node's Raft member; on
 *   NOT_LEADER with a hint they follow the hint to the leader's member, and with no leader known
 *   (an election, a partition) they back off with jitter and ask again, until the request's
 *   deadline. Then the answer is UNAVAILABLE naming what was missing, never a guess. A write is
 *   retried with its own `(clientId, seq)`, so the store applies it at most once;
 * - serializable reads, status and watches are served by this node's member alone.
 *
 * The forwarding runs outside the actor's turn (one promise per request, at most `maxInFlight`)
 * and comes back as a message, so the actor never waits and one slow leader does not hold up
 * other clients. Stopping the actor aborts every retry at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PipeOutcome } from '../../runtime/actor-context.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { AbortError, CloudlessError, TimeoutError } from '../../runtime/errors.ts';
import type { Signal } from '../../runtime/signals.ts';
import type {
  KvCommandValue,
  KvQueryValue,
  KvServiceError,
  KvServiceReply,
  KvServiceRequest,
} from './kv-service-protocol.ts';
import { replyTargetOf, validateKvServiceRequest } from './kv-service-validate.ts';
import type {
  RaftMemberMessage,
  RaftMembershipReply,
  RaftProposeReply,
  RaftQueryReply,
  RaftStatusReply,
  RaftTransferLeadershipReply,
} from './raft-member.ts';
import type { Membership, NodeId } from './raft-types.ts';

export interface KvServiceProps {
  /** This node's Raft member. */
  readonly member: ActorRef<RaftMemberMessage>;
  /** The member on another node (the leader a NOT_LEADER reply names). */
  readonly peerRef: (id: NodeId) => ActorRef<RaftMemberMessage>;
  /** How long a request keeps trying when it gives no `timeoutMs`; default 10 s. */
  readonly defaultTimeoutMs?: number;
  /** Deadline of one ask to a member; default 3 s (a dead leader costs at most this per try). */
  readonly attemptTimeoutMs?: number;
  /** Backoff between tries when no leader answers: exponential from `minMs` to `maxMs`, with jitter. */
  readonly retry?: { readonly minMs?: number; readonly maxMs?: number };
  /** Requests being served at once; one more is answered UNAVAILABLE (default 4096). */
  readonly maxInFlight?: number;
  /** Jitter source; default Math.random. */
  readonly random?: () => number;
}

interface ServeDone {
  readonly type: 'kv-service:done';
  readonly replyTo: ActorRef<KvServiceReply<unknown>>;
  readonly outcome: PipeOutcome<KvServiceReply<unknown>>;
}

export type KvServiceMessage = KvServiceRequest | ServeDone;

/** Replies a member sends for requests that can be forwarded to the leader. */
type LeaderReply = RaftProposeReply | RaftQueryReply | RaftMembershipReply | RaftTransferLeadershipReply;

const ok = <TValue>(value: TValue): KvServiceReply<TValue> => ({ ok: true, value });

function failure(error: KvServiceError): KvServiceReply<never> {
  return { ok: false, error };
}

function wireError(error: unknown): KvServiceError {
  if (error instanceof CloudlessError) return { code: error.code, message: error.message };
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

export function kvService(props: KvServiceProps): Behavior<KvServiceMessage> {
  const defaultTimeoutMs = props.defaultTimeoutMs ?? 10_000;
  const attemptTimeoutMs = props.attemptTimeoutMs ?? 3000;
  const minBackoffMs = props.retry?.minMs ?? 50;
  const maxBackoffMs = props.retry?.maxMs ?? 1000;
  const maxInFlight = props.maxInFlight ?? 4096;
  const random = props.random ?? Math.random;
  const { member } = props;

  return Behaviors.setup<KvServiceMessage>((ctx) => {
    const stopping = new AbortController();
    let inFlight = 0;

    function backoff(attempt: number, remainingMs: number): Promise<void> {
      const ceiling = Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(attempt, 16));
      const delay = Math.min(remainingMs, ceiling / 2 + (random() * ceiling) / 2);
      return sleep(Math.max(0, delay), undefined, { signal: stopping.signal });
    }

    /**
     * Sends `build` to this node's member, following NOT_LEADER hints to the leader and backing
     * off while no leader is known, until `deadline` (performance.now() time).
     */
    async function toLeader<TReply extends LeaderReply>(
      what: string,
      build: (replyTo: ActorRef<TReply>) => RaftMemberMessage,
      deadline: number,
      timeoutMs: number,
    ): Promise<TReply | KvServiceReply<never>> {
      let target = member;
      let attempt = 0;
      let hops = 0;
      let problem = 'no member has said who leads';
      for (;;) {
        const remaining = deadline - performance.now();
        if (remaining <= 0) break;
        let reply: TReply;
        try {
          reply = await target.ask<TReply>(build, {
            timeoutMs: Math.max(1, Math.min(remaining, attemptTimeoutMs)),
            signal: stopping.signal,
          });
        } catch (error) {
          if (!(error instanceof TimeoutError)) throw error;
          problem =
            target === member
              ? `this node's raft member did not answer within ${attemptTimeoutMs} ms`
              : `leader ${target.node} did not answer within ${attemptTimeoutMs} ms`;
          target = member;
          await backoff(attempt++, deadline - performance.now());
          continue;
        }
        if (reply.ok) return reply;
        const { code } = reply.error;
        const hint = reply.leaderHint;
        if (code === 'NOT_LEADER' || code === 'UNAVAILABLE') {
          const next = hint === undefined ? member : hint === member.node ? member : props.peerRef(hint);
          const moved = code === 'NOT_LEADER' && hint !== undefined && next.node !== target.node;
          problem =
            code === 'UNAVAILABLE'
              ? reply.error.message
              : hint === undefined
                ? 'no leader is known (an election may be under way)'
                : `leader ${hint} did not take the request`;
          target = next;
          // Follow a fresh hint at once; back off when the hint goes nowhere new or hints ping-pong.
          if (moved && ++hops <= 3) continue;
          hops = 0;
          await backoff(attempt++, deadline - performance.now());
          continue;
        }
        return reply;
      }
      return failure({
        code: 'UNAVAILABLE',
        message:
          `${what}: no leader within ${(timeoutMs / 1000).toFixed(1)}s (${problem}); ` +
          'check that a majority of coordinators is up and reachable',
      });
    }

    function passOn<TValue>(
      reply: LeaderReply | KvServiceReply<never>,
      value: (reply: Extract<LeaderReply, { ok: true }>) => TValue,
    ): KvServiceReply<TValue> {
      if (reply.ok) return ok(value(reply as Extract<LeaderReply, { ok: true }>));
      const error = (reply as { error: KvServiceError }).error;
      const leaderHint = (reply as { leaderHint?: NodeId }).leaderHint ?? error.leaderHint;
      return failure({
        code: error.code,
        message: error.message,
        ...(leaderHint === undefined ? {} : { leaderHint }),
      });
    }

    async function serve(
      request: Exclude<KvServiceRequest, { type: 'watch' | 'cancel-watch' }>,
    ): Promise<KvServiceReply<unknown>> {
      const timeoutMs = request.timeoutMs ?? defaultTimeoutMs;
      const deadline = performance.now() + timeoutMs;
      switch (request.type) {
        case 'command': {
          const { command, clientId, seq } = request;
          const reply = await toLeader<RaftProposeReply>(
            `${command.type} ${command.type === 'txn' ? '' : `'${command.key}'`}`.trimEnd(),
            (replyTo) => ({ type: 'propose', command, clientId, seq, replyTo }),
            deadline,
            timeoutMs,
          );
          return passOn<KvCommandValue>(reply, (r) => {
            const { result, duplicate, index } = r as Extract<RaftProposeReply, { ok: true }>;
            return { result, duplicate, index };
          });
        }
        case 'query': {
          const consistency = request.consistency ?? 'linearizable';
          const build = (replyTo: ActorRef<RaftQueryReply>): RaftMemberMessage => ({
            type: 'query',
            key: request.key,
            ...(request.prefix === undefined ? {} : { prefix: request.prefix }),
            ...(request.limit === undefined ? {} : { limit: request.limit }),
            ...(request.fromKey === undefined ? {} : { fromKey: request.fromKey }),
            consistency,
            replyTo,
          });
          const reply =
            consistency === 'serializable'
              ? await member.ask<RaftQueryReply>(build, { timeoutMs, signal: stopping.signal })
              : await toLeader<RaftQueryReply>(`read '${request.key}'`, build, deadline, timeoutMs);
          return passOn<KvQueryValue>(reply, (r) => {
            const { result, appliedIndex } = r as Extract<RaftQueryReply, { ok: true }>;
            return { result, appliedIndex };
          });
        }
        case 'status':
          return ok(
            await member.ask<RaftStatusReply>((replyTo) => ({ type: 'status', replyTo }), {
              timeoutMs,
              signal: stopping.signal,
            }),
          );
        case 'join': {
          const { id, addresses } = request;
          const reply = await toLeader<RaftMembershipReply>(
            `add member ${id}`,
            (replyTo) => ({ type: 'add-member', id, addresses, replyTo }),
            deadline,
            timeoutMs,
          );
          return passOn<Membership>(
            reply,
            (r) => (r as Extract<RaftMembershipReply, { ok: true }>).membership,
          );
        }
        case 'remove-member': {
          const { id } = request;
          const reply = await toLeader<RaftMembershipReply>(
            `remove member ${id}`,
            (replyTo) => ({ type: 'remove-member', id, replyTo }),
            deadline,
            timeoutMs,
          );
          return passOn<Membership>(
            reply,
            (r) => (r as Extract<RaftMembershipReply, { ok: true }>).membership,
          );
        }
        case 'transfer-leadership': {
          const { to } = request;
          const reply = await toLeader<RaftTransferLeadershipReply>(
            'transfer leadership',
            (replyTo) => ({ type: 'transfer-leadership', ...(to === undefined ? {} : { to }), replyTo }),
            deadline,
            timeoutMs,
          );
          return passOn(reply, (r) => ({
            leaderId: (r as Extract<RaftTransferLeadershipReply, { ok: true }>).leaderId,
          }));
        }
      }
    }

    return Behaviors.receive<KvServiceMessage>((_ctx, message) => {
      if (message.type === 'kv-service:done') {
        inFlight--;
        const { outcome } = message;
        if (outcome.ok) {
          message.replyTo.tell(outcome.value);
        } else if (outcome.error instanceof AbortError || stopping.signal.aborted) {
          message.replyTo.tell(
            failure({
              code: 'UNAVAILABLE',
              message: `coordinator ${ctx.system.nodeId} is stopping; retry on another`,
            }),
          );
        } else {
          // An ask of this node's own member timed out (serializable read, status).
          message.replyTo.tell(failure(wireError(outcome.error)));
        }
        return Behaviors.same;
      }
      let request: KvServiceRequest;
      try {
        request = validateKvServiceRequest(message);
      } catch (error) {
        const target = replyTargetOf(message);
        const wire = wireError(error);
        if (target === undefined) {
          ctx.log.warn('kv request without a valid reply target dropped', { error: wire.message });
        } else if ((message as { type?: unknown }).type === 'watch') {
          (target as ActorRef<unknown>).tell({ type: 'watch-ended', watchId: 0, error: wire });
        } else {
          (target as ActorRef<unknown>).tell(failure(wire));
        }
        return Behaviors.same;
      }
      switch (request.type) {
        case 'watch':
          member.tell({
            type: 'watch',
            prefix: request.prefix,
            fromRevision: request.fromRevision ?? 0,
            ...(request.prevKv === undefined ? {} : { prevKv: request.prevKv }),
            subscriber: request.subscriber,
          });
          return Behaviors.same;
        case 'cancel-watch':
          member.tell({ type: 'cancel-watch', watchId: request.watchId });
          return Behaviors.same;
        default: {
          const replyTo = request.replyTo as ActorRef<KvServiceReply<unknown>>;
          if (inFlight >= maxInFlight) {
            replyTo.tell(
              failure({
                code: 'UNAVAILABLE',
                message: `coordinator ${ctx.system.nodeId} is serving ${inFlight} requests (limit ${maxInFlight}); retry with backoff`,
              }),
            );
            return Behaviors.same;
          }
          inFlight++;
          ctx.pipeToSelf(serve(request), (outcome) => ({ type: 'kv-service:done', replyTo, outcome }));
          return Behaviors.same;
        }
      }
    }).receiveSignal((_ctx, signal: Signal) => {
      if (signal.type === 'PostStop' || signal.type === 'PreRestart')
        stopping.abort(new AbortError('kv service stopped'));
      return Behaviors.same;
    });
  });
}
