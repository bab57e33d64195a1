import { mulberry32 } from './mulberry32.ts';
import { RaftInvariantError } from './raft-errors.ts';
import {
  entriesBetween,
  firstIndexOfTermAt,
  lastIndex,
  lastIndexOfTerm,
  lastTerm,
  termAt,
} from './raft-log.ts';
import { assertRoleTransition } from './raft-roles.ts';
import type {
  AppendEntries,
  AppendEntriesResponse,
  HardState,
  LogEntry,
  NodeId,
  Progress,
  ProposeResult,
  RaftConfig,
  RaftEffect,
  RaftMessage,
  RaftResult,
  RaftRole,
  RaftState,
} from './raft-types.ts';

/**
 * The pure Raft state machine (the etcd-io/raft shape): `step` for a message, `tick` for one
 * unit of logical time, `propose` for a new command on the leader. Each returns a new state and
 * the effects a shell must perform in order; the input state is never changed.
 */

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Draft = Omit<Mutable<RaftState>, 'progress' | 'votes'> & {
  progress: Record<NodeId, Mutable<Progress>>;
  votes: Record<NodeId, boolean>;
};

interface Pending {
  readonly sends: RaftEffect[];
  readonly notices: RaftEffect[];
  /** Lowest log index written in this step, or Infinity. */
  dirtyFrom: number;
}

function transition(d: Draft, to: RaftRole): void {
  assertRoleTransition(d.config.id, d.term, d.role, to);
  d.role = to;
}

