/**
 * Keeps an `Admission` in step with the store: lists `/cloudless/` (members, block list, the
 * admin credential's hash) through a coordinator's front door, then watches it from the listing's
 * revision on. A watch that ends (the member restarted, a snapshot was installed, the front
 * door's node went away) or a listing that fails is retried with backoff; meanwhile the last
 * view stays in force. Events replayed from before a listing page converge to the same state,
 * since each one sets a key to its value at that revision, in order.
 *
 * The membership actor (actors/membership/) will keep the richer view; this feed is what
 * admission needs and nothing more.
 */
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import type { KvQueryValue, KvServiceReply, KvServiceRequest } from '../raft/kv-service-protocol.ts';
import type { KeyValue, KvEvent } from '../raft/kv-types.ts';
import type { RaftWatchEvent } from '../raft/raft-member.ts';
import { adminCredentialKey, decodeAdminCredentialRecord } from './admin-credential.ts';
import type { Admission } from './admission.ts';
import { blockedPrefix, decodeMemberRecord, type MemberRecord, membersPrefix } from './member-record.ts';

export const cloudlessPrefix = '/cloudless/';

type Listing = { kvs: KeyValue[]; revision: number };

export type AdmissionFeedMessage =
  | RaftWatchEvent
  | { readonly type: 'feed:list' }
  | {
      readonly type: 'feed:listed';
      readonly outcome: { ok: true; value: Listing } | { ok: false; error: Error };
    }
  | { readonly type: 'feed:start-deadline'; readonly attempt: number }
  | { readonly type: 'feed:front-gone' }
  | { readonly type: 'feed:stop' };

export interface AdmissionFeedProps {
  readonly admission: Admission;
  /** A coordinator's front door: this node's own, or (on agents) one the join answer named. */
  readonly front: ActorRef<KvServiceRequest>;
  /** Called after every applied change (the membership engineer may hook in here). */
  readonly onMember?: (peerId: string, record: MemberRecord | undefined) => void;
  readonly retry?: { readonly minMs?: number; readonly maxMs?: number };
  /** Deadline of a listing page and of a watch's start; default 10 s. */
  readonly timeoutMs?: number;
  readonly random?: () => number;
}

export function applyToAdmission(
  admission: Admission,
  key: string,
  value: string | undefined,
  log: { warn(message: string, meta?: object): void },
  onMember?: (peerId: string, record: MemberRecord | undefined) => void,
): void {
  try {
    if (key.startsWith(membersPrefix)) {
      const peerId = key.slice(membersPrefix.length);
      const record = value === undefined ? undefined : decodeMemberRecord(value, key);
      admission.memberChanged(peerId, record);
      onMember?.(peerId, record);
    } else if (key.startsWith(blockedPrefix)) {
      const peerId = key.slice(blockedPrefix.length);
      if (value === undefined) admission.unblock(peerId);
      else admission.block(peerId);
    } else if (key === adminCredentialKey) {
      admission.setCredentialHash(value === undefined ? undefined : decodeAdminCredentialRecord(value).hash);
    }
  } catch (error) {
    // A record another writer broke stays out of the view; the rest of it is unaffected.
    log.warn('admission feed ignored an invalid record', { key, error: (error as Error).message });
  }
}

