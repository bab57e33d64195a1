/**
 * A deterministic simulation of the leader-side workload control loop (docs/workloads.md): the
 * real KvStore as the store, the real `ClusterState`, `reconcile`, `decide`, `applyPlacement`,
 * `removePlacement` and `checkPlan`, wired the way the actors wire them:
 *
 * - the controller reconciles its view and commits each write as a txn with a compare, hands
 *   unplaced replicas to the shard that owns their workload, and commits the agents' reports;
 * - each shard decides its queue higher priority first on its view with tentative placements,
 *   one plan in flight, and decides again after a refusal (undoing what it counted);
 * - the applier checks each plan against its own view (replica still pending and unchanged,
 *   `checkPlan`) and commits it as one txn pinning every record it touches.
 *
 * Each part follows the store through its own lagging feed (a watch, in revision order) and
 * talks to the others and to the store through messages that a seeded PRNG delays and reorders.
 * Simulated agents on alive nodes turn `starting` into `running` and finish batch tasks after
 * some ticks; nodes go down and come back at random. Invariants are checked after every step
 * against the committed state (an independent decoding of the store's records); a violation
 * throws with the tick, so a seed replays it exactly.
 */
import { ClusterState } from '../../actors/coordinator/cluster-state.ts';
import { decideBatch, undoBatch } from '../../actors/coordinator/plan-batch.ts';
import { preparePlanTxn } from '../../actors/coordinator/plan-txn.ts';
import { reconcile } from '../../actors/coordinator/reconcile.ts';
import { shardIndexOf } from '../../actors/coordinator/scheduler-shard.ts';
import { specDigest } from '../../actors/coordinator/spec-digest.ts';
import {
  decodeReplicaRecord,
  decodeWorkloadRecord,
  encodeReplicaRecord,
  encodeWorkloadRecord,
  parseReplicaKey,
  type ReplicaRecord,
  replicaIdOf,
  replicaKey,
  replicaPrefixOf,
  replicasPrefix,
  type WorkloadRecord,
  workloadKey,
  workloadsPrefix,
} from '../../actors/coordinator/workload-records.ts';
import type { WorkloadSpec } from '../../actors/coordinator/workload-spec.ts';
import { validateWorkloadSpec } from '../../actors/coordinator/workload-validate.ts';
import {
  decodeMemberRecord,
  encodeMemberRecord,
  type MemberRecord,
  type MemberStatus,
  memberKey,
  membersPrefix,
} from '../../actors/membership/member-record.ts';
import { KvStore } from '../../actors/raft/kv-store.ts';
import type { KeyValue, KvCommand, KvCompare, KvEvent, KvTxnOp } from '../../actors/raft/kv-types.ts';
import { mulberry32 } from '../../actors/raft/mulberry32.ts';
import { applyPlacement, removePlacement } from '../../actors/scheduler/placement.ts';
import type { Eviction, PlacementRequest, Plan } from '../../actors/scheduler/scheduler-types.ts';
import { defaultWeights } from '../../actors/scheduler/scores.ts';
import { decide } from '../../actors/scheduler/select.ts';

export const mi = 1024 * 1024;
export const gi = 1024 * mi;
const tickMs = 1000;

export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed | 0;
  }
  next(): number {
    const { value, next } = mulberry32(this.#state);
    this.#state = next;
    return value;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j] as T, items[i] as T];
    }
    return items;
  }
}

export interface SimNode {
  readonly id: string;
  readonly cpuCores: number;
  readonly memoryBytes: number;
  readonly zone?: string;
  readonly labels?: Record<string, string>;
}

export interface SimWorkload {
  readonly name: string;
  readonly kind?: 'service' | 'batch';
  readonly replicas: number;
  readonly cpuMillicores?: number;
  readonly memoryBytes?: number;
  readonly priority?: number;
  /** Changes the spec (a new revision) without touching placement. */
  readonly env?: Record<string, string>;
}

export interface SimOptions {
  readonly seed: number;
  readonly nodes: readonly SimNode[];
  readonly shards?: number;
  /** Most ticks a message (or a proposal) takes; 0: next step. */
  readonly maxDelay?: number;
  /** Chance per step that a part's feed stays behind (brings only some of what is new). */
  readonly lagChance?: number;
  /** Ticks a batch task runs before it succeeds. */
  readonly batchTicks?: number;
  /** Ticks between the controller's re-sends of a still-unplaced replica. */
  readonly rescheduleTicks?: number;
}

