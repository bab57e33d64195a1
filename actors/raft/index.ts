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
  type Coordinator,
  type CoordinatorComponents,
  type CoordinatorInit,
  coordinatorPath,
  raftMemberPath,
  startCoordinator,
} from './coordinator.ts';
export {
  type KvCallOptions,
  KvClient,
  type KvClientInit,
  type KvConsistency,
  type KvWatch,
  type KvWatchOptions as KvClientWatchOptions,
} from './kv-client.ts';
export {
  KvCompactedError,
  type KvErrorReason,
  KvInvalidCommandError,
  KvSnapshotCorruptError,
  KvStaleCommandError,
  KvTooManyWatchersError,
} from './kv-errors.ts';
export { type KvServiceMessage, type KvServiceProps, kvService } from './kv-service.ts';
export type {
  KvCommandRequest,
  KvCommandValue,
  KvQueryRequest,
  KvQueryValue,
  KvServiceError,
  KvServiceReply,
  KvServiceRequest,
} from './kv-service-protocol.ts';
export { kvServicePath } from './kv-service-protocol.ts';
export { kvServiceLimits, validateKvServiceRequest } from './kv-service-validate.ts';
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
export {
  type CoreOutcome,
  compact,
  createRaft,
  hardStateOf,
  heldEntries,
  isCaughtUp,
  persisted,
  propose,
  proposeMany,
  proposeMembershipChange,
  readIndex,
  restartRaft,
  step,
  tick,
  transferLeadership,
} from './raft-core.ts';
export { RaftInvariantError } from './raft-errors.ts';
export type { RaftLog } from './raft-log.ts';
export type { PersistEffect, RaftLogRecovery, RaftLogStoreOptions } from './raft-log-store.ts';
export { RaftLogStore } from './raft-log-store.ts';
export { RaftLogCorruptError } from './raft-log-store-errors.ts';
export {
  type RaftAddMemberRequest,
  type RaftCancelWatchRequest,
  type RaftMemberError,
  type RaftMemberMessage,
  type RaftMemberProps,
  type RaftMembershipReply,
  type RaftPeerMessage,
  type RaftProposeReply,
  type RaftProposeRequest,
  type RaftQueryReply,
  type RaftQueryRequest,
  type RaftReadReply,
  type RaftReadRequest,
  type RaftRemoveMemberRequest,
  type RaftStatusReply,
  type RaftStatusRequest,
  type RaftTransferLeadershipReply,
  type RaftTransferLeadershipRequest,
  type RaftWatchEvent,
  type RaftWatchRequest,
  raftMember,
} from './raft-member.ts';
export { assertRoleTransition, roleTransitions } from './raft-roles.ts';
export type { RaftSnapshot } from './raft-snapshot-file.ts';
export type {
  AppendEntries,
  AppendEntriesResponse,
  ConfigEntryData,
  HardState,
  InstallSnapshot,
  LogEntry,
  Membership,
  MembershipChange,
  NodeId,
  PendingRead,
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
  SnapshotMeta,
  TimeoutNow,
} from './raft-types.ts';
