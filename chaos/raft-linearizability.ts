/**
 * Real-process chaos run of the Raft-replicated KV store: N coordinator processes on loopback
 * (nodes 1..N-1 join node 0), KvClients spread over every node (so followers forward), a recorded
 * workload over a few keys, and a seeded fault schedule: SIGKILL of the current leader and a
 * restart, SIGSTOP/SIGCONT of a node, and partitions through the transport's fault layer
 * (isolating the leader, minority/majority splits), each held for a few seconds and healed.
 *
 * Then everything is healed and restarted, and four properties are checked:
 * - recovery: a write and a linearizable read through every node succeed within a bound;
 * - the history (with a final linearizable read of every key) is linearizable, per key, against
 *   the store's register model; a checker timeout is a failure, not a pass;
 * - no acknowledged write is lost: each key's final read returns a value some write wrote, and no
 *   acknowledged write that began after that write ended (and returned before the final read)
 *   was overwritten by it;
 * - at most one leader per term, from every live node's `status` polled all along.
 *
 * `node chaos/raft-linearizability.ts [--nodes 3|5] [--seconds N] [--seed S]` exits non-zero on a
 * violation and prints one summary JSON line. The seed fixes the fault schedule and the workload's
 * choices; process timing is not replayable, so a replay reproduces the faults, not the
 * interleaving. `runRaftChaos` is the same run for specs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { KvClient } from '../actors/raft/kv-client.ts';
import { mulberry32 } from '../actors/raft/mulberry32.ts';
import type { RaftStatusReply } from '../actors/raft/raft-member.ts';
import { InvalidRequestError, TimeoutError } from '../runtime/errors.ts';
import { until } from '../specs/support/deadline.ts';
import { type KvOperation, kvModel } from '../specs/support/kv-model.ts';
import { checkLinearizable, timedOut } from '../specs/support/linearizability.ts';
import { KvWorkload } from './support/kv-history.ts';
import { NodeCluster } from './support/node-cluster.ts';

export type RaftFaultKind = 'kill' | 'pause' | 'partition';

export interface RaftChaosInit {
  /** Coordinator processes: 3 or 5. */
  readonly nodes: number;
  /** How long the fault schedule runs (faults are planned until it is filled). */
  readonly seconds: number;
  readonly seed?: number;
  /** The kinds of fault, in this order, instead of a seeded schedule filling `seconds`. */
  readonly faults?: readonly RaftFaultKind[];
  /** Workload clients, spread round-robin over the nodes; default max(6, nodes). */
  readonly clients?: number;
  /** Keys the workload touches; default 5 (few keys keep each key's history checkable). */
  readonly keys?: number;
  /** Bound on recovery after the faults stop; default 20 s. */
  readonly recoveryLimitMs?: number;
  /** Bound on the linearizability check; default 60 s. */
  readonly checkTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

export interface RaftChaosSummary {
  readonly chaos: 'raft-linearizability';
  readonly nodes: number;
  readonly seed: number;
  readonly seconds: number;
  readonly ops: number;
  readonly ok: number;
  readonly unknown: number;
  readonly failed: number;
  readonly faults: { kills: number; pauses: number; partitions: number };
  readonly terms_seen: number;
  readonly status_samples: number;
  readonly linearizable: boolean | 'unknown';
  readonly lost_writes: number;
  readonly max_leaders_per_term: number;
  readonly recovery_ms: number | null;
  readonly check_ms: number;
}

export interface RaftChaosReport {
  readonly summary: RaftChaosSummary;
  /** Every violation found, in words (empty when all four properties held). */
  readonly violations: string[];
}

interface PlannedFault {
  readonly kind: RaftFaultKind;
  /** How long the fault lasts (down, frozen or cut off). */
  readonly holdMs: number;
  /** Quiet time after it is undone, before the next fault. */
  readonly quietMs: number;
  /** Seeded draws that pick nodes once the leader is known (which depends on timing). */
  readonly picks: readonly number[];
}

interface LeaderClaim {
  readonly node: number;
  readonly id: string;
}

const statusPollMs = 150;
const statusTimeoutMs = 600;
const callTimeoutMs = 2500;

function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    const step = mulberry32(state);
    state = step.next;
    return step.value;
  };
}

