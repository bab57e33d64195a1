import { mulberry32 } from './mulberry32.ts';
import { RaftInvariantError } from './raft-errors.ts';
import {
  allEntries,
  appendEntries,
  compactLog,
  entriesBetween,
  entryAt,
  firstIndexOfTermAt,
  isCompacted,
  lastIndex,
  lastIndexOfTerm,
  lastTerm,
  logOf,
  restoreLog,
  termAt,
} from './raft-log.ts';
import { assertRoleTransition } from './raft-roles.ts';
import type {
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
  Progress,
  ProposeResult,
  RaftConfig,
  RaftEffect,
  RaftMessage,
  RaftResult,
  RaftRole,
  RaftState,
  SnapshotMeta,
} from './raft-types.ts';

/**
 * The pure Raft state machine (the etcd-io/raft shape): `step` for a message, `tick` for one
 * unit of logical time, `propose` for a new command on the leader. Each returns a new state and
 * the effects a shell must perform in order; the input state is never changed.
 */

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Draft = Omit<Mutable<RaftState>, 'progress' | 'votes' | 'readAcks' | 'pendingReads'> & {
  progress: Record<NodeId, Mutable<Progress>>;
  votes: Record<NodeId, boolean>;
  readAcks: Record<NodeId, number>;
  pendingReads: PendingRead[];
};

interface Pending {
  readonly sends: RaftEffect[];
  readonly notices: RaftEffect[];
  /** Lowest log index written in this step, or Infinity. */
  dirtyFrom: number;
  /** A snapshot installed in this step: persisted first, restored before any apply. */
  installed: { readonly meta: SnapshotMeta; readonly data: Uint8Array } | undefined;
}

function transition(d: Draft, to: RaftRole): void {
  assertRoleTransition(d.config.id, d.term, d.role, to);
  d.role = to;
}

function validateConfig(config: RaftConfig): void {
  if (config.members.length > 0 && !config.members.includes(config.id)) {
    throw new RaftInvariantError(`member ${config.id} is not in its own member list [${config.members}]`);
  }
  if (config.heartbeatTicks < 1 || config.electionTicks <= config.heartbeatTicks) {
    throw new RaftInvariantError(
      `electionTicks (${config.electionTicks}) must exceed heartbeatTicks (${config.heartbeatTicks}) ≥ 1`,
    );
  }
  if (config.maxEntriesPerMessage < 1 || config.maxInflight < 1) {
    throw new RaftInvariantError('maxEntriesPerMessage and maxInflight must be at least 1');
  }
}

function initialMembership(config: RaftConfig): Membership {
  const addresses: Record<NodeId, readonly string[]> = {};
  for (const id of config.members) addresses[id] = config.addresses?.[id] ?? [];
  return { voters: [...config.members], learners: [], addresses };
}

/** The membership the log ends with: its last config entry, else the snapshot's, else the config's. */
function membershipOf(
  config: RaftConfig,
  log: RaftState['log'],
  snapshotMembership: Membership | undefined,
): { membership: Membership; index: number } {
  for (let i = lastIndex(log); i > log.snapshotIndex; i--) {
    const entry = entryAt(log, i) as LogEntry;
    if (entry.type === 'config') return { membership: (entry.data as ConfigEntryData).membership, index: i };
  }
  if (snapshotMembership !== undefined) return { membership: snapshotMembership, index: log.snapshotIndex };
  return { membership: initialMembership(config), index: 0 };
}

/**
 * A member starting from what it persisted (nothing, for a brand-new member): the hard state,
 * the snapshot it was compacted to (whose state the shell restores itself) and the log after it.
 * Volatile state (role, leader, progress) starts empty; committed entries after the snapshot are
 * applied again, since the state machine is rebuilt from the snapshot and the log.
 */
export function restartRaft(
  config: RaftConfig,
  persisted: {
    readonly hardState?: HardState;
    readonly snapshot?: SnapshotMeta;
    readonly entries?: readonly LogEntry[];
  } = {},
): RaftState {
  validateConfig(config);
  const snapshot = persisted.snapshot;
  const log = logOf(persisted.entries ?? [], snapshot?.index ?? 0, snapshot?.term ?? 0);
  const hard = persisted.hardState ?? { term: 0, votedFor: undefined, commit: 0 };
  if (hard.commit > lastIndex(log)) {
    throw new RaftInvariantError(
      `persisted commit ${hard.commit} is past the persisted log (${lastIndex(log)})`,
    );
  }
  const { membership, index } = membershipOf(config, log, snapshot?.membership);
  const commit = Math.max(hard.commit, log.snapshotIndex);
  const d: Draft = {
    config,
    role: 'follower',
    term: hard.term,
    votedFor: hard.votedFor,
    leaderId: undefined,
    log,
    membership,
    membershipIndex: index,
    snapshotMembership: snapshot?.membership,
    commitIndex: commit,
    persistedIndex: lastIndex(log),
    appliedIndex: log.snapshotIndex,
    electionElapsed: 0,
    heartbeatElapsed: 0,
    randomizedElectionTimeout: config.electionTicks,
    rng: config.seed | 0,
    votes: {},
    progress: {},
    readSeq: 0,
    readAcks: {},
    pendingReads: [],
    transferee: undefined,
    transferElapsed: 0,
  };
  resetElectionTimer(d);
  return d;
}

