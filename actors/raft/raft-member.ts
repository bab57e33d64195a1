/**
 * The Raft member as an actor: the thin shell around the pure core (`raft-core.ts`). It owns the
 * member's `RaftLogStore` and `KvStore`, ticks the core on a timer, and performs the core's
 * effects in the documented order:
 *
 * 1. persist — handed to `RaftLogStore.persist` at once (in step order, so the store's group
 *    commit batches them), but nothing that depends on it happens before its fsync resolves;
 * 2. send — each raft message is told to the peer member's ref wrapped as `{ type: 'raft' }`;
 * 3. apply — committed entries go to the `KvStore` in index order and the proposal that created
 *    each entry (keyed by index and term) is answered;
 * 4. role-change — recorded for `status`.
 *
 * Every step's effects form one batch in a FIFO; a batch's sends, applies and role changes run
 * only once its persists and every earlier batch are done, so order is kept while later steps
 * still proceed (and their persists join the same flush).
 *
 * Peers are plain `ActorRef`s (remote refs over the mesh): nothing here assumes locality.
 */
import type { ActorContext, PipeOutcome } from '../../runtime/actor-context.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { CloudlessError, UnavailableError } from '../../runtime/errors.ts';
import type { Signal } from '../../runtime/signals.ts';
import type { StashBuffer } from '../../runtime/stash-buffer.ts';
import type { TimerScheduler } from '../../runtime/timer-scheduler.ts';
import { KvStore, type KvStoreInit } from './kv-store.ts';
import type { KeyValue, KvCommand, KvEvent, KvRangeResult, KvResult } from './kv-types.ts';
import { validateKvCommand } from './kv-validate.ts';
import {
  type CoreOutcome,
  compact,
  isCaughtUp,
  persisted,
  proposeMany,
  proposeMembershipChange,
  readIndex,
  restartRaft,
  step,
  tick,
  transferLeadership,
} from './raft-core.ts';
import { lastIndex } from './raft-log.ts';
import { RaftLogStore, type RaftLogStoreOptions } from './raft-log-store.ts';
import type {
  LogEntry,
  Membership,
  NodeId,
  RaftConfig,
  RaftEffect,
  RaftMessage,
  RaftRole,
  RaftState,
  SnapshotMeta,
} from './raft-types.ts';
import { chunkSnapshot, type RaftSnapshotChunk, SnapshotAssembler } from './snapshot-chunks.ts';

/** An error as it travels in a reply: `{ code, message }`, rebuilt as the same class by a client. */
export interface RaftMemberError {
  readonly code: string;
  readonly message: string;
}

export type RaftProposeReply =
  | {
      readonly ok: true;
      readonly result: KvResult;
      /** The `(clientId, seq)` had been applied before: this is the cached result. */
      readonly duplicate: boolean;
      readonly index: number;
    }
  | { readonly ok: false; readonly error: RaftMemberError; readonly leaderHint?: NodeId | undefined };

/**
 * A serializable read of this member's local state machine: it may be stale (a follower behind,
 * or a deposed leader that does not know it yet). Linearizable reads (ReadIndex) come later.
 */
export type RaftReadReply =
  | {
      readonly ok: true;
      readonly kv: KeyValue | undefined;
      /** The local store's revision when the read was served. */
      readonly revision: number;
      readonly appliedIndex: number;
    }
  | { readonly ok: false; readonly error: RaftMemberError };

export interface RaftStatusReply {
  readonly id: NodeId;
  readonly role: RaftRole;
  readonly term: number;
  readonly leaderId: NodeId | undefined;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  /** Index of the last snapshot the log was compacted to (0: none). */
  readonly snapshotIndex: number;
  /** The membership in effect here (the latest config entry in this member's log). */
  readonly membership: Membership;
}

/**
 * A raft message from a peer member. `from` repeats `message.from` at the top, where the transport
 * checks it is the node the message came from (a member id is its node's PeerId); a message whose
 * two differ is ignored, so no node can speak for another member.
 */
export interface RaftPeerMessage {
  readonly type: 'raft';
  readonly from: NodeId;
  readonly message: RaftMessage;
}

/** Proposes a command; answered once it is applied here (leader only). */
export interface RaftProposeRequest {
  readonly type: 'propose';
  readonly command: KvCommand;
  readonly clientId: string;
  readonly seq: number;
  readonly replyTo: ActorRef<RaftProposeReply>;
}

/** A serializable (possibly stale) local read of one key; see `RaftReadReply`. Kept for simple callers; `query` does more. */
export interface RaftReadRequest {
  readonly type: 'read';
  readonly key: string;
  readonly replyTo: ActorRef<RaftReadReply>;
}

/**
 * A read of one key (`prefix` false) or of keys starting with `key` (paged by `limit` and
 * `fromKey`). `linearizable` (leader only, else NOT_LEADER with a hint) confirms leadership with
 * a quorum (ReadIndex) and waits until that commit index is applied; `serializable` answers from
 * this member's state at once, possibly stale.
 */
