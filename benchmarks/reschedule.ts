/**
 * How long a node's replicas take to run elsewhere after the node dies (issue 7):
 * one coordinator and three agents as real `cloudless start` processes on loopback; a 6-replica
 * service spread over the agents; each trial SIGKILLs an agent that runs replicas and measures
 * until every replica it ran is running on another agent, then restarts it (its next start kills
 * the replicas it left behind) and waits for it to be alive again.
 *
 * Baseline, from the same trials: failure detection alone (kill → the member record says down),
 * the part of the figure that belongs to the membership layer (its own benchmark:
 * benchmarks/membership.ts).
 *
 *   node benchmarks/reschedule.ts --json [--trials 20]
 */
import { parseArgs } from 'node:util';
import { WorkloadClient } from '../actors/coordinator/workload-client.ts';
import type { ReplicaRecord } from '../actors/coordinator/workload-records.ts';
import { decodeMemberRecord, memberKey } from '../actors/membership/member-record.ts';
import { NodeCluster } from '../chaos/support/node-cluster.ts';
import { percentile } from '../specs/sim/membership-sim.ts';
import { progress, report } from './bench-harness.ts';

const { values } = parseArgs({
  options: { json: { type: 'boolean' }, runs: { type: 'string' }, trials: { type: 'string', default: '20' } },
});
const trials = Number(values.trials);
if (!Number.isInteger(trials) || trials < 1)
  throw new RangeError(`--trials takes a positive integer, got ${values.trials}`);

const replicas = 6;
const targets = { reschedule_p50_ms: 2500, reschedule_p95_ms: 5000 };

const cluster = await NodeCluster.start({
  size: 4,
  join: true,
  nodeRoles: ['coordinator', 'agent', 'agent', 'agent'],
  log: progress,
});
const client = await WorkloadClient.connect({
  address: cluster.node(0).address,
  credential: cluster.credential,
  timeoutMs: 10_000,
});
const indexOf = new Map(cluster.nodes.map((node) => [node.peerId, node.index]));

async function replicaList(): Promise<readonly ReplicaRecord[]> {
  const [status] = await client.ps('default/bench');
  return status?.replicas ?? [];
}

async function memberStatus(id: string): Promise<string | undefined> {
  const kv = await client.kv.get(memberKey(id), { consistency: 'serializable' });
  return kv === undefined ? undefined : decodeMemberRecord(kv.value, id).status;
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`benchmark: ${what} did not happen within ${timeoutMs} ms`);
}

const reschedule: number[] = [];
const detect: number[] = [];
try {
  await client.deploy({
    name: 'bench',
    replicas,
    driver: {
      type: 'process',
      command: process.execPath,
      args: ['-e', "process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000)"],
    },
    resources: { cpuMillicores: 50, memoryBytes: '32Mi' },
  });
  const allRunning = async (): Promise<readonly ReplicaRecord[] | undefined> => {
    const list = await replicaList();
    return list.length === replicas && list.every((r) => r.state === 'running') ? list : undefined;
  };
  await waitFor('the first placement', allRunning);
  for (let trial = 0; trial < trials; trial++) {
    const before = await waitFor('every replica running', allRunning);
    // The agent with the most replicas (ties: the first).
    const counts = new Map<string, number>();
    for (const r of before) counts.set(r.node as string, (counts.get(r.node as string) ?? 0) + 1);
    const [victim] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0] as [string, number];
    const moved = before.filter((r) => r.node === victim);
    const started = performance.now();
    await cluster.kill(indexOf.get(victim) as number);
    let detected: number | undefined;
    await waitFor('the replicas running elsewhere', async () => {
      if (detected === undefined && (await memberStatus(victim)) === 'down')
        detected = performance.now() - started;
      const list = await replicaList();
      const done = moved.every((m) => {
        const now = list.find((r) => r.index === m.index);
        return now !== undefined && now.attempt > m.attempt && now.state === 'running' && now.node !== victim;
      });
      return done ? true : undefined;
    });
    const elapsed = performance.now() - started;
    reschedule.push(elapsed);
    if (detected !== undefined) detect.push(detected);
    progress(
      `trial ${trial + 1}/${trials}: ${moved.length} replica(s) of a killed agent running elsewhere after ${Math.round(elapsed)} ms (down after ${detected === undefined ? '?' : Math.round(detected)} ms)`,
    );
    await cluster.restart(indexOf.get(victim) as number);
    await waitFor('the restarted agent alive', async () =>
      (await memberStatus(victim)) === 'alive' ? true : undefined,
    );
  }
} finally {
  await client.close();
  await cluster.stop();
}

const results = {
  reschedule_p50_ms: Math.round(percentile(reschedule, 50)),
  reschedule_p95_ms: Math.round(percentile(reschedule, 95)),
  reschedule_max_ms: Math.round(Math.max(...reschedule)),
  trials,
  replicas,
  agents: 3,
};
report({
  benchmark: 'reschedule',
  results,
  baseline: {
    failure_detect_p50_ms: Math.round(percentile(detect, 50)),
    failure_detect_p95_ms: Math.round(percentile(detect, 95)),
  },
  targets,
  meets_targets:
    results.reschedule_p50_ms <= targets.reschedule_p50_ms &&
    results.reschedule_p95_ms <= targets.reschedule_p95_ms,
});
