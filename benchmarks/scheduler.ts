/**
 * The scheduler's pure core at scale: 10,000 replicas of mixed shapes and constraints placed one
 * `decide()` at a time on a view of 5,000 simulated nodes, every node filtered and every feasible
 * node scored, each placement applied to the view before the next decision (as a shard does).
 *
 *   node benchmarks/scheduler.ts --json
 *
 * - decision_p50_ms_5000_nodes / _p95_ms_5000_nodes: the time of one `decide()` call.
 * - decisions_per_s_5000_nodes: replicas decided and applied per second over the whole phase.
 * - placed / preempted / pending: what the decisions were (a check that the work is real).
 * - load_average_1m: the machine's load when the phase ended; the figures are wall-clock, so other
 *   processes competing for the cores lower them.
 * Baseline beside them: node_touch_ms_5000_nodes, the median time of a plain loop reading
 * every node's free CPU once, the floor of any decision that looks at every node.
 *
 * The view and the replicas come from a seeded generator (`buildCluster`), and the decision phase
 * is a function (`runDecisionPhase`) so that an end-to-end phase (plans committed through Raft)
 * can reuse both.
 */
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Constraints, ResourceRequest } from '../actors/coordinator/workload-spec.ts';
import {
  applyPlacement,
  type Decision,
  decide,
  defaultWeights,
  type PlacementRequest,
  type SchedulerNode,
  type SchedulerWeights,
  taintsOf,
} from '../actors/scheduler/index.ts';
import { progress, report } from './bench-harness.ts';
import { measureCommittedPlacements } from './committed-placements.ts';

const nodeCount = 5000;
const replicaCount = 10_000;
const targets = {
  decision_p50_ms_5000_nodes: 2,
  decision_p95_ms_5000_nodes: 10,
  decisions_per_s_5000_nodes: 2000,
  committed_placements_per_s: 1000,
};

const mi = 1024 * 1024;
const gi = 1024 * mi;
const zones = ['zone-a', 'zone-b', 'zone-c', 'zone-d', 'zone-e'];

/** mulberry32: a small seeded generator, so every run builds the same cluster. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/** One workload of the mix: its shape, constraints and how many replicas. */
export interface BenchWorkload {
  readonly name: string;
  readonly replicas: number;
  readonly resources: ResourceRequest;
  readonly priority: number;
  readonly constraints: Partial<Constraints>;
  readonly weights: SchedulerWeights;
}

const binpack: SchedulerWeights = { ...defaultWeights, utilizationMode: 'binpack' };

export const workloadMix: readonly BenchWorkload[] = [
  {
    name: 'web',
    replicas: 3000,
    resources: { cpuMillicores: 250, memoryBytes: 256 * mi },
    priority: 200,
    constraints: { spreadAcrossZones: true, preferredZones: ['zone-a'] },
    weights: defaultWeights,
  },
  {
    name: 'api',
    replicas: 2000,
    resources: { cpuMillicores: 500, memoryBytes: 512 * mi },
    priority: 300,
    constraints: { zones: ['zone-a', 'zone-b', 'zone-c'], spreadAcrossZones: true },
    weights: defaultWeights,
  },
  {
    name: 'sidecar',
    replicas: 800,
    resources: { cpuMillicores: 100, memoryBytes: 128 * mi },
    priority: 300,
    constraints: { affinity: ['api'] },
    weights: defaultWeights,
  },
  {
    name: 'cache',
    replicas: 1000,
    resources: { cpuMillicores: 1000, memoryBytes: 2 * gi },
    priority: 400,
    constraints: { nodeLabels: { disk: 'ssd' }, antiAffinity: ['cache'] },
    weights: defaultWeights,
  },
  {
    name: 'db',
    replicas: 500,
    resources: { cpuMillicores: 2000, memoryBytes: 4 * gi },
    priority: 500,
    constraints: { nodeLabels: { disk: 'ssd' }, antiAffinity: ['db'], spreadAcrossZones: true },
    weights: { ...defaultWeights, reliability: 3 },
  },
  {
    name: 'batch',
    replicas: 2000,
    resources: { cpuMillicores: 100, memoryBytes: 128 * mi },
    priority: 0,
    constraints: {},
    weights: { ...binpack, cost: 2 },
  },
  {
    name: 'train',
    replicas: 200,
    resources: { cpuMillicores: 4000, memoryBytes: 8 * gi },
    priority: 100,
    constraints: { nodeLabels: { gpu: 'true' }, tolerations: ['gpu'] },
    weights: binpack,
  },
  {
    name: 'analytics',
    replicas: 500,
    resources: { cpuMillicores: 4000, memoryBytes: 8 * gi },
    priority: 100,
    constraints: { zones: ['zone-d', 'zone-e'], preferredZones: ['zone-e'] },
    weights: defaultWeights,
  },
];

