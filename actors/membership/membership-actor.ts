/**
 * The membership actor every node runs at `/user/membership` (docs/cluster.md):
 *
 * - the view: it loads `/cloudless/members/` and `/cloudless/services/` from a KV front door
 *   (serializable reads, paged), then watches both from the next revision; a watch that ends
 *   (coordinator gone, history compacted) is opened again after a fresh load. On a coordinator
 *   the front door is its own (served by its own Raft member); elsewhere it is a coordinator's,
 *   over the mesh, tried in turn;
 * - heartbeats: every `heartbeatMs` it tells the leader's membership actor
 *   `{ type: 'heartbeat', from, resources, sentAt }`; the leader is learned from the front door's
 *   `status` (every heartbeat on a coordinator, every `leaderRefreshMs` elsewhere). A coordinator
 *   that gets a heartbeat while not leader passes it on once to the leader it knows, wrapped as
 *   `{ type: 'forwarded-heartbeat', from: <itself>, heartbeat }` (the transport drops a message whose
 *   `from` is not the node it came from); the leader takes a forwarded heartbeat only from a
 *   coordinator (a Raft voter or learner, or a member record with the coordinator role);
 * - detection (coordinators): the pure `FailureDetectorCore`, fed with heartbeats, ticks,
 *   leadership changes (from the local member's status) and the records from the view; its
 *   writes go to the local Raft member as txns with a compare on the record's modRevision;
 * - its own record (`ensureOwnRecord`), graceful `leave`, and the cluster receptionist's
 *   `register`/`find` (cluster-receptionist.ts).
 *
 * Time for the detector is `performance.now()` (monotonic); record times are `Date.now()`.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { AbortError, CloudlessError, UnavailableError } from '../../runtime/errors.ts';
import { loadPrefix, unwrapKvReply } from '../raft/kv-prefix-load.ts';
import type {
  KvCommandValue,
  KvQueryValue,
  KvServiceReply,
  KvServiceRequest,
} from '../raft/kv-service-protocol.ts';
import type { KeyValue, KvCommand, KvEvent } from '../raft/kv-types.ts';
import type { RaftProposeReply, RaftStatusReply, RaftWatchEvent } from '../raft/raft-member.ts';
import {
  type ClusterReceptionistMessage,
  membershipActorPath,
  ServiceRegistry,
  serviceEntryKey,
  serviceNodePrefix,
  servicesPrefix,
} from './cluster-receptionist.ts';
import {
  FailureDetectorCore,
  type FailureDetectorInit,
  type FailureDetectorWrite,
} from './failure-detector.ts';
import {
  decodeMemberRecord,
  encodeMemberRecord,
  type MemberRecord,
  type MemberRole,
  memberIdOfKey,
  memberKey,
  membersPrefix,
  type Resources,
  sampleResources,
  validateResources,
} from './member-record.ts';

export const membershipPath = membershipActorPath;

/** A record with the store revision it was read at. */
export interface MemberView {
  readonly record: MemberRecord;
  readonly modRevision: number;
}

export interface MembersReply {
  readonly type: 'members';
  readonly members: readonly MemberView[];
  readonly leaderId: string | undefined;
  readonly term: number;
  /** The view has been loaded from the store at least once. */
  readonly loaded: boolean;
}

/** A member's heartbeat; `from` is the member, and the transport checks it is the node that sent it. */
export interface Heartbeat {
  readonly type: 'heartbeat';
  readonly from: string;
  readonly resources?: Resources;
  readonly sentAt: number;
}

/**
 * A heartbeat a coordinator that was not leader passes on to the leader: `from` is the coordinator
 * (checked by the transport), `heartbeat` what the member sent it (checked by the coordinator's
 * transport). Taken only from a known coordinator; never passed on again.
 */
export interface ForwardedHeartbeat {
  readonly type: 'forwarded-heartbeat';
  readonly from: string;
  readonly heartbeat: Heartbeat;
}

