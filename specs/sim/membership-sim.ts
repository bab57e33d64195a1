/**
 * A deterministic simulation of failure detection and dissemination: N members heartbeating to
 * the coordinator leader's `FailureDetectorCore` over a network with seeded jitter, loss and
 * delay; the core's writes committed through a modelled Raft (seeded commit delay, compare on
 * modRevision, lost when their leader is gone by then) and the committed record delivered to
 * every member's watch (coordinators at once, other members through their coordinator's fan-out,
 * one message after another, plus network delay). Members can be killed and paused, and the
 * leader crashed (a new one is elected after a seeded delay; members learn of it after their
 * own seeded delay, as a real node polling `status` would).
 *
 * Built for size: heartbeats live in a typed-array heap (one pending heartbeat per member), so
 * 5,000 members over minutes of simulated time run in seconds.
 */
import { FailureDetectorCore, type FailureDetectorInit } from '../../actors/membership/failure-detector.ts';
import type { MemberStatus } from '../../actors/membership/member-record.ts';
import { mulberry32 } from '../../actors/raft/mulberry32.ts';

export interface MembershipSimOptions {
  readonly members: number;
  readonly seed: number;
  readonly durationMs: number;
  /** The first `coordinators` members are coordinators (candidates for leader); default 3. */
  readonly coordinators?: number;
  readonly heartbeatMs?: number;
  /** Each heartbeat interval is `heartbeatMs` ± up to this; default 40. */
  readonly jitterMs?: number;
  /** Chance a heartbeat is lost; default 0.02. */
  readonly lossRate?: number;
  /** One-way network delay, uniform; default [1, 20] ms. */
  readonly netDelayMs?: readonly [number, number];
  readonly tickMs?: number;
  /** From a write's proposal to its commit on the leader; default [2, 15] ms. */
  readonly commitDelayMs?: readonly [number, number];
  /** Cost of one watch event on a coordinator's fan-out to a non-coordinator; default 0.01 ms. */
  readonly fanoutPerWatcherMs?: number;
  /** A new leader is elected this long after the old one crashed; default [300, 1200] ms. */
  readonly electionMs?: readonly [number, number];
  /** A member learns of a new leader this long after its election; default [0, 500] ms. */
  readonly learnLeaderMs?: readonly [number, number];
  /** Members that stop for good at `at` (member index). */
  readonly kills?: readonly { readonly at: number; readonly member: number }[];
  /** Members that send nothing for `ms` from `at` (a GC pause, a busy loop) and then go on. */
  readonly pauses?: readonly { readonly at: number; readonly member: number; readonly ms: number }[];
  /** Times at which the current leader crashes (it is a member too: it stays dead). */
  readonly leaderCrashes?: readonly number[];
  readonly detector?: Partial<Omit<FailureDetectorInit, 'self'>>;
}

export interface Detection {
  readonly member: number;
  readonly killedAt: number;
  /** When every member's view showed it down (undefined: never within the run). */
  readonly visibleDownAt: number | undefined;
}

export interface MembershipSimResult {
  readonly detections: readonly Detection[];
  /** Members marked down that were alive at the time (must be empty). */
  readonly falseDowns: readonly { readonly member: number; readonly at: number }[];
  readonly falseSuspects: number;
  readonly writes: number;
  readonly heartbeats: number;
  readonly leaderChanges: number;
}