export interface RaftQueryRequest {
  readonly type: 'query';
  readonly key: string;
  readonly prefix?: boolean;
  readonly limit?: number;
  readonly fromKey?: string;
  readonly consistency: 'linearizable' | 'serializable';
  readonly replyTo: ActorRef<RaftQueryReply>;
}

export type RaftQueryReply =
  | { readonly ok: true; readonly result: KvRangeResult; readonly appliedIndex: number }
  | { readonly ok: false; readonly error: RaftMemberError; readonly leaderHint?: NodeId | undefined };

/**
 * Opens a watch on keys starting with `prefix` on this member (any member: events come in
 * revision order as this member applies them). The subscriber gets `watch-started` (with the
 * retained history from `fromRevision`), then `watch-events`, until `watch-ended` or it cancels.
 * The member death-watches the subscriber and cancels for it.
 */
export interface RaftWatchRequest {
  readonly type: 'watch';
  readonly prefix: string;
  /** First revision to deliver; 0: only changes after now. */
  readonly fromRevision: number;
  readonly prevKv?: boolean;
  readonly subscriber: ActorRef<RaftWatchEvent>;
}

export interface RaftCancelWatchRequest {
  readonly type: 'cancel-watch';
  readonly watchId: number;
}

export type RaftWatchEvent =
  | {
      readonly type: 'watch-started';
      readonly watchId: number;
      /** Store revision when the watch started; live events come after it. */
      readonly revision: number;
      readonly history: readonly KvEvent[];
    }
  | { readonly type: 'watch-events'; readonly watchId: number; readonly events: readonly KvEvent[] }
  | { readonly type: 'watch-ended'; readonly watchId: number; readonly error: RaftMemberError };

/**
 * Adds a member (leader only): it joins as a learner, and once it has caught up the leader
 * promotes it to voter; the reply comes then. Adding a present voter answers at once.
 */
export interface RaftAddMemberRequest {
  readonly type: 'add-member';
  readonly id: NodeId;
  readonly addresses: readonly string[];
  readonly replyTo: ActorRef<RaftMembershipReply>;
}

/** Removes a voter or learner (leader only); answered once the change is committed. */
export interface RaftRemoveMemberRequest {
  readonly type: 'remove-member';
  readonly id: NodeId;
  readonly replyTo: ActorRef<RaftMembershipReply>;
}

export type RaftMembershipReply =
  | { readonly ok: true; readonly membership: Membership }
  | { readonly ok: false; readonly error: RaftMemberError; readonly leaderHint?: NodeId | undefined };

/** Hands leadership to `to` (or the most caught-up voter); answered when a new leader is known. */
export interface RaftTransferLeadershipRequest {
  readonly type: 'transfer-leadership';
  readonly to?: NodeId;
  readonly replyTo: ActorRef<RaftTransferLeadershipReply>;
}

export type RaftTransferLeadershipReply =
  | { readonly ok: true; readonly leaderId: NodeId }
  | { readonly ok: false; readonly error: RaftMemberError; readonly leaderHint?: NodeId | undefined };

export interface RaftStatusRequest {
  readonly type: 'status';
  readonly replyTo: ActorRef<RaftStatusReply>;
}

/** Internal messages of the shell (timer ticks and piped I/O completions). */
type RaftMemberInternal =
  | {
      readonly type: 'raft-member:opened';
      readonly incarnation: number;
      readonly outcome: PipeOutcome<OpenedStore>;
    }
  | { readonly type: 'raft-member:tick' }
  | { readonly type: 'raft-member:propose-batch' }
  | {
      readonly type: 'raft-member:persisted';
      readonly batch: number;
      /** The last entry the persist wrote, reported to the core once durable. */
      readonly last: { readonly index: number; readonly term: number } | undefined;
      readonly outcome: PipeOutcome<void>;
    }
  | {
      readonly type: 'raft-member:snapshot-saved';
      readonly index: number;
      readonly outcome: PipeOutcome<void>;
    }
  | { readonly type: 'raft-member:subscriber-gone'; readonly watchId: number };

interface OpenedStore {
  readonly store: RaftLogStore;
  readonly snapshot: { readonly meta: SnapshotMeta; readonly data: Uint8Array } | undefined;
}

export type RaftMemberMessage =
  | RaftPeerMessage
  | RaftSnapshotChunk
  | RaftProposeRequest
  | RaftReadRequest
  | RaftQueryRequest
  | RaftWatchRequest
  | RaftCancelWatchRequest
  | RaftAddMemberRequest
  | RaftRemoveMemberRequest
  | RaftTransferLeadershipRequest
  | RaftStatusRequest
  | RaftMemberInternal;