export interface BenchReplica {
  readonly request: PlacementRequest;
  readonly weights: SchedulerWeights;
  /** The workload's per-zone counts, which `request.zoneCounts` reads; updated on placement. */
  readonly zoneCounts: Map<string, number>;
}

export interface BenchCluster {
  readonly nodes: SchedulerNode[];
  /** In decision order. */
  readonly replicas: BenchReplica[];
}

/** 5,000 nodes (by default) and the replicas of `workloadMix` in a seeded order. */
export function buildCluster(options: { nodes?: number; seed?: number } = {}): BenchCluster {
  const random = seeded(options.seed ?? 42);
  const cores = [2, 4, 8, 16, 32, 64];
  const nodes: SchedulerNode[] = [];
  for (let i = 0; i < (options.nodes ?? nodeCount); i++) {
    const zone = zones[i % zones.length] as string;
    const cpus = pick(random, cores);
    // 2 to 4 GiB per core, within 4–256 GiB.
    const memory = Math.min(256, Math.max(4, cpus * pick(random, [2, 4]))) * gi;
    const cost = Math.round(cpus * (0.5 + random()) * 10) / 10;
    const labels: Record<string, string> = {
      'topology.zone': zone,
      arch: random() < 0.8 ? 'amd64' : 'arm64',
      disk: random() < 0.4 ? 'ssd' : 'hdd',
      cost: String(cost),
    };
    const roll = random();
    if (roll < 0.03) {
      labels.gpu = 'true';
      labels['taint.gpu'] = 'true';
    } else if (roll < 0.04) labels['taint.maintenance'] = 'true';
    const status = random();
    nodes.push({
      id: `node-${String(i).padStart(4, '0')}`,
      zone: i % 97 === 0 ? undefined : zone,
      labels,
      taints: taintsOf(labels),
      status: status < 0.01 ? 'suspect' : status < 0.015 ? 'down' : 'alive',
      isAgent: random() < 0.99,
      capacity: { cpuMillicores: cpus * 1000, memoryBytes: memory },
      allocated: { cpuMillicores: 0, memoryBytes: 0 },
      failures: random() < 0.1 ? 1 + Math.floor(random() * 3) : 0,
      cost,
      workloads: new Map(),
      replicas: new Map(),
    });
  }
  const replicas: BenchReplica[] = [];
  const later: BenchReplica[] = [];
  for (const w of workloadMix) {
    const zoneCounts = new Map<string, number>();
    const constraints: Constraints = {
      nodeLabels: {},
      zones: [],
      spreadAcrossZones: false,
      affinity: [],
      antiAffinity: [],
      tolerations: [],
      preferredZones: [],
      ...w.constraints,
    };
    for (let r = 0; r < w.replicas; r++) {
      const replica: BenchReplica = {
        request: {
          replicaId: `default/${w.name}/${r}`,
          workloadId: `default/${w.name}`,
          namespace: 'default',
          resources: w.resources,
          constraints,
          priority: w.priority,
          zoneCounts,
        },
        weights: w.weights,
        zoneCounts,
      };
      // Replicas with affinity come once what they follow has started to run.
      (constraints.affinity.length > 0 ? later : replicas).push(replica);
    }
  }
  shuffle(random, replicas);
  shuffle(random, later);
  const half = Math.floor(replicas.length / 2);
  const ordered = replicas.slice(0, half);
  const rest = replicas.slice(half);
  // Interleave the affinity replicas into the second half.
  for (let i = 0, j = 0; i < rest.length || j < later.length; ) {
    if (j < later.length && (i >= rest.length || random() < later.length / (rest.length + later.length)))
      ordered.push(later[j++] as BenchReplica);
    else ordered.push(rest[i++] as BenchReplica);
  }
  return { nodes, replicas: ordered };
}

function shuffle<T>(random: () => number, items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = items[i] as T;
    items[i] = items[j] as T;
    items[j] = t;
  }
}

