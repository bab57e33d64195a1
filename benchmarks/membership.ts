/**
 * Membership: failure detection and join visibility with real processes, and the same detector
 * and dissemination in the deterministic simulation at 5,000 members.
 *
 *   node benchmarks/membership.ts --json
 *
 * - failure_detect_p50_ms / _p95_ms: an agent is killed with SIGKILL; the time until every live
 *   node's view (3 coordinators, 2 agents, each a process of specs/fixtures/membership-node.ts)
 *   shows it down. 20 trials; after each a fresh agent takes the killed one's place.
 * - join_visible_p50_ms: from a fresh agent starting its membership actor (once its join token is
 *   redeemed) until every node's view shows it alive (20 joins).
 * - sim_failure_detect_p95_ms_5000_nodes: 20 kills among 5,000 simulated members with seeded
 *   jitter and 2% heartbeat loss (specs/sim/membership-sim.ts), until every member's view shows
 *   each down.
 * Baseline beside them: heartbeat_ms, the interval the detector learns from.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  createJoinToken,
  MembershipProcess,
  seenEverywhere,
} from '../specs/membership/membership-process.ts';
import { percentile, runMembershipSim } from '../specs/sim/membership-sim.ts';
import { progress, report } from './bench-harness.ts';

const trials = 20;
const targets = {
  failure_detect_p50_ms: 1500,
  failure_detect_p95_ms: 3000,
  join_visible_p50_ms: 500,
  sim_failure_detect_p95_ms_5000_nodes: 5000,
};

function simulated(): number {
  const kills = Array.from({ length: trials }, (_, k) => ({ at: 5000 + k * 2000, member: 100 + k * 211 }));
  const started = performance.now();
  const result = runMembershipSim({ members: 5000, seed: 42, durationMs: 50_000, kills });
  if (result.falseDowns.length > 0)
    throw new Error(`simulation made ${result.falseDowns.length} false downs`);
  const latencies = result.detections.map((d) => (d.visibleDownAt ?? Number.POSITIVE_INFINITY) - d.killedAt);
  progress(`simulation: 5,000 members, 50 s simulated in ${Math.round(performance.now() - started)} ms`);
  return percentile(latencies, 95);
}

async function real(): Promise<{ detect: number[]; join: number[] }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-bench-membership-'));
  const nodes: MembershipProcess[] = [];
  try {
    const first = await MembershipProcess.start({ dataDir: path.join(dir, 'c0'), roles: 'coordinator' });
    nodes.push(first);
    // Enrollment: every joiner's first start redeems a token created on the bootstrap node.
    const coordinatorToken = await createJoinToken(first, { roles: ['coordinator'], uses: 2 });
    const agentToken = await createJoinToken(first, { roles: ['agent'], uses: 2 + trials });
    for (const name of ['c1', 'c2'])
      nodes.push(
        await MembershipProcess.start({
          dataDir: path.join(dir, name),
          roles: 'coordinator',
          join: first.address,
          token: coordinatorToken,
        }),
      );
    const agents: MembershipProcess[] = [];
    for (const name of ['a0', 'a1'])
      agents.push(
        await MembershipProcess.start({
          dataDir: path.join(dir, name),
          roles: 'agent',
          join: first.address,
          token: agentToken,
        }),
      );
    nodes.push(...agents);
    const live = (): MembershipProcess[] => nodes.filter((node) => node.alive);
    for (const node of nodes) await seenEverywhere(nodes, node.peerId, 'alive', 30_000);
    const detect: number[] = [];
    const join: number[] = [];
    for (let trial = 0; trial < trials; trial++) {
      const victim = agents[trial % agents.length] as MembershipProcess;
      // Let the detector learn the rhythm of the survivors before the next kill.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const killedAt = Date.now();
      await victim.kill();
      detect.push((await seenEverywhere(live(), victim.peerId, 'down', 15_000)) - killedAt);
      const fresh = await MembershipProcess.start({
        dataDir: path.join(dir, `j${trial}`),
        roles: 'agent',
        join: (nodes[trial % 3] as MembershipProcess).address,
        token: agentToken,
      });
      nodes.push(fresh);
      agents[trial % agents.length] = fresh;
      join.push((await seenEverywhere(live(), fresh.peerId, 'alive', 15_000)) - fresh.startingAt);
      progress(`trial ${trial + 1}: detected in ${detect.at(-1)} ms, join visible in ${join.at(-1)} ms`);
    }
    return { detect, join };
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

const sim = simulated();
const { detect, join } = await real();
const results = {
  failure_detect_p50_ms: percentile(detect, 50),
  failure_detect_p95_ms: percentile(detect, 95),
  join_visible_p50_ms: percentile(join, 50),
  sim_failure_detect_p95_ms_5000_nodes: Math.round(sim),
  trials,
};
const meets_targets =
  results.failure_detect_p50_ms <= targets.failure_detect_p50_ms &&
  results.failure_detect_p95_ms <= targets.failure_detect_p95_ms &&
  results.join_visible_p50_ms <= targets.join_visible_p50_ms &&
  results.sim_failure_detect_p95_ms_5000_nodes <= targets.sim_failure_detect_p95_ms_5000_nodes;
report({ benchmark: 'membership', results, baseline: { heartbeat_ms: 200 }, targets, meets_targets });
