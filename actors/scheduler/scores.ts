/**
 * Scores for feasible nodes: each criterion in [0, 1], higher is better, combined as
 * Σ weight·score / Σ weight.
 *
 * - locality: 1 when the node's zone is one of `preferredZones` (else 0), averaged with the
 *   co-location share: the fraction of the replicas of the workload's affinity workloads that
 *   run in the node's zone. 0.5 (neutral) when the request has neither preference.
 * - reliability: 1 / (1 + failures).
 * - cost: 1 − cost / (the highest cost in the view); 1 when every cost is 0.
 * - utilization: the fraction of the node used once the replica is placed, cpu and memory
 *   averaged; `binpack` scores that fraction, `spread` 1 − it.
 */
import { InvalidRequestError } from '../../runtime/errors.ts';
import { zoneOf } from './filters.ts';
import type {
  CandidateScore,
  PlacementRequest,
  SchedulerNode,
  SchedulerWeights,
  ScoreCriterion,
} from './scheduler-types.ts';
import { scoreCriteria } from './scheduler-types.ts';

export const defaultWeights: SchedulerWeights = {
  locality: 1,
  reliability: 1,
  cost: 1,
  utilization: 1,
  utilizationMode: 'spread',
};

/** Throws `InvalidRequestError` unless every weight is finite and ≥ 0 and the mode is known. */
export function validateWeights(weights: SchedulerWeights): void {
  for (const criterion of scoreCriteria) {
    const w = weights[criterion];
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0)
      throw new InvalidRequestError(
        `scheduler weight ${criterion} must be a finite number ≥ 0, got ${String(w)}; use e.g. 1`,
      );
  }
  if (weights.utilizationMode !== 'binpack' && weights.utilizationMode !== 'spread')
    throw new InvalidRequestError(
      `scheduler utilizationMode must be 'binpack' or 'spread', got ${String(weights.utilizationMode)}`,
    );
}

/** What the scores need from the whole view, gathered in one pass over the nodes. */
export interface ScoreContext {
  /** undefined: the request prefers no zone. */
  readonly preferredZones: ReadonlySet<string> | undefined;
  /** Replicas of the request's affinity workloads per zone; undefined: no affinity. */
  readonly affinityByZone: ReadonlyMap<string, number> | undefined;
  readonly affinityTotal: number;
  /** The highest node cost in the view (0 when all are 0). */
  readonly maxCost: number;
}

/** Builds a `ScoreContext` one node at a time, so `decide` can fold it into its filter pass. */
export class ScoreContextBuilder {
  readonly #preferredZones: ReadonlySet<string> | undefined;
  readonly #affinityIds: readonly string[];
  readonly #affinityByZone: Map<string, number> | undefined;
  #affinityTotal = 0;
  #maxCost = 0;

  constructor(request: PlacementRequest) {
    const c = request.constraints;
    this.#preferredZones = c.preferredZones.length > 0 ? new Set(c.preferredZones) : undefined;
    this.#affinityIds = c.affinity.map((name) => `${request.namespace}/${name}`);
    this.#affinityByZone = this.#affinityIds.length > 0 ? new Map() : undefined;
  }

  add(node: SchedulerNode): void {
    if (node.cost > this.#maxCost) this.#maxCost = node.cost;
    const byZone = this.#affinityByZone;
    if (byZone === undefined) return;
    let replicas = 0;
    for (let i = 0; i < this.#affinityIds.length; i++)
      replicas += node.workloads.get(this.#affinityIds[i] as string) ?? 0;
    if (replicas === 0) return;
    const zone = zoneOf(node);
    byZone.set(zone, (byZone.get(zone) ?? 0) + replicas);
    this.#affinityTotal += replicas;
  }

  finish(): ScoreContext {
    return {
      preferredZones: this.#preferredZones,
      affinityByZone: this.#affinityByZone,
      affinityTotal: this.#affinityTotal,
      maxCost: this.#maxCost,
    };
  }
}

/** The context for scoring `request` against the nodes of a view. */
export function scoreContext(nodes: Iterable<SchedulerNode>, request: PlacementRequest): ScoreContext {
  const builder = new ScoreContextBuilder(request);
  for (const node of nodes) builder.add(node);
  return builder.finish();
}

export function localityScore(node: SchedulerNode, context: ScoreContext): number {
  const preferred = context.preferredZones;
  const byZone = context.affinityByZone;
  const colocated = byZone !== undefined && context.affinityTotal > 0;
  if (preferred === undefined && !colocated) return 0.5;
  const zone = zoneOf(node);
  const share = colocated ? (byZone.get(zone) ?? 0) / context.affinityTotal : 0;
  if (preferred === undefined) return share;
  const inPreferred = preferred.has(zone) ? 1 : 0;
  return colocated ? (inPreferred + share) / 2 : inPreferred;
}

export function reliabilityScore(node: SchedulerNode): number {
  return 1 / (1 + Math.max(0, node.failures));
}

export function costScore(node: SchedulerNode, maxCost: number): number {
  return maxCost > 0 ? 1 - Math.min(1, Math.max(0, node.cost) / maxCost) : 1;
}

function fraction(used: number, capacity: number): number {
  if (capacity <= 0) return 1;
  const f = used / capacity;
  return Math.min(1, Math.max(0, f));
}

export function utilizationScore(
  node: SchedulerNode,
  request: PlacementRequest,
  mode: SchedulerWeights['utilizationMode'],
): number {
  const r = request.resources;
  const used =
    (fraction(node.allocated.cpuMillicores + r.cpuMillicores, node.capacity.cpuMillicores) +
      fraction(node.allocated.memoryBytes + r.memoryBytes, node.capacity.memoryBytes)) /
    2;
  return mode === 'binpack' ? used : 1 - used;
}

/** Σ w·s / Σ w; 0 when every weight is 0. (Computed as `decide` does, so totals agree exactly.) */
export function weightedTotal(
  scores: Readonly<Record<ScoreCriterion, number>>,
  weights: SchedulerWeights,
): number {
  const sum = weights.locality + weights.reliability + weights.cost + weights.utilization;
  const scale = sum > 0 ? 1 / sum : 0;
  return (
    weights.locality * scale * scores.locality +
    weights.reliability * scale * scores.reliability +
    weights.cost * scale * scores.cost +
    weights.utilization * scale * scores.utilization
  );
}

/** Every criterion and the weighted total for one node. */
export function scoreNode(
  node: SchedulerNode,
  request: PlacementRequest,
  weights: SchedulerWeights,
  context: ScoreContext,
): CandidateScore {
  const scores = {
    locality: localityScore(node, context),
    reliability: reliabilityScore(node),
    cost: costScore(node, context.maxCost),
    utilization: utilizationScore(node, request, weights.utilizationMode),
  };
  return { node: node.id, total: weightedTotal(scores, weights), scores };
}