/** What the sim counted, for the spec's report. */
export interface SimStats {
  plansCommitted: number;
  plansRefused: number;
  evictions: number;
  /** Evictions a fresh look at the committed state says were not needed (a stale shard view). */
  evictionsUnneeded: number;
  controllerWrites: number;
  controllerWritesFailed: number;
  lostMarked: number;
  nodeDowns: number;
}

interface Message {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
}

/** A part's view of the store: a ClusterState fed from the store's history, possibly behind. */
class Feed {
  readonly state = new ClusterState();
  #cursor = 0;
  readonly #sim: WorkloadSim;

  constructor(sim: WorkloadSim) {
    this.#sim = sim;
    this.state.onRefused = (refused) => sim.fail(`a record was refused: ${refused.key}: ${refused.error}`);
  }

  /** Brings the view up to date, or only part of the way when it lags. */
  advance(): void {
    const history = this.#sim.history;
    let end = history.length;
    if (this.#cursor < end && this.#sim.rng.chance(this.#sim.lagChance))
      end = this.#cursor + this.#sim.rng.int(end - this.#cursor);
    for (; this.#cursor < end; this.#cursor++) this.state.applyEvents(history[this.#cursor] as KvEvent[]);
  }

  /** A fresh load of everything (as after a refused commit). */
  reload(): void {
    this.state.load(this.#sim.committedKvs(), this.#sim.store.revision);
    this.#cursor = this.#sim.history.length;
  }

  get caughtUp(): boolean {
    return this.#cursor === this.#sim.history.length;
  }
}

interface SubmitPlan {
  readonly plan: Plan;
  readonly requests: readonly PlacementRequest[];
  readonly shard: SimShard;
}

/** The scheduler shard's logic (scheduler-shard.ts planBatch / undo / plan-result). */
class SimShard {
  readonly feed: Feed;
  readonly queue = new Set<string>();
  inFlight:
    | {
        planId: string;
        placements: readonly { replicaId: string; node: string }[];
        evictions: readonly Eviction[];
      }
    | undefined;
  retryAt = 0;
  readonly #sim: WorkloadSim;

  constructor(sim: WorkloadSim) {
    this.#sim = sim;
    this.feed = new Feed(sim);
  }

  planBatch(): void {
    const state = this.feed.state;
    if (this.inFlight !== undefined || this.queue.size === 0 || this.#sim.tick < this.retryAt) return;
    // The shard actor's own batch logic (plan-batch.ts), on this shard's lagging view.
    const batch = decideBatch(state, [...this.queue]);
    this.queue.clear();
    for (const key of batch.deferred) this.queue.add(key);
    for (const { decision, key } of batch.decided) {
      if (decision.type !== 'preempt') continue;
      const priority = state.placementRequest(key)?.priority ?? 0;
      for (const eviction of decision.evictions)
        if (eviction.priority >= priority)
          this.#sim.fail(
            `decide chose to evict ${eviction.replicaId} of priority ${eviction.priority} for ${key} of ${priority}`,
          );
    }
    const { placements, evictions, requests } = batch;
    if (placements.length === 0) return;
    const planId = `plan-${++this.#sim.planSeq}`;
    this.inFlight = { planId, placements, evictions };
    const submit: SubmitPlan = { plan: { planId, placements, evictions }, requests, shard: this };
    this.#sim.send(() => this.#sim.applier.submit(submit));
  }

  result(
    planId: string,
    ok: boolean,
    writes: readonly { key: string; value: string }[],
    revision: number,
  ): void {
    const plan = this.inFlight;
    if (plan === undefined || plan.planId !== planId) return;
    this.inFlight = undefined;
    const state = this.feed.state;
    if (ok) {
      state.applyCommitted(writes, revision);
      return;
    }
    if (undoBatch(state, plan)) this.feed.reload();
    for (const placement of plan.placements) this.queue.add(placement.replicaId);
    this.retryAt = this.#sim.tick + 1 + this.#sim.rng.int(2);
  }
}

/** The plan applier's logic (plan-applier.ts prepare / next / committed). */
class SimApplier {
  readonly feed: Feed;
  readonly queue: SubmitPlan[] = [];
  busy = false;
  readonly #sim: WorkloadSim;

  constructor(sim: WorkloadSim) {
    this.#sim = sim;
    this.feed = new Feed(sim);
  }

  submit(submit: SubmitPlan): void {
    this.queue.push(submit);
  }

  /** The applier actor's own check (plan-txn.ts), on this applier's lagging view. */
  #prepare(
    submit: SubmitPlan,
  ): { compare: KvCompare[]; writes: { key: string; value: string }[] } | undefined {
    const prepared = preparePlanTxn(this.feed.state, submit, this.#sim.now);
    return 'conflicts' in prepared ? undefined : prepared;
  }

  step(): void {
    while (!this.busy) {
      const submit = this.queue.shift();
      if (submit === undefined) return;
      const prepared = this.#prepare(submit);
      if (prepared === undefined) {
        this.#sim.stats.plansRefused++;
        this.#sim.send(() => submit.shard.result(submit.plan.planId, false, [], 0));
        continue;
      }
      this.busy = true;
      const success: KvTxnOp[] = prepared.writes.map((w) => ({ type: 'put', key: w.key, value: w.value }));
      this.#sim.propose(
        { type: 'txn', compare: prepared.compare, success, failure: [] },
        (revision, before) => {
          if (revision !== undefined) this.#sim.checkCommittedPlan(submit, before);
          this.#sim.send(() => {
            this.busy = false;
            if (revision !== undefined) {
              this.#sim.stats.plansCommitted++;
              this.feed.state.applyCommitted(prepared.writes, revision);
              this.#sim.send(() => submit.shard.result(submit.plan.planId, true, prepared.writes, revision));
            } else {
              this.#sim.stats.plansRefused++;
              this.feed.reload();
              this.#sim.send(() => submit.shard.result(submit.plan.planId, false, [], 0));
            }
          });
        },
      );
    }
  }
}

