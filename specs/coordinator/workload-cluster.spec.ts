import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { replicaDirName } from '../../actors/agent/agent-actor.ts';
import { WorkloadClient } from '../../actors/coordinator/workload-client.ts';
import type { ReplicaRecord } from '../../actors/coordinator/workload-records.ts';
import type { WorkloadStatus } from '../../actors/coordinator/workload-service.ts';
import { NodeCluster } from '../../chaos/support/node-cluster.ts';
import { until } from '../support/deadline.ts';

/**
 * Workloads on real processes: one coordinator and three agents started with `cloudless start`
 * (fault injection on, so the harness can partition them). A service survives an agent killed with
 * SIGKILL and a partitioned agent, whose duplicate stops once it is reachable again; a worker-thread
 * workload runs; a batch task that fails once succeeds on its retry.
 */
const here = path.dirname(fileURLToPath(import.meta.url));
const workerModule = path.join(here, '..', 'fixtures', 'worker-workloads.ts');

/** A replica process that runs until SIGTERM. */
const sleeper = {
  type: 'process',
  command: process.execPath,
  args: [
    '-e',
    "process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000); console.log('up')",
  ],
};

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('workloads on a cluster of cloudless processes', function () {
  this.timeout(120_000);
  let cluster: NodeCluster;
  let client: WorkloadClient;
  const agentIndex = new Map<string, number>();

  before(async () => {
    cluster = await NodeCluster.start({
      size: 4,
      join: true,
      nodeRoles: ['coordinator', 'agent', 'agent', 'agent'],
      env: { CLOUDLESS_FAULT_INJECTION: '1' },
      log: () => {},
    });
    for (const node of cluster.nodes) agentIndex.set(node.peerId, node.index);
    client = await WorkloadClient.connect({
      address: cluster.node(0).address,
      credential: cluster.credential,
      timeoutMs: 10_000,
    });
  });

  after(async () => {
    await client?.close();
    await cluster?.stop();
  });

  async function replicasOf(workloadId: string): Promise<readonly ReplicaRecord[]> {
    const [status] = (await client.ps(workloadId)) as WorkloadStatus[];
    return status?.replicas ?? [];
  }

  /** Waits until every slot of `workloadId` is running and ready on an agent that is not in `avoid`. */
  function allRunning(
    workloadId: string,
    count: number,
    avoid: readonly string[] = [],
  ): Promise<readonly ReplicaRecord[]> {
    return until(
      async () => {
        const replicas = await replicasOf(workloadId).catch(() => []);
        const up = replicas.filter(
          (r) => r.state === 'running' && r.ready && r.node !== undefined && !avoid.includes(r.node),
        );
        return up.length === count && replicas.length === count ? replicas : undefined;
      },
      30_000,
      `${count} replicas of ${workloadId} running`,
      200,
    );
  }

  async function pidOf(replica: ReplicaRecord): Promise<number> {
    const agent = cluster.node(agentIndex.get(replica.node as string) as number);
    const dir = path.join(
      agent.dataDir,
      'replicas',
      replicaDirName(`${replica.workloadId}/${replica.index}#${replica.attempt}`),
    );
    return Number((await readFile(path.join(dir, 'pid'), 'utf8')).trim());
  }

  it('spreads a 3-replica service over the 3 agents, and replaces the replica of an agent killed with SIGKILL', async () => {
    expect((await client.deploy({ name: 'svc', replicas: 3, driver: sleeper })).outcome).to.equal('created');
    const placed = await allRunning('default/svc', 3);
    expect(new Set(placed.map((r) => r.node)).size).to.equal(3);

    const victim = placed[0] as ReplicaRecord;
    const victimIndex = agentIndex.get(victim.node as string) as number;
    const orphan = await pidOf(victim);
    await cluster.kill(victimIndex);
    const after = await allRunning('default/svc', 3, [victim.node as string]);
    const replaced = after.find((r) => r.index === victim.index) as ReplicaRecord;
    expect(replaced.attempt).to.be.greaterThan(victim.attempt);
    expect(replaced.lostCount).to.be.greaterThan(0);
    // The other replicas were not touched.
    for (const r of after.filter((r) => r.index !== victim.index))
      expect(r.attempt).to.equal(placed.find((p) => p.index === r.index)?.attempt);

    // The killed agent's process group outlived it; its next start kills it.
    expect(pidAlive(orphan)).to.equal(true);
    await cluster.restart(victimIndex);
    await until(
      () => (pidAlive(orphan) ? undefined : true),
      15_000,
      'the orphaned replica killed by the restarted agent',
      100,
    );
  });

  it("keeps a partitioned agent's replica running, replaces it, and stops the duplicate once the partition heals", async () => {
    const placed = await allRunning('default/svc', 3);
    const target = placed[1] as ReplicaRecord;
    const cut = agentIndex.get(target.node as string) as number;
    const pid = await pidOf(target);
    const others = [0, 1, 2, 3].filter((i) => i !== cut);
    await cluster.partition([others, [cut]]);
    const replaced = await allRunning('default/svc', 3, [target.node as string]);
    expect((replaced.find((r) => r.index === target.index) as ReplicaRecord).attempt).to.be.greaterThan(
      target.attempt,
    );
    // Cut off from the coordinator, the agent keeps its replica running.
    expect(pidAlive(pid)).to.equal(true);

    await cluster.heal();
    await until(
      () => (pidAlive(pid) ? undefined : true),
      20_000,
      'the duplicate stopped after the partition healed',
      100,
    );
    const final = await allRunning('default/svc', 3);
    expect(final.map((r) => r.index).sort()).to.deep.equal([0, 1, 2]);
    await client.remove('default/svc');
  });

  it('runs a worker-thread workload', async () => {
    await client.deploy({
      name: 'threads',
      replicas: 1,
      driver: { type: 'worker', module: workerModule, export: 'untilAbort' },
      resources: { cpuMillicores: 100, memoryBytes: '64Mi' },
    });
    const [replica] = await allRunning('default/threads', 1);
    expect(replica?.limits).to.match(/worker resourceLimits/);
    await client.remove('default/threads');
  });

  it('runs a batch task to success after a failed first run, and does not run it again', async () => {
    const failOnce =
      "const fs = require('node:fs'); if (!fs.existsSync('tried')) { fs.writeFileSync('tried', '1'); console.error('first run fails'); process.exit(3); } console.log('second run succeeds');";
    await client.deploy({
      name: 'job',
      kind: 'batch',
      replicas: 1,
      driver: { type: 'process', command: process.execPath, args: ['-e', failOnce] },
      restartPolicy: { policy: 'on-failure', initialBackoffMs: 100, maxRetries: 2 },
    });
    const done = await until(
      async () => {
        const [r] = await replicasOf('default/job');
        return r?.state === 'succeeded' ? r : undefined;
      },
      30_000,
      'the batch task succeeded',
      200,
    );
    expect(done.restarts).to.equal(1);
    expect(done.attempt).to.equal(1);
    const logs = await client.logs({
      workloadId: 'default/job',
      index: 0,
      stream: 'stdout',
      fromOffset: 0,
      maxBytes: 4096,
    });
    expect(logs.data).to.include('second run succeeds');
    // Still succeeded, same attempt, a while later.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const [again] = await replicasOf('default/job');
    expect(again?.state).to.equal('succeeded');
    expect(again?.attempt).to.equal(1);
  });
});
