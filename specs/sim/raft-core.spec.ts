import { expect } from 'chai';
import {
  assertRoleTransition,
  heldEntries,
  type LogEntry,
  type NodeId,
  persisted,
  propose,
  type RaftConfig,
  type RaftEffect,
  RaftInvariantError,
  type RaftMessage,
  type RaftState,
  restartRaft,
  step,
  tick,
} from '../../actors/raft/index.ts';
import { RaftCluster } from './raft-cluster.ts';

const ids = ['n0', 'n1', 'n2'];

function config(id: NodeId, members: readonly NodeId[] = ids): RaftConfig {
  return {
    id,
    members,
    electionTicks: 10,
    heartbeatTicks: 2,
    maxEntriesPerMessage: 8,
    maxInflight: 3,
    seed: 42,
  };
}

function entries(...terms: number[]): LogEntry[] {
  return terms.map((term, i) => ({ type: 'command', term, index: i + 1, data: i + 1 }));
}

/** Cores exchanging messages synchronously, FIFO, with an optional filter; records every message. */
class Harness {
  readonly cores = new Map<NodeId, RaftState>();
  readonly sent: RaftMessage[] = [];
  private readonly queue: RaftMessage[] = [];
  drop: (m: RaftMessage) => boolean = () => false;

  constructor(logs: Record<NodeId, { term: number; log: LogEntry[] }> = {}) {
    for (const id of ids) {
      const saved = logs[id];
      this.cores.set(
        id,
        restartRaft(config(id), {
          hardState: { term: saved?.term ?? 0, votedFor: undefined, commit: 0 },
          entries: saved?.log ?? [],
        }),
      );
    }
  }

  core(id: NodeId): RaftState {
    const c = this.cores.get(id);
    if (c === undefined) throw new Error(`no ${id}`);
    return c;
  }

  /** Sends go on the queue; a persist counts as durable at once (the shell reports it with `persisted`). */
  perform(id: NodeId, effects: readonly RaftEffect[]): void {
    for (const e of effects) {
      if (e.type === 'send') {
        this.sent.push(e.message);
        if (!this.drop(e.message)) this.queue.push(e.message);
      }
    }
    const last = effects.flatMap((e) => (e.type === 'persist' ? (e.entries ?? []) : [])).at(-1);
    if (last !== undefined) {
      const r = persisted(this.core(id), last.index, last.term);
      this.cores.set(id, r.state);
      this.perform(id, r.effects);
    }
  }

  pump(limit = 10_000): void {
    for (let i = 0; i < limit; i++) {
      const m = this.queue.shift();
      if (m === undefined) return;
      const r = step(this.core(m.to), m);
      this.cores.set(m.to, r.state);
      this.perform(m.to, r.effects);
    }
    throw new Error('messages did not settle');
  }

  tick(id: NodeId): void {
    const r = tick(this.core(id));
    this.cores.set(id, r.state);
    this.perform(id, r.effects);
  }

  /** Ticks `id` alone until it wins an election. */
  elect(id: NodeId): void {
    for (let i = 0; i < 100 && this.core(id).role !== 'leader'; i++) {
      this.tick(id);
      this.pump();
    }
    expect(this.core(id).role).to.equal('leader');
  }

  propose(id: NodeId, data: unknown): void {
    const r = propose(this.core(id), data);
    if (r.type !== 'accepted') throw new Error(`${id} is not the leader`);
    this.cores.set(id, r.state);
    this.perform(id, r.effects);
  }
}