/** The controller's logic (workload-controller.ts runReconcile / commit / handleReport). */
class SimController {
  readonly feed: Feed;
  readonly writing = new Set<string>();
  readonly scheduledAt = new Map<string, number>();
  readonly #sim: WorkloadSim;

  constructor(sim: WorkloadSim) {
    this.#sim = sim;
    this.feed = new Feed(sim);
  }

  reconcile(): void {
    const sim = this.#sim;
    const state = this.feed.state;
    const { writes, unplaced } = reconcile(state, sim.now);
    for (const write of writes) {
      if (this.writing.has(write.key)) continue;
      this.writing.add(write.key);
      const compare: KvCompare =
        write.type === 'create'
          ? { key: write.key, target: 'version', op: '=', value: 0 }
          : { key: write.key, target: 'modRevision', op: '=', value: write.expectedModRevision };
      const op: KvTxnOp =
        write.type === 'delete'
          ? { type: 'delete', key: write.key }
          : { type: 'put', key: write.key, value: encodeReplicaRecord(write.record) };
      if (write.type === 'update' && write.record.state === 'lost') sim.stats.lostMarked++;
      sim.stats.controllerWrites++;
      sim.propose({ type: 'txn', compare: [compare], success: [op], failure: [] }, (revision) =>
        sim.send(() => {
          this.writing.delete(write.key);
          if (revision === undefined) sim.stats.controllerWritesFailed++;
        }),
      );
    }
    const byShard = new Map<SimShard, string[]>();
    for (const key of unplaced) {
      const record = state.replicas.get(key)?.record;
      if (record === undefined) continue;
      // Per attempt: a new attempt goes to the scheduler at once, a pending one again later.
      const attempt = replicaIdOf(record);
      const last = this.scheduledAt.get(attempt);
      if (last !== undefined && sim.tick - last < sim.rescheduleTicks) continue;
      this.scheduledAt.set(attempt, sim.tick);
      const workloadId = record.workloadId;
      const shard = sim.shards[shardIndexOf(workloadId, sim.shards.length)] as SimShard;
      const keys = byShard.get(shard) ?? [];
      keys.push(key);
      byShard.set(shard, keys);
    }
    for (const [shard, keys] of byShard)
      sim.send(() => {
        for (const key of keys) shard.queue.add(key);
      });
  }

