/**
 * The plan applier's pure check (optimistic concurrency, as in Omega and Nomad): a shard decided
 * on its own view, which may be stale by the time the plan reaches the leader. Against the
 * committed view, every placement must still fit: the node exists and is an alive agent, the
 * replica is not already on it, and the free capacity, after the plan's own evictions on that
 * node and the plan's earlier placements, covers the request. Every eviction must still name a
 * replica on its node, of lower priority than every placement the plan makes there.
 *
 * All or nothing: on any conflict nothing changes and every conflict is reported; otherwise the
 * evictions and then the placements are applied to the view in place.
 */
import { formatBytes } from './filters.ts';
import { applyPlacement, removePlacement } from './placement.ts';
import type { PlacementRequest, Plan, SchedulerNode } from './scheduler-types.ts';

export interface PlanConflict {
  /** The placement's replica, or the evicted replica for an eviction conflict. */
  readonly replicaId: string;
  readonly node: string;
  readonly reason: string;
}

export type PlanCheckResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly conflicts: PlanConflict[] };

function byId<T>(
  items: ReadonlyMap<string, T> | Iterable<T>,
  id: (item: T) => string,
): ReadonlyMap<string, T> {
  if (items instanceof Map) return items;
  const map = new Map<string, T>();
  for (const item of items as Iterable<T>) map.set(id(item), item);
  return map;
}

/**
 * Checks `plan` against the committed `nodes` (by id, or any iterable of nodes) and the
 * `requests` of its placements (by replica id, or any iterable of requests); applies it when
 * every placement fits.
 */
export function checkPlan(
  nodes: ReadonlyMap<string, SchedulerNode> | Iterable<SchedulerNode>,
  plan: Plan,
  requests: ReadonlyMap<string, PlacementRequest> | Iterable<PlacementRequest>,
): PlanCheckResult {
  const view = byId(nodes, (node) => node.id);
  const requestsById = byId(requests, (request) => request.replicaId);
  const conflicts: PlanConflict[] = [];
  // Free capacity per touched node, as the plan goes: evictions first, then placements in order.
  const free = new Map<string, { cpu: number; memory: number }>();
  const freeOf = (node: SchedulerNode): { cpu: number; memory: number } => {
    let f = free.get(node.id);
    if (f === undefined) {
      f = {
        cpu: node.capacity.cpuMillicores - node.allocated.cpuMillicores,
        memory: node.capacity.memoryBytes - node.allocated.memoryBytes,
      };
      free.set(node.id, f);
    }
    return f;
  };
  const lowestPlacedPriority = new Map<string, number>();
  for (const placement of plan.placements) {
    const priority = requestsById.get(placement.replicaId)?.priority;
    if (priority !== undefined)
      lowestPlacedPriority.set(
        placement.node,
        Math.min(lowestPlacedPriority.get(placement.node) ?? Number.POSITIVE_INFINITY, priority),
      );
  }
  const evicted = new Set<string>();
  for (const eviction of plan.evictions) {
    const node = view.get(eviction.node);
    const placed = node?.replicas.get(eviction.replicaId);
    if (node === undefined || placed === undefined) {
      conflicts.push({
        replicaId: eviction.replicaId,
        node: eviction.node,
        reason: `eviction: replica ${eviction.replicaId} is no longer on node ${eviction.node}`,
      });
      continue;
    }
    const over = lowestPlacedPriority.get(node.id);
    if (over === undefined || placed.priority >= over) {
      conflicts.push({
        replicaId: eviction.replicaId,
        node: node.id,
        reason:
          over === undefined
            ? `eviction: the plan places nothing on node ${node.id}, so it may evict nothing there`
            : `eviction: replica ${eviction.replicaId} has priority ${placed.priority}, not below ${over} of the placement it makes room for`,
      });
      continue;
    }
    if (evicted.has(eviction.replicaId)) continue;
    evicted.add(eviction.replicaId);
    const f = freeOf(node);
    f.cpu += placed.resources.cpuMillicores;
    f.memory += placed.resources.memoryBytes;
  }
  const placing = new Set<string>();
  for (const placement of plan.placements) {
    const { replicaId } = placement;
    const conflict = (reason: string): void => {
      conflicts.push({ replicaId, node: placement.node, reason });
    };
    const request = requestsById.get(replicaId);
    const node = view.get(placement.node);
    if (request === undefined) conflict(`no request given for replica ${replicaId}`);
    else if (node === undefined) conflict(`node ${placement.node} is not in the view`);
    else if (node.status !== 'alive' || !node.isAgent)
      conflict(
        node.isAgent ? `node ${node.id} is ${node.status}, not alive` : `node ${node.id} is not an agent`,
      );
    else if (placing.has(replicaId) || (node.replicas.has(replicaId) && !evicted.has(replicaId)))
      conflict(`replica ${replicaId} is already placed on node ${node.id}`);
    else {
      const f = freeOf(node);
      const r = request.resources;
      if (f.cpu < r.cpuMillicores || f.memory < r.memoryBytes) {
        const parts: string[] = [];
        if (f.cpu < r.cpuMillicores) parts.push(`needs ${r.cpuMillicores}m CPU, ${f.cpu}m free`);
        if (f.memory < r.memoryBytes)
          parts.push(`needs ${formatBytes(r.memoryBytes)} memory, ${formatBytes(f.memory)} free`);
        conflict(`node ${node.id} no longer fits: ${parts.join('; ')}`);
      } else {
        f.cpu -= r.cpuMillicores;
        f.memory -= r.memoryBytes;
        placing.add(replicaId);
      }
    }
  }
  if (conflicts.length > 0) return { ok: false, conflicts };
  for (const eviction of plan.evictions) {
    const node = view.get(eviction.node);
    if (node !== undefined) removePlacement(node, eviction.replicaId);
  }
  for (const placement of plan.placements)
    applyPlacement(
      view.get(placement.node) as SchedulerNode,
      requestsById.get(placement.replicaId) as PlacementRequest,
    );
  return { ok: true };
}
