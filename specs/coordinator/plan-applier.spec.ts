/**
 * The leader-side workload actors in one actor system over a real single-member Raft group: the
 * plan applier commits a plan that fits, refuses whole one that no longer fits, and commits an
 * eviction with the placement it makes room for; the front door's controller, shards and applier
 * together place a deployed workload on a fake agent node.
 */
import { expect } from 'chai';
import type { Assignments } from '../../actors/agent/agent-protocol.ts';
import {
  type PlanApplierMessage,
  type PlanResult,
  planApplier,
} from '../../actors/coordinator/plan-applier.ts';
import {
  decodeReplicaRecord,
  encodeReplicaRecord,
  encodeWorkloadRecord,
  type ReplicaRecord,
  replicaKey,
  type WorkloadRecord,
  workloadKey,
} from '../../actors/coordinator/workload-records.ts';
import {
  type DeployResult,
  type WorkloadReply,
  type WorkloadServiceMessage,
  workloadService,
} from '../../actors/coordinator/workload-service.ts';
import { encodeMemberRecord, memberKey } from '../../actors/membership/member-record.ts';
import { kvService } from '../../actors/raft/kv-service.ts';
import type { KvCommand } from '../../actors/raft/kv-types.ts';
import type {
  RaftMemberMessage,
  RaftProposeReply,
  RaftQueryReply,
  RaftStatusReply,
} from '../../actors/raft/raft-member.ts';
import type { PlacementRequest, Plan } from '../../actors/scheduler/scheduler-types.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { RaftMembers } from '../support/raft-members.ts';
import { spawnProbe } from '../support/test-system.ts';
import { memberRecord, mi, replicaRecord, workloadRecord } from './coordinator-fixtures.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('plan applier and workload service over a Raft member', function () {
  this.timeout(20_000);
  let members: RaftMembers;
  let member: ActorRef<RaftMemberMessage>;
  let seq = 0;

  beforeEach(async () => {
    members = await RaftMembers.start();
    // The front door leads when its member's id is its node's id.
    member = await members.spawn(members.system.nodeId);
    // The KV front door at its usual path (the leader-side actors read the store through it).
    const front = member;
    members.system.spawn(
      Behaviors.setup<never>((ctx) => {
        ctx.spawn(kvService({ member: front, peerRef: () => front }), { name: 'kv' });
        return Behaviors.empty<never>();
      }),
      { name: 'coordinator' },
    );
    const deadline = Date.now() + 5000;
    for (;;) {
      const status = await member.ask<RaftStatusReply>((replyTo) => ({ type: 'status', replyTo }), {
        timeoutMs: 1000,
      });
      if (status.role === 'leader') break;
      if (Date.now() > deadline) throw new Error('the member did not become leader');
      await sleep(20);
    }
  });

  afterEach(async () => {
    await members.close();
  });

  async function propose(command: KvCommand): Promise<void> {
    const reply = await member.ask<RaftProposeReply>(
      (replyTo) => ({ type: 'propose', command, clientId: 'spec', seq: ++seq, replyTo }),
      { timeoutMs: 5000 },
    );
    if (!reply.ok) throw new Error(`${reply.error.code}: ${reply.error.message}`);
  }

  const put = (key: string, value: string): Promise<void> => propose({ type: 'put', key, value });

  async function putNode(id: string, cpuCores: number): Promise<void> {
    await put(memberKey(id), encodeMemberRecord(memberRecord(id, { cpuCores })));
  }

  async function putWorkload(record: WorkloadRecord): Promise<void> {
    await put(workloadKey(`default/${record.spec.name}`), encodeWorkloadRecord(record));
  }

  async function putReplica(record: ReplicaRecord): Promise<void> {
    await put(replicaKey(record.workloadId, record.index), encodeReplicaRecord(record));
  }

  async function replica(name: string, index: number): Promise<ReplicaRecord | undefined> {
    const key = replicaKey(`default/${name}`, index);
    const reply = await member.ask<RaftQueryReply>(
      (replyTo) => ({ type: 'query', key, consistency: 'linearizable', replyTo }),
      { timeoutMs: 2000 },
    );
    if (!reply.ok) throw new Error(reply.error.message);
    const kv = reply.result.kvs[0];
    return kv === undefined ? undefined : decodeReplicaRecord(kv.value, key);
  }

  function requestFor(record: WorkloadRecord, index: number): PlacementRequest {
    const { spec } = record;
    return {
      replicaId: replicaKey(`default/${spec.name}`, index),
      workloadId: `default/${spec.name}`,
      namespace: 'default',
      resources: spec.resources,
      constraints: spec.constraints,
      priority: spec.priority,
      zoneCounts: new Map(),
    };
  }

  function startApplier() {
    const applier = members.system.spawn<PlanApplierMessage>(
      planApplier({ member, clientId: 'spec-applier' }),
      { name: 'applier' },
    );
    const results = spawnProbe<PlanResult>(members.system, 'results');
    const submit = async (plan: Plan, requests: PlacementRequest[]): Promise<PlanResult> => {
      applier.tell({ type: 'plan', plan, requests, replyTo: results.ref });
      return results.next(5000);
    };
    return submit;
  }

  it('commits a plan that fits: its replicas become starting on their nodes', async () => {
    const web = workloadRecord('web', { replicas: 2, cpu: 500, memory: 256 * mi });
    await putNode('n1', 2);
    await putNode('n2', 2);
    await putWorkload(web);
    await putReplica(replicaRecord('web', 0));
    await putReplica(replicaRecord('web', 1));
    const submit = startApplier();
    const result = await submit(
      {
        planId: 'p1',
        placements: [
          { replicaId: replicaKey('default/web', 0), node: 'n1' },
          { replicaId: replicaKey('default/web', 1), node: 'n2' },
        ],
        evictions: [],
      },
      [requestFor(web, 0), requestFor(web, 1)],
    );
    expect(result.ok, JSON.stringify(result)).to.equal(true);
    expect(result.ok && result.writes.length).to.equal(2);
    expect(await replica('web', 0)).to.include({ state: 'starting', node: 'n1', attempt: 1 });
    expect(await replica('web', 1)).to.include({ state: 'starting', node: 'n2', attempt: 1 });
  });

  it('refuses whole a plan that no longer fits, and changes nothing', async () => {
    const big = workloadRecord('big', { replicas: 3, cpu: 1500, memory: 256 * mi });
    await putNode('n1', 2);
    await putNode('n2', 2);
    await putWorkload(big);
    for (const index of [0, 1, 2]) await putReplica(replicaRecord('big', index));
    const submit = startApplier();
    const first = await submit(
      { planId: 'p1', placements: [{ replicaId: replicaKey('default/big', 0), node: 'n1' }], evictions: [] },
      [requestFor(big, 0)],
    );
    expect(first.ok).to.equal(true);
    // Decided on a view from before p1: big/1 on n2 fits, big/2 on n1 no longer does.
    const second = await submit(
      {
        planId: 'p2',
        placements: [
          { replicaId: replicaKey('default/big', 1), node: 'n2' },
          { replicaId: replicaKey('default/big', 2), node: 'n1' },
        ],
        evictions: [],
      },
      [requestFor(big, 1), requestFor(big, 2)],
    );
    expect(second.ok).to.equal(false);
    expect(!second.ok && second.conflicts.map((c) => c.replicaId)).to.deep.equal([
      replicaKey('default/big', 2),
    ]);
    expect(await replica('big', 1)).to.include({ state: 'pending', node: undefined });
    expect(await replica('big', 2)).to.include({ state: 'pending', node: undefined });
    // Decided again on the fresh view: the part that fits commits.
    const third = await submit(
      { planId: 'p3', placements: [{ replicaId: replicaKey('default/big', 1), node: 'n2' }], evictions: [] },
      [requestFor(big, 1)],
    );
    expect(third.ok).to.equal(true);
    expect(await replica('big', 1)).to.include({ state: 'starting', node: 'n2' });
  });

  it('refuses a placement on a node marked down, even when the plan was decided while it was alive', async () => {
    const web = workloadRecord('web', { replicas: 1 });
    await putNode('n1', 2);
    await putWorkload(web);
    await putReplica(replicaRecord('web', 0));
    const submit = startApplier();
    await put(memberKey('n1'), encodeMemberRecord(memberRecord('n1', { status: 'down' })));
    const result = await submit(
      { planId: 'p1', placements: [{ replicaId: replicaKey('default/web', 0), node: 'n1' }], evictions: [] },
      [requestFor(web, 0)],
    );
    expect(result.ok).to.equal(false);
    expect(await replica('web', 0)).to.include({ state: 'pending', node: undefined });
  });

  it('commits an eviction with the placement it makes room for: the victim gets a new pending attempt', async () => {
    const low = workloadRecord('low', { replicas: 1, cpu: 1000, priority: 0 });
    const high = workloadRecord('high', { replicas: 1, cpu: 1000, priority: 100 });
    await putNode('n1', 1);
    await putWorkload(low);
    await putWorkload(high);
    await putReplica(replicaRecord('low', 0, { node: 'n1', state: 'running', ready: true }));
    await putReplica(replicaRecord('high', 0));
    const submit = startApplier();
    const result = await submit(
      {
        planId: 'p1',
        placements: [{ replicaId: replicaKey('default/high', 0), node: 'n1' }],
        evictions: [
          { replicaId: replicaKey('default/low', 0), workloadId: 'default/low', node: 'n1', priority: 0 },
        ],
      },
      [requestFor(high, 0)],
    );
    expect(result.ok, JSON.stringify(result)).to.equal(true);
    expect(await replica('high', 0)).to.include({ state: 'starting', node: 'n1' });
    const victim = await replica('low', 0);
    expect(victim).to.include({ state: 'pending', node: undefined, attempt: 2, lostCount: 1 });
    expect(victim?.reason).to.match(/preempted on n1/);
  });

  it('places a deployed workload through the controller, shards and applier of the front door', async () => {
    const system = members.system;
    const agentNode = system.nodeId;
    await put(memberKey(agentNode), encodeMemberRecord(memberRecord(agentNode, { cpuCores: 2 })));
    const agent = spawnProbe<Assignments>(system, 'agent');
    const service = system.spawn<WorkloadServiceMessage>(
      workloadService({
        member,
        leaderPollMs: 20,
        controller: { reconcileEveryMs: 100, pushEveryMs: 5000, rescheduleAfterMs: 200 },
      }),
      { name: 'workloads' },
    );
    const deadline = Date.now() + 10_000;
    let deployed: WorkloadReply<DeployResult> | undefined;
    while (Date.now() < deadline) {
      deployed = await service.ask<WorkloadReply<DeployResult>>(
        (replyTo) => ({
          type: 'deploy',
          spec: { name: 'web', replicas: 2, driver: { type: 'process', command: 'node' } },
          replyTo,
        }),
        { timeoutMs: 5000 },
      );
      // UNAVAILABLE until the front door has seen its member lead.
      if (deployed.ok) break;
      await sleep(50);
    }
    expect(deployed?.ok, JSON.stringify(deployed)).to.equal(true);
    let placed: (ReplicaRecord | undefined)[] = [];
    while (Date.now() < deadline) {
      placed = [await replica('web', 0), await replica('web', 1)];
      if (placed.every((r) => r?.state === 'starting')) break;
      await sleep(50);
    }
    for (const record of placed)
      expect(record).to.include({ state: 'starting', node: agentNode, attempt: 1 });
    // The controller tells the agent node what to run.
    let assigned: string[] = [];
    while (Date.now() < deadline) {
      assigned = (agent.received.at(-1)?.replicas ?? []).map((r) => r.replicaId).sort();
      if (assigned.length === 2) break;
      await sleep(50);
    }
    expect(assigned).to.deep.equal(['default/web/0#1', 'default/web/1#1']);
  });

  it('places a workload bigger than one txn holds, in several plans', async () => {
    for (let i = 0; i < 4; i++) await putNode(`big-${i}`, 2);
    const service = members.system.spawn<WorkloadServiceMessage>(
      workloadService({
        member,
        leaderPollMs: 20,
        controller: { reconcileEveryMs: 100, rescheduleAfterMs: 200 },
      }),
      { name: 'workloads' },
    );
    const deadline = Date.now() + 15_000;
    let deployed: WorkloadReply<DeployResult> | undefined;
    while (Date.now() < deadline) {
      deployed = await service.ask<WorkloadReply<DeployResult>>(
        (replyTo) => ({
          type: 'deploy',
          spec: {
            name: 'many',
            replicas: 300,
            driver: { type: 'process', command: 'true' },
            resources: { cpuMillicores: 1, memoryBytes: '1Mi' },
          },
          replyTo,
        }),
        { timeoutMs: 5000 },
      );
      if (deployed.ok) break;
      await sleep(50);
    }
    expect(deployed?.ok, JSON.stringify(deployed)).to.equal(true);
    let placed = 0;
    while (Date.now() < deadline) {
      const reply = await member.ask<RaftQueryReply>(
        (replyTo) => ({
          type: 'query',
          key: replicaKey('default/many', 0).slice(0, -1),
          prefix: true,
          consistency: 'serializable',
          replyTo,
        }),
        { timeoutMs: 2000 },
      );
      if (!reply.ok) throw new Error(reply.error.message);
      placed = reply.result.kvs.filter(
        (kv) => decodeReplicaRecord(kv.value, kv.key).node !== undefined,
      ).length;
      if (placed === 300) break;
      await sleep(100);
    }
    expect(placed).to.equal(300);
  });
});