export function createRaft(config: RaftConfig): RaftState {
  return restartRaft(config);
}

export function hardStateOf(state: RaftState): HardState {
  return { term: state.term, votedFor: state.votedFor, commit: state.commitIndex };
}

function draftOf(state: RaftState): Draft {
  const progress: Draft['progress'] = {};
  for (const [id, pr] of Object.entries(state.progress)) progress[id] = { ...pr };
  return {
    ...state,
    votes: { ...state.votes },
    progress,
    readAcks: { ...state.readAcks },
    pendingReads: [...state.pendingReads],
  };
}

/** What a leader-only call gives: the new state and effects, or why it was not done. */
export type CoreOutcome =
  | ({ readonly type: 'accepted' } & RaftResult)
  | Exclude<ProposeResult, { type: 'accepted' }>;

function accepted(state: RaftState, body: (d: Draft, p: Pending) => void): CoreOutcome {
  return { type: 'accepted', ...run(state, body) };
}

function run(state: RaftState, body: (d: Draft, p: Pending) => void): RaftResult {
  const d = draftOf(state);
  const p: Pending = { sends: [], notices: [], dirtyFrom: Number.POSITIVE_INFINITY, installed: undefined };
  body(d, p);
  return finish(state, d, p);
}

function finish(before: RaftState, d: Draft, p: Pending): RaftResult {
  const effects: RaftEffect[] = [];
  // The commit index rides along whenever the hard state is written, but a change of it alone
  // does not cost a write: it is volatile in Raft (a restarted member learns it again from the
  // leader), and writing it on every commit would add a durable file replacement to every flush.
  const hardChanged = before.term !== d.term || before.votedFor !== d.votedFor;
  const entries = Number.isFinite(p.dirtyFrom) ? entriesBetween(d.log, p.dirtyFrom, lastIndex(d.log)) : [];
  if (hardChanged || entries.length > 0 || p.installed !== undefined) {
    effects.push({
      type: 'persist',
      ...(p.installed !== undefined ? { snapshot: p.installed } : {}),
      ...(hardChanged ? { hardState: hardStateOf(d) } : {}),
      ...(entries.length > 0 ? { entries } : {}),
    });
  }
  effects.push(...p.sends);
  if (p.installed !== undefined) effects.push({ type: 'restore', snapshot: p.installed });
  if (d.commitIndex > d.appliedIndex) {
    effects.push({ type: 'apply', entries: entriesBetween(d.log, d.appliedIndex + 1, d.commitIndex) });
    d.appliedIndex = d.commitIndex;
  }
  effects.push(...p.notices);
  return { state: d, effects };
}

const isVoter = (d: RaftState, id: NodeId): boolean => d.membership.voters.includes(id);
const quorum = (d: RaftState): number => Math.floor(d.membership.voters.length / 2) + 1;
/** Every other member the leader replicates to: voters and learners. */
const peersOf = (d: RaftState): NodeId[] =>
  [...d.membership.voters, ...d.membership.learners].filter((m) => m !== d.config.id);
const votersBesidesSelf = (d: RaftState): NodeId[] => d.membership.voters.filter((m) => m !== d.config.id);

function send(p: Pending, message: RaftMessage): void {
  p.sends.push({ type: 'send', to: message.to, message });
}

function resetElectionTimer(d: Draft): void {
  const { value, next } = mulberry32(d.rng);
  d.rng = next;
  d.electionElapsed = 0;
  d.randomizedElectionTimeout = d.config.electionTicks + Math.floor(value * d.config.electionTicks);
}

function notifyRole(d: Draft, p: Pending): void {
  p.notices.push({ type: 'role-change', role: d.role, term: d.term, leaderId: d.leaderId });
}

function clearLeaderState(d: Draft): void {
  d.progress = {};
  d.readAcks = {};
  d.pendingReads = [];
  d.transferee = undefined;
  d.transferElapsed = 0;
}

function becomeFollower(d: Draft, p: Pending, term: number, leaderId: NodeId | undefined): void {
  const changed = d.role !== 'follower' || d.leaderId !== leaderId || d.term !== term;
  transition(d, 'follower');
  if (term > d.term) {
    d.term = term;
    d.votedFor = undefined;
  }
  d.leaderId = leaderId;
  d.votes = {};
  clearLeaderState(d);
  resetElectionTimer(d);
  if (changed) notifyRole(d, p);
}

function campaign(d: Draft, p: Pending): void {
  if (d.config.preVote ?? true) becomePreCandidate(d, p);
  else becomeCandidate(d, p);
}

function requestVotes(d: Draft, p: Pending, type: 'pre-vote' | 'request-vote', term: number): void {
  for (const to of votersBesidesSelf(d)) {
    send(p, {
      type,
      from: d.config.id,
      to,
      term,
      lastLogIndex: lastIndex(d.log),
      lastLogTerm: lastTerm(d.log),
    });
  }
}

