import { expect } from 'chai';
import type {
  HardState,
  LogEntry,
  NodeId,
  RaftConfig,
  RaftEffect,
  RaftMessage,
  RaftState,
  SnapshotMeta,
} from '../../actors/raft/index.ts';
import {
  type CoreOutcome,
  compact,
  isCaughtUp,
  type MembershipChange,
  persisted,
  propose,
  proposeMembershipChange,
  readIndex,
  restartRaft,
  step,
  tick,
  transferLeadership,
} from '../../actors/raft/index.ts';
import { mulberry32 } from '../../actors/raft/mulberry32.ts';
import { entryAt } from '../../actors/raft/raft-log.ts';

/**
 * A deterministic simulation of N Raft cores: a logical clock in ticks, an in-memory network
 * with seeded drops, delays and reordering, lab-style disconnection, partitions, and crash and
 * restart. Each member's persisted state (hard state and log, written only by `persist` effects)
 * is kept apart from its volatile core and state machine, and a restart sees the persisted part
 * only. Safety is checked on every effect and every tick; a violation throws.
 */

export interface ClusterOptions {
  readonly n: number;
  readonly seed: number;
  /** Drop 10% of messages and delay each by up to 5 ticks. */
  readonly unreliable?: boolean;
  /** Delay some messages by 10–40 ticks (the lab's long reordering). */
  readonly longReordering?: boolean;
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  /** Each member snapshots its state machine and compacts its log every this many applied entries. */
  readonly snapshotEvery?: number;
  /** Extra members `j0`, `j1`… that start outside the group (`members: []`) until a leader adds them. */
  readonly joiners?: number;
}

interface InFlight {
  readonly at: number;
  readonly seq: number;
  readonly message: RaftMessage;
}

interface SimMember {
  readonly id: NodeId;
  readonly config: RaftConfig;
  core: RaftState | undefined;
  persisted: {
    hardState: HardState | undefined;
    snapshot: { meta: SnapshotMeta; data: Uint8Array } | undefined;
    /** Entries after the snapshot. */
    entries: LogEntry[];
  };
  /**
   * The volatile state machine: every entry applied, from index 1 (rebuilt from the snapshot,
   * which holds exactly this list encoded, and the log on restart).
   */
  applied: LogEntry[];
}

const encodeApplied = (applied: readonly LogEntry[]): Uint8Array =>
  new TextEncoder().encode(JSON.stringify(applied));
const decodeApplied = (data: Uint8Array): LogEntry[] =>
  JSON.parse(new TextDecoder().decode(data)) as LogEntry[];

function sameEntry(a: LogEntry, b: LogEntry): boolean {
  if (a.index !== b.index || a.term !== b.term || a.type !== b.type) return false;
  // Config entries carry objects, which a snapshot's round trip copies.
  return a.data === b.data || JSON.stringify(a.data) === JSON.stringify(b.data);
}

export class RaftCluster {
  readonly seed: number;
  readonly ids: readonly NodeId[];
  readonly electionTicks: number;
  now = 0;
  messagesSent = 0;
  private rng: number;
  private seq = 0;
  private queue: InFlight[] = [];
  private readonly members = new Map<NodeId, SimMember>();
  private readonly connected = new Set<NodeId>();
  /** Partition group of each member; members in different groups cannot talk. */
  private readonly group = new Map<NodeId, number>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Every entry any member has applied, by index: the state machine safety reference. */
  private readonly committed = new Map<number, LogEntry>();
  private unreliable: boolean;
  private longReordering: boolean;
  private readonly snapshotEvery: number | undefined;
  /** Snapshots installed from a leader, counted per member (for the Snapshot* scenarios). */
  readonly installs = new Map<NodeId, number>();

  constructor(options: ClusterOptions) {
    this.unreliable = options.unreliable ?? false;
    this.longReordering = options.longReordering ?? false;
    this.snapshotEvery = options.snapshotEvery;
    this.seed = options.seed;
    this.rng = options.seed * 7919 + 17;
    this.electionTicks = options.electionTicks ?? 10;
    const founders = Array.from({ length: options.n }, (_, i) => `n${i}`);
    this.ids = [...founders, ...Array.from({ length: options.joiners ?? 0 }, (_, i) => `j${i}`)];
    for (const [i, id] of this.ids.entries()) {
      const config: RaftConfig = {
        id,
        members: founders.includes(id) ? founders : [],
        electionTicks: this.electionTicks,
        heartbeatTicks: options.heartbeatTicks ?? 2,
        maxEntriesPerMessage: 16,
        maxInflight: 4,
        seed: options.seed * 1000 + i,
      };
      this.members.set(id, {
        id,
        config,
        core: undefined,
        persisted: { hardState: undefined, snapshot: undefined, entries: [] },
        applied: [],
      });
      this.restart(id);
      this.connected.add(id);
      this.group.set(id, 0);
    }
  }