export type MembershipMessage =
  | Heartbeat
  | ForwardedHeartbeat
  | { readonly type: 'members'; readonly replyTo: ActorRef<MembersReply> }
  | {
      readonly type: 'leave';
      readonly replyTo?: ActorRef<{ readonly type: 'left'; readonly ok: boolean; readonly error?: string }>;
    }
  | { readonly type: 'stop'; readonly replyTo: ActorRef<{ readonly type: 'stopped' }> }
  | ClusterReceptionistMessage
  | MembershipInternal;

type MembershipInternal =
  | { readonly type: 'membership:beat' }
  | { readonly type: 'membership:tick' }
  | { readonly type: 'membership:refresh' }
  | { readonly type: 'membership:status'; readonly status: RaftStatusReply | undefined }
  | { readonly type: 'membership:resources'; readonly resources: Resources | undefined }
  | {
      readonly type: 'membership:loaded';
      readonly generation: number;
      readonly members: readonly KeyValue[];
      readonly services: readonly KeyValue[];
      readonly revision: number;
    }
  | { readonly type: 'membership:load-failed'; readonly generation: number; readonly error: string }
  | {
      readonly type: 'membership:watch';
      readonly generation: number;
      readonly event: RaftWatchEvent | { type: 'gone' };
    }
  | { readonly type: 'membership:written'; readonly id: string; readonly ok: boolean }
  | { readonly type: 'membership:service-gone'; readonly key: string; readonly path: string }
  | { readonly type: 'membership:sample' }
  | { readonly type: 'membership:dialed' }
  | { readonly type: 'membership:noop' };

export interface MembershipProps {
  readonly roles: readonly MemberRole[];
  readonly dataDir: string;
  /** True when this node runs a Raft member (its front door and member are local). */
  readonly coordinator: boolean;
  /** The front door on a coordinator node to use; called again (with the attempt) after a failure. */
  readonly frontDoor: (attempt: number) => Promise<ActorRef<KvServiceRequest>>;
  /**
   * Makes sure this node has a link to `id` (the leader its heartbeats go to), dialing one of
   * `addresses` if not; a node that reached the store through a follower has none yet.
   */
  readonly connect?: (id: string, addresses: readonly string[]) => Promise<void>;
  /**
   * Told the voters' addresses from every status: a node that is not a coordinator must still
   * find the store when the coordinator it joined through is gone.
   */
  readonly learnCoordinators?: (addresses: readonly string[]) => void;
  /** This node's addresses, labels and zone for its own record. */
  readonly addresses: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
  readonly zone?: string;
  /** Write this node's record on start (until enrollment does); default true. */
  readonly ensureOwnRecord?: boolean;
  readonly heartbeatMs?: number;
  readonly tickMs?: number;
  readonly leaderRefreshMs?: number;
  readonly resourcesEveryMs?: number;
  readonly detector?: Partial<Omit<FailureDetectorInit, 'self'>>;
  /** Called with every record change this node's view sees (after the first load too). */
  readonly onChange?: (record: MemberRecord, previous: MemberRecord | undefined) => void;
}

const writeTimeoutMs = 3000;

/** One write through a front door, with a fresh (clientId, seq) per call (retries inside the front door keep it). */
async function command(
  front: ActorRef<KvServiceRequest>,
  clientId: string,
  seq: number,
  cmd: KvCommand,
  signal: AbortSignal,
): Promise<KvCommandValue> {
  return unwrapKvReply(
    await front.ask<KvServiceReply<KvCommandValue>>(
      (replyTo) => ({ type: 'command', command: cmd, clientId, seq, timeoutMs: 5000, replyTo }),
      { timeoutMs: 6000, signal },
    ),
  );
}

export interface OwnRecordInit {
  readonly id: string;
  readonly roles: readonly MemberRole[];
  readonly addresses: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly zone: string | undefined;
  readonly resources: Resources | undefined;
}

