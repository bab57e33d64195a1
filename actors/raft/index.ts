/**
 * The Raft consensus member. For now, its pure core: `step`, `tick` and `propose` turn a
 * `RaftState` and an input into a new state and effects (persist, send, apply, role-change) that
 * an actor shell performs in that order. Pre-vote, elections, heartbeats, pipelined and batched
 * log replication with fast backtracking, and the current-term commit rule are implemented;
 * randomness comes from a seed in the config, time from ticks. `RaftLogStore` keeps a member's
 * hard state and log durably in checksummed segment files, with group commit. `raftMember` is
 * the actor shell that opens the store, ticks the core and performs its effects in order.
 */

export {
  KvCompactedError,
  type KvErrorReason,
  KvInvalidCommandError,
  KvSnapshotCorruptError,
  KvStaleCommandError,
  KvTooManyWatchersError,
} from './kv-errors.ts';
export { kvSnapshotVersion } from './kv-snapshot.ts';
export { KvStore, type KvStoreInit, type KvWatchOptions, type KvWatchStart } from './kv-store.ts';
export type {
  KeyValue,
  KvApplyOutcome,
  KvCommand,
  KvCommandMeta,
  KvCompare,
  KvCompareOp,
  KvCompareTarget,
  KvDelete,
  KvDeleteResponse,
  KvEvent,
  KvEventsPage,
  KvGet,
  KvGetResponse,
  KvOpResponse,
  KvPut,
  KvPutResponse,
  KvRangeResult,
  KvResult,
  KvTxn,
  KvTxnOp,
  KvWatchNotification,
} from './kv-types.ts';
export { kvLimits, validateKvCommand } from './kv-validate.ts';
export { createRaft, hardStateOf, propose, restartRaft, step, tick } from './raft-core.ts';
export { RaftInvariantError } from './raft-errors.ts';
export type { PersistEffect, RaftLogRecovery, RaftLogStoreOptions } from './raft-log-store.ts';
export { RaftLogStore } from './raft-log-store.ts';
export { RaftLogCorruptError } from './raft-log-store-errors.ts';
export {
  type RaftMemberError,
  type RaftMemberMessage,
  type RaftMemberProps,
  type RaftPeerMessage,
  type RaftProposeReply,
  type RaftProposeRequest,
  type RaftReadReply,
  type RaftReadRequest,
  type RaftStatusReply,
  type RaftStatusRequest,
  raftMember,
} from './raft-member.ts';
export { assertRoleTransition, roleTransitions } from './raft-roles.ts';
export type {
  AppendEntries,
  AppendEntriesResponse,
  HardState,
  LogEntry,
  NodeId,
  PreVoteRequest,
  PreVoteResponse,
  Progress,
  ProposeResult,
  RaftConfig,
  RaftEffect,
  RaftMessage,
  RaftResult,
  RaftRole,
  RaftState,
  RequestVote,
  RequestVoteResponse,
} from './raft-types.ts';