  random(): number {
    const { value, next } = mulberry32(this.rng);
    this.rng = next;
    return value;
  }

  randomInt(below: number): number {
    return Math.floor(this.random() * below);
  }

  fail(message: string): never {
    throw new Error(`safety/liveness failure at tick ${this.now} (seed ${this.seed}): ${message}`);
  }

  private member(id: NodeId): SimMember {
    const m = this.members.get(id);
    if (m === undefined) throw new Error(`no member ${id}`);
    return m;
  }

  core(id: NodeId): RaftState | undefined {
    return this.member(id).core;
  }

  setUnreliable(on: boolean): void {
    this.unreliable = on;
  }

  setLongReordering(on: boolean): void {
    this.longReordering = on;
  }

  isConnected(id: NodeId): boolean {
    return this.connected.has(id);
  }

  connect(id: NodeId): void {
    this.connected.add(id);
  }

  disconnect(id: NodeId): void {
    this.connected.delete(id);
  }

  /** Splits the members into groups that can only talk within themselves; members not named form one more group. */
  partition(...groups: readonly (readonly NodeId[])[]): void {
    for (const id of this.ids) this.group.set(id, groups.length);
    groups.forEach((g, i) => {
      for (const id of g) this.group.set(id, i);
    });
  }

  heal(): void {
    for (const id of this.ids) {
      this.group.set(id, 0);
      this.connected.add(id);
    }
  }

  /**
   * Loses all volatile state: the core, the state machine, and messages already sent to it.
   * Messages it sent before crashing are on the wire and may still arrive.
   */
  crash(id: NodeId): void {
    const m = this.member(id);
    m.core = undefined;
    m.applied = [];
    this.queue = this.queue.filter((f) => f.message.to !== id);
  }

  restart(id: NodeId): void {
    const m = this.member(id);
    const persisted = m.persisted;
    m.applied = persisted.snapshot === undefined ? [] : decodeApplied(persisted.snapshot.data);
    m.core = restartRaft(m.config, {
      ...(persisted.hardState !== undefined ? { hardState: persisted.hardState } : {}),
      ...(persisted.snapshot !== undefined ? { snapshot: persisted.snapshot.meta } : {}),
      entries: persisted.entries,
    });
  }

  /** The snapshot a member would send: its own latest, from its persisted state. */
  private snapshotData(m: SimMember): Uint8Array {
    const snapshot = m.persisted.snapshot;
    if (snapshot === undefined) this.fail(`${m.id} was asked for a snapshot it does not have`);
    return snapshot.data;
  }

  /** Snapshots a member's state machine at its applied index and compacts its log (the shell's job). */
  snapshot(id: NodeId): void {
    const m = this.member(id);
    const core = m.core;
    if (core === undefined || core.appliedIndex <= core.log.snapshotIndex) return;
    const { state, meta } = compact(core, core.appliedIndex);
    m.core = state;
    m.persisted.snapshot = { meta, data: encodeApplied(m.applied.slice(0, meta.index)) };
    m.persisted.entries = m.persisted.entries.filter((e) => e.index > meta.index);
  }

  isAlive(id: NodeId): boolean {
    return this.member(id).core !== undefined;
  }

  private canTalk(from: NodeId, to: NodeId): boolean {
    return (
      this.connected.has(from) &&
      this.connected.has(to) &&
      this.group.get(from) === this.group.get(to) &&
      this.isAlive(from) &&
      this.isAlive(to)
    );
  }

  private perform(m: SimMember, effects: readonly RaftEffect[]): void {
    this.performInOrder(m, effects);
    // The write is durable once performed here; a real shell reports it when its fsync resolves.
    const last = effects.flatMap((e) => (e.type === 'persist' ? (e.entries ?? []) : [])).at(-1);
    if (last !== undefined && m.core !== undefined) {
      const r = persisted(m.core, last.index, last.term);
      m.core = r.state;
      this.perform(m, r.effects);
    }
  }