/**
 * Creates or refreshes this node's own member record: roles, addresses, labels, zone, resources,
 * status alive (keeping `joinedAt` and `tokenId` of an existing record). This is what the
 * enrollment part takes over once token redemption creates the record; until then every node
 * calls it on start. Retries with backoff until it commits or `signal` aborts.
 */
export async function ensureOwnRecord(
  front: () => Promise<ActorRef<KvServiceRequest>>,
  init: OwnRecordInit,
  signal: AbortSignal,
  nextSeq: () => { clientId: string; seq: number },
): Promise<MemberRecord> {
  const key = memberKey(init.id);
  for (let attempt = 0; ; attempt++) {
    try {
      const door = await front();
      const read = unwrapKvReply(
        await door.ask<KvServiceReply<KvQueryValue>>(
          (replyTo) => ({ type: 'query', key, consistency: 'linearizable', timeoutMs: 5000, replyTo }),
          { timeoutMs: 6000, signal },
        ),
      );
      const existing = read.result.kvs[0];
      const previous = existing === undefined ? undefined : decodeMemberRecord(existing.value, init.id);
      const now = Date.now();
      const record: MemberRecord = {
        id: init.id,
        roles: init.roles,
        addresses: init.addresses,
        labels: init.labels,
        zone: init.zone,
        status: 'alive',
        resources: init.resources ?? previous?.resources,
        joinedAt: previous?.joinedAt ?? now,
        statusSince: previous?.status === 'alive' ? previous.statusSince : now,
        tokenId: previous?.tokenId,
      };
      const { clientId, seq } = nextSeq();
      const result = await command(
        door,
        clientId,
        seq,
        {
          type: 'txn',
          compare: [
            existing === undefined
              ? { key, target: 'version', op: '=', value: 0 }
              : { key, target: 'modRevision', op: '=', value: existing.modRevision },
          ],
          success: [{ type: 'put', key, value: encodeMemberRecord(record) }],
          failure: [],
        },
        signal,
      );
      if (result.result.type === 'txn' && result.result.succeeded) return record;
    } catch (error) {
      if (signal.aborted) throw new AbortError('writing the own member record stopped', { cause: error });
    }
    const ceiling = Math.min(5000, 100 * 2 ** Math.min(attempt, 10));
    await sleep(ceiling / 2 + (Math.random() * ceiling) / 2, undefined, { signal }).catch(
      (error: unknown) => {
        throw new AbortError('writing the own member record stopped', { cause: error });
      },
    );
  }
}