export interface RaftMemberProps {
  readonly id: NodeId;
  /**
   * The voters of a brand-new group: `[id]` to bootstrap a one-member group, `[]` for a member
   * that joins an existing group (it waits for a leader to add it). Ignored once this member's
   * log or snapshot holds a membership.
   */
  readonly initialVoters?: readonly NodeId[];
  /** Where this member listens; recorded in the membership when it bootstraps. */
  readonly addresses?: readonly string[];
  /** The member actor on another node (local or remote ref). */
  readonly peerRef?: (id: NodeId) => ActorRef<RaftMemberMessage>;
  /**
   * Fixed peers (id → ref) for tests with members in one system: sets `peerRef` and, unless
   * given, `initialVoters` (all of them plus `id`).
   */
  readonly members?: Readonly<Record<NodeId, ActorRef<RaftMemberMessage>>>;
  /** Called with the membership in effect whenever it changes (and once at start). */
  readonly onMembership?: (membership: Membership) => void;
  /** Applied entries between snapshots (log compaction); default 10,000. */
  readonly snapshotEvery?: number;
  /** A snapshot sent to a follower travels in chunks of at most this size; default 1 MiB. */
  readonly snapshotChunkBytes?: number;
  /** Largest snapshot accepted from a leader; default 1 GiB. */
  readonly maxSnapshotBytes?: number;
  readonly dataDir: string;
  /** Milliseconds per core tick (default 20). */
  readonly tickMs?: number;
  /** Overrides of the core's config; `seed` defaults to a random one per start. */
  readonly config?: Partial<Omit<RaftConfig, 'id' | 'members'>>;
  readonly logStore?: RaftLogStoreOptions;
  readonly kvStore?: KvStoreInit;
  /** Most proposals waiting to be applied; one more is refused with UNAVAILABLE (default 1024). */
  readonly maxPendingProposals?: number;
  /** Messages stashed while the log store opens (default 1024). */
  readonly stashCapacity?: number;
}

/** What a command entry carries in the log. */
interface CommandData {
  readonly command: KvCommand;
  readonly clientId: string;
  readonly seq: number;
}

interface Batch {
  readonly id: number;
  readonly effects: readonly RaftEffect[];
  /** Persists of this batch whose fsync has not resolved yet. */
  waiting: number;
}

const TICK_KEY = 'raft-member:tick';

/** Messages only a leader sends; see `enqueue`. */
const leaderMessages: ReadonlySet<RaftMessage['type']> = new Set([
  'append-entries',
  'install-snapshot',
  'timeout-now',
]);

