/**
 * The data a Raft core consumes and produces: log entries, the hard state that must survive a
 * crash, the messages members exchange and the effects a shell performs. Everything is plain,
 * serialisable data with a `type` discriminant.
 */

export type NodeId = string;

export type RaftRole = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** A log entry. `noop` entries are appended by a new leader to commit earlier terms; skip them when applying. */
export interface LogEntry {
  readonly type: 'command' | 'noop';
  readonly term: number;
  readonly index: number;
  readonly data?: unknown;
}

/** What must be on stable storage before any message depending on it is sent. */
export interface HardState {
  readonly term: number;
  readonly votedFor: NodeId | undefined;
  readonly commit: number;
}

export interface RaftConfig {
  readonly id: NodeId;
  /** Every voting member, including `id`. */
  readonly members: readonly NodeId[];
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
}

export type RaftMessage =
  | PreVoteRequest
  | PreVoteResponse
  | RequestVote
  | RequestVoteResponse
  | AppendEntries
  | AppendEntriesResponse;

/**
 * What a shell must do, in the order the core returns them: persist (and fsync), then send, then
 * apply, then publish notifications.
 */
export type RaftEffect =
  | {
      readonly type: 'persist';
      readonly hardState?: HardState;
      /** Replace the stored log from `entries[0].index` onwards with these entries. */
      readonly entries?: readonly LogEntry[];
    }
  | { readonly type: 'send'; readonly to: NodeId; readonly message: RaftMessage }
  | { readonly type: 'apply'; readonly entries: readonly LogEntry[] }
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
  /** `probe`: one message at a time until the match point is found; `replicate`: pipelined. */
  readonly mode: 'probe' | 'replicate';
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
  readonly log: readonly LogEntry[];
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly electionElapsed: number;
  readonly heartbeatElapsed: number;
  readonly randomizedElectionTimeout: number;
  readonly rng: number;
  /** Votes received in the current (pre-)election: member → granted. */
  readonly votes: Readonly<Record<NodeId, boolean>>;
  /** Leader only: replication progress per other member. */
  readonly progress: Readonly<Record<NodeId, Progress>>;
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
  | { readonly type: 'not-leader'; readonly leaderHint: NodeId | undefined };
