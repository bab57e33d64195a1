/**
 * The end-to-end half of benchmarks/scheduler.ts: placements committed per second through the
 * controller, the scheduler shards, the plan applier and Raft, on three `cloudless start
 * --roles coordinator` processes (fsync on).
 *
 * The agents are in this process: `agents` enrolled nodes (real libp2p connections, join token,
 * membership heartbeats, so the leader sees them alive) without a node agent actor, so nothing
 * runs the replicas: the figure is the control plane's alone. The clock runs from the first deploy
 * until every replica record names a node.
 *
 * Baseline, same cluster, same run: single-key puts per second from one KvClient with 64 writers
 * (what Raft alone commits).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkloadClient } from '../actors/coordinator/workload-client.ts';
import { replicasPrefix } from '../actors/coordinator/workload-records.ts';
import { type Membership, startMembership } from '../actors/membership/start-membership.ts';
import { NodeCluster } from '../chaos/support/node-cluster.ts';
import { type EnrolledNode, startEnrolledNode } from '../specs/enrollment/enrolled-node.ts';
import { createToken } from '../specs/support/cli-node.ts';
import { progress } from './bench-harness.ts';

export interface CommittedPlacements {
  readonly committed_placements_per_s: number;
  readonly placements: number;
  readonly seconds: number;
  readonly agents: number;
  readonly baseline_puts_per_s: number;
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(20);
  }
  throw new Error(`benchmark: ${what} did not happen within ${timeoutMs} ms`);
}

export async function measureCommittedPlacements(
  init: { workloads?: number; replicasPerWorkload?: number; agents?: number } = {},
): Promise<CommittedPlacements> {
  const workloads = init.workloads ?? 5;
  const perWorkload = init.replicasPerWorkload ?? 1000;
  const agentCount = init.agents ?? 16;
  const cluster = await NodeCluster.start({
    size: 3,
    join: true,
    log: progress,
    ...(process.env.BENCH_VERBOSE === '1' ? { args: ['--log-level', 'info'] } : {}),
  });
  const agents: { node: EnrolledNode; membership: Membership }[] = [];
  let client: WorkloadClient | undefined;
  try {
    const token = await createToken(cluster.node(0).dataDir, { roles: 'agent', uses: agentCount });
    for (let i = 0; i < agentCount; i++) {
      const node = await startEnrolledNode({ roles: ['agent'], join: cluster.node(0).address, token });
      await node.enrollment.enrolled;
      const membership = await startMembership(
        { system: node.system, mesh: node.mesh },
        { roles: ['agent'], dataDir: node.dataDir, coordinators: [cluster.node(0).address] },
      );
      agents.push({ node, membership });
    }
    client = await WorkloadClient.connect({
      address: cluster.node(0).address,
      credential: cluster.credential,
      timeoutMs: 30_000,
    });
    const kv = client.kv;
    await waitFor(
      `${agentCount} agents alive with resources`,
      async () => {
        const members = await kv.range('/cloudless/members/', { consistency: 'serializable' });
        const ready = members.kvs.filter((m) => {
          const record = JSON.parse(m.value) as { status: string; roles: string[]; resources?: unknown };
          return (
            record.status === 'alive' && record.roles.includes('agent') && record.resources !== undefined
          );
        });
        return ready.length >= agentCount ? true : undefined;
      },
      60_000,
    );

    // Baseline: what Raft alone commits, single-key puts from 64 writers.
    const puts = 4000;
    let next = 0;
    const baseStart = performance.now();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < puts) {
          const i = next++;
          await kv.put(`/bench/put/${i}`, 'x');
        }
      }),
    );
    const baselinePutsPerS = puts / ((performance.now() - baseStart) / 1000);

    const total = workloads * perWorkload;
    // Counted from the store's watch (polling the records would itself load the leader).
    const placedKeys = new Set<string>();
    let allPlaced: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      allPlaced = resolve;
    });
    let finished = 0;
    const watch = await kv.watch(replicasPrefix, {
      onEvents: (events) => {
        for (const event of events) {
          if (event.type !== 'put') continue;
          if ((JSON.parse(event.kv.value) as { node?: string }).node !== undefined)
            placedKeys.add(event.kv.key);
        }
        if (placedKeys.size >= total && finished === 0) {
          finished = performance.now();
          allPlaced();
        }
      },
    });
    const started = performance.now();
    for (let w = 0; w < workloads; w++) {
      await client.deploy({
        name: `place-${w}`,
        replicas: perWorkload,
        driver: { type: 'process', command: 'true' },
        resources: { cpuMillicores: 1, memoryBytes: '1Mi' },
      });
    }
    const timeoutMs = Number(process.env.BENCH_PLACE_TIMEOUT_MS ?? 120_000);
    await waitFor(
      `${total} placements committed (${placedKeys.size} seen)`,
      async () => (finished > 0 ? true : undefined),
      timeoutMs,
    );
    await done;
    watch.cancel();
    const seconds = (finished - started) / 1000;
    progress(`committed ${total} placements on ${agentCount} agents in ${seconds.toFixed(2)} s`);
    return {
      committed_placements_per_s: Math.round(total / seconds),
      placements: total,
      seconds: Math.round(seconds * 100) / 100,
      agents: agentCount,
      baseline_puts_per_s: Math.round(baselinePutsPerS),
    };
  } catch (error) {
    if (client !== undefined) {
      const statuses = await client.ps().catch(() => []);
      for (const status of statuses) {
        const states = new Map<string, number>();
        for (const r of status.replicas)
          states.set(
            `${r.state}${r.node === undefined ? '' : '@node'}`,
            (states.get(`${r.state}${r.node === undefined ? '' : '@node'}`) ?? 0) + 1,
          );
        progress(`${status.workloadId}: ${JSON.stringify([...states])}`);
      }
      const explained = await client.explain('default/place-0').catch((e: Error) => e.message);
      progress(`explain: ${JSON.stringify(explained).slice(0, 1500)}`);
    }
    for (const node of cluster.nodes)
      progress(
        `node ${node.index} said:\n${node.output
          .filter((line) => !line.includes('member status'))
          .slice(-15)
          .join('\n')}`,
      );
    throw error;
  } finally {
    await client?.close();
    for (const { node, membership } of agents) {
      await membership.stop();
      await node.stop();
    }
    await cluster.stop();
  }
}
