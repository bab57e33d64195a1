/**
 * An in-memory copy of the store's workload, replica and member records (docs/workloads.md), fed
 * with the store's events; the workload controller, each scheduler shard and the plan applier keep
 * one each. Pure: no I/O, no clock.
 *
 * Applying is idempotent by revision: an actor may apply what it just committed (from the commit's
 * answer) before the watch delivers the same change, and the older of two copies never wins.
 *
 * It also keeps the scheduler's view of the nodes (`SchedulerNode`) up to date incrementally: a
 * replica placed on a node and not finished counts against that node's capacity with its
 * workload's current resource request.
 */
import {
  decodeMemberRecord,
  type MemberRecord,
  memberIdOfKey,
  membersPrefix,
} from '../membership/member-record.ts';
import type { KeyValue, KvEvent } from '../raft/kv-types.ts';
import { removePlacement } from '../scheduler/placement.ts';
import type { PlacedReplica, PlacementRequest, SchedulerNode } from '../scheduler/scheduler-types.ts';
import {
  decodeNodeFailures,
  decodeReplicaRecord,
  decodeWorkloadRecord,
  isFinished,
  nodeFailuresPrefix,
  parseWorkloadKey,
  type ReplicaRecord,
  replicasPrefix,
  type WorkloadRecord,
  workloadsPrefix,
} from './workload-records.ts';

export interface Stored<TRecord> {
  readonly record: TRecord;
  readonly modRevision: number;
}

export interface StoredReplica extends Stored<ReplicaRecord> {
  readonly key: string;
}

/** Every prefix a `ClusterState` follows. */
export const clusterStatePrefixes = [
  membersPrefix,
  workloadsPrefix,
  replicasPrefix,
  nodeFailuresPrefix,
] as const;

/** A record the state refused to use, for the owner to log. */
export interface RefusedRecord {
  readonly key: string;
  readonly error: string;
}

export class ClusterState {
  readonly workloads = new Map<string, Stored<WorkloadRecord>>();
  /** By replica key. */
  readonly replicas = new Map<string, StoredReplica>();
  readonly members = new Map<string, Stored<MemberRecord>>();
  /** The scheduler's view of every member (agents and others; `isAgent` tells). */
  readonly nodes = new Map<string, SchedulerNode>();
  readonly #slots = new Map<string, Map<number, StoredReplica>>();
  readonly #failures = new Map<string, number>();
  /** Revisions of deletes, so an older put arriving late does not bring a key back. */
  readonly #deletedAt = new Map<string, number>();
  /** Highest revision applied. */
  revision = 0;
  onRefused: ((refused: RefusedRecord) => void) | undefined;
  /** Called when a known member's status changes (not on its first record, nor on a load). */
  onMemberStatus:
    | ((id: string, before: MemberRecord['status'], after: MemberRecord['status']) => void)
    | undefined;

  #nodeList: SchedulerNode[] | undefined;

  /** The nodes as an array (cached until a node is added). */
  nodeList(): readonly SchedulerNode[] {
    this.#nodeList ??= [...this.nodes.values()];
    return this.#nodeList;
  }

  /** Replica slots of a workload, by index. */
  slotsOf(workloadId: string): ReadonlyMap<number, StoredReplica> {
    return this.#slots.get(workloadId) ?? new Map();
  }

  /** What the scheduler needs to place the replica at `key` (undefined without its workload). */
  placementRequest(key: string): PlacementRequest | undefined {
    const stored = this.replicas.get(key);
    const spec = stored === undefined ? undefined : this.workloads.get(stored.record.workloadId)?.record.spec;
    if (stored === undefined || spec === undefined) return undefined;
    const zoneCounts = new Map<string, number>();
    for (const slot of this.slotsOf(stored.record.workloadId).values()) {
      if (slot.key === key || !ClusterState.holdsCapacity(slot.record)) continue;
      const zone = this.nodes.get(slot.record.node as string)?.zone ?? '';
      zoneCounts.set(zone, (zoneCounts.get(zone) ?? 0) + 1);
    }
    return {
      replicaId: key,
      workloadId: stored.record.workloadId,
      namespace: spec.namespace,
      resources: spec.resources,
      constraints: spec.constraints,
      priority: spec.priority,
      zoneCounts,
    };
  }

  /** Replaces everything with a fresh load (keys read at `revision`). */
  load(kvs: readonly KeyValue[], revision: number): void {
    this.workloads.clear();
    this.replicas.clear();
    this.members.clear();
    this.nodes.clear();
    this.#nodeList = undefined;
    this.#slots.clear();
    this.#failures.clear();
    this.#deletedAt.clear();
    this.revision = 0;
    // Workloads first, so replicas find their resource request.
    const order = (key: string): number =>
      key.startsWith(workloadsPrefix) ? 0 : key.startsWith(membersPrefix) ? 1 : 2;
    for (const kv of [...kvs].sort((a, b) => order(a.key) - order(b.key))) this.#put(kv);
    this.revision = revision;
  }

