/**
 * Preemption: when no node fits a replica, make room by evicting replicas of strictly lower
 * priority, never equal or higher.
 *
 * Candidates are the nodes that pass every filter except resources. On each, victims are taken
 * lowest priority first, then largest first (share of the node's capacity), until enough CPU and
 * memory would be free; then any victim that can be spared is given back, highest priority and
 * smallest first, so the set is minimal (no victim can be dropped from it). Among the nodes where
 * that works, zone-spread applies as for placement, and the node with the lowest highest-victim
 * priority wins, then the fewest victims, then the least evicted resources (relative to the
 * request), then the tie-break hash.
 */
import type { CompiledRequest } from './filters.ts';
import { describeReport, failsOnlyOnResources, formatBytes, zoneCount, zoneOf } from './filters.ts';
import type {
  Decision,
  FilterReport,
  PlacedReplica,
  PlacementRequest,
  SchedulerNode,
} from './scheduler-types.ts';
import { replicaHashSeed, tieBreakHash } from './tie-break.ts';

/** A node's victims for a request, and how they compare with other nodes'. */
export interface PreemptionPlan {
  readonly node: SchedulerNode;
  /** Lowest priority first. */
  readonly victims: readonly PlacedReplica[];
  readonly highestPriority: number;
  readonly freedCpuMillicores: number;
  readonly freedMemoryBytes: number;
  /** Σ victim cpu / request cpu + Σ victim memory / request memory. */
  readonly cost: number;
}

/**
 * The minimal set of strictly-lower-priority replicas whose eviction lets `request` fit on
 * `node`, or undefined when evicting all of them would not be enough. Does not check the other
 * filters.
 */
export function planPreemption(node: SchedulerNode, request: PlacementRequest): PreemptionPlan | undefined {
  const r = request.resources;
  const needCpu = r.cpuMillicores - (node.capacity.cpuMillicores - node.allocated.cpuMillicores);
  const needMemory = r.memoryBytes - (node.capacity.memoryBytes - node.allocated.memoryBytes);
  if (needCpu <= 0 && needMemory <= 0) return undefined;
  const capCpu = Math.max(1, node.capacity.cpuMillicores);
  const capMemory = Math.max(1, node.capacity.memoryBytes);
  const size = (p: PlacedReplica): number =>
    p.resources.cpuMillicores / capCpu + p.resources.memoryBytes / capMemory;
  const lower = [...node.replicas.values()]
    .filter((p) => p.priority < request.priority)
    .sort(
      (a, b) =>
        a.priority - b.priority ||
        size(b) - size(a) ||
        (a.replicaId < b.replicaId ? -1 : a.replicaId > b.replicaId ? 1 : 0),
    );
  const victims: PlacedReplica[] = [];
  let freedCpu = 0;
  let freedMemory = 0;
  for (const p of lower) {
    if (freedCpu >= needCpu && freedMemory >= needMemory) break;
    victims.push(p);
    freedCpu += p.resources.cpuMillicores;
    freedMemory += p.resources.memoryBytes;
  }
  if (freedCpu < needCpu || freedMemory < needMemory) return undefined;
  // Give back every victim that can be spared, the most valuable (last taken) first.
  for (let i = victims.length - 1; i >= 0; i--) {
    const p = victims[i] as PlacedReplica;
    if (
      freedCpu - p.resources.cpuMillicores >= needCpu &&
      freedMemory - p.resources.memoryBytes >= needMemory
    ) {
      victims.splice(i, 1);
      freedCpu -= p.resources.cpuMillicores;
      freedMemory -= p.resources.memoryBytes;
    }
  }
  let highestPriority = Number.NEGATIVE_INFINITY;
  for (const p of victims) highestPriority = Math.max(highestPriority, p.priority);
  return {
    node,
    victims,
    highestPriority,
    freedCpuMillicores: freedCpu,
    freedMemoryBytes: freedMemory,
    cost: freedCpu / Math.max(1, r.cpuMillicores) + freedMemory / Math.max(1, r.memoryBytes),
  };
}

/** Negative when plan `a` is better than `b`. */
function compare(a: PreemptionPlan, b: PreemptionPlan, seed: number): number {
  return (
    a.highestPriority - b.highestPriority ||
    a.victims.length - b.victims.length ||
    a.cost - b.cost ||
    tieBreakHash(seed, a.node.id) - tieBreakHash(seed, b.node.id)
  );
}

export type PreemptionResult =
  | { readonly found: true; readonly decision: Extract<Decision, { type: 'preempt' }> }
  | { readonly found: false; readonly reason: string };

/**
 * Looks for the best node to preempt on, for a request no node fits. `filtered` is the report of
 * the placement pass, carried into the decision.
 */
export function findPreemption(
  nodes: readonly SchedulerNode[],
  compiled: CompiledRequest,
  filtered: FilterReport,
): PreemptionResult {
  const request = compiled.request;
  const plans: PreemptionPlan[] = [];
  let candidates = 0;
  for (const node of nodes) {
    if (!failsOnlyOnResources(node, compiled)) continue;
    candidates++;
    const plan = planPreemption(node, request);
    if (plan !== undefined) plans.push(plan);
  }
  if (plans.length === 0)
    return {
      found: false,
      reason:
        candidates === 0
          ? 'no node passes the other filters, so preemption cannot help'
          : `on none of the ${candidates} nodes short only of resources would evicting replicas of priority below ${request.priority} free enough`,
    };
  let usable = plans;
  if (request.constraints.spreadAcrossZones) {
    let minimum = Number.POSITIVE_INFINITY;
    for (const plan of plans) minimum = Math.min(minimum, zoneCount(request, zoneOf(plan.node)));
    usable = plans.filter((plan) => zoneCount(request, zoneOf(plan.node)) <= minimum);
  }
  const seed = replicaHashSeed(request.replicaId);
  let best = usable[0] as PreemptionPlan;
  for (let i = 1; i < usable.length; i++) {
    const plan = usable[i] as PreemptionPlan;
    if (compare(plan, best, seed) < 0) best = plan;
  }
  const node = best.node;
  const victims = best.victims
    .map((p) => `${p.replicaId} (${p.workloadId}, priority ${p.priority})`)
    .join(', ');
  const summary = describeReport(filtered);
  const reason =
    `0 of ${nodes.length} nodes fit${summary === '' ? '' : `: ${summary}`}; ` +
    `evicting ${best.victims.length} replica${best.victims.length === 1 ? '' : 's'} on node ${node.id} ` +
    `[${victims}] frees ${best.freedCpuMillicores}m CPU and ${formatBytes(best.freedMemoryBytes)} memory ` +
    `for ${request.replicaId} (priority ${request.priority}); chosen among ${usable.length} node${usable.length === 1 ? '' : 's'} ` +
    'where preemption works by lowest victim priority, then fewest victims, then least evicted resources';
  return {
    found: true,
    decision: {
      type: 'preempt',
      node: node.id,
      evictions: best.victims.map((p) => ({
        replicaId: p.replicaId,
        workloadId: p.workloadId,
        node: node.id,
        priority: p.priority,
      })),
      reason,
      filtered,
    },
  };
}