  /** What an agent reports about one attempt (handleReport). */
  report(from: string, replicaId: string, state: 'running' | 'succeeded' | 'failed'): void {
    const sim = this.#sim;
    const match = /^(.+)\/(\d+)#(\d+)$/.exec(replicaId);
    if (match === null) return;
    const key = replicaKey(match[1] as string, Number(match[2]));
    const stored = this.feed.state.replicas.get(key);
    if (stored === undefined || stored.record.attempt !== Number(match[3])) return;
    const { record } = stored;
    if (record.node !== from) return;
    if (record.state === 'lost' || record.state === 'succeeded' || record.state === 'failed') return;
    const next: ReplicaRecord = {
      ...record,
      state,
      ready: state === 'running',
      exitCode: state === 'running' ? undefined : state === 'succeeded' ? 0 : 1,
      updatedAt: sim.now,
    };
    sim.propose(
      {
        type: 'txn',
        compare: [{ key, target: 'modRevision', op: '=', value: stored.modRevision }],
        success: [{ type: 'put', key, value: encodeReplicaRecord(next) }],
        failure: [],
      },
      () => {},
    );
  }
}

/** The committed state, decoded on its own (not with ClusterState), for the invariants. */
interface Committed {
  readonly workloads: Map<string, WorkloadRecord>;
  readonly replicas: Map<string, { record: ReplicaRecord; modRevision: number }>;
  readonly members: Map<string, MemberRecord>;
}

export class WorkloadSim {
  readonly rng: Rng;
  readonly store = new KvStore({ maxHistoryEvents: 1_000_000 });
  /** Every committed change, one entry per revision. */
  readonly history: KvEvent[][] = [];
  readonly controller: SimController;
  readonly shards: SimShard[] = [];
  readonly applier: SimApplier;
  readonly lagChance: number;
  readonly rescheduleTicks: number;
  readonly stats: SimStats = {
    plansCommitted: 0,
    plansRefused: 0,
    evictions: 0,
    evictionsUnneeded: 0,
    controllerWrites: 0,
    controllerWritesFailed: 0,
    lostMarked: 0,
    nodeDowns: 0,
  };
  planSeq = 0;
  tick = 0;
  readonly #maxDelay: number;
  readonly #batchTicks: number;
  readonly #nodes = new Map<string, SimNode>();
  #messages: Message[] = [];
  #messageSeq = 0;
  #proposalSeq = 0;
  readonly committed: Committed = { workloads: new Map(), replicas: new Map(), members: new Map() };
  /** The last spec each workload had: its orphan slots still hold that much until deleted. */
  readonly #lastSpec = new Map<string, WorkloadSpec>();
  /** Per slot key: the attempt that succeeded / failed (never to run again). */
  readonly #finished = new Map<string, { attempt: number; state: 'succeeded' | 'failed' }>();
  /** Per attempt id: the node it was placed on (an attempt never moves). */
  readonly #attemptNode = new Map<string, string>();
  /** Per slot key: the highest attempt seen. */
  readonly #attemptOf = new Map<string, number>();
  /** Agents: per node, the attempts it runs and since when. */
  readonly #agents = new Map<string, Map<string, number>>();
  readonly #reportedAt = new Map<string, number>();

  constructor(options: SimOptions) {
    this.rng = new Rng(options.seed);
    this.#maxDelay = options.maxDelay ?? 2;
    this.lagChance = options.lagChance ?? 0.3;
    this.#batchTicks = options.batchTicks ?? 4;
    this.rescheduleTicks = options.rescheduleTicks ?? 3;
    this.store.watch('/cloudless/', {
      onEvents: (events) => {
        this.history.push([...events]);
        this.#observe(events);
      },
    });
    this.controller = new SimController(this);
    for (let i = 0; i < (options.shards ?? 2); i++) this.shards.push(new SimShard(this));
    this.applier = new SimApplier(this);
    for (const node of options.nodes) {
      this.#nodes.set(node.id, node);
      this.#agents.set(node.id, new Map());
      this.#writeMember(node.id, 'alive');
    }
  }

  get now(): number {
    return this.tick * tickMs;
  }

  fail(message: string): never {
    throw new Error(`tick ${this.tick}: ${message}`);
  }

  /** Delivers `run` after a random delay (messages due at one step run in random order). */
  send(run: () => void): void {
    this.#messages.push({ at: this.tick + this.rng.int(this.#maxDelay + 1), seq: ++this.#messageSeq, run });
  }

