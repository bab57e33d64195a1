/**
 * The Raft consensus member. For now, its pure core: `step`, `tick` and `propose` turn a
 * `RaftState` and an input into a new state and effects (persist, send, apply, role-change) that
 * an actor shell performs in that order. Pre-vote, elections, heartbeats, pipelined and batched
 * log replication with fast backtracking, and the current-term commit rule are implemented;
 * randomness comes from a seed in the config, time from ticks.
 */
export { createRaft, hardStateOf, propose, restartRaft, step, tick } from './raft-core.ts';
export { RaftInvariantError } from './raft-errors.ts';
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