function becomePreCandidate(d: Draft, p: Pending): void {
  transition(d, 'pre-candidate');
  d.leaderId = undefined;
  d.votes = { [d.config.id]: true };
  resetElectionTimer(d);
  notifyRole(d, p);
  if (quorum(d) === 1) {
    becomeCandidate(d, p);
    return;
  }
  requestVotes(d, p, 'pre-vote', d.term + 1);
}

function becomeCandidate(d: Draft, p: Pending): void {
  transition(d, 'candidate');
  d.term += 1;
  d.votedFor = d.config.id;
  d.leaderId = undefined;
  d.votes = { [d.config.id]: true };
  resetElectionTimer(d);
  notifyRole(d, p);
  if (quorum(d) === 1) {
    becomeLeader(d, p);
    return;
  }
  requestVotes(d, p, 'request-vote', d.term);
}

function newProgress(next: number): Mutable<Progress> {
  return {
    match: 0,
    next,
    mode: 'probe',
    paused: false,
    inflight: [],
    recentActive: false,
    stalls: 0,
    matchAtLastHeartbeat: 0,
  };
}

function becomeLeader(d: Draft, p: Pending): void {
  transition(d, 'leader');
  d.leaderId = d.config.id;
  d.votes = {};
  d.heartbeatElapsed = 0;
  d.electionElapsed = 0;
  clearLeaderState(d);
  const next = lastIndex(d.log) + 1;
  for (const id of peersOf(d)) d.progress[id] = newProgress(next);
  notifyRole(d, p);
  // A no-op of the new term lets the leader commit entries of earlier terms (Raft §5.4.2). The
  // first leader of a new group writes its membership instead, so that it becomes durable.
  const entry: LogEntry =
    d.membershipIndex === 0
      ? {
          type: 'config',
          term: d.term,
          index: next,
          data: { change: { type: 'bootstrap' }, membership: d.membership } satisfies ConfigEntryData,
        }
      : { type: 'noop', term: d.term, index: next };
  appendToLog(d, p, [entry]);
  maybeCommit(d, p);
  for (const id of peersOf(d)) sendAppend(d, p, id, true);
}

/** Recomputes the membership after the log changed from `from` on (§4.1: it applies once in the log). */
function refreshMembership(d: Draft, from: number): void {
  const wasLeader = d.role === 'leader';
  if (from > d.membershipIndex && !appendsConfig(d, from)) return;
  const { membership, index } = membershipOf(d.config, d.log, d.snapshotMembership);
  d.membership = membership;
  d.membershipIndex = index;
  if (!wasLeader) return;
  const next = lastIndex(d.log) + 1;
  const peers = peersOf(d);
  for (const id of peers) d.progress[id] ??= newProgress(next);
  for (const id of Object.keys(d.progress)) {
    if (!peers.includes(id)) {
      delete d.progress[id];
      delete d.readAcks[id];
    }
  }
}

function appendsConfig(d: Draft, from: number): boolean {
  for (let i = from; i <= lastIndex(d.log); i++) if (entryAt(d.log, i)?.type === 'config') return true;
  return false;
}

function appendToLog(d: Draft, p: Pending, entries: readonly LogEntry[]): void {
  const first = entries[0];
  if (first === undefined) return;
  if (first.index <= d.commitIndex) {
    throw new RaftInvariantError(
      `member ${d.config.id} would overwrite committed index ${first.index} (commit ${d.commitIndex})`,
    );
  }
  d.log = appendEntries(d.log, entries);
  d.persistedIndex = Math.min(d.persistedIndex, first.index - 1);
  p.dirtyFrom = Math.min(p.dirtyFrom, first.index);
  refreshMembership(d, first.index);
}

/** Sends the next AppendEntries (or the snapshot) to `to` if its progress allows; `allowEmpty` sends even with nothing new. */
function sendAppend(d: Draft, p: Pending, to: NodeId, allowEmpty: boolean): void {
  const pr = d.progress[to];
  if (pr === undefined) return;
  if (pr.mode === 'snapshot') return;
  if (pr.mode === 'probe' && pr.paused) return;
  if (pr.mode === 'replicate' && pr.inflight.length >= d.config.maxInflight) return;
  const prev = pr.next - 1;
  if (isCompacted(d.log, prev)) {
    // The entries this follower needs are gone: send the snapshot they were compacted into.
    send(p, {
      type: 'install-snapshot',
      from: d.config.id,
      to,
      term: d.term,
      snapshot: {
        index: d.log.snapshotIndex,
        term: d.log.snapshotTerm,
        membership: d.snapshotMembership ?? initialMembership(d.config),
      },
      readSeq: d.readSeq,
    });
    pr.mode = 'snapshot';
    pr.paused = true;
    pr.inflight = [];
    pr.stalls = 0;
    pr.next = d.log.snapshotIndex + 1;
    return;
  }
  const entries = entriesBetween(d.log, prev + 1, prev + d.config.maxEntriesPerMessage);
  if (entries.length === 0 && !allowEmpty) return;
  send(p, {
    type: 'append-entries',
    from: d.config.id,
    to,
    term: d.term,
    prevLogIndex: prev,
    prevLogTerm: termAt(d.log, prev),
    entries,
    leaderCommit: d.commitIndex,
    readSeq: d.readSeq,
  });
  const last = entries[entries.length - 1];
  if (pr.mode === 'probe') pr.paused = true;
  else if (last !== undefined) {
    pr.inflight = [...pr.inflight, last.index];
    pr.next = last.index + 1;
  }
}