  /** Commits `command` after a random delay; `done` gets the revision, or undefined if a compare failed. */
  propose(command: KvCommand, done: (revision: number | undefined, before: Committed) => void): void {
    this.send(() => {
      const before = this.#snapshotCommitted();
      const outcome = this.store.apply(command, { clientId: 'sim', seq: ++this.#proposalSeq });
      for (const notification of outcome.notifications) notification.deliver();
      const result = outcome.result;
      done(result.type === 'txn' && !result.succeeded ? undefined : result.revision, before);
    });
  }

  committedKvs(): KeyValue[] {
    const kvs: KeyValue[] = [];
    let fromKey: string | undefined;
    for (;;) {
      const page = this.store.range('/cloudless/', fromKey === undefined ? {} : { fromKey });
      kvs.push(...page.kvs);
      if (!page.more || page.nextKey === undefined) return kvs;
      fromKey = page.nextKey;
    }
  }

  // --- the world: workloads, nodes ---

  #commitNow(ops: KvTxnOp[], compare: KvCompare[] = []): boolean {
    const outcome = this.store.apply(
      { type: 'txn', compare, success: ops, failure: [] },
      { clientId: 'sim-world', seq: ++this.#proposalSeq },
    );
    for (const notification of outcome.notifications) notification.deliver();
    return outcome.result.type !== 'txn' || outcome.result.succeeded;
  }

  #writeMember(id: string, status: MemberStatus): void {
    const node = this.#nodes.get(id) as SimNode;
    const record: MemberRecord = {
      id,
      roles: ['agent'],
      addresses: [`/memory/${id}`],
      labels: node.labels ?? {},
      zone: node.zone,
      status,
      resources: {
        cpuCores: node.cpuCores,
        cpuLoad1m: 0,
        memoryBytes: node.memoryBytes,
        memoryFreeBytes: node.memoryBytes,
        diskBytes: 0,
        diskFreeBytes: 0,
      },
      joinedAt: 0,
      statusSince: this.now,
      tokenId: undefined,
    };
    this.#commitNow([{ type: 'put', key: memberKey(id), value: encodeMemberRecord(record) }]);
  }

  nodeIds(): string[] {
    return [...this.#nodes.keys()];
  }

  statusOf(id: string): MemberStatus | undefined {
    return this.committed.members.get(id)?.status;
  }

  setStatus(id: string, status: MemberStatus): void {
    if (this.statusOf(id) === status) return;
    if (status === 'down') this.stats.nodeDowns++;
    this.#writeMember(id, status);
    // Whatever ran there is gone with the node (a process that comes back starts clean).
    if (status !== 'alive') this.#agents.get(id)?.clear();
  }

  deploy(workload: SimWorkload): void {
    const spec: WorkloadSpec = validateWorkloadSpec({
      name: workload.name,
      kind: workload.kind ?? 'service',
      replicas: workload.replicas,
      driver: { type: 'process', command: 'node', env: workload.env ?? {} },
      resources: {
        cpuMillicores: workload.cpuMillicores ?? 500,
        memoryBytes: workload.memoryBytes ?? 256 * mi,
      },
      priority: workload.priority ?? 0,
    });
    const id = `${spec.namespace}/${spec.name}`;
    const key = workloadKey(id);
    const existing = this.store.get(key);
    const previous = existing === undefined ? undefined : decodeWorkloadRecord(existing.value, key);
    const onlyScaled =
      previous !== undefined &&
      specDigest({ ...previous.spec, replicas: 0 }) === specDigest({ ...spec, replicas: 0 });
    const record: WorkloadRecord = {
      spec,
      digest: specDigest(spec),
      revision: previous === undefined ? 1 : onlyScaled ? previous.revision : previous.revision + 1,
      createdAt: previous?.createdAt ?? this.now,
      updatedAt: this.now,
    };
    this.#commitNow([{ type: 'put', key, value: encodeWorkloadRecord(record) }]);
  }

  /** As `cloudless rm`: the workload and its slots in one txn. */
  remove(name: string): void {
    const id = `default/${name}`;
    this.#commitNow([
      { type: 'delete', key: workloadKey(id) },
      { type: 'delete', key: replicaPrefixOf(id), prefix: true },
    ]);
  }

  /** As a `cloudless rm` written without its slots (an older client): the controller deletes them. */
  removeWorkloadOnly(name: string): void {
    this.#commitNow([{ type: 'delete', key: workloadKey(`default/${name}`) }]);
  }

  // --- a step ---