  private performInOrder(m: SimMember, effects: readonly RaftEffect[]): void {
    let stage = 0;
    const order = { persist: 0, send: 1, restore: 2, apply: 3, 'read-ready': 4, 'role-change': 4 } as const;
    for (const effect of effects) {
      if (order[effect.type] < stage) this.fail(`effects of ${m.id} out of order: ${effect.type} late`);
      stage = order[effect.type];
      switch (effect.type) {
        case 'persist': {
          const installed = effect.snapshot;
          if (installed !== undefined) {
            const { index, term } = installed.meta;
            const at = m.persisted.entries.find((e) => e.index === index);
            m.persisted.snapshot = installed;
            m.persisted.entries = at?.term === term ? m.persisted.entries.filter((e) => e.index > index) : [];
          }
          if (effect.hardState !== undefined) m.persisted.hardState = effect.hardState;
          const first = effect.entries?.[0];
          if (effect.entries !== undefined && first !== undefined) {
            const base = m.persisted.snapshot?.meta.index ?? 0;
            const held = base + m.persisted.entries.length;
            if (first.index > held + 1 || first.index <= base) {
              this.fail(`${m.id} persisted index ${first.index} outside ${base + 1}..${held + 1}`);
            }
            m.persisted.entries = [
              ...m.persisted.entries.slice(0, first.index - base - 1),
              ...effect.entries,
            ];
          }
          break;
        }
        case 'send':
          this.send(
            effect.message.type === 'install-snapshot'
              ? { ...effect.message, data: this.snapshotData(m) }
              : effect.message,
          );
          break;
        case 'restore': {
          this.installs.set(m.id, (this.installs.get(m.id) ?? 0) + 1);
          const restored = decodeApplied(effect.snapshot.data);
          // The snapshot must agree with everything this member applied before it.
          for (const entry of m.applied.slice(0, restored.length)) {
            const other = restored[entry.index - 1];
            if (other === undefined || !sameEntry(entry, other)) {
              this.fail(`${m.id} restored a snapshot that disagrees at index ${entry.index}`);
            }
          }
          for (const entry of restored.slice(m.applied.length)) this.checkApply(m, entry);
          break;
        }
        case 'apply':
          for (const entry of effect.entries) this.checkApply(m, entry);
          if (this.snapshotEvery !== undefined && m.core !== undefined) {
            const core = m.core;
            if (m.applied.length - core.log.snapshotIndex >= this.snapshotEvery)
              this.pendingSnapshots.add(m.id);
          }
          break;
        case 'read-ready':
          if (this.readsReady.has(effect.requestId)) this.fail(`read ${effect.requestId} confirmed twice`);
          if (effect.index < (m.core?.log.snapshotIndex ?? 0)) this.fail('read index below the snapshot');
          this.readsReady.set(effect.requestId, effect.index);
          break;
        case 'role-change':
          if (effect.role === 'leader') {
            const other = this.leaderOfTerm.get(effect.term);
            if (other !== undefined && other !== m.id) {
              this.fail(`two leaders in term ${effect.term}: ${other} and ${m.id}`);
            }
            this.leaderOfTerm.set(effect.term, m.id);
          }
          break;
      }
    }
  }

  private checkApply(m: SimMember, entry: LogEntry): void {
    if (entry.index !== m.applied.length + 1) {
      this.fail(`${m.id} applied index ${entry.index} after ${m.applied.length}`);
    }
    m.applied.push(entry);
    const known = this.committed.get(entry.index);
    if (known === undefined) this.committed.set(entry.index, entry);
    else if (!sameEntry(known, entry)) {
      this.fail(
        `${m.id} applied ${JSON.stringify(entry)} at index ${entry.index} where ${JSON.stringify(known)} was applied`,
      );
    }
  }

  /** Members due a snapshot; taken after the step that applied enough (the core's state must be current). */
  private readonly pendingSnapshots = new Set<NodeId>();

  private takeDueSnapshots(): void {
    for (const id of this.pendingSnapshots) this.snapshot(id);
    this.pendingSnapshots.clear();
  }

  private send(message: RaftMessage): void {
    this.messagesSent++;
    if (!this.canTalk(message.from, message.to)) return;
    let delay: number;
    if (this.unreliable) {
      if (this.random() < 0.1) return;
      delay = this.randomInt(6);
    } else delay = this.randomInt(2);
    if (this.longReordering && this.random() < 0.1) delay = 10 + this.randomInt(30);
    this.queue.push({ at: this.now + delay, seq: this.seq++, message });
  }