/** A heartbeat to a pipelined follower names its match point, which cannot be rejected out of order. */
function sendHeartbeat(d: Draft, p: Pending, to: NodeId): void {
  const pr = d.progress[to];
  if (pr === undefined) return;
  if (isCompacted(d.log, pr.match)) {
    pr.mode = 'probe';
    pr.paused = false;
    pr.next = pr.match + 1;
    sendAppend(d, p, to, true);
    return;
  }
  send(p, {
    type: 'append-entries',
    from: d.config.id,
    to,
    term: d.term,
    prevLogIndex: pr.match,
    prevLogTerm: termAt(d.log, pr.match),
    entries: [],
    leaderCommit: Math.min(d.commitIndex, pr.match),
    readSeq: d.readSeq,
  });
}

function broadcastHeartbeat(d: Draft, p: Pending): void {
  for (const id of peersOf(d)) {
    const pr = d.progress[id];
    if (pr === undefined) continue;
    if (pr.mode === 'snapshot') {
      // An unanswered snapshot is sent again after about an election timeout.
      pr.stalls += 1;
      if (pr.stalls * d.config.heartbeatTicks >= d.config.electionTicks) {
        pr.mode = 'probe';
        pr.paused = false;
        pr.stalls = 0;
        pr.next = pr.match + 1;
        sendAppend(d, p, id, true);
      } else sendHeartbeat(d, p, id);
      continue;
    }
    if (pr.mode === 'replicate') {
      pr.stalls = pr.inflight.length > 0 && pr.match === pr.matchAtLastHeartbeat ? pr.stalls + 1 : 0;
      pr.matchAtLastHeartbeat = pr.match;
      if (pr.stalls >= 2) {
        // Messages were probably lost: fall back to probing from the last known match.
        pr.mode = 'probe';
        pr.next = pr.match + 1;
        pr.inflight = [];
        pr.stalls = 0;
      }
    }
    if (pr.mode === 'probe') {
      pr.paused = false;
      sendAppend(d, p, id, true);
    } else if (pr.next <= lastIndex(d.log) && pr.inflight.length < d.config.maxInflight) {
      sendAppend(d, p, id, false);
    } else {
      sendHeartbeat(d, p, id);
    }
  }
}

/**
 * Commits the highest index stored on a quorum of voters, but only if it is of the current term
 * (Figure 8). A leader that is not a voter (it is removing itself) does not count its own log.
 */
function maybeCommit(d: Draft, p: Pending): boolean {
  const matches = votersBesidesSelf(d).map((id) => d.progress[id]?.match ?? 0);
  if (isVoter(d, d.config.id)) matches.push(d.persistedIndex);
  matches.sort((a, b) => b - a);
  const candidate = matches[quorum(d) - 1] ?? 0;
  if (candidate > d.commitIndex && termAt(d.log, candidate) === d.term) {
    d.commitIndex = candidate;
    onCommitAdvanced(d, p);
    return true;
  }
  return false;
}

function onCommitAdvanced(d: Draft, p: Pending): void {
  settleReads(d, p);
  // A leader removed from the voters hands over once its removal is committed (§4.2.2).
  if (d.role === 'leader' && !isVoter(d, d.config.id) && d.commitIndex >= d.membershipIndex) {
    becomeFollower(d, p, d.term, undefined);
  }
}

function isUpToDate(d: Draft, lastLogIndex: number, lastLogTerm: number): boolean {
  const myTerm = lastTerm(d.log);
  return lastLogTerm > myTerm || (lastLogTerm === myTerm && lastLogIndex >= lastIndex(d.log));
}

type ResponseFields = Omit<AppendEntriesResponse, 'type' | 'from' | 'to' | 'term' | 'readSeq'>;

function replyAppend(d: Draft, p: Pending, m: AppendEntries | InstallSnapshot, fields: ResponseFields): void {
  send(p, {
    type: 'append-entries-response',
    from: d.config.id,
    to: m.from,
    term: d.term,
    readSeq: m.readSeq,
    ...fields,
  });
}

function followLeaderOf(d: Draft, p: Pending, m: AppendEntries | InstallSnapshot): void {
  if (d.role !== 'follower' || d.leaderId !== m.from) becomeFollower(d, p, m.term, m.from);
  d.electionElapsed = 0;
}