  step(): void {
    this.tick++;
    this.#agentsStep();
    const due = this.#messages.filter((m) => m.at <= this.tick);
    this.#messages = this.#messages.filter((m) => m.at > this.tick);
    for (const message of this.rng.shuffle(due)) message.run();
    this.controller.feed.advance();
    for (const shard of this.shards) shard.feed.advance();
    this.applier.feed.advance();
    this.controller.reconcile();
    for (const shard of this.rng.shuffle([...this.shards])) shard.planBatch();
    this.applier.step();
    this.checkInvariants();
  }

  run(ticks: number, between?: (tick: number) => void): void {
    for (let i = 0; i < ticks; i++) {
      between?.(this.tick);
      this.step();
    }
  }

  /** Steps until `done` holds (checked after each step); fails after `maxTicks`. */
  runUntil(what: string, done: () => boolean, maxTicks: number): number {
    for (let i = 0; i < maxTicks; i++) {
      this.step();
      if (done()) return i + 1;
    }
    return this.fail(`${what} did not happen within ${maxTicks} ticks:\n${this.describe()}`);
  }

  /** Agents on alive nodes run what the controller's view assigns them and report on it. */
  #agentsStep(): void {
    const view = this.controller.feed.state;
    for (const [id, running] of this.#agents) {
      if (this.statusOf(id) !== 'alive') continue;
      const assigned = new Map<string, ReplicaRecord>();
      for (const { record } of view.replicas.values())
        if (ClusterState.holdsCapacity(record) && record.node === id)
          assigned.set(replicaIdOf(record), record);
      for (const replicaId of running.keys()) if (!assigned.has(replicaId)) running.delete(replicaId);
      for (const [replicaId, record] of assigned) {
        if (!running.has(replicaId)) running.set(replicaId, this.tick);
        const kind = view.workloads.get(record.workloadId)?.record.spec.kind;
        let report: 'running' | 'succeeded' | undefined;
        if (record.state === 'starting') report = 'running';
        else if (kind === 'batch' && this.tick - (running.get(replicaId) as number) >= this.#batchTicks)
          report = 'succeeded';
        if (report === undefined) continue;
        const tag = `${replicaId}:${report}`;
        const last = this.#reportedAt.get(tag);
        if (last !== undefined && this.tick - last < 3) continue;
        this.#reportedAt.set(tag, this.tick);
        const state = report;
        this.send(() => this.controller.report(id, replicaId, state));
      }
    }
  }

  // --- invariants ---