function planFaults(init: RaftChaosInit, random: () => number): PlannedFault[] {
  const draw = (): PlannedFault['picks'] => [random(), random(), random(), random()];
  const between = (min: number, max: number): number => Math.round(min + random() * (max - min));
  const plan: PlannedFault[] = [];
  if (init.faults !== undefined) {
    for (const kind of init.faults) {
      plan.push({ kind, holdMs: between(1500, 2500), quietMs: between(1000, 1500), picks: draw() });
    }
    return plan;
  }
  // Every kind once per cycle, in a seeded order, so each appears about equally often.
  const budgetMs = init.seconds * 1000;
  let plannedMs = 0;
  while (plannedMs < budgetMs) {
    const cycle: RaftFaultKind[] = ['kill', 'pause', 'partition'];
    for (let i = cycle.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [cycle[i], cycle[j]] = [cycle[j] as RaftFaultKind, cycle[i] as RaftFaultKind];
    }
    for (const kind of cycle) {
      if (plannedMs >= budgetMs) break;
      const fault = { kind, holdMs: between(1500, 4000), quietMs: between(1000, 2500), picks: draw() };
      plan.push(fault);
      // A kill also costs the restart (a few seconds on a loaded machine).
      plannedMs += fault.holdMs + fault.quietMs + (kind === 'kill' ? 2000 : 0);
    }
  }
  return plan;
}

/** Polls every live node's status, keeping the latest view and every leader claim per term. */
class LeaderMonitor {
  readonly claims = new Map<number, Map<string, LeaderClaim>>();
  readonly latest = new Map<number, RaftStatusReply & { at: number }>();
  samples = 0;
  readonly #cluster: NodeCluster;
  readonly #clients: (KvClient | undefined)[];
  readonly #log: (line: string) => void;
  #running = false;
  #loop: Promise<void> = Promise.resolve();

  constructor(cluster: NodeCluster, clients: (KvClient | undefined)[], log: (line: string) => void) {
    this.#cluster = cluster;
    this.#clients = clients;
    this.#log = log;
  }

  start(): void {
    this.#running = true;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  /** The most leaders any term had. */
  maxLeadersPerTerm(): number {
    let max = 0;
    for (const leaders of this.claims.values()) max = Math.max(max, leaders.size);
    return max;
  }

  /** The node the freshest status says leads (highest term among live nodes claiming it). */
  leader(): number | undefined {
    let best: { node: number; term: number } | undefined;
    for (const [node, status] of this.latest) {
      if (!this.#cluster.node(node).alive || status.role !== 'leader') continue;
      if (performance.now() - status.at > 2000) continue;
      if (best === undefined || status.term > best.term) best = { node, term: status.term };
    }
    return best?.node;
  }

  async pollOnce(): Promise<void> {
    await Promise.all(
      this.#cluster.nodes.map(async (node) => {
        const client = this.#clients[node.index];
        // A frozen node cannot answer; asking it would only wait for the timeout.
        if (node.state !== 'running' || client === undefined) return;
        try {
          const status = await client.status({ timeoutMs: statusTimeoutMs });
          this.samples++;
          this.latest.set(node.index, { ...status, at: performance.now() });
          if (status.role !== 'leader') return;
          let leaders = this.claims.get(status.term);
          if (leaders === undefined) {
            leaders = new Map();
            this.claims.set(status.term, leaders);
            this.#log(`raft-chaos: term ${status.term}: node ${node.index} leads`);
          }
          if (!leaders.has(status.id)) {
            leaders.set(status.id, { node: node.index, id: status.id });
            if (leaders.size > 1) {
              this.#log(
                `raft-chaos: VIOLATION: term ${status.term} has ${leaders.size} leaders: ` +
                  [...leaders.values()].map((l) => `node ${l.node} (${l.id})`).join(', '),
              );
            }
          }
        } catch {
          // Down, restarting or partitioned away from its client's view: no sample this time.
        }
      }),
    );
  }

  async #run(): Promise<void> {
    while (this.#running) {
      await this.pollOnce();
      await sleep(statusPollMs);
    }
  }
}

/**
 * Acknowledged writes lost, per key: the final read must return a value some write wrote (or
 * nothing, when no write was acknowledged before it), and no acknowledged write that was called
 * after that write returned, and returned before the final read was called, may be hidden by it
 * (values are unique, so the older write cannot have been repeated over the newer one).
 */
