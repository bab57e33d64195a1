/**
 * Keeping a node's bookkeeping in step with placements: `allocated`, `workloads` and `replicas`
 * change together, in place. The shard applies its own decisions with these at once (so the next
 * decision sees them), and the plan applier applies committed plans with them.
 */
import type { PlacedReplica, PlacementRequest, SchedulerNode } from './scheduler-types.ts';

/**
 * Records the replica on the node. Returns false, changing nothing, when the node already holds a
 * replica with that id (applying the same placement twice is harmless).
 */
export function applyPlacement(node: SchedulerNode, request: PlacementRequest): boolean {
  if (node.replicas.has(request.replicaId)) return false;
  node.replicas.set(request.replicaId, {
    replicaId: request.replicaId,
    workloadId: request.workloadId,
    priority: request.priority,
    resources: request.resources,
  });
  node.allocated.cpuMillicores += request.resources.cpuMillicores;
  node.allocated.memoryBytes += request.resources.memoryBytes;
  node.workloads.set(request.workloadId, (node.workloads.get(request.workloadId) ?? 0) + 1);
  return true;
}

/**
 * Takes the replica off the node, with the resources the node recorded for it. Returns the
 * removed replica, or undefined when the node does not hold it.
 */
export function removePlacement(
  node: SchedulerNode,
  replica: string | Pick<PlacedReplica, 'replicaId'>,
): PlacedReplica | undefined {
  const id = typeof replica === 'string' ? replica : replica.replicaId;
  const placed = node.replicas.get(id);
  if (placed === undefined) return undefined;
  node.replicas.delete(id);
  node.allocated.cpuMillicores -= placed.resources.cpuMillicores;
  node.allocated.memoryBytes -= placed.resources.memoryBytes;
  const left = (node.workloads.get(placed.workloadId) ?? 0) - 1;
  if (left > 0) node.workloads.set(placed.workloadId, left);
  else node.workloads.delete(placed.workloadId);
  return placed;
}