  #snapshotCommitted(): Committed {
    return {
      workloads: new Map(this.committed.workloads),
      replicas: new Map(this.committed.replicas),
      members: new Map(this.committed.members),
    };
  }

  /** Keeps `committed` and the per-slot history in step with every committed change. */
  #observe(events: readonly KvEvent[]): void {
    for (const { type, kv } of events) {
      if (kv.key.startsWith(membersPrefix)) {
        const id = kv.key.slice(membersPrefix.length);
        if (type === 'put') this.committed.members.set(id, decodeMemberRecord(kv.value, id));
        else this.committed.members.delete(id);
      } else if (kv.key.startsWith(workloadsPrefix)) {
        const id = kv.key.slice(workloadsPrefix.length);
        if (type === 'put') {
          const record = decodeWorkloadRecord(kv.value, kv.key);
          this.committed.workloads.set(id, record);
          this.#lastSpec.set(id, record.spec);
        } else this.committed.workloads.delete(id);
      } else if (kv.key.startsWith(replicasPrefix)) {
        if (type === 'delete') {
          const gone = this.committed.replicas.get(kv.key)?.record;
          this.committed.replicas.delete(kv.key);
          this.#finished.delete(kv.key);
          // A slot created again starts at attempt 1 (its attempt ids are reused: see the report).
          this.#attemptOf.delete(kv.key);
          if (gone !== undefined)
            for (let attempt = 1; attempt <= gone.attempt; attempt++)
              this.#attemptNode.delete(replicaIdOf({ ...gone, attempt }));
          continue;
        }
        const record = decodeReplicaRecord(kv.value, kv.key);
        const finished = this.#finished.get(kv.key);
        if (
          finished !== undefined &&
          (record.attempt !== finished.attempt || record.state !== finished.state)
        )
          this.fail(
            `${kv.key} ${finished.state} at attempt ${finished.attempt} and became ${record.state} at attempt ${record.attempt}`,
          );
        if (record.state === 'succeeded' || record.state === 'failed')
          this.#finished.set(kv.key, { attempt: record.attempt, state: record.state });
        const highest = this.#attemptOf.get(kv.key) ?? 0;
        if (record.attempt < highest)
          this.fail(`${kv.key} went back from attempt ${highest} to ${record.attempt}`);
        this.#attemptOf.set(kv.key, record.attempt);
        if (record.node !== undefined) {
          const id = replicaIdOf(record);
          const was = this.#attemptNode.get(id);
          if (was !== undefined && was !== record.node)
            this.fail(`attempt ${id} moved from ${was} to ${record.node}: two nodes may run it`);
          this.#attemptNode.set(id, record.node);
          if (
            record.state === 'starting' &&
            this.committed.replicas.get(kv.key)?.record.state === 'pending'
          ) {
            const status = this.committed.members.get(record.node)?.status;
            if (status !== 'alive')
              this.fail(
                `${id} was placed on ${record.node}, which is ${status ?? 'unknown'} in the committed state`,
              );
          }
        }
        this.committed.replicas.set(kv.key, { record, modRevision: kv.modRevision });
      }
    }
  }

  /** At a plan's commit: evictions only of strictly lower priority; were they needed? */
  checkCommittedPlan(submit: SubmitPlan, before: Committed): void {
    const { plan } = submit;
    if (plan.evictions.length === 0) return;
    this.stats.evictions += plan.evictions.length;
    const priorityOf = (replicaKeyText: string, view: Committed): number => {
      const workloadId = parseReplicaKey(replicaKeyText)?.workloadId ?? '';
      return view.workloads.get(workloadId)?.spec.priority ?? -1;
    };
    for (const eviction of plan.evictions) {
      const victim = priorityOf(eviction.replicaId, before);
      for (const placement of plan.placements.filter((p) => p.node === eviction.node)) {
        const placed = priorityOf(placement.replicaId, before);
        if (!(victim < placed))
          this.fail(
            `plan ${plan.planId} evicted ${eviction.replicaId} (priority ${victim}) for ${placement.replicaId} (priority ${placed})`,
          );
      }
      const after = this.committed.replicas.get(eviction.replicaId)?.record;
      const was = before.replicas.get(eviction.replicaId)?.record;
      if (after?.state !== 'pending' || was === undefined || after.attempt !== was.attempt + 1)
        this.fail(`evicted ${eviction.replicaId} did not get a new pending attempt`);
    }
    // Needed? Replay the plan on a fresh view of the state it committed on.
    const view = new ClusterState();
    view.load(this.#kvsOf(before), 0);
    const pendingEvictions = new Map<string, Eviction[]>();
    for (const eviction of plan.evictions) {
      const list = pendingEvictions.get(eviction.node) ?? [];
      list.push(eviction);
      pendingEvictions.set(eviction.node, list);
    }
    for (const placement of plan.placements) {
      const request = submit.requests.find((r) => r.replicaId === placement.replicaId) as PlacementRequest;
      const node = view.nodes.get(placement.node);
      if (node === undefined) continue;
      const fits = (): boolean =>
        node.capacity.cpuMillicores - node.allocated.cpuMillicores >= request.resources.cpuMillicores &&
        node.capacity.memoryBytes - node.allocated.memoryBytes >= request.resources.memoryBytes;
      const evictions = pendingEvictions.get(placement.node) ?? [];
      if (!fits() && evictions.length > 0) {
        // Evicting for this placement was needed only if it fitted nowhere without.
        const unneeded = decide(view.nodeList(), request, defaultWeights).type === 'placed';
        while (!fits() && evictions.length > 0) {
          removePlacement(node, (evictions.shift() as Eviction).replicaId);
          if (unneeded) this.stats.evictionsUnneeded++;
        }
      }
      applyPlacement(node, request);
    }
  }

  #kvsOf(view: Committed): KeyValue[] {
    const kv = (key: string, value: string): KeyValue => ({
      key,
      value,
      modRevision: 1,
      createRevision: 1,
      version: 1,
    });
    const kvs: KeyValue[] = [];
    for (const [id, record] of view.members) kvs.push(kv(memberKey(id), encodeMemberRecord(record)));
    for (const [id, record] of view.workloads) kvs.push(kv(workloadKey(id), encodeWorkloadRecord(record)));
    for (const [key, { record }] of view.replicas) kvs.push(kv(key, encodeReplicaRecord(record)));
    return kvs;
  }

  /** Committed resource use per node: non-finished placed replicas at their workload's request. */
  usage(): Map<string, { cpu: number; memory: number }> {
    const use = new Map<string, { cpu: number; memory: number }>();
    for (const { record } of this.committed.replicas.values()) {
      if (record.node === undefined || record.state === 'pending') continue;
      if (record.state === 'succeeded' || record.state === 'failed' || record.state === 'lost') continue;
      const spec = this.#lastSpec.get(record.workloadId);
      const u = use.get(record.node) ?? { cpu: 0, memory: 0 };
      u.cpu += spec?.resources.cpuMillicores ?? 0;
      u.memory += spec?.resources.memoryBytes ?? 0;
      use.set(record.node, u);
    }
    return use;
  }

  checkInvariants(): void {
    const use = this.usage();
    for (const [id, u] of use) {
      const member = this.committed.members.get(id);
      const cpu = Math.floor((member?.resources?.cpuCores ?? 0) * 1000);
      const memory = member?.resources?.memoryBytes ?? 0;
      if (u.cpu > cpu || u.memory > memory)
        this.fail(`node ${id} is over capacity: ${u.cpu}m of ${cpu}m CPU, ${u.memory} of ${memory} bytes`);
    }
    const running = new Map<string, number>();
    for (const { record } of this.committed.replicas.values()) {
      if (record.state !== 'starting' && record.state !== 'running') continue;
      const slot = `${record.workloadId}/${record.index}`;
      running.set(slot, (running.get(slot) ?? 0) + 1);
      if ((running.get(slot) as number) > 1) this.fail(`slot ${slot} has two running attempts`);
    }
    // A view that has caught up counts exactly what the committed state holds. (Except on a node
    // holding slots of a deleted workload: a view loaded after the delete cannot know their size.)
    const orphanNodes = new Set<string>();
    for (const { record } of this.committed.replicas.values())
      if (record.node !== undefined && !this.committed.workloads.has(record.workloadId))
        orphanNodes.add(record.node);
    for (const [name, feed] of [
      ['controller', this.controller.feed],
      ['applier', this.applier.feed],
    ] as const) {
      if (!feed.caughtUp || (name === 'applier' && this.applier.busy)) continue;
      for (const node of feed.state.nodes.values()) {
        if (orphanNodes.has(node.id)) continue;
        const u = use.get(node.id) ?? { cpu: 0, memory: 0 };
        if (node.allocated.cpuMillicores !== u.cpu || node.allocated.memoryBytes !== u.memory)
          this.fail(
            `the ${name}'s view counts ${node.allocated.cpuMillicores}m/${node.allocated.memoryBytes} on ${node.id}, the store ${u.cpu}m/${u.memory}`,
          );
      }
    }
  }

  /** Every service slot running and ready on an alive node, every batch slot succeeded. */
  converged(): boolean {
    for (const [id, workload] of this.committed.workloads) {
      const { spec } = workload;
      for (let index = 0; index < spec.replicas; index++) {
        const record = this.committed.replicas.get(replicaKey(id, index))?.record;
        if (record === undefined) return false;
        if (spec.kind === 'batch') {
          if (record.state !== 'succeeded') return false;
          continue;
        }
        if (record.state !== 'running' || !record.ready || record.specRevision !== workload.revision)
          return false;
        if (this.committed.members.get(record.node as string)?.status !== 'alive') return false;
      }
    }
    for (const key of this.committed.replicas.keys()) {
      const slot = parseReplicaKey(key);
      const workload = slot === undefined ? undefined : this.committed.workloads.get(slot.workloadId);
      if (slot === undefined || workload === undefined || slot.index >= workload.spec.replicas) return false;
    }
    return true;
  }

  replica(name: string, index: number): ReplicaRecord | undefined {
    return this.committed.replicas.get(replicaKey(`default/${name}`, index))?.record;
  }

  describe(): string {
    const lines: string[] = [];
    for (const [id, m] of this.committed.members) lines.push(`  node ${id}: ${m.status}`);
    for (const [key, { record }] of [...this.committed.replicas].sort()) {
      lines.push(
        `  ${key} #${record.attempt} rev ${record.specRevision} ${record.state}${record.ready ? ' ready' : ''} on ${record.node ?? '-'} (${record.reason ?? ''})`,
      );
    }
    return lines.join('\n');
  }
}