  private deliverDue(): void {
    for (let rounds = 0; rounds < 1000; rounds++) {
      const due = this.queue.filter((f) => f.at <= this.now).sort((a, b) => a.at - b.at || a.seq - b.seq);
      if (due.length === 0) return;
      this.queue = this.queue.filter((f) => f.at > this.now);
      for (const f of due) {
        const to = this.member(f.message.to);
        if (to.core === undefined) continue;
        if (
          !this.connected.has(f.message.to) ||
          this.group.get(f.message.from) !== this.group.get(f.message.to)
        ) {
          continue;
        }
        const result = step(to.core, f.message);
        to.core = result.state;
        this.perform(to, result.effects);
        this.takeDueSnapshots();
      }
    }
    this.fail('messages kept arriving within one tick');
  }

  /** One tick of logical time: deliver what is due, tick every live member, check safety. */
  tickOnce(): void {
    this.now++;
    this.deliverDue();
    for (const id of this.ids) {
      const m = this.member(id);
      if (m.core === undefined) continue;
      const result = tick(m.core);
      m.core = result.state;
      this.perform(m, result.effects);
      this.takeDueSnapshots();
    }
    if (this.now % 25 === 0) this.checkLogMatching();
  }

  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) this.tickOnce();
  }

  /** Log matching: two live logs with the same term at an index hold the same entries up to it. */
  checkLogMatching(): void {
    const cores = this.ids.flatMap((id) => {
      const core = this.member(id).core;
      return core === undefined ? [] : [core];
    });
    for (const c of cores) {
      for (let i = c.log.snapshotIndex + 1; i <= c.commitIndex; i++) {
        const known = this.committed.get(i);
        const mine = entryAt(c.log, i);
        if (known !== undefined && mine !== undefined && !sameEntry(known, mine)) {
          this.fail(`${c.config.id} holds ${JSON.stringify(mine)} at committed index ${i}`);
        }
      }
    }
    const last = (c: RaftState): number => c.log.snapshotIndex + c.log.length;
    for (let a = 0; a < cores.length; a++) {
      for (let b = a + 1; b < cores.length; b++) {
        const x = cores[a] as RaftState;
        const y = cores[b] as RaftState;
        const floor = Math.max(x.log.snapshotIndex, y.log.snapshotIndex);
        let i = Math.min(last(x), last(y));
        while (i > floor && entryAt(x.log, i)?.term !== entryAt(y.log, i)?.term) i--;
        for (let j = floor + 1; j <= i; j++) {
          if (!sameEntry(entryAt(x.log, j) as LogEntry, entryAt(y.log, j) as LogEntry)) {
            this.fail(`log matching broken between ${x.config.id} and ${y.config.id} at index ${j}`);
          }
        }
      }
    }
  }

  /** The connected, live leader of the highest term, waiting up to ten election timeouts. */
  checkOneLeader(): NodeId {
    for (let attempt = 0; attempt < 10; attempt++) {
      this.run(this.electionTicks + this.randomInt(this.electionTicks));
      const byTerm = new Map<number, NodeId[]>();
      for (const id of this.ids) {
        const c = this.member(id).core;
        if (c === undefined || !this.connected.has(id) || c.role !== 'leader') continue;
        byTerm.set(c.term, [...(byTerm.get(c.term) ?? []), id]);
      }
      let last = -1;
      for (const [term, leaders] of byTerm) {
        if (leaders.length > 1) this.fail(`term ${term} has leaders ${leaders}`);
        last = Math.max(last, term);
      }
      const leader = byTerm.get(last)?.[0];
      if (leader !== undefined) return leader;
    }
    return this.fail('expected one leader, got none');
  }

  checkTerms(): number {
    let term = -1;
    for (const id of this.ids) {
      const c = this.member(id).core;
      if (c === undefined || !this.connected.has(id)) continue;
      if (term === -1) term = c.term;
      else if (term !== c.term) this.fail(`connected members disagree on the term (${term} vs ${c.term})`);
    }
    return term;
  }

  checkNoLeader(): void {
    for (const id of this.ids) {
      const c = this.member(id).core;
      if (c !== undefined && this.connected.has(id) && c.role === 'leader') {
        this.fail(`expected no leader among connected members, but ${id} claims to be one`);
      }
    }
  }

  /** How many members have applied `index`, and the command there (checked to agree). */
  nCommitted(index: number): { count: number; data: unknown } {
    let count = 0;
    let data: unknown;
    for (const id of this.ids) {
      const entry = this.member(id).applied[index - 1];
      if (entry === undefined) continue;
      if (count > 0 && entry.data !== data) this.fail(`committed values differ at index ${index}`);
      count++;
      data = entry.data;
    }
    return { count, data };
  }

  /** ReadIndex requests confirmed so far: request id → the index to serve them at. */
  readonly readsReady = new Map<string, number>();

  /** Runs a leader-only core call on `id` and performs its effects; returns the outcome's type. */
  private leaderCall(id: NodeId, call: (core: RaftState) => CoreOutcome): CoreOutcome['type'] {
    const m = this.member(id);
    if (m.core === undefined) return 'not-leader';
    const outcome = call(m.core);
    if (outcome.type === 'accepted') {
      m.core = outcome.state;
      this.perform(m, outcome.effects);
      this.takeDueSnapshots();
    }
    return outcome.type;
  }

  /** Proposes a membership change on whichever connected member leads; retries until accepted. */
  changeMembership(change: MembershipChange): void {
    const deadline = this.now + 40 * this.electionTicks;
    while (this.now < deadline) {
      for (const id of this.ids) {
        if (!this.connected.has(id) || this.core(id)?.role !== 'leader') continue;
        const result = this.leaderCall(id, (core) => proposeMembershipChange(core, change));
        if (result === 'accepted') return;
      }
      this.run(1);
    }
    this.fail(`membership change ${JSON.stringify(change)} was never accepted`);
  }

  /** Ticks until every live, connected member's membership matches, and it has `voters`. */
  waitForVoters(voters: readonly NodeId[]): void {
    const want = [...voters].sort().join(',');
    for (let i = 0; i < 60 * this.electionTicks; i++) {
      const leader = this.ids.find((id) => this.connected.has(id) && this.core(id)?.role === 'leader');
      const core = leader === undefined ? undefined : this.core(leader);
      if (core !== undefined && core.membershipIndex <= core.commitIndex) {
        if ([...core.membership.voters].sort().join(',') === want) return;
      }
      this.tickOnce();
    }
    this.fail(`voters never became [${want}]`);
  }

  caughtUp(leader: NodeId, id: NodeId): boolean {
    const core = this.core(leader);
    return core !== undefined && isCaughtUp(core, id);
  }

  readIndex(id: NodeId, requestId: string): CoreOutcome['type'] {
    return this.leaderCall(id, (core) => readIndex(core, requestId));
  }

  transfer(id: NodeId, to: NodeId): CoreOutcome['type'] {
    return this.leaderCall(id, (core) => transferLeadership(core, to));
  }

  /** Raft's Start(): propose on one member. */
  start(id: NodeId, data: unknown): { index: number; term: number; isLeader: boolean } {
    const m = this.member(id);
    if (m.core === undefined) return { index: -1, term: -1, isLeader: false };
    const result = propose(m.core, data);
    if (result.type !== 'accepted') return { index: -1, term: m.core.term, isLeader: false };
    m.core = result.state;
    this.perform(m, result.effects);
    return { index: result.index, term: result.term, isLeader: true };
  }

  /**
   * The lab's one(): submit `data` to a connected leader until `expected` members commit it at
   * the index it was given, retrying with other leaders if `retry`. Returns the index.
   */
  one(data: unknown, expected: number, retry: boolean): number {
    let starts = 0;
    const deadline = this.now + 60 * this.electionTicks;
    while (this.now < deadline) {
      let index = -1;
      for (let k = 0; k < this.ids.length; k++) {
        starts = (starts + 1) % this.ids.length;
        const id = this.ids[starts] as NodeId;
        if (!this.connected.has(id) || !this.isAlive(id)) continue;
        const r = this.start(id, data);
        if (r.isLeader) {
          index = r.index;
          break;
        }
      }
      if (index !== -1) {
        const until = this.now + 10 * this.electionTicks;
        while (this.now < until) {
          const { count, data: got } = this.nCommitted(index);
          if (count > 0 && count >= expected && got === data) return index;
          this.tickOnce();
        }
        if (!retry) this.fail(`one(${String(data)}) failed to reach agreement at index ${index}`);
      } else this.run(2);
    }
    return this.fail(`one(${String(data)}) failed to reach agreement`);
  }

  /** Waits for `n` members to commit `index`; returns the command or undefined if a term passed `startTerm`. */
  wait(index: number, n: number, startTerm: number): unknown {
    for (let i = 0; i < 30; i++) {
      const { count } = this.nCommitted(index);
      if (count >= n) break;
      this.run(5);
      if (startTerm > -1) {
        for (const id of this.ids) {
          const c = this.member(id).core;
          if (c !== undefined && c.term > startTerm) return undefined;
        }
      }
    }
    const { count, data } = this.nCommitted(index);
    if (count < n) this.fail(`only ${count} decided for index ${index}; wanted ${n}`);
    return data;
  }

  /** Final check, for the end of a scenario. */
  finish(): void {
    this.checkLogMatching();
    expect(this.committed.size).to.be.greaterThan(0);
  }
}