export function lostWrites(
  history: readonly KvOperation[],
  finals: ReadonlyMap<string, KvOperation>,
): string[] {
  const problems: string[] = [];
  for (const [key, final] of finals) {
    if (final.output?.type !== 'get') continue;
    const finalValue = final.output.value;
    // Writes that did or may have written: a CAS known to have failed wrote nothing.
    const writes = history.filter(
      (op) => writtenValue(op, key) !== undefined && (timedOut(op) || wroteForSure(op)),
    );
    const acknowledgedBefore = writes.filter(
      (op) => !timedOut(op) && (op.return as number) < final.call && wroteForSure(op),
    );
    if (finalValue === null) {
      if (acknowledgedBefore.length > 0) {
        problems.push(
          `key ${key}: the final read found nothing, but ${acknowledgedBefore.length} write(s) were acknowledged before it`,
        );
      }
      continue;
    }
    const source = writes.find((op) => writtenValue(op, key) === finalValue);
    if (source === undefined) {
      problems.push(`key ${key}: the final read returned ${finalValue}, which no write wrote`);
      continue;
    }
    if (source.return === undefined) continue;
    const hidden = acknowledgedBefore.filter((op) => op !== source && op.call > (source.return as number));
    for (const op of hidden) {
      problems.push(
        `key ${key}: ${JSON.stringify(writtenValue(op, key))} was acknowledged (called ${op.call.toFixed(1)} ms, after ` +
          `${finalValue} was acknowledged at ${(source.return as number).toFixed(1)} ms), but the final read returned ${finalValue}`,
      );
    }
  }
  return problems;
}

/** The value `op` writes to `key` if it is a put or a CAS (whatever its outcome), else undefined. */
function writtenValue(op: KvOperation, key: string): string | undefined {
  const { input } = op;
  if (input.type === 'put') return input.key === key ? input.value : undefined;
  if (input.type !== 'txn') return undefined;
  const put = input.success[0];
  return put?.type === 'put' && put.key === key ? put.value : undefined;
}

/** An acknowledged put, or an acknowledged CAS that succeeded. */
function wroteForSure(op: KvOperation): boolean {
  if (op.input.type === 'put') return op.output?.type === 'put';
  return op.output?.type === 'txn' && op.output.succeeded;
}