function handleAppendEntries(d: Draft, p: Pending, m: AppendEntries): void {
  followLeaderOf(d, p, m);
  const success = (matchIndex: number): void =>
    replyAppend(d, p, m, { success: true, matchIndex, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 });
  let entries = m.entries;
  let prevIndex = m.prevLogIndex;
  let prevTerm = m.prevLogTerm;
  if (prevIndex < d.log.snapshotIndex) {
    // What precedes our snapshot is committed here, and so matches the leader: skip it.
    const skip = d.log.snapshotIndex - prevIndex;
    if (skip >= entries.length) {
      success(m.prevLogIndex + m.entries.length);
      return;
    }
    entries = entries.slice(skip);
    prevIndex = d.log.snapshotIndex;
    prevTerm = d.log.snapshotTerm;
  }
  const last = lastIndex(d.log);
  if (prevIndex > last || termAt(d.log, prevIndex) !== prevTerm) {
    const shorter = prevIndex > last;
    replyAppend(d, p, m, {
      success: false,
      matchIndex: 0,
      rejectedIndex: prevIndex,
      conflictTerm: shorter ? 0 : termAt(d.log, prevIndex),
      conflictIndex: shorter ? last + 1 : firstIndexOfTermAt(d.log, prevIndex),
    });
    return;
  }
  let firstNew = entries.length;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as LogEntry;
    if (e.index > lastIndex(d.log) || termAt(d.log, e.index) !== e.term) {
      firstNew = i;
      break;
    }
  }
  appendToLog(d, p, entries.slice(firstNew));
  const lastNew = prevIndex + entries.length;
  const commit = Math.min(m.leaderCommit, lastNew);
  if (commit > d.commitIndex) d.commitIndex = commit;
  success(lastNew);
}

function handleInstallSnapshot(d: Draft, p: Pending, m: InstallSnapshot): void {
  followLeaderOf(d, p, m);
  const meta = m.snapshot;
  const reply = (matchIndex: number): void =>
    replyAppend(d, p, m, { success: true, matchIndex, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 });
  if (meta.index <= d.commitIndex) {
    // Already have everything it covers (committed entries match the leader's).
    reply(d.commitIndex);
    return;
  }
  if (m.data === undefined) {
    throw new RaftInvariantError(`install-snapshot from ${m.from} at index ${meta.index} carries no data`);
  }
  d.log = restoreLog(d.log, meta.index, meta.term);
  d.persistedIndex = Math.max(meta.index, Math.min(d.persistedIndex, lastIndex(d.log)));
  d.snapshotMembership = meta.membership;
  d.commitIndex = meta.index;
  d.appliedIndex = meta.index;
  const { membership, index } = membershipOf(d.config, d.log, meta.membership);
  d.membership = membership;
  d.membershipIndex = index;
  p.installed = { meta, data: m.data };
  reply(meta.index);
}

function handleAppendResponse(d: Draft, p: Pending, m: AppendEntriesResponse): void {
  const pr = d.progress[m.from];
  if (d.role !== 'leader' || pr === undefined) return;
  pr.recentActive = true;
  if (m.readSeq > (d.readAcks[m.from] ?? 0)) {
    d.readAcks[m.from] = m.readSeq;
    settleReads(d, p);
    if (d.role !== 'leader') return;
  }
  if (m.success) {
    if (m.matchIndex > pr.match) {
      pr.match = m.matchIndex;
      pr.stalls = 0;
    }
    pr.inflight = pr.inflight.filter((i) => i > pr.match);
    if (pr.mode !== 'replicate') {
      pr.mode = 'replicate';
      pr.paused = false;
      pr.inflight = [];
      pr.stalls = 0;
      pr.next = pr.match + 1;
    } else if (pr.next <= pr.match) pr.next = pr.match + 1;
    maybeCommit(d, p);
    if (d.role !== 'leader') return;
    if (d.transferee === m.from && pr.match === lastIndex(d.log)) sendTimeoutNow(d, p, m.from);
    sendAppend(d, p, m.from, false);
    return;
  }
  if (pr.mode === 'snapshot') return;
  // A rejection is stale if it answers a message sent before the current probe or below the match.
  if (pr.mode === 'probe' && m.rejectedIndex !== pr.next - 1) return;
  if (pr.mode === 'replicate' && m.rejectedIndex <= pr.match) return;
  let next = m.conflictIndex;
  if (m.conflictTerm > 0) {
    const mine = lastIndexOfTerm(d.log, m.conflictTerm, m.rejectedIndex);
    if (mine > 0) next = mine + 1;
  }
  pr.next = Math.max(pr.match + 1, Math.min(next, m.rejectedIndex));
  pr.mode = 'probe';
  pr.paused = false;
  pr.inflight = [];
  sendAppend(d, p, m.from, true);
}

function handleVoteRequest(
  d: Draft,
  p: Pending,
  m: RaftMessage & { type: 'pre-vote' | 'request-vote' },
): void {
  const upToDate = isUpToDate(d, m.lastLogIndex, m.lastLogTerm);
  if (m.type === 'pre-vote') {
    const inLease =
      d.role === 'leader' || (d.leaderId !== undefined && d.electionElapsed < d.config.electionTicks);
    const granted = m.term > d.term && upToDate && !inLease;
    send(p, {
      type: 'pre-vote-response',
      from: d.config.id,
      to: m.from,
      term: granted ? m.term : d.term,
      granted,
    });
    return;
  }
  const canVote = d.votedFor === m.from || (d.votedFor === undefined && d.leaderId === undefined);
  const granted = m.term === d.term && canVote && upToDate;
  if (granted) {
    d.votedFor = m.from;
    resetElectionTimer(d);
  }
  send(p, { type: 'request-vote-response', from: d.config.id, to: m.from, term: d.term, granted });
}

