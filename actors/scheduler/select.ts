/**
 * One scheduling decision: filter every node, score every feasible one, pick the best.
 *
 * The hot path allocates nothing per node: the filters run on a request compiled once, removed
 * nodes only bump a counter (a reason is built for the first node each filter removes), scores
 * are computed for feasible nodes only, into locals, and only a node that enters the top-k
 * candidates (a small sorted insertion, not a sort of all nodes) gets a `CandidateScore`.
 *
 * Equal totals are broken by a hash of (replicaId, nodeId) (tie-break.ts), so the result depends
 * only on the inputs and equal nodes share the load.
 */
import type { CompiledRequest } from './filters.ts';
import {
  compileRequest,
  describeReport,
  FilterCounts,
  firstFailingFilter,
  zoneCount,
  zoneOf,
  zoneSpreadFilter,
} from './filters.ts';
import { findPreemption } from './preemption.ts';
import type {
  CandidateScore,
  Decision,
  PlacementRequest,
  SchedulerNode,
  SchedulerWeights,
} from './scheduler-types.ts';
import type { ScoreContext } from './scores.ts';
import {
  costScore,
  defaultWeights,
  localityScore,
  reliabilityScore,
  ScoreContextBuilder,
  scoreNode,
  utilizationScore,
  validateWeights,
} from './scores.ts';
import { replicaHashSeed, tieBreakHash } from './tie-break.ts';

export { applyPlacement, removePlacement } from './placement.ts';

export interface DecideOptions {
  /** How many of the best candidates the decision keeps, best first; default 5, at least 1. */
  readonly topCandidates?: number;
}

export const defaultTopCandidates = 5;

/** The k best (node, total) pairs seen so far, best first; equal totals ordered by hash. */
class TopCandidates {
  readonly nodes: SchedulerNode[] = [];
  readonly totals: number[] = [];
  /** -1: not computed yet (only ties need it). */
  readonly hashes: number[] = [];
  readonly #k: number;
  readonly #seed: number;

  constructor(k: number, seed: number) {
    this.#k = k;
    this.#seed = seed;
  }

  #hashAt(i: number): number {
    let h = this.hashes[i] as number;
    if (h < 0) {
      h = tieBreakHash(this.#seed, (this.nodes[i] as SchedulerNode).id);
      this.hashes[i] = h;
    }
    return h;
  }

  offer(node: SchedulerNode, total: number): void {
    const size = this.nodes.length;
    let hash = -1;
    // Find the insertion point from the bottom: most nodes do not beat the last entry.
    let at = size;
    while (at > 0) {
      const other = this.totals[at - 1] as number;
      if (total < other) break;
      if (total === other) {
        if (hash < 0) hash = tieBreakHash(this.#seed, node.id);
        if (hash >= this.#hashAt(at - 1)) break;
      }
      at--;
    }
    if (at >= this.#k) return;
    if (size < this.#k) {
      this.nodes.push(node);
      this.totals.push(total);
      this.hashes.push(hash);
    }
    for (let i = Math.min(size, this.#k - 1); i > at; i--) {
      this.nodes[i] = this.nodes[i - 1] as SchedulerNode;
      this.totals[i] = this.totals[i - 1] as number;
      this.hashes[i] = this.hashes[i - 1] as number;
    }
    this.nodes[at] = node;
    this.totals[at] = total;
    this.hashes[at] = hash;
  }
}

/** Scores every node of `feasible` that zone-spread keeps; counts the ones it removes. */
function scoreFeasible(
  feasible: readonly SchedulerNode[],
  compiled: CompiledRequest,
  weights: SchedulerWeights,
  context: ScoreContext,
  counts: FilterCounts,
  top: TopCandidates,
): number {
  const request = compiled.request;
  const spread = request.constraints.spreadAcrossZones;
  let minimum = Number.POSITIVE_INFINITY;
  // Each feasible node's zone count, looked up once (one array per decision, none per node).
  const zoneCounts = spread ? new Float64Array(feasible.length) : undefined;
  if (zoneCounts !== undefined)
    for (let i = 0; i < feasible.length; i++) {
      const count = zoneCount(request, zoneOf(feasible[i] as SchedulerNode));
      zoneCounts[i] = count;
      if (count < minimum) minimum = count;
    }
  const wSum = weights.locality + weights.reliability + weights.cost + weights.utilization;
  const scale = wSum > 0 ? 1 / wSum : 0;
  const wL = weights.locality * scale;
  const wR = weights.reliability * scale;
  const wC = weights.cost * scale;
  const wU = weights.utilization * scale;
  const mode = weights.utilizationMode;
  const maxCost = context.maxCost;
  const spreadContext = { zoneMinimum: minimum };
  let kept = 0;
  for (let i = 0; i < feasible.length; i++) {
    const node = feasible[i] as SchedulerNode;
    if (zoneCounts !== undefined && (zoneCounts[i] as number) > minimum) {
      counts.remove(zoneSpreadFilter, node, compiled, spreadContext);
      continue;
    }
    kept++;
    // Same terms in the same order as weightedTotal, so candidate totals agree exactly.
    const total =
      wL * localityScore(node, context) +
      wR * reliabilityScore(node) +
      wC * costScore(node, maxCost) +
      wU * utilizationScore(node, request, mode);
    top.offer(node, total);
  }
  return kept;
}

/**
 * Decides where one replica goes. Every node is filtered and every feasible node scored.
 * - `placed`: the best node, the top candidates with their scores, how many nodes were feasible
 *   and what the filters removed;
 * - `preempt`: nothing fits, but evicting lower-priority replicas on a node would make room;
 * - `pending`: nothing fits and preemption cannot help; the reason says which filters removed
 *   how many nodes, with an example each.
 *
 * Pure: reads the nodes, changes nothing (apply the result with `applyPlacement`).
 */
export function decide(
  nodes: Iterable<SchedulerNode>,
  request: PlacementRequest,
  weights: SchedulerWeights = defaultWeights,
  options: DecideOptions = {},
): Decision {
  validateWeights(weights);
  const k = Math.max(1, Math.floor(options.topCandidates ?? defaultTopCandidates));
  const view: readonly SchedulerNode[] = Array.isArray(nodes) ? nodes : Array.from(nodes);
  const compiled = compileRequest(request);
  const counts = new FilterCounts();
  const contextBuilder = new ScoreContextBuilder(request);
  const feasible: SchedulerNode[] = [];
  for (let i = 0; i < view.length; i++) {
    const node = view[i] as SchedulerNode;
    contextBuilder.add(node);
    const failed = firstFailingFilter(node, compiled);
    if (failed < 0) feasible.push(node);
    else counts.remove(failed, node, compiled);
  }
  if (feasible.length === 0) {
    const filtered = counts.report();
    const preemption = findPreemption(view, compiled, filtered);
    if (preemption.found) return preemption.decision;
    const summary = describeReport(filtered);
    return {
      type: 'pending',
      nodes: view.length,
      filtered,
      reason:
        view.length === 0
          ? 'no nodes in the view'
          : `0 of ${view.length} nodes fit: ${summary}; ${preemption.reason}`,
    };
  }
  const context = contextBuilder.finish();
  const top = new TopCandidates(k, replicaHashSeed(request.replicaId));
  const kept = scoreFeasible(feasible, compiled, weights, context, counts, top);
  const candidates: CandidateScore[] = top.nodes.map((node) => scoreNode(node, request, weights, context));
  return {
    type: 'placed',
    node: (top.nodes[0] as SchedulerNode).id,
    candidates,
    feasible: kept,
    filtered: counts.report(),
  };
}