function errorOf(error: unknown): RaftMemberError {
  if (error instanceof CloudlessError) return { code: error.code, message: error.message };
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/** How long a linearizable read, a membership change or a transfer may wait before failing. */
const DEFAULT_WAIT_MS = 10_000;

interface WaitingRead {
  readonly request: RaftQueryRequest;
  readonly deadline: number;
}

interface MembershipWaiter {
  readonly kind: 'add' | 'remove';
  readonly id: NodeId;
  readonly addresses: readonly string[];
  readonly replyTo: ActorRef<RaftMembershipReply>;
  readonly deadline: number;
}

interface OpenWatch {
  readonly watchId: number;
  readonly subscriber: ActorRef<RaftWatchEvent>;
}

function failure(code: string, message: string): RaftMemberError {
  return { code, message };
}

/** The Raft member actor; see the module comment. Wrap it in a supervisor to restart it on failure. */
export function raftMember(props: RaftMemberProps): Behavior<RaftMemberMessage> {
  const tickMs = props.tickMs ?? 20;
  const maxPending = props.maxPendingProposals ?? 1024;
  const snapshotEvery = props.snapshotEvery ?? 10_000;
  const chunkBytes = props.snapshotChunkBytes ?? 1024 * 1024;
  const waitMs = DEFAULT_WAIT_MS;
  const fixedPeers = props.members;
  const peerRef =
    props.peerRef ?? ((id: NodeId): ActorRef<RaftMemberMessage> | undefined => fixedPeers?.[id]);
  const initialVoters =
    props.initialVoters ?? (fixedPeers === undefined ? [props.id] : [props.id, ...Object.keys(fixedPeers)]);
  /** The previous incarnation's close (across supervisor restarts): the next open waits for it. */
  let closed: Promise<void> = Promise.resolve();
  /** Counts starts, so that a completion piped to a previous incarnation is recognised and ignored. */
  let incarnations = 0;
  /** Batch ids never repeat across incarnations, for the same reason. */
  let nextBatch = 1;
  return Behaviors.setup((ctx) => {
    const opened = closed.then(async (): Promise<OpenedStore> => {
      const store = await RaftLogStore.open(props.dataDir, props.logStore);
      try {
        return { store, snapshot: await store.readSnapshot() };
      } catch (error) {
        await store.close();
        throw error;
      }
    });
    const incarnation = ++incarnations;
    ctx.pipeToSelf(opened, (outcome) => ({ type: 'raft-member:opened', incarnation, outcome }));
    return Behaviors.withStash(props.stashCapacity ?? 1024, (stash) =>
      Behaviors.withTimers((timers) => opening(ctx, stash, timers, opened)),
    );
  });

  function closeLogged(ctx: ActorContext<RaftMemberMessage>, closing: Promise<void>): Promise<void> {
    closed = closing.catch((error: unknown) => {
      ctx.log.error('raft log store close failed', { error });
    });
    return closed;
  }

  function opening(
    ctx: ActorContext<RaftMemberMessage>,
    stash: StashBuffer<RaftMemberMessage>,
    timers: TimerScheduler<RaftMemberMessage>,
    opened: Promise<OpenedStore>,
  ): Behavior<RaftMemberMessage> {
    return Behaviors.receive<RaftMemberMessage>((_ctx, message) => {
      if (message.type === 'raft-member:opened') {
        if (message.incarnation !== incarnations) return Behaviors.same;
        if (!message.outcome.ok) throw message.outcome.error;
        const running = open(ctx, message.outcome.value, timers);
        return stash.unstashAll(running);
      }
      if (message.type.startsWith('raft-member:')) return Behaviors.same;
      stash.stash(message);
      return Behaviors.same;
    }).receiveSignal((_ctx, signal: Signal) => {
      if (signal.type !== 'PostStop' && signal.type !== 'PreRestart') return Behaviors.same;
      // Stopped while opening: close the store once the open settles (a failed open has nothing to close).
      const closing = closeLogged(
        ctx,
        opened.then(
          ({ store }) => store.close(),
          () => undefined,
        ),
      );
      return signal.type === 'PostStop' ? closing : Behaviors.same;
    });
  }

  function open(
    ctx: ActorContext<RaftMemberMessage>,
    { store, snapshot }: OpenedStore,
    timers: TimerScheduler<RaftMemberMessage>,
  ): Behavior<RaftMemberMessage> {
    const config: RaftConfig = {
      // At the default 20 ms tick: heartbeats every 100 ms and elections after 0.5–1 s of
      // silence (etcd's defaults are 100 ms and 1 s). Faster heartbeats cost every member CPU
      // all the time (each is a message and an answer per follower) for nothing but a faster
      // failover, and failure detection of members does not ride on them.
      electionTicks: 25,
      heartbeatTicks: 5,
      maxEntriesPerMessage: 256,
      maxInflight: 8,
      seed: Math.floor(Math.random() * 0x7fffffff),
      ...props.config,
      id: props.id,
      members: initialVoters,
      addresses: { [props.id]: props.addresses ?? [] },
    };
    const snapshotIndex = snapshot?.meta.index ?? 0;
    const entries = store.entries(snapshotIndex + 1);
    let state: RaftState = restartRaft(config, {
      ...(store.hardState === undefined ? {} : { hardState: store.hardState }),
      ...(snapshot === undefined ? {} : { snapshot: snapshot.meta }),
      entries,
    });
    let kv =
      snapshot === undefined
        ? new KvStore(props.kvStore)
        : KvStore.restore(snapshot.data, {
            ...(props.kvStore?.maxWatchers === undefined ? {} : { maxWatchers: props.kvStore.maxWatchers }),
          });
    /** The snapshot this member would send to a follower that needs it. */
    let latestSnapshot = snapshot;
    /** Index of the last entry the state machine has applied (the core's `appliedIndex` runs ahead until fsync). */
    let kvApplied = snapshotIndex;
    /** A snapshot save in flight; the next waits for it. */
    let savingSnapshot = false;
    /** Proposals waiting to be applied, by `${index}:${term}`. */
    const pending = new Map<
      string,
      { readonly index: number; readonly replyTo: ActorRef<RaftProposeReply> }
    >();
    const batches: Batch[] = [];
    /** Proposals gathered for the next `proposeMany` (see the `propose` case). */
    let proposals: { readonly data: CommandData; readonly replyTo: ActorRef<RaftProposeReply> }[] = [];
    /** Linearizable reads: those in the ReadIndex round in flight, and those waiting for the next. */
    let readRound:
      | { readonly id: string; index: number | undefined; readonly reads: WaitingRead[] }
      | undefined;
    let nextReads: WaitingRead[] = [];
    let readRounds = 0;
    const membershipWaiters: MembershipWaiter[] = [];
    let transferWaiters: {
      readonly replyTo: ActorRef<RaftTransferLeadershipReply>;
      readonly deadline: number;
    }[] = [];
    const watches = new Map<number, OpenWatch>();
    const assembler = new SnapshotAssembler(props.maxSnapshotBytes ?? 1024 * 1024 * 1024);
    let announced: Membership | undefined;
    let role: RaftRole = 'follower';

    function announceMembership(): void {
      if (announced === state.membership) return;
      announced = state.membership;
      try {
        props.onMembership?.(state.membership);
      } catch (error) {
        ctx.log.error('raft: onMembership failed', { error });
      }
    }

    function applyEntries(list: readonly LogEntry[]): void {
      for (const entry of list) {
        if (entry.index <= kvApplied) continue;
        kvApplied = entry.index;
        const key = `${entry.index}:${entry.term}`;
        const waiter = pending.get(key);
        pending.delete(key);
        // A proposal at this index from another term was overwritten: it will never be applied.
        for (const [k, other] of pending) {
          if (other.index <= entry.index) {
            pending.delete(k);
            other.replyTo.tell({
              ok: false,
              error: failure(
                'UNAVAILABLE',
                `proposal at index ${other.index} was replaced by a newer leader's entry; retry with the same (clientId, seq)`,
              ),
              leaderHint: state.leaderId,
            });
          }
        }
        if (entry.type !== 'command') continue;
        const data = entry.data as CommandData;
        let reply: RaftProposeReply;
        try {
          const outcome = kv.apply(data.command, { clientId: data.clientId, seq: data.seq });
          reply = { ok: true, result: outcome.result, duplicate: outcome.duplicate, index: entry.index };
          for (const notification of outcome.notifications) notification.deliver();
        } catch (error) {
          // Rejected commands throw identically on every member before anything changes.
          if (!(error instanceof CloudlessError)) throw error;
          reply = { ok: false, error: errorOf(error) };
        }
        waiter?.replyTo.tell(reply);
      }
      serveReadyReads();
      settleMembershipWaiters();
      maybeSnapshot();
    }

    /** Log compaction: once enough entries were applied since the last snapshot, snapshot the store. */
    function maybeSnapshot(): void {
      if (savingSnapshot || kvApplied - state.log.snapshotIndex < snapshotEvery) return;
      const data = kv.snapshot();
      const compacted = compact(state, kvApplied);
      state = compacted.state;
      latestSnapshot = { meta: compacted.meta, data };
      savingSnapshot = true;
      ctx.pipeToSelf(store.saveSnapshot(compacted.meta, data), (outcome) => ({
        type: 'raft-member:snapshot-saved',
        index: compacted.meta.index,
        outcome,
      }));
    }

    function restoreSnapshot(installed: { readonly meta: SnapshotMeta; readonly data: Uint8Array }): void {
      for (const watch of watches.values()) {
        watch.subscriber.tell({
          type: 'watch-ended',
          watchId: watch.watchId,
          error: failure(
            'UNAVAILABLE',
            `member ${props.id} installed a snapshot at revision-bearing index ${installed.meta.index}; watch again from the last revision seen + 1`,
          ),
        });
      }
      watches.clear();
      kv = KvStore.restore(installed.data, {
        ...(props.kvStore?.maxWatchers === undefined ? {} : { maxWatchers: props.kvStore.maxWatchers }),
      });
      kvApplied = installed.meta.index;
      latestSnapshot = installed;
    }

    function enqueue(all: readonly RaftEffect[]): void {
      if (all.length === 0) return;
      // A leader's replication messages need not wait for its own write (thesis §10.2.1): the core
      // counts the leader's copy only once `persisted` reports it. Sending them at once, in the
      // order made, keeps each follower's stream in order too.
      const effects: RaftEffect[] = [];
      for (const effect of all) {
        if (effect.type === 'send' && leaderMessages.has(effect.message.type)) sendRaft(effect.message);
        else effects.push(effect);
      }
      const batch: Batch = { id: nextBatch++, effects, waiting: 0 };
      for (const effect of effects) {
        if (effect.type !== 'persist') continue;
        batch.waiting++;
        const lastEntry = effect.entries?.at(-1);
        const last = lastEntry === undefined ? undefined : { index: lastEntry.index, term: lastEntry.term };
        ctx.pipeToSelf(store.persist(effect), (outcome) => ({
          type: 'raft-member:persisted',
          batch: batch.id,
          last,
          outcome,
        }));
      }
      batches.push(batch);
      drain();
    }

    function sendRaft(message: RaftMessage): void {
      let out = message;
      if (message.type === 'install-snapshot') {
        if (latestSnapshot === undefined || latestSnapshot.meta.index !== message.snapshot.index) {
          ctx.log.warn('raft: no snapshot to send', { to: message.to, index: message.snapshot.index });
          return;
        }
        const whole = { ...message, data: latestSnapshot.data };
        if (whole.data.length > chunkBytes) {
          const peer = peerRef(message.to);
          for (const chunk of chunkSnapshot(whole, chunkBytes)) peer?.tell(chunk);
          return;
        }
        out = whole;
      }
      peerRef(message.to)?.tell({ type: 'raft', from: out.from, message: out });
    }

    /** Performs the sends, applies and notices of every leading batch whose persists are done. */
    function drain(): void {
      for (let head = batches[0]; head !== undefined && head.waiting === 0; head = batches[0]) {
        batches.shift();
        for (const effect of head.effects) {
          switch (effect.type) {
            case 'persist':
              break;
            case 'send':
              sendRaft(effect.message);
              break;
            case 'restore':
              restoreSnapshot(effect.snapshot);
              break;
            case 'apply':
              applyEntries(effect.entries);
              break;
            case 'read-ready':
              if (readRound?.id === effect.requestId) readRound.index = effect.index;
              serveReadyReads();
              break;
            case 'role-change':
              onRoleChange(effect.role, effect.leaderId);
              break;
          }
        }
      }
      announceMembership();
    }

    function onRoleChange(next: RaftRole, leader: NodeId | undefined): void {
      ctx.log.debug('raft:role-change', { role: next, term: state.term, leaderId: leader });
      const wasLeader = role === 'leader';
      role = next;
      if (wasLeader && next !== 'leader') {
        const error = failure(
          'NOT_LEADER',
          `raft member ${props.id} lost leadership; retry on the new leader`,
        );
        for (const read of [...(readRound?.reads ?? []), ...nextReads]) {
          read.request.replyTo.tell({ ok: false, error, leaderHint: leader });
        }
        readRound = undefined;
        nextReads = [];
        for (const waiter of membershipWaiters.splice(0)) {
          waiter.replyTo.tell({ ok: false, error, leaderHint: leader });
        }
      }
      if (leader !== undefined && leader !== props.id) {
        for (const waiter of transferWaiters) waiter.replyTo.tell({ ok: true, leaderId: leader });
        transferWaiters = [];
      }
    }

    function step_(
      outcome: CoreOutcome | { type: 'accepted'; state: RaftState; effects: readonly RaftEffect[] },
    ): boolean {
      if (outcome.type !== 'accepted') return false;
      state = outcome.state;
      enqueue(outcome.effects);
      return true;
    }

    function serveQuery(request: RaftQueryRequest): void {
      let result: KvRangeResult;
      try {
        if (request.prefix === true) {
          result = kv.range(request.key, {
            ...(request.limit === undefined ? {} : { limit: request.limit }),
            ...(request.fromKey === undefined ? {} : { fromKey: request.fromKey }),
          });
        } else {
          const found = kv.get(request.key);
          result = { kvs: found === undefined ? [] : [found], more: false, revision: kv.revision };
        }
      } catch (error) {
        if (!(error instanceof CloudlessError)) throw error;
        request.replyTo.tell({ ok: false, error: errorOf(error) });
        return;
      }
      request.replyTo.tell({ ok: true, result, appliedIndex: kvApplied });
    }

    /** Starts a ReadIndex round for the reads waiting, if none is in flight. */
    function startReadRound(): void {
      if (readRound !== undefined || nextReads.length === 0) return;
      const id = `${props.id}:${incarnations}:${++readRounds}`;
      const reads = nextReads;
      nextReads = [];
      const outcome = readIndex(state, id);
      if (outcome.type !== 'accepted') {
        const hint = outcome.type === 'not-leader' ? outcome.leaderHint : undefined;
        for (const read of reads) {
          read.request.replyTo.tell({
            ok: false,
            error: failure(
              'NOT_LEADER',
              `raft member ${props.id} is not the leader; leader is ${hint ?? 'unknown'}`,
            ),
            leaderHint: hint,
          });
        }
        return;
      }
      readRound = { id, index: undefined, reads };
      step_(outcome);
    }

    function serveReadyReads(): void {
      if (readRound === undefined || readRound.index === undefined || kvApplied < readRound.index) return;
      for (const read of readRound.reads) serveQuery(read.request);
      readRound = undefined;
      startReadRound();
    }

    function expireWaits(now: number): void {
      const late = (deadline: number): boolean => deadline <= now;
      const timeout = (what: string): RaftMemberError =>
        failure(
          'UNAVAILABLE',
          `${what} on raft member ${props.id} did not complete within ${waitMs} ms; is a majority of members reachable?`,
        );
      if (readRound?.reads.some((r) => late(r.deadline))) {
        for (const read of readRound.reads)
          read.request.replyTo.tell({ ok: false, error: timeout('a linearizable read') });
        readRound = undefined;
        startReadRound();
      }
      for (let i = membershipWaiters.length - 1; i >= 0; i--) {
        const waiter = membershipWaiters[i] as MembershipWaiter;
        if (!late(waiter.deadline)) continue;
        membershipWaiters.splice(i, 1);
        waiter.replyTo.tell({
          ok: false,
          error: timeout(`${waiter.kind === 'add' ? 'adding' : 'removing'} ${waiter.id}`),
        });
      }
      transferWaiters = transferWaiters.filter((waiter) => {
        if (!late(waiter.deadline)) return true;
        waiter.replyTo.tell({ ok: false, error: timeout('a leadership transfer') });
        return false;
      });
    }

    /** Moves each membership request along: add as learner, promote once caught up, answer once applied. */
    function settleMembershipWaiters(): void {
      if (membershipWaiters.length === 0) return;
      const applied = state.membershipIndex <= kvApplied;
      for (let i = membershipWaiters.length - 1; i >= 0; i--) {
        const waiter = membershipWaiters[i] as MembershipWaiter;
        const m = state.membership;
        const done =
          waiter.kind === 'add'
            ? m.voters.includes(waiter.id)
            : !m.voters.includes(waiter.id) && !m.learners.includes(waiter.id);
        if (done && applied) {
          membershipWaiters.splice(i, 1);
          waiter.replyTo.tell({ ok: true, membership: m });
          continue;
        }
        if (done || state.role !== 'leader') continue;
        if (waiter.kind === 'remove') {
          step_(proposeMembershipChange(state, { type: 'remove', id: waiter.id }));
        } else if (m.learners.includes(waiter.id)) {
          if (isCaughtUp(state, waiter.id))
            step_(proposeMembershipChange(state, { type: 'promote', id: waiter.id }));
        } else {
          const outcome = proposeMembershipChange(state, {
            type: 'add-learner',
            id: waiter.id,
            addresses: waiter.addresses,
          });
          if (outcome.type === 'rejected' && !outcome.retryable) {
            membershipWaiters.splice(i, 1);
            waiter.replyTo.tell({ ok: false, error: failure('INVALID_REQUEST', outcome.reason) });
            continue;
          }
          step_(outcome);
        }
      }
    }

    function notLeader<T>(replyTo: ActorRef<T>, what: string): void {
      const hint = state.leaderId;
      (replyTo as ActorRef<{ ok: false; error: RaftMemberError; leaderHint?: NodeId | undefined }>).tell({
        ok: false,
        error: failure(
          'NOT_LEADER',
          `raft member ${props.id} is not the leader (leader: ${hint ?? 'unknown'}); send ${what} there`,
        ),
        leaderHint: hint,
      });
    }

    function status(): RaftStatusReply {
      return {
        id: props.id,
        role: state.role,
        term: state.term,
        leaderId: state.leaderId,
        commitIndex: state.commitIndex,
        appliedIndex: kvApplied,
        lastIndex: lastIndex(state.log),
        snapshotIndex: state.log.snapshotIndex,
        membership: state.membership,
      };
    }

    // Rebuild the state machine from the committed log after the snapshot.
    applyEntries(entries.slice(0, Math.max(0, state.commitIndex - snapshotIndex)));
    announceMembership();
    timers.startTimerWithFixedDelay(TICK_KEY, { type: 'raft-member:tick' }, tickMs);

    return Behaviors.receive<RaftMemberMessage>((_ctx, message) => {
      switch (message.type) {
        case 'raft-member:tick': {
          step_({ type: 'accepted', ...tick(state) });
          settleMembershipWaiters();
          expireWaits(Date.now());
          return Behaviors.same;
        }
        case 'raft': {
          if (message.message.to !== props.id || message.from !== message.message.from)
            return Behaviors.unhandled;
          step_({ type: 'accepted', ...step(state, message.message) });
          return Behaviors.same;
        }
        case 'raft-snapshot-chunk': {
          if (message.message.to !== props.id || message.from !== message.message.from)
            return Behaviors.unhandled;
          let whole: RaftMessage | undefined;
          try {
            whole = assembler.add(message);
          } catch (error) {
            if (!(error instanceof CloudlessError)) throw error;
            ctx.log.warn('raft: snapshot chunk refused', {
              from: message.message.from,
              reason: error.message,
            });
            return Behaviors.same;
          }
          if (whole !== undefined) step_({ type: 'accepted', ...step(state, whole) });
          return Behaviors.same;
        }
        case 'raft-member:persisted': {
          if (!message.outcome.ok) throw message.outcome.error;
          const batch = batches.find((b) => b.id === message.batch);
          if (batch !== undefined) batch.waiting--;
          drain();
          if (message.last !== undefined) {
            step_({ type: 'accepted', ...persisted(state, message.last.index, message.last.term) });
          }
          return Behaviors.same;
        }
        case 'raft-member:snapshot-saved': {
          if (!message.outcome.ok) throw message.outcome.error;
          savingSnapshot = false;
          ctx.log.debug('raft: snapshot saved', { index: message.index });
          return Behaviors.same;
        }
        case 'raft-member:subscriber-gone': {
          const gone = watches.get(message.watchId)?.subscriber;
          for (const [watchId, watch] of watches) {
            if (watch.subscriber !== gone) continue;
            kv.cancelWatch(watchId);
            watches.delete(watchId);
          }
          return Behaviors.same;
        }
        case 'propose': {
          const { replyTo } = message;
          const data: CommandData = {
            command: message.command,
            clientId: message.clientId,
            seq: message.seq,
          };
          try {
            validateKvCommand(data.command);
          } catch (error) {
            if (!(error instanceof CloudlessError)) throw error;
            replyTo.tell({ ok: false, error: errorOf(error) });
            return Behaviors.same;
          }
          if (state.role !== 'leader') {
            notLeader(replyTo, 'the proposal');
            return Behaviors.same;
          }
          if (pending.size + proposals.length >= maxPending) {
            const error = new UnavailableError(
              `raft member ${props.id} has ${pending.size + proposals.length} proposals waiting (limit ${maxPending}); retry later`,
            );
            replyTo.tell({ ok: false, error: errorOf(error), leaderHint: props.id });
            return Behaviors.same;
          }
          // Proposals that arrive together go to the log together: the batch message queues
          // behind those already in the mailbox, so it runs once they are all gathered.
          if (proposals.length === 0) ctx.self.tell({ type: 'raft-member:propose-batch' });
          proposals.push({ data, replyTo });
          return Behaviors.same;
        }
        case 'raft-member:propose-batch': {
          const batch = proposals;
          proposals = [];
          if (batch.length === 0) return Behaviors.same;
          const result = proposeMany(
            state,
            batch.map((p) => p.data),
          );
          if (result.type !== 'accepted') {
            for (const { replyTo } of batch) {
              if (result.type === 'not-leader') notLeader(replyTo, 'the proposal');
              else {
                replyTo.tell({
                  ok: false,
                  error: failure('UNAVAILABLE', `${result.reason}; retry shortly`),
                  leaderHint: state.transferee,
                });
              }
            }
            return Behaviors.same;
          }
          state = result.state;
          batch.forEach(({ replyTo }, i) => {
            pending.set(`${result.index + i}:${result.term}`, { index: result.index + i, replyTo });
          });
          enqueue(result.effects);
          return Behaviors.same;
        }
        case 'read': {
          let found: KeyValue | undefined;
          try {
            found = kv.get(message.key);
          } catch (error) {
            if (!(error instanceof CloudlessError)) throw error;
            message.replyTo.tell({ ok: false, error: errorOf(error) });
            return Behaviors.same;
          }
          message.replyTo.tell({ ok: true, kv: found, revision: kv.revision, appliedIndex: kvApplied });
          return Behaviors.same;
        }
        case 'query': {
          if (message.consistency === 'serializable') {
            serveQuery(message);
            return Behaviors.same;
          }
          if (state.role !== 'leader') {
            notLeader(message.replyTo, 'linearizable reads');
            return Behaviors.same;
          }
          if (nextReads.length >= maxPending) {
            message.replyTo.tell({
              ok: false,
              error: failure(
                'UNAVAILABLE',
                `raft member ${props.id} has ${maxPending} reads waiting; retry later`,
              ),
            });
            return Behaviors.same;
          }
          nextReads.push({ request: message, deadline: Date.now() + waitMs });
          startReadRound();
          return Behaviors.same;
        }
        case 'watch': {
          const { subscriber } = message;
          let started: { watchId: number; history: readonly KvEvent[]; revision: number };
          try {
            let watchId = -1;
            started = kv.watch(message.prefix, {
              fromRevision: message.fromRevision,
              ...(message.prevKv === undefined ? {} : { prevKv: message.prevKv }),
              onEvents: (events) => subscriber.tell({ type: 'watch-events', watchId, events }),
            });
            watchId = started.watchId;
          } catch (error) {
            if (!(error instanceof CloudlessError)) throw error;
            subscriber.tell({ type: 'watch-ended', watchId: -1, error: errorOf(error) });
            return Behaviors.same;
          }
          watches.set(started.watchId, { watchId: started.watchId, subscriber });
          ctx.watchWith(subscriber, { type: 'raft-member:subscriber-gone', watchId: started.watchId });
          subscriber.tell({
            type: 'watch-started',
            watchId: started.watchId,
            revision: started.revision,
            history: started.history,
          });
          return Behaviors.same;
        }
        case 'cancel-watch': {
          if (watches.delete(message.watchId)) kv.cancelWatch(message.watchId);
          return Behaviors.same;
        }
        case 'add-member':
        case 'remove-member': {
          if (state.role !== 'leader') {
            notLeader(message.replyTo, 'membership changes');
            return Behaviors.same;
          }
          if (membershipWaiters.length >= 16) {
            message.replyTo.tell({
              ok: false,
              error: failure('UNAVAILABLE', 'too many membership changes waiting; retry later'),
            });
            return Behaviors.same;
          }
          membershipWaiters.push({
            kind: message.type === 'add-member' ? 'add' : 'remove',
            id: message.id,
            addresses: message.type === 'add-member' ? message.addresses : [],
            replyTo: message.replyTo,
            deadline: Date.now() + waitMs * 6,
          });
          settleMembershipWaiters();
          return Behaviors.same;
        }
        case 'transfer-leadership': {
          if (state.role !== 'leader') {
            notLeader(message.replyTo, 'the transfer request');
            return Behaviors.same;
          }
          if (transferWaiters.length >= 16) {
            message.replyTo.tell({
              ok: false,
              error: failure('UNAVAILABLE', 'too many leadership transfers waiting; retry later'),
            });
            return Behaviors.same;
          }
          const target =
            message.to ??
            state.membership.voters
              .filter((id) => id !== props.id)
              .sort((a, b) => (state.progress[b]?.match ?? 0) - (state.progress[a]?.match ?? 0))[0];
          if (target === undefined) {
            message.replyTo.tell({
              ok: false,
              error: failure('INVALID_REQUEST', 'there is no other voter to hand leadership to'),
            });
            return Behaviors.same;
          }
          const outcome = transferLeadership(state, target);
          if (outcome.type === 'rejected') {
            message.replyTo.tell({ ok: false, error: failure('INVALID_REQUEST', outcome.reason) });
            return Behaviors.same;
          }
          if (target === props.id) {
            message.replyTo.tell({ ok: true, leaderId: props.id });
            return Behaviors.same;
          }
          transferWaiters.push({ replyTo: message.replyTo, deadline: Date.now() + waitMs });
          step_(outcome);
          return Behaviors.same;
        }
        case 'status':
          message.replyTo.tell(status());
          return Behaviors.same;
        case 'raft-member:opened':
          return Behaviors.unhandled;
      }
    }).receiveSignal((_ctx, signal: Signal) => {
      if (signal.type !== 'PostStop' && signal.type !== 'PreRestart') return Behaviors.same;
      for (const watch of watches.values()) {
        watch.subscriber.tell({
          type: 'watch-ended',
          watchId: watch.watchId,
          error: failure('UNAVAILABLE', `raft member ${props.id} stopped; watch again`),
        });
      }
      const closing = closeLogged(ctx, store.close());
      return signal.type === 'PostStop' ? closing : Behaviors.same;
    });
  }
}