export interface DecisionPhase {
  /** Per decide() call, ms, sorted. */
  readonly latencies: number[];
  readonly seconds: number;
  readonly placed: number;
  readonly preempted: number;
  readonly pending: number;
  /** The placed decisions with their replicas, in order (for a commit phase to replay). */
  readonly decisions: { readonly replica: BenchReplica; readonly decision: Decision }[];
}

/**
 * Decides every replica in order against `cluster.nodes`, applying each placement to the view.
 * Preempt decisions are counted, not applied.
 */
export function runDecisionPhase(cluster: BenchCluster, limit = cluster.replicas.length): DecisionPhase {
  const byId = new Map(cluster.nodes.map((node) => [node.id, node]));
  const latencies: number[] = [];
  const decisions: { replica: BenchReplica; decision: Decision }[] = [];
  let placed = 0;
  let preempted = 0;
  let pending = 0;
  const started = performance.now();
  for (let i = 0; i < limit; i++) {
    const replica = cluster.replicas[i] as BenchReplica;
    const t = performance.now();
    const decision = decide(cluster.nodes, replica.request, replica.weights);
    latencies.push(performance.now() - t);
    decisions.push({ replica, decision });
    if (decision.type === 'placed') {
      placed++;
      const node = byId.get(decision.node) as SchedulerNode;
      applyPlacement(node, replica.request);
      const zone = node.zone ?? '';
      replica.zoneCounts.set(zone, (replica.zoneCounts.get(zone) ?? 0) + 1);
    } else if (decision.type === 'preempt') preempted++;
    else pending++;
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { latencies, seconds, placed, preempted, pending, decisions };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

/** Median time of a loop reading every node's free CPU once: the floor of any full scan. */
function nodeTouchMs(nodes: readonly SchedulerNode[]): number {
  const times: number[] = [];
  let sink = 0;
  for (let round = 0; round < 2000; round++) {
    const t = performance.now();
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i] as SchedulerNode;
      sink += node.capacity.cpuMillicores - node.allocated.cpuMillicores;
    }
    times.push(performance.now() - t);
  }
  if (sink === -1) progress('unreachable');
  times.sort((a, b) => a - b);
  return percentile(times, 0.5);
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

async function main(): Promise<void> {
  // Warm-up on a separate view so the JIT has settled before the measured phase.
  runDecisionPhase(buildCluster({ seed: 7 }), 2000);
  const cluster = buildCluster();
  const baselineMs = nodeTouchMs(cluster.nodes);
  const phase = runDecisionPhase(cluster);
  progress(
    `decided ${replicaCount.toLocaleString('en-US')} replicas on ${nodeCount.toLocaleString('en-US')} nodes in ${phase.seconds.toFixed(2)} s: ${phase.placed} placed, ${phase.preempted} preempt, ${phase.pending} pending`,
  );
  const results = {
    decision_p50_ms_5000_nodes: round3(percentile(phase.latencies, 0.5)),
    decision_p95_ms_5000_nodes: round3(percentile(phase.latencies, 0.95)),
    decision_p99_ms_5000_nodes: round3(percentile(phase.latencies, 0.99)),
    decisions_per_s_5000_nodes: Math.round(phase.latencies.length / phase.seconds),
    replicas: replicaCount,
    nodes: nodeCount,
    placed: phase.placed,
    preempted: phase.preempted,
    pending: phase.pending,
    /** Other work on the machine during the run: wall-clock figures suffer when it is above the cores. */
    load_average_1m: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
  };
  // Phase 2: end to end through the plan applier and Raft on three coordinator processes.
  const committed = await measureCommittedPlacements();
  const endToEnd = {
    committed_placements_per_s: committed.committed_placements_per_s,
    committed_placements: committed.placements,
    committed_agents: committed.agents,
  };
  const meets_targets =
    endToEnd.committed_placements_per_s >= targets.committed_placements_per_s &&
    results.decision_p50_ms_5000_nodes <= targets.decision_p50_ms_5000_nodes &&
    results.decision_p95_ms_5000_nodes <= targets.decision_p95_ms_5000_nodes &&
    results.decisions_per_s_5000_nodes >= targets.decisions_per_s_5000_nodes;
  report({
    benchmark: 'scheduler',
    results: { ...results, ...endToEnd },
    baseline: {
      node_touch_ms_5000_nodes: round3(baselineMs),
      raft_puts_per_s_64_writers: committed.baseline_puts_per_s,
    },
    targets,
    meets_targets,
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