describe('raft core', () => {
  it('rejects illegal role transitions with a RaftInvariantError', () => {
    expect(() => assertRoleTransition('n0', 3, 'leader', 'candidate')).to.throw(RaftInvariantError);
    expect(() => assertRoleTransition('n0', 3, 'follower', 'leader'))
      .to.throw(RaftInvariantError)
      .with.property('code', 'INVALID_REQUEST');
    expect(() => assertRoleTransition('n0', 3, 'candidate', 'leader')).to.not.throw();
  });

  it('refuses to overwrite a committed entry', () => {
    const follower = restartRaft(config('n1'), {
      hardState: { term: 2, votedFor: undefined, commit: 2 },
      entries: entries(1, 2),
    });
    const conflicting: RaftMessage = {
      type: 'append-entries',
      from: 'n0',
      to: 'n1',
      term: 3,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [{ type: 'command', term: 3, index: 2, data: 'x' }],
      leaderCommit: 2,
      readSeq: 0,
    };
    expect(() => step(follower, conflicting)).to.throw(RaftInvariantError);
  });

  it('does not change the state it is given', () => {
    const h = new Harness();
    h.elect('n0');
    const before = h.core('n0');
    // The log's backing array may grow for a newer state; a state sees only its `length` of it.
    const view = (state: RaftState): string => JSON.stringify({ ...state, log: heldEntries(state) });
    const snapshot = view(before);
    const proposed = propose(before, 'x');
    tick(before);
    expect(view(before)).to.equal(snapshot);
    // Stepping the old state again forks the log instead of writing over the newer state's entry.
    const forked = propose(before, 'y');
    expect(proposed.type === 'accepted' && heldEntries(proposed.state).at(-1)?.data).to.equal('x');
    expect(forked.type === 'accepted' && heldEntries(forked.state).at(-1)?.data).to.equal('y');
  });

  it('answers a proposal to a follower with the leader hint', () => {
    const h = new Harness();
    h.elect('n1');
    const r = propose(h.core('n2'), 'x');
    expect(r).to.deep.equal({ type: 'not-leader', leaderHint: 'n1' });
  });

  it('returns effects in order: persist, send, apply, role-change', () => {
    const single = restartRaft(config('solo', ['solo']));
    let state = single;
    const order: string[] = [];
    for (let i = 0; i < 30 && state.role !== 'leader'; i++) {
      const r = tick(state);
      state = r.state;
      order.push(...r.effects.map((e) => e.type));
    }
    expect(state.role).to.equal('leader');
    const r = propose(state, 'x');
    if (r.type !== 'accepted') throw new Error('not leader');
    // A leader counts its own copy only once the shell reports it durable.
    expect(r.effects.map((e) => e.type)).to.deep.equal(['persist']);
    const durable = persisted(r.state, r.index, r.term);
    expect(durable.effects.map((e) => e.type)).to.deep.equal(['apply']);
    const rank = { persist: 0, send: 1, apply: 2, 'role-change': 3 } as const;
    const ranks = order.map((t) => rank[t as keyof typeof rank]);
    expect(ranks).to.deep.equal([...ranks].sort((a, b) => a - b));
  });

  it('pre-vote keeps a partitioned member from raising its term and disrupting the leader', () => {
    const c = new RaftCluster({ n: 3, seed: 7 });
    const leader = c.checkOneLeader();
    const term = c.checkTerms();
    const other = c.ids.find((id) => id !== leader) as NodeId;
    c.disconnect(other);
    c.run(20 * c.electionTicks);
    expect(c.core(other)?.term).to.equal(term);
    expect(c.core(other)?.role).to.equal('pre-candidate');
    c.connect(other);
    c.run(5 * c.electionTicks);
    expect(c.core(leader)?.role).to.equal('leader');
    expect(c.checkTerms()).to.equal(term);
  });

  it('pipelines several AppendEntries to a follower before any reply, up to maxInflight', () => {
    const h = new Harness();
    h.elect('n0');
    h.sent.length = 0;
    for (let i = 0; i < 6; i++) h.propose('n0', i);
    const toN1 = h.sent.filter((m) => m.type === 'append-entries' && m.to === 'n1');
    expect(toN1).to.have.length(3);
    h.pump();
    expect(heldEntries(h.core('n1')).length).to.equal(heldEntries(h.core('n0')).length);
  });

  it('batches entries into one AppendEntries when a follower catches up', () => {
    const h = new Harness();
    h.elect('n0');
    h.drop = (m) => m.to === 'n2' || m.from === 'n2';
    for (let i = 0; i < 20; i++) h.propose('n0', i);
    h.pump();
    h.drop = () => false;
    h.sent.length = 0;
    for (let i = 0; i < 6 && heldEntries(h.core('n2')).length < heldEntries(h.core('n0')).length; i++) {
      h.tick('n0');
      h.pump();
    }
    const batches = h.sent.filter(
      (m) => m.type === 'append-entries' && m.to === 'n2' && m.entries.length > 1,
    );
    expect(batches.length).to.be.greaterThan(0);
    for (const m of batches) if (m.type === 'append-entries') expect(m.entries.length).to.be.at.most(8);
    expect(heldEntries(h.core('n2'))).to.deep.equal(heldEntries(h.core('n0')));
  });

  it('backs up over a long conflicting run of one term in a few round trips', () => {
    const h = new Harness({
      n0: { term: 3, log: entries(1, ...Array<number>(50).fill(3)) },
      n1: { term: 2, log: entries(1, ...Array<number>(50).fill(2)) },
      n2: { term: 3, log: entries(1, ...Array<number>(50).fill(3)) },
    });
    h.elect('n0');
    for (let i = 0; i < 40; i++) {
      h.tick('n0');
      h.pump();
    }
    const rejections = h.sent.filter(
      (m) => m.type === 'append-entries-response' && m.from === 'n1' && !m.success,
    );
    expect(rejections.length).to.be.at.most(3);
    expect(heldEntries(h.core('n1'))).to.deep.equal(heldEntries(h.core('n0')));
  });

  it('does not commit an entry of an earlier term by counting replicas (Figure 8)', () => {
    // n0 leads term 4 holding index 2 from term 2; n1 acknowledges index 2 but not the term-4 no-op.
    const h = new Harness({
      n0: { term: 3, log: entries(1, 2) },
      n1: { term: 3, log: entries(1) },
      n2: { term: 3, log: entries(1) },
    });
    h.drop = (m) => m.type === 'append-entries' && m.entries.length > 0;
    h.elect('n0');
    const leader = h.core('n0');
    expect(heldEntries(leader).map((e) => e.term)).to.deep.equal([1, 2, leader.term]);
    const ack: RaftMessage = {
      type: 'append-entries-response',
      from: 'n1',
      to: 'n0',
      term: leader.term,
      success: true,
      matchIndex: 2,
      rejectedIndex: 0,
      conflictTerm: 0,
      conflictIndex: 0,
      readSeq: 0,
    };
    const after = step(leader, ack).state;
    expect(after.progress.n1?.match).to.equal(2);
    expect(after.commitIndex).to.equal(0);
    const ackNoop = step(after, { ...ack, matchIndex: 3 }).state;
    expect(ackNoop.commitIndex).to.equal(3);
  });
});