export async function runRaftChaos(init: RaftChaosInit): Promise<RaftChaosReport> {
  if (!(init.nodes === 3 || init.nodes === 5)) {
    throw new InvalidRequestError(`--nodes must be 3 or 5, not ${String(init.nodes)}`);
  }
  if (!(Number.isFinite(init.seconds) && init.seconds >= 1 && init.seconds <= 3600)) {
    throw new InvalidRequestError(`--seconds must be 1 to 3600, not ${String(init.seconds)}`);
  }
  const log = init.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const seed = init.seed ?? Math.floor(Math.random() * 2 ** 31);
  const plan = planFaults(init, seededRandom(seed));
  log(
    `raft-chaos: seed ${seed} (replay: node chaos/raft-linearizability.ts --nodes ${init.nodes} ` +
      `--seconds ${init.seconds} --seed ${seed}); plan: ${plan.map((f) => `${f.kind}/${f.holdMs}ms`).join(' ')}`,
  );
  const violations: string[] = [];
  const faults = { kills: 0, pauses: 0, partitions: 0 };
  const cluster = await NodeCluster.start({ size: init.nodes, join: true, seed, log });
  const statusClients: (KvClient | undefined)[] = [];
  const workClients: KvClient[] = [];
  let monitor: LeaderMonitor | undefined;
  let workload: KvWorkload | undefined;
  try {
    for (const node of cluster.nodes) {
      statusClients.push(
        await KvClient.connect({ address: node.address, credential: cluster.credential, timeoutMs: 10_000 }),
      );
    }
    const first = statusClients[0] as KvClient;
    await until(
      async () => {
        const status = await first.status({ timeoutMs: 2000 }).catch(() => undefined);
        return status?.membership.voters.length === init.nodes && status.leaderId !== undefined
          ? true
          : undefined;
      },
      60_000,
      `${init.nodes} voters and a leader`,
    );
    log(`raft-chaos: ${init.nodes} voters`);
    monitor = new LeaderMonitor(cluster, statusClients, log);
    monitor.start();

    const clientCount = init.clients ?? Math.max(6, init.nodes);
    for (let i = 0; i < clientCount; i++) {
      const node = cluster.node(i % init.nodes);
      workClients.push(
        await KvClient.connect({
          address: node.address,
          credential: cluster.credential,
          timeoutMs: callTimeoutMs,
        }),
      );
    }
    const keys = Array.from({ length: init.keys ?? 5 }, (_, i) => `chaos/k${i}`);
    workload = new KvWorkload({
      clients: workClients,
      keys,
      random: seededRandom(seed ^ 0x5bd1e995),
      callTimeoutMs,
      // A pace, not a throughput target: it keeps a key's history to a size the checker searches quickly.
      thinkMs: 15,
      failureBackoffMs: 150,
    });
    const started = performance.now();
    workload.start();
    await sleep(1000);

    for (const [round, fault] of plan.entries()) {
      const leader = monitor.leader() ?? (await waitForLeader(monitor, 5000));
      const pick = (draw: number, from: readonly number[]): number =>
        from[Math.floor(draw * from.length)] as number;
      const all = cluster.nodes.map((node) => node.index);
      const [p0 = 0, p1 = 0, p2 = 0] = fault.picks;
      switch (fault.kind) {
        case 'kill': {
          const target = leader ?? pick(p0, all);
          log(
            `raft-chaos: round ${round}: kill -9 node ${target} (leader: ${String(leader)}) for ${fault.holdMs} ms`,
          );
          await cluster.kill(target);
          faults.kills++;
          await sleep(fault.holdMs);
          await cluster.restart(target);
          break;
        }
        case 'pause': {
          // Half the time the leader: a frozen leader that wakes up with a stale term.
          const target = leader !== undefined && p0 < 0.5 ? leader : pick(p1, all);
          log(
            `raft-chaos: round ${round}: SIGSTOP node ${target} (leader: ${String(leader)}) for ${fault.holdMs} ms`,
          );
          cluster.pause(target);
          faults.pauses++;
          await sleep(fault.holdMs);
          await cluster.resume(target);
          break;
        }
        case 'partition': {
          const groups = splitFor(all, leader, p0, p1, p2);
          log(
            `raft-chaos: round ${round}: partition ${JSON.stringify(groups)} (leader: ${String(leader)}) for ${fault.holdMs} ms`,
          );
          await cluster.partition(groups);
          faults.partitions++;
          await sleep(fault.holdMs);
          await cluster.heal();
          break;
        }
      }
      // No quiet time after the last fault: recovery is measured from the moment it is undone.
      if (round < plan.length - 1) await sleep(fault.quietMs);
    }

    // Faults stop: nothing partitioned, frozen or dead.
    await cluster.heal();
    for (const node of cluster.nodes) {
      if (node.state === 'paused') await cluster.resume(node.index);
      else if (!node.alive) await cluster.restart(node.index);
    }
    const faultsEnded = performance.now();
    let recoveryMs: number | null = null;
    try {
      await recover(workClients.slice(0, init.nodes), init.recoveryLimitMs ?? 20_000);
      recoveryMs = Math.round(performance.now() - faultsEnded);
      log(`raft-chaos: recovered in ${recoveryMs} ms`);
    } catch (error) {
      violations.push(`no recovery: ${(error as Error).message}`);
    }

    const result = await workload.stop();
    const finals = await workload.readAll(workClients[0] as KvClient, 20_000);
    workload = undefined;
    for (const key of keys) if (!finals.has(key)) violations.push(`key ${key}: no final read succeeded`);
    const elapsedS = (performance.now() - started) / 1000;
    await monitor.pollOnce();
    await monitor.stop();

    const checkStarted = performance.now();
    const check = checkLinearizable(result.history, kvModel, { timeoutMs: init.checkTimeoutMs ?? 60_000 });
    const checkMs = Math.round(performance.now() - checkStarted);
    if (check.ok === false) {
      violations.push(`history not linearizable (key ${check.key}):\n${check.description}`);
    } else if (check.ok === 'unknown') {
      violations.push(`the linearizability check did not finish within its bound (${checkMs} ms)`);
    }
    const lost = lostWrites(result.history, finals);
    violations.push(...lost);
    const maxLeaders = monitor.maxLeadersPerTerm();
    if (maxLeaders > 1) {
      for (const [term, leaders] of monitor.claims) {
        if (leaders.size > 1) {
          violations.push(
            `term ${term} had ${leaders.size} leaders: ${[...leaders.values()].map((l) => `node ${l.node} (${l.id})`).join(', ')}`,
          );
        }
      }
    }
    log(
      `raft-chaos: terms with a leader seen: ${[...monitor.claims.keys()].sort((a, b) => a - b).join(', ')}`,
    );
    const summary: RaftChaosSummary = {
      chaos: 'raft-linearizability',
      nodes: init.nodes,
      seed,
      seconds: Math.round(elapsedS),
      ops: result.history.length,
      // The counts and history are live: they include the final reads.
      ok: result.counts.ok,
      unknown: result.counts.unknown,
      failed: result.counts.failed,
      faults,
      terms_seen: monitor.claims.size,
      status_samples: monitor.samples,
      linearizable: check.ok,
      lost_writes: lost.length,
      max_leaders_per_term: maxLeaders,
      recovery_ms: recoveryMs,
      check_ms: checkMs,
    };
    return { summary, violations };
  } finally {
    await workload?.stop();
    await monitor?.stop();
    await Promise.allSettled([...workClients, ...statusClients].map((client) => client?.close()));
    await cluster.stop();
  }
}

