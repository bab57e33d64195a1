/** Small builders for scheduler specs: a node and a request with every field defaulted. */
import type { Constraints } from '../../actors/coordinator/workload-spec.ts';
import type { PlacementRequest, SchedulerNode } from '../../actors/scheduler/index.ts';

export const mi = 1024 * 1024;
export const gi = 1024 * mi;

export type NodeOverrides = Partial<Omit<SchedulerNode, 'id' | 'capacity' | 'allocated'>> & {
  cpu?: number;
  memory?: number;
  usedCpu?: number;
  usedMemory?: number;
};

export function node(id: string, overrides: NodeOverrides = {}): SchedulerNode {
  const { cpu = 4000, memory = 8 * gi, usedCpu = 0, usedMemory = 0, ...rest } = overrides;
  return {
    id,
    zone: 'zone-a',
    labels: {},
    status: 'alive',
    isAgent: true,
    failures: 0,
    cost: 0,
    workloads: new Map(),
    replicas: new Map(),
    ...rest,
    capacity: { cpuMillicores: cpu, memoryBytes: memory },
    allocated: { cpuMillicores: usedCpu, memoryBytes: usedMemory },
  };
}

export type RequestOverrides = Partial<Omit<PlacementRequest, 'constraints' | 'resources'>> & {
  constraints?: Partial<Constraints>;
  cpu?: number;
  memory?: number;
};

export function request(overrides: RequestOverrides = {}): PlacementRequest {
  const { constraints = {}, cpu = 500, memory = 512 * mi, ...rest } = overrides;
  const name = rest.workloadId?.split('/')[1] ?? 'web';
  return {
    replicaId: `default/${name}/0`,
    workloadId: `default/${name}`,
    namespace: 'default',
    priority: 100,
    zoneCounts: new Map(),
    ...rest,
    resources: { cpuMillicores: cpu, memoryBytes: memory },
    constraints: {
      nodeLabels: {},
      zones: [],
      spreadAcrossZones: false,
      affinity: [],
      antiAffinity: [],
      tolerations: [],
      preferredZones: [],
      ...constraints,
    },
  };
}

/** Puts a replica of `workloadId` on the node, as a placement would. */
export function place(
  target: SchedulerNode,
  replicaId: string,
  workloadId: string,
  options: { priority?: number; cpu?: number; memory?: number } = {},
): void {
  const resources = { cpuMillicores: options.cpu ?? 500, memoryBytes: options.memory ?? 512 * mi };
  target.replicas.set(replicaId, { replicaId, workloadId, priority: options.priority ?? 0, resources });
  target.allocated.cpuMillicores += resources.cpuMillicores;
  target.allocated.memoryBytes += resources.memoryBytes;
  target.workloads.set(workloadId, (target.workloads.get(workloadId) ?? 0) + 1);
}
