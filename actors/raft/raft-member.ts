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
import type { KeyValue, KvCommand, KvResult } from './kv-types.ts';
import { validateKvCommand } from './kv-validate.ts';
import { propose, restartRaft, step, tick } from './raft-core.ts';
import { RaftLogStore, type RaftLogStoreOptions } from './raft-log-store.ts';
import type {
  LogEntry,
  NodeId,
  RaftConfig,
  RaftEffect,
  RaftMessage,
  RaftRole,
  RaftState,
} from './raft-types.ts';

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
  readonly lastIndex: number;
}

/** A raft message from a peer member. */
export interface RaftPeerMessage {
  readonly type: 'raft';
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

/** A serializable (possibly stale) local read; see `RaftReadReply`. */
export interface RaftReadRequest {
  readonly type: 'read';
  readonly key: string;
  readonly replyTo: ActorRef<RaftReadReply>;
}

export interface RaftStatusRequest {
  readonly type: 'status';
  readonly replyTo: ActorRef<RaftStatusReply>;
}

/** Internal messages of the shell (timer ticks and piped I/O completions). */
type RaftMemberInternal =
  | {
      readonly type: 'raft-member:opened';
      readonly incarnation: number;
      readonly outcome: PipeOutcome<RaftLogStore>;
    }
  | { readonly type: 'raft-member:tick' }
  | { readonly type: 'raft-member:persisted'; readonly batch: number; readonly outcome: PipeOutcome<void> };

export type RaftMemberMessage =
  | RaftPeerMessage
  | RaftProposeRequest
  | RaftReadRequest
  | RaftStatusRequest
  | RaftMemberInternal;

export interface RaftMemberProps {
  readonly id: NodeId;
  /** The other voting members: member id → that member's actor ref (local or remote). */
  readonly members: Readonly<Record<NodeId, ActorRef<RaftMemberMessage>>>;
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

function errorOf(error: unknown): RaftMemberError {
  if (error instanceof CloudlessError) return { code: error.code, message: error.message };
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/** The Raft member actor; see the module comment. Wrap it in a supervisor to restart it on failure. */
export function raftMember(props: RaftMemberProps): Behavior<RaftMemberMessage> {
  const tickMs = props.tickMs ?? 20;
  const maxPending = props.maxPendingProposals ?? 1024;
  /** The previous incarnation's close (across supervisor restarts): the next open waits for it. */
  let closed: Promise<void> = Promise.resolve();
  /** Counts starts, so that a completion piped to a previous incarnation is recognised and ignored. */
  let incarnations = 0;
  /** Batch ids never repeat across incarnations, for the same reason. */
  let nextBatch = 1;
  return Behaviors.setup((ctx) => {
    const opened = closed.then(() => RaftLogStore.open(props.dataDir, props.logStore));
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
    opened: Promise<RaftLogStore>,
  ): Behavior<RaftMemberMessage> {
    return Behaviors.receive<RaftMemberMessage>((_ctx, message) => {
      if (message.type === 'raft-member:opened') {
        if (message.incarnation !== incarnations) return Behaviors.same;
        if (!message.outcome.ok) throw message.outcome.error;
        const running = open(ctx, message.outcome.value, timers);
        return stash.unstashAll(running);
      }
      if (message.type === 'raft-member:tick' || message.type === 'raft-member:persisted')
        return Behaviors.same;
      stash.stash(message);
      return Behaviors.same;
    }).receiveSignal((_ctx, signal: Signal) => {
      if (signal.type !== 'PostStop' && signal.type !== 'PreRestart') return Behaviors.same;
      // Stopped while opening: close the store once the open settles (a failed open has nothing to close).
      const closing = closeLogged(
        ctx,
        opened.then(
          (store) => store.close(),
          () => undefined,
        ),
      );
      return signal.type === 'PostStop' ? closing : Behaviors.same;
    });
  }

  function open(
    ctx: ActorContext<RaftMemberMessage>,
    store: RaftLogStore,
    timers: TimerScheduler<RaftMemberMessage>,
  ): Behavior<RaftMemberMessage> {
    const config: RaftConfig = {
      electionTicks: 10,
      heartbeatTicks: 2,
      maxEntriesPerMessage: 64,
      maxInflight: 8,
      seed: Math.floor(Math.random() * 0x7fffffff),
      ...props.config,
      id: props.id,
      members: [props.id, ...Object.keys(props.members).filter((id) => id !== props.id)],
    };
    const entries = store.entries(1);
    let state: RaftState = restartRaft(config, {
      ...(store.hardState === undefined ? {} : { hardState: store.hardState }),
      entries,
    });
    const kv = new KvStore(props.kvStore);
    /** Proposals waiting to be applied, by `${index}:${term}`. */
    const pending = new Map<
      string,
      { readonly index: number; readonly replyTo: ActorRef<RaftProposeReply> }
    >();
    const batches: Batch[] = [];
    // Rebuild the state machine from the committed log (no snapshots yet).
    applyEntries(entries.slice(0, state.commitIndex));
    state = { ...state, appliedIndex: state.commitIndex };

    function applyEntries(list: readonly LogEntry[]): void {
      for (const entry of list) {
        const key = `${entry.index}:${entry.term}`;
        const waiter = pending.get(key);
        pending.delete(key);
        // A proposal at this index from another term was overwritten: it will never be applied.
        for (const [k, other] of pending) {
          if (other.index <= entry.index) {
            pending.delete(k);
            other.replyTo.tell({
              ok: false,
              error: {
                code: 'UNAVAILABLE',
                message: `proposal at index ${other.index} was replaced by a newer leader's entry; retry with the same (clientId, seq)`,
              },
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
        } catch (error) {
          // Rejected commands throw identically on every member before anything changes.
          if (!(error instanceof CloudlessError)) throw error;
          reply = { ok: false, error: errorOf(error) };
        }
        waiter?.replyTo.tell(reply);
      }
    }

    function enqueue(effects: readonly RaftEffect[]): void {
      if (effects.length === 0) return;
      const batch: Batch = { id: nextBatch++, effects, waiting: 0 };
      for (const effect of effects) {
        if (effect.type !== 'persist') continue;
        batch.waiting++;
        ctx.pipeToSelf(store.persist(effect), (outcome) => ({
          type: 'raft-member:persisted',
          batch: batch.id,
          outcome,
        }));
      }
      batches.push(batch);
      drain();
    }

    /** Performs the sends, applies and role changes of every leading batch whose persists are done. */
    function drain(): void {
      for (let head = batches[0]; head !== undefined && head.waiting === 0; head = batches[0]) {
        batches.shift();
        for (const effect of head.effects) {
          switch (effect.type) {
            case 'persist':
              break;
            case 'send':
              props.members[effect.to]?.tell({ type: 'raft', message: effect.message });
              break;
            case 'apply':
              applyEntries(effect.entries);
              break;
            case 'role-change':
              ctx.log.debug('raft:role-change', {
                role: effect.role,
                term: effect.term,
                leaderId: effect.leaderId,
              });
              break;
          }
        }
      }
    }

    timers.startTimerWithFixedDelay(TICK_KEY, { type: 'raft-member:tick' }, tickMs);

    return Behaviors.receive<RaftMemberMessage>((_ctx, message) => {
      switch (message.type) {
        case 'raft-member:tick': {
          const result = tick(state);
          state = result.state;
          enqueue(result.effects);
          return Behaviors.same;
        }
        case 'raft': {
          if (message.message.to !== props.id) return Behaviors.unhandled;
          const result = step(state, message.message);
          state = result.state;
          enqueue(result.effects);
          return Behaviors.same;
        }
        case 'raft-member:persisted': {
          if (!message.outcome.ok) throw message.outcome.error;
          const batch = batches.find((b) => b.id === message.batch);
          if (batch !== undefined) batch.waiting--;
          drain();
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
          if (state.role === 'leader' && pending.size >= maxPending) {
            const error = new UnavailableError(
              `raft member ${props.id} has ${pending.size} proposals waiting (limit ${maxPending}); retry later`,
            );
            replyTo.tell({ ok: false, error: errorOf(error), leaderHint: props.id });
            return Behaviors.same;
          }
          const result = propose(state, data);
          if (result.type === 'not-leader') {
            const leader = result.leaderHint ?? 'unknown';
            replyTo.tell({
              ok: false,
              error: {
                code: 'NOT_LEADER',
                message: `raft member ${props.id} is not the leader; leader is ${leader}: send the proposal there`,
              },
              leaderHint: result.leaderHint,
            });
            return Behaviors.same;
          }
          state = result.state;
          pending.set(`${result.index}:${result.term}`, { index: result.index, replyTo });
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
          message.replyTo.tell({
            ok: true,
            kv: found,
            revision: kv.revision,
            appliedIndex: state.appliedIndex,
          });
          return Behaviors.same;
        }
        case 'status':
          message.replyTo.tell({
            id: props.id,
            role: state.role,
            term: state.term,
            leaderId: state.leaderId,
            commitIndex: state.commitIndex,
            lastIndex: state.log.length === 0 ? 0 : (state.log[state.log.length - 1] as LogEntry).index,
          });
          return Behaviors.same;
        case 'raft-member:opened':
          return Behaviors.unhandled;
      }
    }).receiveSignal((_ctx, signal: Signal) => {
      if (signal.type !== 'PostStop' && signal.type !== 'PreRestart') return Behaviors.same;
      const closing = closeLogged(ctx, store.close());
      return signal.type === 'PostStop' ? closing : Behaviors.same;
    });
  }
}