function validateConfig(config: RaftConfig): void {
  if (!config.members.includes(config.id)) {
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

/**
 * A member starting from what it persisted (nothing, for a brand-new member): the hard state and
 * the log. Volatile state (role, leader, progress, applied index) starts empty; committed entries
 * are applied again from index 1, since the state machine is rebuilt from the log.
 */
export function restartRaft(
  config: RaftConfig,
  persisted: { readonly hardState?: HardState; readonly entries?: readonly LogEntry[] } = {},
): RaftState {
  validateConfig(config);
  const log = [...(persisted.entries ?? [])];
  log.forEach((entry, i) => {
    if (entry.index !== i + 1) {
      throw new RaftInvariantError(`persisted log has index ${entry.index} at position ${i + 1}`);
    }
  });
  const hard = persisted.hardState ?? { term: 0, votedFor: undefined, commit: 0 };
  if (hard.commit > log.length) {
    throw new RaftInvariantError(`persisted commit ${hard.commit} is past the persisted log (${log.length})`);
  }
  const d: Draft = {
    config,
    role: 'follower',
    term: hard.term,
    votedFor: hard.votedFor,
    leaderId: undefined,
    log,
    commitIndex: hard.commit,
    appliedIndex: 0,
    electionElapsed: 0,
    heartbeatElapsed: 0,
    randomizedElectionTimeout: config.electionTicks,
    rng: config.seed | 0,
    votes: {},
    progress: {},
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
  return { ...state, votes: { ...state.votes }, progress };
}

function run(state: RaftState, body: (d: Draft, p: Pending) => void): RaftResult {
  const d = draftOf(state);
  const p: Pending = { sends: [], notices: [], dirtyFrom: Number.POSITIVE_INFINITY };
  body(d, p);
  return finish(state, d, p);
}

function finish(before: RaftState, d: Draft, p: Pending): RaftResult {
  const effects: RaftEffect[] = [];
  const hardChanged =
    before.term !== d.term || before.votedFor !== d.votedFor || before.commitIndex !== d.commitIndex;
  const entries = Number.isFinite(p.dirtyFrom) ? entriesBetween(d.log, p.dirtyFrom, lastIndex(d.log)) : [];
  if (hardChanged || entries.length > 0) {
    effects.push({
      type: 'persist',
      ...(hardChanged ? { hardState: hardStateOf(d) } : {}),
      ...(entries.length > 0 ? { entries } : {}),
    });
  }
  effects.push(...p.sends);
  if (d.commitIndex > d.appliedIndex) {
    effects.push({ type: 'apply', entries: entriesBetween(d.log, d.appliedIndex + 1, d.commitIndex) });
    d.appliedIndex = d.commitIndex;
  }
  effects.push(...p.notices);
  return { state: d, effects };
}

const quorum = (d: Draft): number => Math.floor(d.config.members.length / 2) + 1;
const peersOf = (d: Draft): NodeId[] => d.config.members.filter((m) => m !== d.config.id);

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

function becomeFollower(d: Draft, p: Pending, term: number, leaderId: NodeId | undefined): void {
  const changed = d.role !== 'follower' || d.leaderId !== leaderId || d.term !== term;
  transition(d, 'follower');
  if (term > d.term) {
    d.term = term;
    d.votedFor = undefined;
  }
  d.leaderId = leaderId;
  d.votes = {};
  d.progress = {};
  resetElectionTimer(d);
  if (changed) notifyRole(d, p);
}

function campaign(d: Draft, p: Pending): void {
  if (d.config.preVote ?? true) becomePreCandidate(d, p);
  else becomeCandidate(d, p);
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
  for (const to of peersOf(d)) {
    send(p, {
      type: 'pre-vote',
      from: d.config.id,
      to,
      term: d.term + 1,
      lastLogIndex: lastIndex(d.log),
      lastLogTerm: lastTerm(d.log),
    });
  }
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
  for (const to of peersOf(d)) {
    send(p, {
      type: 'request-vote',
      from: d.config.id,
      to,
      term: d.term,
      lastLogIndex: lastIndex(d.log),
      lastLogTerm: lastTerm(d.log),
    });
  }
}

function becomeLeader(d: Draft, p: Pending): void {
  transition(d, 'leader');
  d.leaderId = d.config.id;
  d.votes = {};
  d.heartbeatElapsed = 0;
  d.electionElapsed = 0;
  const next = lastIndex(d.log) + 1;
  d.progress = {};
  for (const id of peersOf(d)) {
    d.progress[id] = {
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
  notifyRole(d, p);
  // A no-op of the new term lets the leader commit entries of earlier terms (Raft §5.4.2).
  appendToLog(d, p, [{ type: 'noop', term: d.term, index: next }]);
  maybeCommit(d);
  for (const id of peersOf(d)) sendAppend(d, p, id, true);
}

function appendToLog(d: Draft, p: Pending, entries: readonly LogEntry[]): void {
  const first = entries[0];
  if (first === undefined) return;
  if (first.index <= d.commitIndex) {
    throw new RaftInvariantError(
      `member ${d.config.id} would overwrite committed index ${first.index} (commit ${d.commitIndex})`,
    );
  }
  d.log = [...d.log.slice(0, first.index - 1), ...entries];
  p.dirtyFrom = Math.min(p.dirtyFrom, first.index);
}

/** Sends the next AppendEntries to `to` if its progress allows; `allowEmpty` sends even with nothing new. */
function sendAppend(d: Draft, p: Pending, to: NodeId, allowEmpty: boolean): void {
  const pr = d.progress[to];
  if (pr === undefined) return;
  if (pr.mode === 'probe' && pr.paused) return;
  if (pr.mode === 'replicate' && pr.inflight.length >= d.config.maxInflight) return;
  const prev = pr.next - 1;
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
  send(p, {
    type: 'append-entries',
    from: d.config.id,
    to,
    term: d.term,
    prevLogIndex: pr.match,
    prevLogTerm: termAt(d.log, pr.match),
    entries: [],
    leaderCommit: Math.min(d.commitIndex, pr.match),
  });
}

function broadcastHeartbeat(d: Draft, p: Pending): void {
  for (const id of peersOf(d)) {
    const pr = d.progress[id];
    if (pr === undefined) continue;
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

/** Commits the highest index stored on a quorum, but only if it is of the current term (Figure 8). */
function maybeCommit(d: Draft): boolean {
  const matches = [lastIndex(d.log), ...peersOf(d).map((id) => d.progress[id]?.match ?? 0)].sort(
    (a, b) => b - a,
  );
  const candidate = matches[quorum(d) - 1] ?? 0;
  if (candidate > d.commitIndex && termAt(d.log, candidate) === d.term) {
    d.commitIndex = candidate;
    return true;
  }
  return false;
}

function isUpToDate(d: Draft, lastLogIndex: number, lastLogTerm: number): boolean {
  const myTerm = lastTerm(d.log);
  return lastLogTerm > myTerm || (lastLogTerm === myTerm && lastLogIndex >= lastIndex(d.log));
}

function handleAppendEntries(d: Draft, p: Pending, m: AppendEntries): void {
  if (d.role !== 'follower' || d.leaderId !== m.from) becomeFollower(d, p, m.term, m.from);
  d.electionElapsed = 0;
  const reply = (fields: Omit<AppendEntriesResponse, 'type' | 'from' | 'to' | 'term'>): void =>
    send(p, { type: 'append-entries-response', from: d.config.id, to: m.from, term: d.term, ...fields });
  const last = lastIndex(d.log);
  if (m.prevLogIndex > last || termAt(d.log, m.prevLogIndex) !== m.prevLogTerm) {
    const shorter = m.prevLogIndex > last;
    reply({
      success: false,
      matchIndex: 0,
      rejectedIndex: m.prevLogIndex,
      conflictTerm: shorter ? 0 : termAt(d.log, m.prevLogIndex),
      conflictIndex: shorter ? last + 1 : firstIndexOfTermAt(d.log, m.prevLogIndex),
    });
    return;
  }
  let firstNew = m.entries.length;
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i] as LogEntry;
    if (e.index > lastIndex(d.log) || termAt(d.log, e.index) !== e.term) {
      firstNew = i;
      break;
    }
  }
  appendToLog(d, p, m.entries.slice(firstNew));
  const lastNew = m.prevLogIndex + m.entries.length;
  const commit = Math.min(m.leaderCommit, lastNew);
  if (commit > d.commitIndex) d.commitIndex = commit;
  reply({ success: true, matchIndex: lastNew, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 });
}

function handleAppendResponse(d: Draft, p: Pending, m: AppendEntriesResponse): void {
  const pr = d.progress[m.from];
  if (d.role !== 'leader' || pr === undefined) return;
  pr.recentActive = true;
  if (m.success) {
    if (m.matchIndex > pr.match) {
      pr.match = m.matchIndex;
      pr.stalls = 0;
    }
    pr.inflight = pr.inflight.filter((i) => i > pr.match);
    if (pr.mode === 'probe') {
      pr.mode = 'replicate';
      pr.paused = false;
      pr.inflight = [];
      pr.next = pr.match + 1;
    } else if (pr.next <= pr.match) pr.next = pr.match + 1;
    maybeCommit(d);
    sendAppend(d, p, m.from, false);
    return;
  }
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
  for (const v of Object.values(d.votes)) {
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

/** Feeds one message from a peer to the core. */
export function step(state: RaftState, m: RaftMessage): RaftResult {
  if (m.to !== state.config.id) {
    throw new RaftInvariantError(`message for ${m.to} was stepped into member ${state.config.id}`);
  }
  return run(state, (d, p) => {
    if (!d.config.members.includes(m.from)) return;
    if (m.term > d.term) {
      const keepsTerm = m.type === 'pre-vote' || (m.type === 'pre-vote-response' && m.granted);
      if (!keepsTerm) becomeFollower(d, p, m.term, m.type === 'append-entries' ? m.from : undefined);
    } else if (m.term < d.term) {
      // Tell a stale leader or candidate about the newer term so that it steps down.
      if (m.type === 'append-entries') {
        send(p, {
          type: 'append-entries-response',
          from: d.config.id,
          to: m.from,
          term: d.term,
          success: false,
          matchIndex: 0,
          rejectedIndex: m.prevLogIndex,
          conflictTerm: 0,
          conflictIndex: 0,
        });
      } else if (m.type === 'pre-vote' || m.type === 'request-vote') {
        const type = m.type === 'pre-vote' ? 'pre-vote-response' : 'request-vote-response';
        send(p, { type, from: d.config.id, to: m.from, term: d.term, granted: false });
      }
      return;
    }
    switch (m.type) {
      case 'append-entries':
        return handleAppendEntries(d, p, m);
      case 'append-entries-response':
        return handleAppendResponse(d, p, m);
      case 'pre-vote':
      case 'request-vote':
        return handleVoteRequest(d, p, m);
      case 'pre-vote-response':
      case 'request-vote-response':
        return handleVoteResponse(d, p, m);
    }
  });
}

/** Advances logical time by one tick: election timeouts, heartbeats, the leader's quorum check. */
export function tick(state: RaftState): RaftResult {
  return run(state, (d, p) => {
    d.electionElapsed += 1;
    if (d.role !== 'leader') {
      if (d.electionElapsed >= d.randomizedElectionTimeout) campaign(d, p);
      return;
    }
    if (d.electionElapsed >= d.config.electionTicks) {
      d.electionElapsed = 0;
      if (d.config.checkQuorum ?? true) {
        const active = peersOf(d).filter((id) => d.progress[id]?.recentActive).length + 1;
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

/** Appends a command on the leader and starts replicating it; elsewhere, says who the leader may be. */
export function propose(state: RaftState, data: unknown): ProposeResult {
  if (state.role !== 'leader') return { type: 'not-leader', leaderHint: state.leaderId };
  const index = lastIndex(state.log) + 1;
  const result = run(state, (d, p) => {
    appendToLog(d, p, [{ type: 'command', term: d.term, index, data }]);
    maybeCommit(d);
    for (const id of peersOf(d)) sendAppend(d, p, id, false);
  });
  return { type: 'accepted', state: result.state, effects: result.effects, index, term: state.term };
}