function tally(d: Draft): { granted: number; rejected: number } {
  let granted = 0;
  let rejected = 0;
  for (const [id, v] of Object.entries(d.votes)) {
    if (!isVoter(d, id)) continue;
    if (v) granted++;
    else rejected++;
  }
  return { granted, rejected };
}

function handleVoteResponse(
  d: Draft,
  p: Pending,
  m: RaftMessage & { type: 'pre-vote-response' | 'request-vote-response' },
): void {
  const expected = m.type === 'pre-vote-response' ? 'pre-candidate' : 'candidate';
  const electionTerm = m.type === 'pre-vote-response' ? d.term + 1 : d.term;
  if (d.role !== expected) return;
  if (m.granted && m.term !== electionTerm) return;
  if (!m.granted && m.term > electionTerm) return;
  d.votes[m.from] = m.granted;
  const { granted, rejected } = tally(d);
  if (granted >= quorum(d)) {
    if (expected === 'pre-candidate') becomeCandidate(d, p);
    else becomeLeader(d, p);
  } else if (rejected >= quorum(d)) {
    becomeFollower(d, p, d.term, undefined);
  }
}

function sendTimeoutNow(d: Draft, p: Pending, to: NodeId): void {
  send(p, { type: 'timeout-now', from: d.config.id, to, term: d.term });
}

/** Answers a message of an older term so that a stale leader or candidate steps down. */
function rejectStale(d: Draft, p: Pending, m: RaftMessage): void {
  if (m.type === 'append-entries' || m.type === 'install-snapshot') {
    send(p, {
      type: 'append-entries-response',
      from: d.config.id,
      to: m.from,
      term: d.term,
      success: false,
      matchIndex: 0,
      rejectedIndex: m.type === 'append-entries' ? m.prevLogIndex : m.snapshot.index,
      conflictTerm: 0,
      conflictIndex: 0,
      readSeq: 0,
    });
  } else if (m.type === 'pre-vote' || m.type === 'request-vote') {
    const type = m.type === 'pre-vote' ? 'pre-vote-response' : 'request-vote-response';
    send(p, { type, from: d.config.id, to: m.from, term: d.term, granted: false });
  }
}

/**
 * Whether to listen to `m` at all. Leaders' messages are taken from anyone, since a member being
 * added learns the membership only from them; elections are among known voters only, so a
 * removed member that still campaigns cannot disturb the group.
 */
function accepts(d: Draft, m: RaftMessage): boolean {
  switch (m.type) {
    case 'append-entries':
    case 'install-snapshot':
    case 'timeout-now':
      return true;
    case 'pre-vote':
    case 'request-vote':
      return isVoter(d, m.from) && isVoter(d, d.config.id);
    default:
      return d.membership.voters.includes(m.from) || d.membership.learners.includes(m.from);
  }
}

/** Feeds one message from a peer to the core. */
export function step(state: RaftState, m: RaftMessage): RaftResult {
  if (m.to !== state.config.id) {
    throw new RaftInvariantError(`message for ${m.to} was stepped into member ${state.config.id}`);
  }
  return run(state, (d, p) => {
    if (!accepts(d, m)) return;
    if (m.term > d.term) {
      const keepsTerm = m.type === 'pre-vote' || (m.type === 'pre-vote-response' && m.granted);
      const fromLeader = m.type === 'append-entries' || m.type === 'install-snapshot';
      if (!keepsTerm) becomeFollower(d, p, m.term, fromLeader ? m.from : undefined);
    } else if (m.term < d.term) {
      rejectStale(d, p, m);
      return;
    }
    if (m.type === 'pre-vote' || m.type === 'request-vote') return handleVoteRequest(d, p, m);
    roleHandlers[d.role](d, p, m);
  });
}

type RoleHandler = (d: Draft, p: Pending, m: RaftMessage) => void;

/** A follower takes the leader's entries and snapshots, and campaigns when told to (§3.10). */
const stepFollower: RoleHandler = (d, p, m) => {
  switch (m.type) {
    case 'append-entries':
      return handleAppendEntries(d, p, m);
    case 'install-snapshot':
      return handleInstallSnapshot(d, p, m);
    case 'timeout-now':
      // Campaign at once, skipping pre-vote: the leader has stepped aside for us.
      if (isVoter(d, d.config.id)) becomeCandidate(d, p);
      return;
    default:
      // Answers to requests of an earlier role or term of ours: nothing to do.
      return;
  }
};

/** A (pre-)candidate counts votes, and follows a leader of its term that turns up. */
const stepCandidate: RoleHandler = (d, p, m) => {
  switch (m.type) {
    case 'append-entries':
      return handleAppendEntries(d, p, m);
    case 'install-snapshot':
      return handleInstallSnapshot(d, p, m);
    case 'pre-vote-response':
    case 'request-vote-response':
      return handleVoteResponse(d, p, m);
    default:
      return;
  }
};

