/**
 * The scheduler's pure core (ARCHITECTURE.md, "Scheduler shards"): filter → score → select over
 * a shard's in-memory view of the nodes, preemption when nothing fits, and the plan applier's
 * all-or-nothing check of a plan against committed state. No I/O, no timers, no randomness:
 * equal scores are broken by a hash of (replicaId, nodeId), so the same view and request always
 * give the same decision, and every decision explains itself (filter counts with an example
 * reason each, candidate scores, preemption victims in words).
 */
export type { CompiledRequest, Filter, ZoneSpreadContext } from './filters.ts';
export {
  compileRequest,
  explainFilter,
  filters,
  firstFailingFilter,
  taintsOf,
  zoneMinimum,
  zoneOf,
} from './filters.ts';
export { applyPlacement, removePlacement } from './placement.ts';
export type { PlanCheckResult, PlanConflict } from './plan-check.ts';
export { checkPlan } from './plan-check.ts';
export type { PreemptionPlan, PreemptionResult } from './preemption.ts';
export { findPreemption, planPreemption } from './preemption.ts';
export type {
  CandidateScore,
  Decision,
  Eviction,
  FilterName,
  FilterReport,
  PlacedReplica,
  PlacementRequest,
  Plan,
  SchedulerNode,
  SchedulerWeights,
  ScoreCriterion,
} from './scheduler-types.ts';
export { filterNames, scoreCriteria } from './scheduler-types.ts';
export type { ScoreContext } from './scores.ts';
export {
  costScore,
  defaultWeights,
  localityScore,
  reliabilityScore,
  scoreContext,
  scoreNode,
  utilizationScore,
  validateWeights,
  weightedTotal,
} from './scores.ts';
export type { DecideOptions } from './select.ts';
export { decide, defaultTopCandidates } from './select.ts';
export { replicaHashSeed, tieBreakHash } from './tie-break.ts';