export function membershipActor(props: MembershipProps): Behavior<MembershipMessage> {
  const heartbeatMs = props.heartbeatMs ?? 200;
  const tickMs = props.tickMs ?? 50;
  const leaderRefreshMs = props.coordinator ? heartbeatMs : (props.leaderRefreshMs ?? 500);
  const resourcesEveryMs = props.resourcesEveryMs ?? 5000;

  return Behaviors.setup<MembershipMessage>((ctx) =>
    Behaviors.withTimers<MembershipMessage>((timers) => {
      const self = ctx.system.nodeId;
      const stopping = new AbortController();
      const view = new Map<string, MemberView>();
      const services = new ServiceRegistry();
      const core = props.coordinator
        ? new FailureDetectorCore({
            ...props.detector,
            self,
            resourcesEveryMs: props.detector?.resourcesEveryMs ?? 10_000,
          })
        : undefined;
      const clientBase = `membership/${self}/${randomUUID().slice(0, 8)}`;
      let seq = 0;
      const nextSeq = (): { clientId: string; seq: number } => ({ clientId: clientBase, seq: ++seq });
      let frontAttempt = 0;
      let front: Promise<ActorRef<KvServiceRequest>> | undefined;
      const frontDoor = (): Promise<ActorRef<KvServiceRequest>> => {
        front ??= props.frontDoor(frontAttempt).catch((error: unknown) => {
          front = undefined;
          frontAttempt++;
          throw error;
        });
        return front;
      };
      const frontFailed = (): void => {
        if (!props.coordinator) {
          front = undefined;
          frontAttempt++;
        }
      };
      let generation = 0;
      let loaded = false;
      let watching = false;
      let leaderId: string | undefined;
      let term = 0;
      let wasLeader = false;
      let statusInFlight = false;
      let dialing = false;
      /** The Raft group's voters and learners, from the last status (who may forward heartbeats). */
      let raftMembers: ReadonlySet<string> = new Set();
      let resources: Resources | undefined;
      let left = false;
      let serviceWrites: Promise<unknown> = Promise.resolve();
      const watchers: ActorRef<unknown>[] = [];

      const log = ctx.log;
      const now = (): number => performance.now();

      function applyMember(kv: KeyValue, type: 'put' | 'delete'): void {
        const id = memberIdOfKey(kv.key);
        if (id === undefined) return;
        const previous = view.get(id);
        if (type === 'delete') {
          view.delete(id);
          if (core !== undefined) perform(core.step({ type: 'record-deleted', id, at: now() }));
          return;
        }
        let record: MemberRecord;
        try {
          record = decodeMemberRecord(kv.value, id);
        } catch (error) {
          log.warn('member record refused', { member: id, error: (error as Error).message });
          return;
        }
        view.set(id, { record, modRevision: kv.modRevision });
        if (core !== undefined)
          perform(
            core.step({ type: 'record', id, status: record.status, modRevision: kv.modRevision, at: now() }),
          );
        if (previous?.record.status !== record.status)
          log.info('member status', { member: id, status: record.status, was: previous?.record.status });
        props.onChange?.(record, previous?.record);
      }

      function applyEvents(events: readonly KvEvent[]): void {
        for (const event of events) {
          if (event.kv.key.startsWith(membersPrefix)) applyMember(event.kv, event.type);
          else if (event.kv.key.startsWith(servicesPrefix)) {
            if (event.type === 'put') services.put(event.kv.key, event.kv.value);
            else services.delete(event.kv.key);
          }
        }
      }

      function load(delayMs: number): void {
        const g = ++generation;
        watching = false;
        for (const watcher of watchers.splice(0)) ctx.stop(watcher as ActorRef<never>);
        const work = (async () => {
          if (delayMs > 0) await sleep(delayMs, undefined, { signal: stopping.signal });
          const door = await frontDoor();
          const members = await loadPrefix(door, membersPrefix, stopping.signal);
          const svc = await loadPrefix(door, servicesPrefix, stopping.signal);
          return {
            members: members.kvs,
            services: svc.kvs,
            revision: Math.min(members.revision, svc.revision),
          };
        })();
        ctx.pipeToSelf(work, (outcome) =>
          outcome.ok
            ? { type: 'membership:loaded', generation: g, ...outcome.value }
            : { type: 'membership:load-failed', generation: g, error: outcome.error.message },
        );
      }

      function startWatch(
        door: ActorRef<KvServiceRequest>,
        prefix: string,
        fromRevision: number,
        g: number,
      ): void {
        const parent = ctx.self;
        const subscriber = ctx.spawn(
          Behaviors.setup<RaftWatchEvent>((child) => {
            // The coordinator's node going away ends the watch: nothing more can come from it.
            child.watch(door as ActorRef<never>);
            return Behaviors.receive<RaftWatchEvent>((_c, event) => {
              parent.tell({ type: 'membership:watch', generation: g, event });
              return event.type === 'watch-ended' ? Behaviors.stopped : Behaviors.same;
            }).receiveSignal((_c, signal) => {
              if (signal.type === 'Terminated') {
                parent.tell({ type: 'membership:watch', generation: g, event: { type: 'gone' } });
                return Behaviors.stopped;
              }
              return Behaviors.same;
            });
          }),
        );
        watchers.push(subscriber as ActorRef<unknown>);
        door.tell({ type: 'watch', prefix, fromRevision, subscriber });
      }

      function perform(writes: readonly FailureDetectorWrite[]): void {
        for (const write of writes) {
          const current = view.get(write.id);
          if (current === undefined || current.modRevision !== write.expectedModRevision) {
            core?.step({ type: 'write-settled', id: write.id, ok: false, at: now() });
            continue;
          }
          const statusChanged = current.record.status !== write.status;
          const record: MemberRecord = {
            ...current.record,
            status: write.status,
            statusSince: statusChanged ? Date.now() : current.record.statusSince,
            resources: write.resources ?? current.record.resources,
          };
          if (statusChanged)
            log.info('member status decided', {
              member: write.id,
              status: write.status,
              reason: write.reason,
            });
          const key = memberKey(write.id);
          const { clientId, seq: s } = nextSeq();
          const member = ctx.system.resolve<{ type: 'propose' } & Record<string, unknown>>({
            node: self,
            path: '/user/coordinator/raft',
          });
          const proposal = member.ask<RaftProposeReply>(
            (replyTo) => ({
              type: 'propose',
              command: {
                type: 'txn',
                compare: [{ key, target: 'modRevision', op: '=', value: write.expectedModRevision }],
                success: [{ type: 'put', key, value: encodeMemberRecord(record) }],
                failure: [],
              },
              clientId,
              seq: s,
              replyTo,
            }),
            { timeoutMs: writeTimeoutMs, signal: stopping.signal },
          );
          ctx.pipeToSelf(proposal, (outcome) => ({
            type: 'membership:written',
            id: write.id,
            ok:
              outcome.ok &&
              outcome.value.ok &&
              outcome.value.result.type === 'txn' &&
              outcome.value.result.succeeded,
          }));
        }
      }

      function refreshStatus(): void {
        if (statusInFlight) return;
        statusInFlight = true;
        const work = frontDoor().then((door) =>
          door.ask<KvServiceReply<RaftStatusReply>>(
            (replyTo) => ({ type: 'status', timeoutMs: 1000, replyTo }),
            {
              timeoutMs: 1500,
              signal: stopping.signal,
            },
          ),
        );
        ctx.pipeToSelf(work, (outcome) => ({
          type: 'membership:status',
          status: outcome.ok && outcome.value.ok ? outcome.value.value : undefined,
        }));
      }

      function sampleLater(): void {
        ctx.pipeToSelf(sampleResources(props.dataDir), (outcome) => ({
          type: 'membership:resources',
          resources: outcome.ok ? outcome.value : undefined,
        }));
      }

      function writeService(cmd: KvCommand, what: string): Promise<boolean> {
        const next = serviceWrites.then(async () => {
          for (let attempt = 0; attempt < 5 && !stopping.signal.aborted; attempt++) {
            try {
              const { clientId, seq: s } = nextSeq();
              await command(await frontDoor(), clientId, s, cmd, stopping.signal);
              return true;
            } catch (error) {
              log.debug('service registry write failed', { what, error: (error as Error).message });
              await sleep(200 * 2 ** attempt, undefined, { signal: stopping.signal }).catch(() => undefined);
            }
          }
          log.warn(`service registry write did not commit after 5 tries: ${what}`);
          return false;
        });
        serviceWrites = next.catch(() => false);
        return next;
      }

      // A restarted node's registrations name actors that no longer exist.
      void writeService(
        { type: 'delete', key: serviceNodePrefix(self), prefix: true },
        'drop stale registrations',
      );
      if (props.ensureOwnRecord ?? true) {
        const own = ensureOwnRecordFor(props, self, frontDoor, stopping.signal, nextSeq);
        ctx.pipeToSelf(own, (outcome) => {
          if (!outcome.ok && !stopping.signal.aborted)
            log.warn('own member record not written', { error: outcome.error.message });
          return { type: 'membership:noop' };
        });
      }
      timers.startTimerWithFixedDelay('beat', { type: 'membership:beat' }, heartbeatMs);
      timers.startTimerWithFixedDelay('refresh', { type: 'membership:refresh' }, leaderRefreshMs, 0);
      if (core !== undefined) timers.startTimerWithFixedDelay('tick', { type: 'membership:tick' }, tickMs);
      sampleLater();
      load(0);

      /** A coordinator may forward heartbeats: a Raft voter or learner, or a record with that role. */
      function isCoordinator(id: string): boolean {
        return raftMembers.has(id) || view.get(id)?.record.roles.includes('coordinator') === true;
      }

      /** Feeds a valid heartbeat to the detector (leader), or passes it on once (coordinator, not leader). */
      function heartbeat(message: Heartbeat, forwarded: boolean): void {
        if (typeof message.from !== 'string' || message.from.length === 0 || message.from.length > 128)
          return;
        let reported: Resources | undefined;
        try {
          reported = message.resources === undefined ? undefined : validateResources(message.resources);
        } catch {
          return;
        }
        if (core?.isLeader === true) {
          perform(
            core.step({
              type: 'heartbeat',
              from: message.from,
              at: now(),
              ...(reported === undefined ? {} : { resources: reported }),
            }),
          );
        } else if (!forwarded && core !== undefined && leaderId !== undefined && leaderId !== self) {
          ctx.system.resolve<ForwardedHeartbeat>({ node: leaderId, path: membershipPath }).tell({
            type: 'forwarded-heartbeat',
            from: self,
            heartbeat: {
              type: 'heartbeat',
              from: message.from,
              ...(reported === undefined ? {} : { resources: reported }),
              sentAt: typeof message.sentAt === 'number' ? message.sentAt : 0,
            },
          });
        }
      }

      return Behaviors.receive<MembershipMessage>((_ctx, message) => {
        switch (message.type) {
          case 'heartbeat':
            heartbeat(message, false);
            return Behaviors.same;
          case 'forwarded-heartbeat': {
            const inner = message.heartbeat;
            if (typeof message.from !== 'string' || typeof inner !== 'object' || inner === null)
              return Behaviors.same;
            if (!isCoordinator(message.from)) {
              log.debug('forwarded heartbeat refused: the forwarder is not a coordinator', {
                forwarder: message.from.slice(0, 128),
              });
              return Behaviors.same;
            }
            heartbeat(inner, true);
            return Behaviors.same;
          }
          case 'members':
            message.replyTo.tell({
              type: 'members',
              members: [...view.values()].sort((a, b) => a.record.id.localeCompare(b.record.id)),
              leaderId,
              term,
              loaded,
            });
            return Behaviors.same;
          case 'leave': {
            left = true;
            const replyTo = message.replyTo;
            const work = writeOwnStatus(frontDoor, self, 'left', stopping.signal, nextSeq);
            ctx.pipeToSelf(work, (outcome) => {
              replyTo?.tell({
                type: 'left',
                ok: outcome.ok,
                ...(outcome.ok ? {} : { error: outcome.error.message }),
              });
              return { type: 'membership:noop' };
            });
            return Behaviors.same;
          }
          case 'register': {
            const { key, service, replyTo } = message;
            if (service.node !== self || !service.path.startsWith('/user/')) {
              replyTo?.tell({ type: 'registered', key, ok: false });
              return Behaviors.same;
            }
            const entry = { node: self, path: service.path, key };
            ctx.watchWith(service, { type: 'membership:service-gone', key, path: service.path });
            const done = writeService(
              { type: 'put', key: serviceEntryKey(entry), value: JSON.stringify(entry) },
              `register ${service.path} under ${key}`,
            );
            ctx.pipeToSelf(done, (outcome) => {
              replyTo?.tell({ type: 'registered', key, ok: outcome.ok && outcome.value });
              return { type: 'membership:noop' };
            });
            return Behaviors.same;
          }
          case 'membership:service-gone':
            void writeService(
              { type: 'delete', key: serviceEntryKey({ node: self, path: message.path, key: message.key }) },
              `deregister ${message.path} from ${message.key}`,
            );
            return Behaviors.same;
          case 'find':
            message.replyTo.tell({
              type: 'services',
              key: message.key,
              services: services.find(message.key, (node) => view.get(node)?.record.status),
            });
            return Behaviors.same;
          case 'membership:beat':
            if (!left && leaderId !== undefined && leaderId !== self) {
              ctx.system.resolve<Heartbeat>({ node: leaderId, path: membershipPath }).tell({
                type: 'heartbeat',
                from: self,
                ...(resources === undefined ? {} : { resources }),
                sentAt: Date.now(),
              });
            }
            return Behaviors.same;
          case 'membership:tick':
            if (core !== undefined) perform(core.step({ type: 'tick', at: now() }));
            return Behaviors.same;
          case 'membership:refresh':
            refreshStatus();
            return Behaviors.same;
          case 'membership:status': {
            statusInFlight = false;
            const status = message.status;
            if (status === undefined) {
              frontFailed();
              return Behaviors.same;
            }
            leaderId = status.leaderId;
            const voters = status.membership?.voters ?? [];
            raftMembers = new Set([...voters, ...(status.membership?.learners ?? [])]);
            props.learnCoordinators?.(
              voters.flatMap((voter) =>
                (status.membership?.addresses[voter] ?? []).map((a) =>
                  a.includes('/p2p/') ? a : `${a}/p2p/${voter}`,
                ),
              ),
            );
            if (props.connect !== undefined && leaderId !== undefined && leaderId !== self && !dialing) {
              const addresses =
                status.membership?.addresses[leaderId] ?? view.get(leaderId)?.record.addresses ?? [];
              dialing = true;
              const target = leaderId;
              ctx.pipeToSelf(props.connect(target, addresses), (outcome) => {
                if (!outcome.ok)
                  log.debug('leader not reachable yet', { leader: target, error: outcome.error.message });
                return { type: 'membership:dialed' };
              });
            }
            const leaderNow = props.coordinator && status.role === 'leader' && status.id === self;
            const newTerm = status.term !== term;
            term = status.term;
            if (core !== undefined) {
              if (leaderNow && (!wasLeader || newTerm)) {
                log.info('failure detection taken over', {
                  term,
                  graceMs: props.detector?.leaderGraceMs ?? 2000,
                });
                perform(core.step({ type: 'became-leader', at: now() }));
              } else if (!leaderNow && wasLeader) {
                perform(core.step({ type: 'lost-leadership', at: now() }));
              }
            }
            wasLeader = leaderNow;
            return Behaviors.same;
          }
          case 'membership:resources':
            if (message.resources !== undefined) resources = message.resources;
            // Sampling involves a statfs: once every resourcesEveryMs is plenty for a heartbeat field.
            timers.startSingleTimer('sample', { type: 'membership:sample' }, resourcesEveryMs);
            return Behaviors.same;
          case 'membership:dialed':
            dialing = false;
            return Behaviors.same;
          case 'membership:sample':
            sampleLater();
            return Behaviors.same;
          case 'membership:loaded': {
            if (message.generation !== generation) return Behaviors.same;
            const seen = new Set<string>();
            for (const kv of message.members) {
              const id = memberIdOfKey(kv.key);
              if (id !== undefined) seen.add(id);
              applyMember(kv, 'put');
            }
            for (const id of [...view.keys()])
              if (!seen.has(id)) applyMember({ key: memberKey(id) } as KeyValue, 'delete');
            services.clear();
            for (const kv of message.services) services.put(kv.key, kv.value);
            loaded = true;
            const g = generation;
            void frontDoor().then((door) => {
              if (g !== generation) return;
              startWatch(door, membersPrefix, message.revision + 1, g);
              startWatch(door, servicesPrefix, message.revision + 1, g);
            });
            watching = true;
            return Behaviors.same;
          }
          case 'membership:load-failed':
            if (message.generation !== generation || stopping.signal.aborted) return Behaviors.same;
            log.debug('membership view load failed; retrying', { error: message.error });
            frontFailed();
            load(500);
            return Behaviors.same;
          case 'membership:watch': {
            if (message.generation !== generation) return Behaviors.same;
            const event = message.event;
            if (event.type === 'watch-started') {
              applyEvents(event.history);
            } else if (event.type === 'watch-events') {
              applyEvents(event.events);
            } else if (watching && !stopping.signal.aborted) {
              log.info('membership watch ended; loading the view again', {
                reason: event.type === 'gone' ? 'coordinator gone' : event.error.message,
              });
              frontFailed();
              load(200);
            }
            return Behaviors.same;
          }
          case 'membership:written':
            if (core !== undefined)
              perform(core.step({ type: 'write-settled', id: message.id, ok: message.ok, at: now() }));
            return Behaviors.same;
          case 'membership:noop':
            return Behaviors.same;
          case 'stop':
            message.replyTo.tell({ type: 'stopped' });
            return Behaviors.stopped;
        }
      }).receiveSignal((_ctx, signal) => {
        if (signal.type === 'PostStop' || signal.type === 'PreRestart')
          stopping.abort(new AbortError('membership actor stopped'));
        return Behaviors.same;
      });
    }),
  );
}