async function waitForLeader(monitor: LeaderMonitor, timeoutMs: number): Promise<number | undefined> {
  return until(async () => monitor.leader(), timeoutMs, 'a leader', 100).catch(() => undefined);
}

/** Two groups: the leader alone, the leader in a minority of two (5 nodes), or a seeded split. */
function splitFor(
  all: readonly number[],
  leader: number | undefined,
  shape: number,
  draw1: number,
  draw2: number,
): number[][] {
  const others = all.filter((i) => i !== leader);
  if (leader !== undefined && shape < 0.4) return [[leader], others];
  if (leader !== undefined && shape < 0.7 && all.length >= 5) {
    const buddy = others[Math.floor(draw1 * others.length)] as number;
    return [[leader, buddy], others.filter((i) => i !== buddy)];
  }
  // A minority of 1..floor((n-1)/2) nodes drawn from everyone (it may or may not hold the leader).
  const order = [...all];
  let draw = draw2;
  for (let i = order.length - 1; i > 0; i--) {
    draw = (draw * 9301 + 49297) % 233280;
    const j = Math.floor((draw / 233280) * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const size = 1 + Math.floor(draw1 * Math.floor((all.length - 1) / 2));
  return [order.slice(0, size), order.slice(size)];
}

/** A write and then a linearizable read through every given client (one per node) succeed. */
async function recover(clients: readonly KvClient[], limitMs: number): Promise<void> {
  const deadline = performance.now() + limitMs;
  let attempt = 0;
  let lastError: unknown;
  for (const client of clients) {
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new TimeoutError(
          `a write and a linearizable read through ${client.address} did not succeed within ${limitMs} ms ` +
            `after the faults stopped; last error: ${(lastError as Error | undefined)?.message}`,
        );
      }
      const value = `r${++attempt}`;
      try {
        const timeoutMs = Math.max(250, Math.min(2000, left));
        await client.put('chaos/recovery', value, { timeoutMs });
        const read = await client.get('chaos/recovery', { timeoutMs, consistency: 'linearizable' });
        if (read?.value !== value) {
          throw new InvalidRequestError(`read ${String(read?.value)} after writing ${value}`);
        }
        break;
      } catch (error) {
        if (error instanceof InvalidRequestError) throw error;
        lastError = error;
        await sleep(100);
      }
    }
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '30' },
      seed: { type: 'string' },
    },
  });
  const report = await runRaftChaos({
    nodes: Number(values.nodes),
    seconds: Number(values.seconds),
    ...(values.seed === undefined ? {} : { seed: Number(values.seed) }),
  });
  for (const violation of report.violations) process.stderr.write(`raft-chaos: VIOLATION: ${violation}\n`);
  process.stdout.write(`${JSON.stringify(report.summary)}\n`);
  process.exitCode = report.violations.length === 0 ? 0 : 1;
}
