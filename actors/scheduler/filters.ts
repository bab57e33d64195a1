/**
 * Feasibility filters: may this replica run on this node at all? Each filter answers
 * `undefined` (the node passes) or a reason in words naming the node and the values involved.
 *
 * Two forms of the same checks live here:
 * - `filters`, one function per name in `filterNames`, for specs, explanations and callers that
 *   look at one node;
 * - `firstFailingFilter`, the hot path of `decide`: all filters but zone-spread in order, on a
 *   request compiled once (`compileRequest`), allocating nothing per node. A reason is built only
 *   when a report needs one (`explainFilter`).
 *
 * zone-spread depends on the other nodes (the minimum count among the zones that still have a
 * feasible node), so `decide` applies it in a second pass over the nodes that passed the rest.
 */
import type { FilterName, PlacementRequest, SchedulerNode } from './scheduler-types.ts';
import { filterNames } from './scheduler-types.ts';

/** The zone a node counts in for spreading: its zone, or `''` when it has none. */
export function zoneOf(node: SchedulerNode): string {
  return node.zone ?? '';
}

/** Label key prefix of a taint: `taint.gpu` is tolerated by `gpu`. */
export const taintPrefix = 'taint.';

/** A request's constraints in the form the per-node checks want, computed once per request. */
export interface CompiledRequest {
  readonly request: PlacementRequest;
  readonly labelKeys: readonly string[];
  readonly labelValues: readonly string[];
  /** undefined: any zone. */
  readonly zones: ReadonlySet<string> | undefined;
  readonly tolerations: ReadonlySet<string>;
  /** Workload ids (`namespace/name`) that must / must not already run on the node. */
  readonly affinityIds: readonly string[];
  readonly antiAffinityIds: readonly string[];
}

/** Compiles a request's constraints for the filters: once per decision, not per node. */
export function compileRequest(request: PlacementRequest): CompiledRequest {
  const c = request.constraints;
  const labelKeys = Object.keys(c.nodeLabels);
  return {
    request,
    labelKeys,
    labelValues: labelKeys.map((key) => c.nodeLabels[key] as string),
    zones: c.zones.length > 0 ? new Set(c.zones) : undefined,
    tolerations: new Set(c.tolerations),
    affinityIds: c.affinity.map((name) => `${request.namespace}/${name}`),
    antiAffinityIds: c.antiAffinity.map((name) => `${request.namespace}/${name}`),
  };
}

// Indexes into filterNames, for the counters of the hot path.
export const nodeStatusFilter = 0;
export const taintsFilter = 1;
export const nodeLabelsFilter = 2;
export const zonesFilter = 3;
export const resourcesFilter = 4;
export const affinityFilter = 5;
export const antiAffinityFilter = 6;
export const zoneSpreadFilter = 7;

function statusOk(node: SchedulerNode): boolean {
  return node.status === 'alive' && node.isAgent;
}

/** A node's taints from its labels: `{ 'taint.gpu': '' }` → `['gpu']` (what `SchedulerNode.taints` holds). */
export function taintsOf(labels: Readonly<Record<string, string>>): string[] {
  const taints: string[] = [];
  for (const key in labels) if (key.startsWith(taintPrefix)) taints.push(key.slice(taintPrefix.length));
  return taints;
}

function untoleratedTaint(node: SchedulerNode, c: CompiledRequest): string | undefined {
  for (const taint of node.taints ?? taintsOf(node.labels)) if (!c.tolerations.has(taint)) return taint;
  return undefined;
}

function taintsOk(node: SchedulerNode, c: CompiledRequest): boolean {
  const taints = node.taints;
  if (taints !== undefined) {
    for (let i = 0; i < taints.length; i++) if (!c.tolerations.has(taints[i] as string)) return false;
    return true;
  }
  const labels = node.labels;
  for (const key in labels) {
    // A cheap first character test keeps the common, untainted label off startsWith and slice.
    if (key.charCodeAt(0) === 116 /* t */ && key.startsWith(taintPrefix)) {
      if (c.tolerations.size === 0 || !c.tolerations.has(key.slice(taintPrefix.length))) return false;
    }
  }
  return true;
}

function labelsOk(node: SchedulerNode, c: CompiledRequest): boolean {
  const keys = c.labelKeys;
  const labels = node.labels;
  for (let i = 0; i < keys.length; i++) if (labels[keys[i] as string] !== c.labelValues[i]) return false;
  return true;
}

function zonesOk(node: SchedulerNode, c: CompiledRequest): boolean {
  return c.zones === undefined || (node.zone !== undefined && c.zones.has(node.zone));
}