/** A leader tracks its followers' answers; another leader of its own term is a broken invariant. */
const stepLeader: RoleHandler = (d, p, m) => {
  switch (m.type) {
    case 'append-entries-response':
      return handleAppendResponse(d, p, m);
    case 'append-entries':
    case 'install-snapshot':
      throw new RaftInvariantError(
        `leader ${d.config.id} of term ${d.term} got ${m.type} from ${m.from} of the same term: two leaders in one term`,
      );
    default:
      return;
  }
};

const roleHandlers: Readonly<Record<RaftRole, RoleHandler>> = {
  follower: stepFollower,
  'pre-candidate': stepCandidate,
  candidate: stepCandidate,
  leader: stepLeader,
};

/** Advances logical time by one tick: election timeouts, heartbeats, the leader's quorum check. */
export function tick(state: RaftState): RaftResult {
  return run(state, (d, p) => {
    d.electionElapsed += 1;
    if (d.role !== 'leader') {
      if (d.electionElapsed >= d.randomizedElectionTimeout) {
        // Learners and members not (or no longer) in the group never campaign.
        if (isVoter(d, d.config.id)) campaign(d, p);
        else resetElectionTimer(d);
      }
      return;
    }
    if (d.transferee !== undefined && ++d.transferElapsed >= d.config.electionTicks) {
      d.transferee = undefined;
      d.transferElapsed = 0;
    }
    if (d.electionElapsed >= d.config.electionTicks) {
      d.electionElapsed = 0;
      if (d.config.checkQuorum ?? true) {
        const active = votersBesidesSelf(d).filter((id) => d.progress[id]?.recentActive).length + 1;
        if (active < quorum(d)) return becomeFollower(d, p, d.term, undefined);
        for (const pr of Object.values(d.progress)) pr.recentActive = false;
      }
    }
    d.heartbeatElapsed += 1;
    if (d.heartbeatElapsed >= d.config.heartbeatTicks) {
      d.heartbeatElapsed = 0;
      broadcastHeartbeat(d, p);
    }
  });
}

function refuseProposal(state: RaftState): ProposeResult | undefined {
  if (state.role !== 'leader') return { type: 'not-leader', leaderHint: state.leaderId };
  if (state.transferee !== undefined) {
    return {
      type: 'rejected',
      reason: `leadership is being transferred to ${state.transferee}`,
      retryable: true,
    };
  }
  return undefined;
}

function proposeEntry(state: RaftState, type: LogEntry['type'], data: unknown): ProposeResult {
  const refused = refuseProposal(state);
  if (refused !== undefined) return refused;
  const index = lastIndex(state.log) + 1;
  const result = run(state, (d, p) => {
    appendToLog(d, p, [{ type, term: d.term, index, data }]);
    maybeCommit(d, p);
    for (const id of peersOf(d)) sendAppend(d, p, id, false);
  });
  return { type: 'accepted', state: result.state, effects: result.effects, index, term: state.term };
}

/** Appends a command on the leader and starts replicating it; elsewhere, says who the leader may be. */
export function propose(state: RaftState, data: unknown): ProposeResult {
  return proposeEntry(state, 'command', data);
}

/**
 * Appends several commands at once (indexes `index`, `index + 1`, …): one persist and one
 * AppendEntries per follower for the lot, which is what lets a busy leader keep up. The shell
 * gathers the proposals that arrive together and proposes them here.
 */
export function proposeMany(state: RaftState, data: readonly unknown[]): ProposeResult {
  const refused = refuseProposal(state);
  if (refused !== undefined) return refused;
  const index = lastIndex(state.log) + 1;
  const result = run(state, (d, p) => {
    appendToLog(
      d,
      p,
      data.map((item, i) => ({ type: 'command', term: d.term, index: index + i, data: item })),
    );
    maybeCommit(d, p);
    for (const id of peersOf(d)) sendAppend(d, p, id, false);
  });
  return { type: 'accepted', state: result.state, effects: result.effects, index, term: state.term };
}

function changedMembership(m: Membership, change: MembershipChange): Membership | string {
  const known = m.voters.includes(change.id) || m.learners.includes(change.id);
  switch (change.type) {
    case 'add-learner':
      if (known) return `${change.id} is already a member`;
      return {
        voters: m.voters,
        learners: [...m.learners, change.id],
        addresses: { ...m.addresses, [change.id]: [...change.addresses] },
      };
    case 'promote':
      if (!m.learners.includes(change.id)) return `${change.id} is not a learner`;
      return {
        voters: [...m.voters, change.id],
        learners: m.learners.filter((id) => id !== change.id),
        addresses: m.addresses,
      };
    case 'remove': {
      if (!known) return `${change.id} is not a member`;
      if (m.voters.length === 1 && m.voters[0] === change.id) return `${change.id} is the last voter`;
      const addresses = { ...m.addresses };
      delete addresses[change.id];
      return {
        voters: m.voters.filter((id) => id !== change.id),
        learners: m.learners.filter((id) => id !== change.id),
        addresses,
      };
    }
  }
}