  applyEvents(events: readonly KvEvent[]): void {
    for (const event of events) {
      if (event.type === 'put') this.#put(event.kv);
      else this.#delete(event.kv.key, event.kv.modRevision);
      if (event.kv.modRevision > this.revision) this.revision = event.kv.modRevision;
    }
  }

  /** What the owner itself just committed at `revision` (the same as the watch will bring). */
  applyCommitted(writes: readonly { key: string; value: string | undefined }[], revision: number): void {
    for (const write of writes) {
      if (write.value === undefined) this.#delete(write.key, revision);
      else
        this.#put({
          key: write.key,
          value: write.value,
          modRevision: revision,
          createRevision: revision,
          version: 1,
        });
    }
    if (revision > this.revision) this.revision = revision;
  }

  #stale(key: string, modRevision: number, current: number | undefined): boolean {
    if (current !== undefined && current >= modRevision) return true;
    const deleted = this.#deletedAt.get(key);
    return deleted !== undefined && deleted >= modRevision;
  }

  #put(kv: KeyValue): void {
    const { key } = kv;
    try {
      if (key.startsWith(replicasPrefix)) {
        if (this.#stale(key, kv.modRevision, this.replicas.get(key)?.modRevision)) return;
        const record = decodeReplicaRecord(kv.value, key);
        this.#setReplica(key, { key, record, modRevision: kv.modRevision });
      } else if (key.startsWith(workloadsPrefix)) {
        const id = parseWorkloadKey(key);
        if (id === undefined || this.#stale(key, kv.modRevision, this.workloads.get(id)?.modRevision)) return;
        const record = decodeWorkloadRecord(kv.value, key);
        const previous = this.workloads.get(id);
        this.workloads.set(id, { record, modRevision: kv.modRevision });
        if (
          previous === undefined ||
          previous.record.spec.resources.cpuMillicores !== record.spec.resources.cpuMillicores ||
          previous.record.spec.resources.memoryBytes !== record.spec.resources.memoryBytes ||
          previous.record.spec.priority !== record.spec.priority
        )
          this.#recountWorkload(id);
      } else if (key.startsWith(membersPrefix)) {
        const id = memberIdOfKey(key);
        if (id === undefined || this.#stale(key, kv.modRevision, this.members.get(id)?.modRevision)) return;
        const record = decodeMemberRecord(kv.value, id);
        const before = this.members.get(id)?.record.status;
        this.members.set(id, { record, modRevision: kv.modRevision });
        if (before !== undefined && before !== record.status)
          this.onMemberStatus?.(id, before, record.status);
        this.#updateNode(record);
      } else if (key.startsWith(nodeFailuresPrefix)) {
        const id = key.slice(nodeFailuresPrefix.length);
        const count = decodeNodeFailures(kv.value).count;
        this.#failures.set(id, count);
        const node = this.nodes.get(id);
        if (node !== undefined) node.failures = count;
      }
      this.#deletedAt.delete(key);
    } catch (error) {
      this.onRefused?.({ key, error: (error as Error).message });
    }
  }

  #delete(key: string, revision: number): void {
    this.#deletedAt.set(key, revision);
    if (key.startsWith(replicasPrefix)) {
      const current = this.replicas.get(key);
      if (current !== undefined && current.modRevision < revision) this.#removeReplica(current);
    } else if (key.startsWith(workloadsPrefix)) {
      const id = parseWorkloadKey(key);
      if (id !== undefined && (this.workloads.get(id)?.modRevision ?? 0) < revision)
        this.workloads.delete(id);
    } else if (key.startsWith(membersPrefix)) {
      const id = memberIdOfKey(key);
      if (id !== undefined && (this.members.get(id)?.modRevision ?? 0) < revision) {
        this.members.delete(id);
        const node = this.nodes.get(id);
        if (node !== undefined) node.status = 'left';
      }
    } else if (key.startsWith(nodeFailuresPrefix)) {
      const id = key.slice(nodeFailuresPrefix.length);
      this.#failures.delete(id);
      const node = this.nodes.get(id);
      if (node !== undefined) node.failures = 0;
    }
    // Tombstones are only needed until the watch has caught up; keep the map bounded.
    if (this.#deletedAt.size > 100_000) {
      for (const [k, at] of this.#deletedAt) if (at < this.revision) this.#deletedAt.delete(k);
    }
  }

  #updateNode(record: MemberRecord): void {
    let node = this.nodes.get(record.id);
    if (node === undefined) {
      node = {
        id: record.id,
        zone: undefined,
        labels: {},
        status: 'alive',
        isAgent: false,
        capacity: { cpuMillicores: 0, memoryBytes: 0 },
        allocated: { cpuMillicores: 0, memoryBytes: 0 },
        failures: this.#failures.get(record.id) ?? 0,
        cost: 0,
        workloads: new Map(),
        replicas: new Map(),
      };
      this.nodes.set(record.id, node);
      this.#nodeList = undefined;
    }
    node.zone = record.zone;
    node.labels = record.labels;
    node.status = record.status;
    node.isAgent = record.roles.includes('agent');
    node.capacity = {
      cpuMillicores: Math.floor((record.resources?.cpuCores ?? 0) * 1000),
      memoryBytes: record.resources?.memoryBytes ?? 0,
    };
    const cost = Number(record.labels.cost);
    node.cost = Number.isFinite(cost) && cost >= 0 ? cost : 0;
  }

  /** Whether a replica record holds capacity on its node. */
  static holdsCapacity(record: ReplicaRecord): boolean {
    return record.node !== undefined && record.state !== 'pending' && !isFinished(record.state);
  }

  #setReplica(key: string, stored: StoredReplica): void {
    const previous = this.replicas.get(key);
    const released = previous === undefined ? undefined : this.#release(previous);
    this.replicas.set(key, stored);
    let slots = this.#slots.get(stored.record.workloadId);
    if (slots === undefined) {
      slots = new Map();
      this.#slots.set(stored.record.workloadId, slots);
    }
    slots.set(stored.record.index, stored);
    // A slot whose workload record is gone (deleted before its slots) still holds what it held.
    this.#hold(stored, released);
  }

  #removeReplica(stored: StoredReplica): void {
    this.#release(stored);
    this.replicas.delete(stored.key);
    const slots = this.#slots.get(stored.record.workloadId);
    slots?.delete(stored.record.index);
    if (slots?.size === 0) this.#slots.delete(stored.record.workloadId);
  }

  #hold(stored: StoredReplica, before?: PlacedReplica): void {
    const { record } = stored;
    if (!ClusterState.holdsCapacity(record)) return;
    const node = this.#nodeFor(record.node as string);
    // A shard or the applier may have counted this placement already (before its commit came back).
    if (node.replicas.has(stored.key)) removePlacement(node, stored.key);
    const spec = this.workloads.get(record.workloadId)?.record.spec;
    const resources = spec?.resources ?? before?.resources ?? { cpuMillicores: 0, memoryBytes: 0 };
    node.allocated.cpuMillicores += resources.cpuMillicores;
    node.allocated.memoryBytes += resources.memoryBytes;
    node.workloads.set(record.workloadId, (node.workloads.get(record.workloadId) ?? 0) + 1);
    node.replicas.set(stored.key, {
      replicaId: stored.key,
      workloadId: record.workloadId,
      priority: spec?.priority ?? before?.priority ?? 0,
      resources,
    });
  }

  #release(stored: StoredReplica): PlacedReplica | undefined {
    const node = stored.record.node === undefined ? undefined : this.nodes.get(stored.record.node);
    const placed = node?.replicas.get(stored.key);
    if (node === undefined || placed === undefined) return undefined;
    node.allocated.cpuMillicores -= placed.resources.cpuMillicores;
    node.allocated.memoryBytes -= placed.resources.memoryBytes;
    const count = (node.workloads.get(placed.workloadId) ?? 1) - 1;
    if (count <= 0) node.workloads.delete(placed.workloadId);
    else node.workloads.set(placed.workloadId, count);
    node.replicas.delete(stored.key);
    return placed;
  }

  /** A node a replica names before its member record is known: not schedulable until it is. */
  #nodeFor(id: string): SchedulerNode {
    let node = this.nodes.get(id);
    if (node === undefined) {
      node = {
        id,
        zone: undefined,
        labels: {},
        status: 'down',
        isAgent: false,
        capacity: { cpuMillicores: 0, memoryBytes: 0 },
        allocated: { cpuMillicores: 0, memoryBytes: 0 },
        failures: this.#failures.get(id) ?? 0,
        cost: 0,
        workloads: new Map(),
        replicas: new Map(),
      };
      this.nodes.set(id, node);
      this.#nodeList = undefined;
    }
    return node;
  }

  /** A workload's request or priority changed: its placed replicas count anew. */
  #recountWorkload(workloadId: string): void {
    for (const stored of this.slotsOf(workloadId).values()) {
      this.#release(stored);
      this.#hold(stored);
    }
  }
}