function resourcesOk(node: SchedulerNode, request: PlacementRequest): boolean {
  const r = request.resources;
  return (
    node.capacity.cpuMillicores - node.allocated.cpuMillicores >= r.cpuMillicores &&
    node.capacity.memoryBytes - node.allocated.memoryBytes >= r.memoryBytes
  );
}

function affinityOk(node: SchedulerNode, c: CompiledRequest): boolean {
  const ids = c.affinityIds;
  for (let i = 0; i < ids.length; i++) if (!((node.workloads.get(ids[i] as string) ?? 0) > 0)) return false;
  return true;
}

function antiAffinityOk(node: SchedulerNode, c: CompiledRequest): boolean {
  const ids = c.antiAffinityIds;
  for (let i = 0; i < ids.length; i++) if ((node.workloads.get(ids[i] as string) ?? 0) > 0) return false;
  return true;
}

/**
 * The index in `filterNames` of the first filter (zone-spread excluded) the node fails, or -1
 * when it passes them all. Allocates nothing.
 */
export function firstFailingFilter(node: SchedulerNode, c: CompiledRequest): number {
  if (!statusOk(node)) return nodeStatusFilter;
  if (!taintsOk(node, c)) return taintsFilter;
  if (c.labelKeys.length > 0 && !labelsOk(node, c)) return nodeLabelsFilter;
  if (!zonesOk(node, c)) return zonesFilter;
  if (!resourcesOk(node, c.request)) return resourcesFilter;
  if (c.affinityIds.length > 0 && !affinityOk(node, c)) return affinityFilter;
  if (c.antiAffinityIds.length > 0 && !antiAffinityOk(node, c)) return antiAffinityFilter;
  return -1;
}

/**
 * True when the node passes every filter but zone-spread except resources, which it fails: a
 * node where evicting replicas could make room (preemption's candidates).
 */
export function failsOnlyOnResources(node: SchedulerNode, c: CompiledRequest): boolean {
  return (
    statusOk(node) &&
    taintsOk(node, c) &&
    labelsOk(node, c) &&
    zonesOk(node, c) &&
    !resourcesOk(node, c.request) &&
    affinityOk(node, c) &&
    antiAffinityOk(node, c)
  );
}

/** The count a zone holds of the request's workload (0 when none). */
export function zoneCount(request: PlacementRequest, zone: string): number {
  return request.zoneCounts.get(zone) ?? 0;
}

/** What zone-spread compares against: the least count among the zones that have a feasible node. */
export interface ZoneSpreadContext {
  readonly zoneMinimum: number;
}

/**
 * The zone-spread minimum over `feasible` (nodes that passed every other filter): the least
 * count of the request's workload among their zones.
 */
export function zoneMinimum(feasible: Iterable<SchedulerNode>, request: PlacementRequest): number {
  let minimum = Number.POSITIVE_INFINITY;
  for (const node of feasible) minimum = Math.min(minimum, zoneCount(request, zoneOf(node)));
  return minimum;
}

const mebi = 1024 * 1024;

/** Bytes in words: `512Mi`, `1.5Gi`. */
export function formatBytes(bytes: number): string {
  if (Math.abs(bytes) >= 1024 * mebi) return `${Math.round((bytes / (1024 * mebi)) * 100) / 100}Gi`;
  if (Math.abs(bytes) >= mebi) return `${Math.round((bytes / mebi) * 100) / 100}Mi`;
  return `${bytes}B`;
}

