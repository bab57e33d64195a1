/** Builders for the coordinator specs: member, workload and replica records as the store holds them. */
import { specDigest } from '../../actors/coordinator/spec-digest.ts';
import {
  encodeReplicaRecord,
  encodeWorkloadRecord,
  type ReplicaRecord,
  replicaKey,
  type WorkloadRecord,
  workloadKey,
} from '../../actors/coordinator/workload-records.ts';
import { validateWorkloadSpec } from '../../actors/coordinator/workload-validate.ts';
import {
  encodeMemberRecord,
  type MemberRecord,
  type MemberStatus,
  memberKey,
} from '../../actors/membership/member-record.ts';
import type { KeyValue, KvEvent } from '../../actors/raft/kv-types.ts';

export const mi = 1024 * 1024;
export const gi = 1024 * mi;

export function memberRecord(
  id: string,
  options: { status?: MemberStatus; cpuCores?: number; memoryBytes?: number; zone?: string } = {},
): MemberRecord {
  const memoryBytes = options.memoryBytes ?? 4 * gi;
  return {
    id,
    roles: ['agent'],
    addresses: [`/memory/${id}`],
    labels: {},
    zone: options.zone ?? 'zone-a',
    status: options.status ?? 'alive',
    resources: {
      cpuCores: options.cpuCores ?? 2,
      cpuLoad1m: 0,
      memoryBytes,
      memoryFreeBytes: memoryBytes,
      diskBytes: 0,
      diskFreeBytes: 0,
    },
    joinedAt: 0,
    statusSince: 0,
    tokenId: undefined,
  };
}

export interface WorkloadOptions {
  kind?: 'service' | 'batch';
  replicas?: number;
  cpu?: number;
  memory?: number;
  priority?: number;
  revision?: number;
  env?: Record<string, string>;
}

export function workloadRecord(name: string, options: WorkloadOptions = {}): WorkloadRecord {
  const spec = validateWorkloadSpec({
    name,
    kind: options.kind ?? 'service',
    replicas: options.replicas ?? 1,
    driver: { type: 'process', command: 'node', env: options.env ?? {} },
    resources: { cpuMillicores: options.cpu ?? 500, memoryBytes: options.memory ?? 256 * mi },
    priority: options.priority ?? 0,
  });
  return { spec, digest: specDigest(spec), revision: options.revision ?? 1, createdAt: 0, updatedAt: 0 };
}

export function replicaRecord(
  name: string,
  index: number,
  fields: Partial<ReplicaRecord> = {},
): ReplicaRecord {
  return {
    workloadId: `default/${name}`,
    index,
    attempt: 1,
    specRevision: 1,
    node: undefined,
    state: 'pending',
    ready: false,
    restarts: 0,
    exitCode: undefined,
    reason: undefined,
    limits: undefined,
    lostCount: 0,
    createdAt: 0,
    updatedAt: 0,
    ...fields,
  };
}

function kv(key: string, value: string, modRevision: number): KeyValue {
  return { key, value, modRevision, createRevision: modRevision, version: 1 };
}

export function memberPut(record: MemberRecord, revision: number): KvEvent {
  return { type: 'put', kv: kv(memberKey(record.id), encodeMemberRecord(record), revision) };
}

export function workloadPut(record: WorkloadRecord, revision: number): KvEvent {
  const id = `${record.spec.namespace}/${record.spec.name}`;
  return { type: 'put', kv: kv(workloadKey(id), encodeWorkloadRecord(record), revision) };
}

export function replicaPut(record: ReplicaRecord, revision: number): KvEvent {
  return {
    type: 'put',
    kv: kv(replicaKey(record.workloadId, record.index), encodeReplicaRecord(record), revision),
  };
}

export function deleteEvent(key: string, revision: number): KvEvent {
  return { type: 'delete', kv: { key, value: '', modRevision: revision, createRevision: 0, version: 0 } };
}