export function admissionFeed(props: AdmissionFeedProps): Behavior<AdmissionFeedMessage> {
  const timeoutMs = props.timeoutMs ?? 10_000;
  const minMs = props.retry?.minMs ?? 200;
  const maxMs = props.retry?.maxMs ?? 5000;
  const random = props.random ?? Math.random;
  const { admission, front } = props;
  return Behaviors.withTimers<AdmissionFeedMessage>((timers) =>
    Behaviors.setup<AdmissionFeedMessage>((ctx) => {
      let failures = 0;
      let watchId: number | undefined;
      let attempt = 0;
      ctx.watchWith(front as ActorRef<never>, { type: 'feed:front-gone' });

      async function list(): Promise<Listing> {
        const kvs: KeyValue[] = [];
        let fromKey: string | undefined;
        let revision: number | undefined;
        for (let page = 0; page < 10_000; page++) {
          const reply = await front.ask<KvServiceReply<KvQueryValue>>(
            (replyTo) => ({
              type: 'query',
              key: cloudlessPrefix,
              prefix: true,
              limit: 1000,
              ...(fromKey === undefined ? {} : { fromKey }),
              consistency: 'serializable',
              timeoutMs,
              replyTo,
            }),
            { timeoutMs: timeoutMs + 1000 },
          );
          if (!reply.ok) throw new Error(`${reply.error.code}: ${reply.error.message}`);
          revision ??= reply.value.result.revision;
          kvs.push(...reply.value.result.kvs);
          if (!reply.value.result.more || reply.value.result.nextKey === undefined) break;
          fromKey = reply.value.result.nextKey;
        }
        return { kvs, revision: revision ?? 0 };
      }

      function retryLater(why: string): void {
        if (watchId !== undefined) front.tell({ type: 'cancel-watch', watchId });
        watchId = undefined;
        attempt++;
        const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(failures++, 16));
        const delay = ceiling / 2 + (random() * ceiling) / 2;
        ctx.log.debug('admission feed retries', { why, delayMs: Math.round(delay) });
        timers.startSingleTimer('list', { type: 'feed:list' }, delay);
      }

      function apply(events: readonly KvEvent[]): void {
        for (const event of events)
          applyToAdmission(
            admission,
            event.kv.key,
            event.type === 'put' ? event.kv.value : undefined,
            ctx.log,
            props.onMember,
          );
      }

      ctx.pipeToSelf(list(), (outcome) => ({ type: 'feed:listed', outcome }));
      return Behaviors.receive<AdmissionFeedMessage>((_ctx, message) => {
        switch (message.type) {
          case 'feed:stop':
            return Behaviors.stopped;
          case 'feed:list':
            ctx.pipeToSelf(list(), (outcome) => ({ type: 'feed:listed', outcome }));
            return Behaviors.same;
          case 'feed:listed': {
            if (!message.outcome.ok) {
              retryLater(message.outcome.error.message);
              return Behaviors.same;
            }
            const { kvs, revision } = message.outcome.value;
            const members: MemberRecord[] = [];
            const blocked: string[] = [];
            let credential: string | undefined;
            for (const kv of kvs) {
              if (kv.key.startsWith(membersPrefix)) {
                try {
                  members.push(decodeMemberRecord(kv.value, kv.key));
                } catch (error) {
                  ctx.log.warn('admission feed ignored an invalid member record', {
                    key: kv.key,
                    error: (error as Error).message,
                  });
                }
              } else if (kv.key.startsWith(blockedPrefix)) blocked.push(kv.key.slice(blockedPrefix.length));
              else if (kv.key === adminCredentialKey) credential = kv.value;
            }
            admission.resetMembers(members, blocked);
            applyToAdmission(admission, adminCredentialKey, credential, ctx.log);
            front.tell({
              type: 'watch',
              prefix: cloudlessPrefix,
              fromRevision: revision + 1,
              subscriber: ctx.self,
            });
            timers.startSingleTimer('start', { type: 'feed:start-deadline', attempt }, timeoutMs);
            return Behaviors.same;
          }
          case 'watch-started':
            timers.cancel('start');
            watchId = message.watchId;
            failures = 0;
            apply(message.history);
            return Behaviors.same;
          case 'watch-events':
            if (message.watchId === watchId) apply(message.events);
            return Behaviors.same;
          case 'watch-ended':
            if (watchId === undefined || message.watchId === watchId || message.watchId <= 0) {
              watchId = undefined;
              retryLater(`watch ended: ${message.error.message}`);
            }
            return Behaviors.same;
          case 'feed:start-deadline':
            if (watchId === undefined && message.attempt === attempt)
              retryLater('the watch did not start in time');
            return Behaviors.same;
          case 'feed:front-gone':
            // The front door's node is unreachable: its actor ref stays valid; watch it again
            // so the feed notices the next time too.
            watchId = undefined;
            ctx.watchWith(front as ActorRef<never>, { type: 'feed:front-gone' });
            retryLater('the front door went away');
            return Behaviors.same;
        }
      }).receiveSignal((_ctx, signal) => {
        if (signal.type === 'PostStop' && watchId !== undefined)
          front.tell({ type: 'cancel-watch', watchId });
        return Behaviors.same;
      });
    }),
  );
}