/** A min-heap of (time, member) for the one pending heartbeat of each member. */
class HeartbeatHeap {
  readonly #at: Float64Array;
  readonly #sent: Float64Array;
  readonly #member: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.#at = new Float64Array(capacity);
    this.#sent = new Float64Array(capacity);
    this.#member = new Int32Array(capacity);
  }

  get topAt(): number {
    return this.size === 0 ? Number.POSITIVE_INFINITY : (this.#at[0] as number);
  }

  push(at: number, sent: number, member: number): void {
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((this.#at[parent] as number) <= at) break;
      this.#move(parent, i);
      i = parent;
    }
    this.#at[i] = at;
    this.#sent[i] = sent;
    this.#member[i] = member;
  }

  pop(): { at: number; sent: number; member: number } {
    const top = {
      at: this.#at[0] as number,
      sent: this.#sent[0] as number,
      member: this.#member[0] as number,
    };
    const last = --this.size;
    const at = this.#at[last] as number;
    const sent = this.#sent[last] as number;
    const member = this.#member[last] as number;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= last) break;
      const right = left + 1;
      const child = right < last && (this.#at[right] as number) < (this.#at[left] as number) ? right : left;
      if ((this.#at[child] as number) >= at) break;
      this.#move(child, i);
      i = child;
    }
    this.#at[i] = at;
    this.#sent[i] = sent;
    this.#member[i] = member;
    return top;
  }

  #move(from: number, to: number): void {
    this.#at[to] = this.#at[from] as number;
    this.#sent[to] = this.#sent[from] as number;
    this.#member[to] = this.#member[from] as number;
  }
}

interface TimedEvent {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
}

export function runMembershipSim(options: MembershipSimOptions): MembershipSimResult {
  const n = options.members;
  const coordinators = options.coordinators ?? 3;
  const heartbeatMs = options.heartbeatMs ?? 200;
  const jitterMs = options.jitterMs ?? 40;
  const lossRate = options.lossRate ?? 0.02;
  const [netMin, netMax] = options.netDelayMs ?? [1, 20];
  const tickMs = options.tickMs ?? 50;
  const [commitMin, commitMax] = options.commitDelayMs ?? [2, 15];
  const fanoutMs = options.fanoutPerWatcherMs ?? 0.01;
  const [electMin, electMax] = options.electionMs ?? [300, 1200];
  const [learnMin, learnMax] = options.learnLeaderMs ?? [0, 500];

  let rng = options.seed | 0;
  const random = (): number => {
    const r = mulberry32(rng);
    rng = r.next;
    return r.value;
  };
  const uniform = (lo: number, hi: number): number => lo + random() * (hi - lo);

  const ids = Array.from({ length: n }, (_, i) => (i < coordinators ? `c${i}` : `m${i}`));
  const indexOf = new Map(ids.map((id, i) => [id, i]));
  const status: MemberStatus[] = Array.from({ length: n }, () => 'alive');
  const modRevision = new Float64Array(n).fill(1);
  let revision = n;
  const deadAt = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
  const pausedUntil = new Float64Array(n);
  const learnAt = new Float64Array(n);
  const detections = new Map<number, { killedAt: number; visibleDownAt: number | undefined }>();
  const falseDowns: { member: number; at: number }[] = [];
  let falseSuspects = 0;
  let writes = 0;
  let heartbeats = 0;
  let leaderChanges = 0;

  let leader: number | undefined;
  let leaderTerm = 0;
  let core: FailureDetectorCore | undefined;

  const events: TimedEvent[] = [];
  let seq = 0;
  const schedule = (at: number, run: () => void): void => {
    // Few timed events (ticks, commits, elections): a sorted insert keeps them simple.
    const event = { at, seq: seq++, run };
    let lo = 0;
    let hi = events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const other = events[mid] as TimedEvent;
      if (other.at < at || (other.at === at && other.seq < event.seq)) lo = mid + 1;
      else hi = mid;
    }
    events.splice(lo, 0, event);
  };

  const perform = (effects: ReturnType<FailureDetectorCore['step']>, now: number): void => {
    const term = leaderTerm;
    for (const effect of effects) {
      writes++;
      const i = indexOf.get(effect.id) as number;
      if (effect.status === 'suspect' && deadAt[i] === Number.POSITIVE_INFINITY) falseSuspects++;
      schedule(now + uniform(commitMin, commitMax), () =>
        commit(term, i, effect.expectedModRevision, effect.status),
      );
    }
  };

  const commit = (term: number, i: number, expected: number, next: MemberStatus): void => {
    const now = clock;
    // A proposal whose leader is gone may never commit; the new leader decides afresh.
    if (term !== leaderTerm || leader === undefined) return;
    const ok = modRevision[i] === expected;
    if (ok) {
      modRevision[i] = ++revision;
      status[i] = next;
      if (next === 'down') {
        const detection = detections.get(i);
        if (detection === undefined || now < detection.killedAt) falseDowns.push({ member: i, at: now });
        else if (detection.visibleDownAt === undefined) detection.visibleDownAt = now + disseminationMs();
      }
      perform(
        core?.step({ type: 'record', id: ids[i] as string, status: next, modRevision: revision, at: now }) ??
          [],
        now,
      );
    }
    perform(core?.step({ type: 'write-settled', id: ids[i] as string, ok, at: now }) ?? [], now);
  };

  /** Until the last member's watch shows a committed change. */
  const disseminationMs = (): number => {
    let worst = 0;
    const perCoordinator = Math.ceil((n - coordinators) / coordinators);
    for (let i = 0; i < n; i++) {
      const delay =
        i < coordinators
          ? uniform(0, 2)
          : Math.floor((i - coordinators) / coordinators) * fanoutMs + uniform(netMin, netMax);
      if (delay > worst) worst = delay;
    }
    return Math.max(worst, perCoordinator * fanoutMs);
  };

  const elect = (now: number): void => {
    const candidates = [];
    for (let i = 0; i < coordinators; i++) if ((deadAt[i] as number) > now) candidates.push(i);
    if (candidates.length === 0) return;
    leader = candidates[Math.floor(random() * candidates.length)] as number;
    leaderTerm++;
    leaderChanges++;
    core = new FailureDetectorCore({ ...options.detector, self: ids[leader] as string });
    for (let i = 0; i < n; i++) {
      core.step({
        type: 'record',
        id: ids[i] as string,
        status: status[i] as MemberStatus,
        modRevision: modRevision[i] as number,
        at: now,
      });
      learnAt[i] = i === leader ? now : now + uniform(learnMin, learnMax);
    }
    perform(core.step({ type: 'became-leader', at: now }), now);
  };

  let clock = 0;
  const heap = new HeartbeatHeap(n);
  for (let i = 0; i < n; i++) {
    const sent = random() * heartbeatMs;
    heap.push(sent + uniform(netMin, netMax), sent, i);
  }
  for (let t = tickMs; t <= options.durationMs; t += tickMs) {
    schedule(t, () => perform(core?.step({ type: 'tick', at: clock }) ?? [], clock));
  }
  for (const kill of options.kills ?? []) {
    schedule(kill.at, () => {
      deadAt[kill.member] = Math.min(deadAt[kill.member] as number, kill.at);
      detections.set(kill.member, { killedAt: kill.at, visibleDownAt: undefined });
    });
  }
  for (const pause of options.pauses ?? []) {
    schedule(pause.at, () => {
      pausedUntil[pause.member] = Math.max(pausedUntil[pause.member] as number, pause.at + pause.ms);
    });
  }
  for (const at of options.leaderCrashes ?? []) {
    schedule(at, () => {
      if (leader === undefined) return;
      deadAt[leader] = at;
      detections.set(leader, { killedAt: at, visibleDownAt: undefined });
      core = undefined;
      leader = undefined;
      schedule(at + uniform(electMin, electMax), () => elect(clock));
    });
  }
  elect(0);

  while (clock <= options.durationMs) {
    const next = events[0];
    if (heap.topAt <= (next?.at ?? Number.POSITIVE_INFINITY)) {
      const hb = heap.pop();
      clock = hb.at;
      if (clock > options.durationMs) break;
      const i = hb.member;
      if ((deadAt[i] as number) <= hb.sent) continue;
      let nextSent = hb.sent + heartbeatMs + uniform(-jitterMs, jitterMs);
      const paused = pausedUntil[i] as number;
      if (hb.sent < paused) {
        nextSent = Math.max(nextSent, paused);
      } else if (
        leader !== undefined &&
        i !== leader &&
        (learnAt[i] as number) <= hb.sent &&
        (deadAt[leader] as number) > clock &&
        random() >= lossRate
      ) {
        heartbeats++;
        perform(core?.step({ type: 'heartbeat', from: ids[i] as string, at: clock }) ?? [], clock);
      }
      heap.push(nextSent + uniform(netMin, netMax), nextSent, i);
    } else if (next !== undefined) {
      events.shift();
      clock = next.at;
      if (clock > options.durationMs) break;
      next.run();
    } else {
      break;
    }
  }

  return {
    detections: [...detections].map(([member, d]) => ({ member, ...d })),
    falseDowns,
    falseSuspects,
    writes,
    heartbeats,
    leaderChanges,
  };
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}
