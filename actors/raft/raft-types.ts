import type { RaftLog } from './raft-log.ts';

/**
 * The data a Raft core consumes and produces: log entries, the hard state that must survive a
 * crash, the messages members exchange and the effects a shell performs. Everything is plain,
 * serialisable data with a `type` discriminant.
 */

export type NodeId = string;

export type RaftRole = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/**
 * Who is in the group. Voters elect and count towards commit; learners receive the log but do
 * not vote (a new member catches up as a learner before it is promoted). `addresses` are the
 * members' listen multiaddrs, carried opaquely so every member can dial every other one.
 */
export interface Membership {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly addresses: Readonly<Record<NodeId, readonly string[]>>;
}

/** One membership change at a time (Raft dissertation §4.1: single-server changes). */
export type MembershipChange =
  | { readonly type: 'add-learner'; readonly id: NodeId; readonly addresses: readonly string[] }
  | { readonly type: 'promote'; readonly id: NodeId }
  | { readonly type: 'remove'; readonly id: NodeId };

/** The data of a `config` entry: the change and the whole membership it produces. */
export interface ConfigEntryData {
  readonly change: MembershipChange | { readonly type: 'bootstrap' };
  readonly membership: Membership;
}

/**
 * A log entry. `noop` entries are appended by a new leader to commit earlier terms; skip them
 * when applying. `config` entries carry a `ConfigEntryData`; the membership they name takes
 * effect as soon as the entry is in a member's log, committed or not (§4.1).
 */
export interface LogEntry {
  readonly type: 'command' | 'noop' | 'config';
  readonly term: number;
  readonly index: number;
  readonly data?: unknown;
}

/** What a snapshot covers: every entry up to `index` (of `term`), and the membership then. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly membership: Membership;
}

/** What must be on stable storage before any message depending on it is sent. */
export interface HardState {
  readonly term: number;
  readonly votedFor: NodeId | undefined;
  readonly commit: number;
}

export interface RaftConfig {
  readonly id: NodeId;
  /**
   * The voters of a brand-new group, used until the log or a snapshot names a membership:
   * every member for a fixed group, `[id]` to bootstrap one that grows by adding members,
   * `[]` for a member joining an existing group (it never campaigns until a leader adds it).
   */
  readonly members: readonly NodeId[];
  /** Addresses of the initial members, recorded in the bootstrap config entry. */
  readonly addresses?: Readonly<Record<NodeId, readonly string[]>>;
  /** Minimum ticks without a leader before campaigning; the real timeout is random in [n, 2n). */
  readonly electionTicks: number;
  /** Ticks between a leader's heartbeats; must be well below `electionTicks`. */
  readonly heartbeatTicks: number;
  /** Most entries carried by one AppendEntries. */
  readonly maxEntriesPerMessage: number;
  /** Most unacknowledged AppendEntries with entries in flight to one follower. */
  readonly maxInflight: number;
  /** Seed of the core's own PRNG (mulberry32), used only for randomised election timeouts. */
  readonly seed: number;
  /** Run the pre-vote phase before a real election (default true). */
  readonly preVote?: boolean;
  /** A leader that has not heard from a quorum within an election timeout steps down (default true). */
  readonly checkQuorum?: boolean;
}

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

export interface PreVoteRequest extends Envelope {
  readonly type: 'pre-vote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
}

export interface PreVoteResponse extends Envelope {
  readonly type: 'pre-vote-response';
  readonly granted: boolean;
}

export interface RequestVote extends Envelope {
  readonly type: 'request-vote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
}

export interface RequestVoteResponse extends Envelope {
  readonly type: 'request-vote-response';
  readonly granted: boolean;
}

export interface AppendEntries extends Envelope {
  readonly type: 'append-entries';
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly LogEntry[];
  readonly leaderCommit: number;
  /** The leader's ReadIndex round when it sent this; echoed back (0 when none). */
  readonly readSeq: number;
}

/**
 * The leader's snapshot for a follower whose next entry was compacted away. The core names the
 * snapshot; the shell attaches the bytes (`data`) when it sends and passes them on when it steps.
 */
export interface InstallSnapshot extends Envelope {
  readonly type: 'install-snapshot';
  readonly snapshot: SnapshotMeta;
  readonly data?: Uint8Array;
  readonly readSeq: number;
}

/** Leadership transfer: the leader tells a caught-up voter to campaign at once (§3.10). */
export interface TimeoutNow extends Envelope {
  readonly type: 'timeout-now';
}

export interface AppendEntriesResponse extends Envelope {
  readonly type: 'append-entries-response';
  readonly success: boolean;
  /** On success: the follower's log matches the leader's up to this index. */
  readonly matchIndex: number;
  /** On rejection: the `prevLogIndex` that did not match. */
  readonly rejectedIndex: number;
  /** On rejection: the term the follower holds at `rejectedIndex` (0 if its log is shorter). */
  readonly conflictTerm: number;
  /** On rejection: the first index of `conflictTerm` in the follower's log, or its last index + 1. */
  readonly conflictIndex: number;
  /** The `readSeq` of the message this answers. */
  readonly readSeq: number;
}