/** The filter's reason for a node it removes. Assumes the node fails it; not for the hot path. */
export function explainFilter(
  name: FilterName,
  node: SchedulerNode,
  c: CompiledRequest,
  spread?: ZoneSpreadContext,
): string {
  const request = c.request;
  const at = `node ${node.id}`;
  switch (name) {
    case 'node-status':
      return node.status !== 'alive'
        ? `${at}: status ${node.status}, needs alive`
        : `${at}: not an agent, only agents run replicas`;
    case 'taints':
      return `${at}: taint ${untoleratedTaint(node, c) ?? '?'} not tolerated`;
    case 'node-labels': {
      for (let i = 0; i < c.labelKeys.length; i++) {
        const key = c.labelKeys[i] as string;
        if (node.labels[key] !== c.labelValues[i])
          return `${at}: label ${key}=${node.labels[key] ?? '(none)'}, needs ${key}=${c.labelValues[i]}`;
      }
      return `${at}: labels do not match`;
    }
    case 'zones':
      return `${at}: zone ${node.zone ?? '(none)'} not in ${request.constraints.zones.join(', ')}`;
    case 'resources': {
      const r = request.resources;
      const freeCpu = node.capacity.cpuMillicores - node.allocated.cpuMillicores;
      const freeMemory = node.capacity.memoryBytes - node.allocated.memoryBytes;
      const parts: string[] = [];
      if (freeCpu < r.cpuMillicores) parts.push(`needs ${r.cpuMillicores}m CPU, ${freeCpu}m free`);
      if (freeMemory < r.memoryBytes)
        parts.push(`needs ${formatBytes(r.memoryBytes)} memory, ${formatBytes(freeMemory)} free`);
      return `${at}: ${parts.join('; ')}`;
    }
    case 'affinity': {
      const missing = c.affinityIds.filter((id) => !((node.workloads.get(id) ?? 0) > 0));
      return `${at}: runs no replica of ${missing.join(', ')} (affinity)`;
    }
    case 'anti-affinity': {
      const present = c.antiAffinityIds.filter((id) => (node.workloads.get(id) ?? 0) > 0);
      return `${at}: already runs ${present.join(', ')} (anti-affinity)`;
    }
    case 'zone-spread': {
      const zone = zoneOf(node);
      const minimum = spread?.zoneMinimum ?? 0;
      return `${at}: zone ${zone === '' ? '(none)' : zone} holds ${zoneCount(request, zone)} replicas of ${request.workloadId}, the emptiest feasible zone ${minimum}`;
    }
  }
}

/**
 * A filter: `undefined` when the node passes, else why not. zone-spread needs the minimum
 * over the feasible nodes' zones (`zoneMinimum`); without it, the minimum over the zones in the
 * request's `zoneCounts` and the node's own zone is used.
 */
export type Filter = (
  node: SchedulerNode,
  request: PlacementRequest,
  spread?: ZoneSpreadContext,
) => string | undefined;

function spreadOk(node: SchedulerNode, request: PlacementRequest, spread?: ZoneSpreadContext): boolean {
  if (!request.constraints.spreadAcrossZones) return true;
  const count = zoneCount(request, zoneOf(node));
  let minimum = spread?.zoneMinimum;
  if (minimum === undefined) {
    minimum = count;
    for (const n of request.zoneCounts.values()) minimum = Math.min(minimum, n);
  }
  return count <= minimum;
}

function filterOf(name: FilterName, ok: (node: SchedulerNode, c: CompiledRequest) => boolean): Filter {
  return (node, request, spread) => {
    const c = compileRequest(request);
    return ok(node, c) ? undefined : explainFilter(name, node, c, spread);
  };
}

/** Every filter by name, in `filterNames` order. */
export const filters: Readonly<Record<FilterName, Filter>> = {
  'node-status': filterOf('node-status', statusOk),
  taints: filterOf('taints', taintsOk),
  'node-labels': filterOf('node-labels', labelsOk),
  zones: filterOf('zones', zonesOk),
  resources: filterOf('resources', (node, c) => resourcesOk(node, c.request)),
  affinity: filterOf('affinity', affinityOk),
  'anti-affinity': filterOf('anti-affinity', antiAffinityOk),
  'zone-spread': (node, request, spread) =>
    spreadOk(node, request, spread)
      ? undefined
      : explainFilter('zone-spread', node, compileRequest(request), spread),
};

/** Counters of removed nodes per filter, with the first reason each one gave. */
export class FilterCounts {
  readonly counts = new Int32Array(filterNames.length);
  readonly examples: (string | undefined)[] = new Array(filterNames.length).fill(undefined);

  /** Counts a node removed by filter `index`; builds a reason only for the first one. */
  remove(index: number, node: SchedulerNode, c: CompiledRequest, spread?: ZoneSpreadContext): void {
    if (this.counts[index] === 0)
      this.examples[index] = explainFilter(filterNames[index] as FilterName, node, c, spread);
    this.counts[index] = (this.counts[index] as number) + 1;
  }

  /** The report: only filters that removed something, in `filterNames` order. */
  report(): Partial<Record<FilterName, { count: number; example: string }>> {
    const report: Partial<Record<FilterName, { count: number; example: string }>> = {};
    for (let i = 0; i < filterNames.length; i++) {
      const count = this.counts[i] as number;
      if (count > 0) report[filterNames[i] as FilterName] = { count, example: this.examples[i] ?? '' };
    }
    return report;
  }
}

/** The report in words: `resources removed 8 (node x: needs …), zones removed 4`. */
export function describeReport(
  report: Partial<Record<FilterName, { count: number; example: string }>>,
): string {
  const parts: string[] = [];
  for (const name of filterNames) {
    const entry = report[name];
    if (entry !== undefined) parts.push(`${name} removed ${entry.count} (${entry.example})`);
  }
  return parts.join(', ');
}