/**
 * Proposes one membership change (leader only). Only one may be in flight: until the previous
 * config entry commits, another is refused as retryable (single-server changes, §4.1).
 */
export function proposeMembershipChange(state: RaftState, change: MembershipChange): ProposeResult {
  const refused = refuseProposal(state);
  if (refused !== undefined) return refused;
  if (state.membershipIndex > state.commitIndex || termAt(state.log, state.commitIndex) !== state.term) {
    return {
      type: 'rejected',
      reason: 'a membership change or the new leader’s first entry is not committed yet',
      retryable: true,
    };
  }
  const membership = changedMembership(state.membership, change);
  if (typeof membership === 'string') return { type: 'rejected', reason: membership, retryable: false };
  return proposeEntry(state, 'config', { change, membership } satisfies ConfigEntryData);
}

/**
 * The shell's report that a `persist` effect whose last entry is `index` of `term` is on stable
 * storage. Ignored if the log has since been truncated below it or rewritten there.
 */
export function persisted(state: RaftState, index: number, term: number): RaftResult {
  if (index <= state.persistedIndex || termAt(state.log, index) !== term || index > lastIndex(state.log)) {
    return { state, effects: [] };
  }
  return run(state, (d, p) => {
    d.persistedIndex = index;
    if (d.role === 'leader') maybeCommit(d, p);
  });
}

/** Whether the learner (or voter) `id` holds everything the leader has committed. */
export function isCaughtUp(state: RaftState, id: NodeId): boolean {
  const pr = state.progress[id];
  return state.role === 'leader' && pr !== undefined && pr.match >= state.commitIndex;
}

/**
 * ReadIndex (§6.4): records the commit index and confirms leadership with a round of heartbeats;
 * a `read-ready` effect names the index to wait for once a quorum answered. Reads arriving
 * together should share one call (the shell batches them under one `requestId`).
 */
export function readIndex(state: RaftState, requestId: string): CoreOutcome {
  if (state.role !== 'leader') return { type: 'not-leader', leaderHint: state.leaderId };
  return accepted(state, (d, p) => {
    d.readSeq += 1;
    d.pendingReads.push({ requestId, seq: d.readSeq, index: undefined });
    settleReads(d, p);
    if (d.pendingReads.length === 0) return;
    for (const id of peersOf(d)) sendHeartbeat(d, p, id);
  });
}

/** Releases the ReadIndex requests a quorum has confirmed, once this term has committed an entry. */
function settleReads(d: Draft, p: Pending): void {
  if (d.pendingReads.length === 0 || termAt(d.log, d.commitIndex) !== d.term) return;
  const acked = (seq: number): boolean => {
    let count = isVoter(d, d.config.id) ? 1 : 0;
    for (const id of votersBesidesSelf(d)) if ((d.readAcks[id] ?? 0) >= seq) count++;
    return count >= quorum(d);
  };
  while (d.pendingReads.length > 0) {
    const read = d.pendingReads[0] as PendingRead;
    if (!acked(read.seq)) return;
    d.pendingReads.shift();
    // The commit index now is at least the one when the read arrived, so it is safe to use.
    p.notices.push({ type: 'read-ready', requestId: read.requestId, index: d.commitIndex });
  }
}

/**
 * Starts handing leadership to the voter `to` (§3.10): proposals are refused meanwhile; once
 * `to` has the whole log it is told to campaign. Gives up after an election timeout.
 */
export function transferLeadership(state: RaftState, to: NodeId): CoreOutcome {
  if (state.role !== 'leader') return { type: 'not-leader', leaderHint: state.leaderId };
  if (to === state.config.id) return { type: 'accepted', state, effects: [] };
  if (!isVoter(state, to)) return { type: 'rejected', reason: `${to} is not a voter`, retryable: false };
  return accepted(state, (d, p) => {
    d.transferee = to;
    d.transferElapsed = 0;
    const pr = d.progress[to];
    if (pr !== undefined && pr.match === lastIndex(d.log)) sendTimeoutNow(d, p, to);
    else sendAppend(d, p, to, true);
  });
}

/**
 * Log compaction: the shell has a snapshot of its state machine at `index` (≤ applied). Drops
 * the entries up to it and returns the snapshot's metadata for the shell to store with the data.
 */
export function compact(state: RaftState, index: number): { state: RaftState; meta: SnapshotMeta } {
  if (index > state.appliedIndex || index <= state.log.snapshotIndex) {
    throw new RaftInvariantError(
      `cannot compact to ${index}: it must be in ${state.log.snapshotIndex + 1}..${state.appliedIndex} (applied)`,
    );
  }
  const membership = membershipOf(
    state.config,
    { ...state.log, length: index - state.log.snapshotIndex },
    state.snapshotMembership,
  ).membership;
  const meta: SnapshotMeta = { index, term: termAt(state.log, index), membership };
  return { state: { ...state, log: compactLog(state.log, index), snapshotMembership: membership }, meta };
}

/** Every entry the member holds after its snapshot (for tests and status). */
export function heldEntries(state: RaftState): LogEntry[] {
  return allEntries(state.log);
}