export type RaftMessage =
  | PreVoteRequest
  | PreVoteResponse
  | RequestVote
  | RequestVoteResponse
  | AppendEntries
  | AppendEntriesResponse
  | InstallSnapshot
  | TimeoutNow;

/**
 * What a shell must do, in the order the core returns them: persist (and fsync), then send, then
 * apply, then publish notifications.
 */
export type RaftEffect =
  | {
      readonly type: 'persist';
      /**
       * A snapshot installed from the leader, stored first: save it durably, drop every entry
       * up to `meta.index`, and drop the entries after it too unless the stored entry at
       * `meta.index` has `meta.term` (then the log past the snapshot is still valid).
       */
      readonly snapshot?: { readonly meta: SnapshotMeta; readonly data: Uint8Array };
      readonly hardState?: HardState;
      /** Replace the stored log from `entries[0].index` onwards with these entries. */
      readonly entries?: readonly LogEntry[];
    }
  | { readonly type: 'send'; readonly to: NodeId; readonly message: RaftMessage }
  /** Replace the state machine with this snapshot (installed from the leader); comes before any apply after it. */
  | {
      readonly type: 'restore';
      readonly snapshot: { readonly meta: SnapshotMeta; readonly data: Uint8Array };
    }
  | { readonly type: 'apply'; readonly entries: readonly LogEntry[] }
  /** A ReadIndex request is confirmed: serve it once the state machine has applied `index`. */
  | { readonly type: 'read-ready'; readonly requestId: string; readonly index: number }
  | {
      readonly type: 'role-change';
      readonly role: RaftRole;
      readonly term: number;
      readonly leaderId: NodeId | undefined;
    };

/** A leader's view of one follower. */
export interface Progress {
  readonly match: number;
  readonly next: number;
  /**
   * `probe`: one message at a time until the match point is found; `replicate`: pipelined;
   * `snapshot`: an InstallSnapshot is out (sent again if it goes unanswered for an election timeout).
   */
  readonly mode: 'probe' | 'replicate' | 'snapshot';
  /** In probe mode, a message is out and no more are sent until a reply or a heartbeat. */
  readonly paused: boolean;
  /** Last index carried by each unacknowledged AppendEntries, oldest first (replicate mode). */
  readonly inflight: readonly number[];
  /** Heard from since the last quorum check. */
  readonly recentActive: boolean;
  /** Heartbeats in a row with messages in flight and no progress. */
  readonly stalls: number;
  readonly matchAtLastHeartbeat: number;
}

/**
 * A member's whole state. Plain, readonly data rather than a class: it can be copied, compared,
 * logged and persisted in tests without methods getting in the way, and treating it immutably
 * (every step returns a new object, the input is untouched) is what lets a simulation keep old
 * states around and replay a seed step by step.
 */
export interface RaftState {
  readonly config: RaftConfig;
  readonly role: RaftRole;
  readonly term: number;
  readonly votedFor: NodeId | undefined;
  readonly leaderId: NodeId | undefined;
  readonly log: RaftLog;
  /** The membership in effect: the latest config entry in the log, else the snapshot's, else the config's. */
  readonly membership: Membership;
  /** Index of the config entry that set `membership` (the snapshot index or 0 when none did). */
  readonly membershipIndex: number;
  /** The membership as of the snapshot (undefined when there is none). */
  readonly snapshotMembership: Membership | undefined;
  readonly commitIndex: number;
  /**
   * The last index known to be on this member's stable storage (the shell reports it with
   * `persisted`). A leader counts itself towards a quorum only up to here, which lets it send
   * entries to followers while its own write is still in flight (thesis §10.2.1).
   */
  readonly persistedIndex: number;
  readonly appliedIndex: number;
  readonly electionElapsed: number;
  readonly heartbeatElapsed: number;
  readonly randomizedElectionTimeout: number;
  readonly rng: number;
  /** Votes received in the current (pre-)election: member → granted. */
  readonly votes: Readonly<Record<NodeId, boolean>>;
  /** Leader only: replication progress per other member. */
  readonly progress: Readonly<Record<NodeId, Progress>>;
  /** Leader only: the current ReadIndex round, and the highest round each peer has answered. */
  readonly readSeq: number;
  readonly readAcks: Readonly<Record<NodeId, number>>;
  /** Leader only: ReadIndex requests waiting for a quorum to answer round `seq`. */
  readonly pendingReads: readonly PendingRead[];
  /** Leader only: the voter leadership is being handed to, and ticks since the transfer began. */
  readonly transferee: NodeId | undefined;
  readonly transferElapsed: number;
}

export interface PendingRead {
  readonly requestId: string;
  readonly seq: number;
  /** The commit index to wait for; undefined until the leader has committed an entry of its term. */
  readonly index: number | undefined;
}

export interface RaftResult {
  readonly state: RaftState;
  readonly effects: readonly RaftEffect[];
}

export type ProposeResult =
  | {
      readonly type: 'accepted';
      readonly state: RaftState;
      readonly effects: readonly RaftEffect[];
      readonly index: number;
      readonly term: number;
    }
  | { readonly type: 'not-leader'; readonly leaderHint: NodeId | undefined }
  /** The leader cannot take this now (a membership change pending, a transfer under way, an invalid change). */
  | { readonly type: 'rejected'; readonly reason: string; readonly retryable: boolean };