function ensureOwnRecordFor(
  props: MembershipProps,
  self: string,
  frontDoor: () => Promise<ActorRef<KvServiceRequest>>,
  signal: AbortSignal,
  nextSeq: () => { clientId: string; seq: number },
): Promise<MemberRecord> {
  return sampleResources(props.dataDir).then((resources) =>
    ensureOwnRecord(
      frontDoor,
      {
        id: self,
        roles: props.roles,
        addresses: props.addresses,
        labels: props.labels ?? {},
        zone: props.zone,
        resources,
      },
      signal,
      nextSeq,
    ),
  );
}

/** Sets this node's own status (graceful leave); retries within 10 s. */
async function writeOwnStatus(
  frontDoor: () => Promise<ActorRef<KvServiceRequest>>,
  self: string,
  status: 'left',
  signal: AbortSignal,
  nextSeq: () => { clientId: string; seq: number },
): Promise<void> {
  const key = memberKey(self);
  const deadline = performance.now() + 10_000;
  let problem = 'no attempt finished';
  while (performance.now() < deadline) {
    try {
      const door = await frontDoor();
      const read = unwrapKvReply(
        await door.ask<KvServiceReply<KvQueryValue>>(
          (replyTo) => ({ type: 'query', key, consistency: 'linearizable', timeoutMs: 3000, replyTo }),
          { timeoutMs: 4000, signal },
        ),
      );
      const existing = read.result.kvs[0];
      if (existing === undefined) throw new UnavailableError(`there is no member record for ${self}`);
      const record = decodeMemberRecord(existing.value, self);
      const { clientId, seq } = nextSeq();
      const result = await command(
        door,
        clientId,
        seq,
        {
          type: 'txn',
          compare: [{ key, target: 'modRevision', op: '=', value: existing.modRevision }],
          success: [
            { type: 'put', key, value: encodeMemberRecord({ ...record, status, statusSince: Date.now() }) },
          ],
          failure: [],
        },
        signal,
      );
      if (result.result.type === 'txn' && result.result.succeeded) return;
      problem = 'the record changed while writing; retried';
    } catch (error) {
      if (signal.aborted) throw new AbortError('leave stopped', { cause: error });
      problem = error instanceof CloudlessError ? `${error.code}: ${error.message}` : String(error);
    }
    await sleep(200, undefined, { signal });
  }
  throw new UnavailableError(
    `could not mark ${self} ${status} within 10 s (${problem}); check that a majority of coordinators is up`,
  );
}
