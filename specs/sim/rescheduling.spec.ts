import { expect } from 'chai';
import { forSeeds } from './for-seeds.ts';
import { gi, type SimNode, WorkloadSim } from './workload-sim.ts';

const SEEDS = 20;
const FAULT_TICKS = 150;
const SETTLE_TICKS = 150;

/** Five agents of 2 cores / 4 GiB (four 500m replicas each) in three zones. */
function nodes(): SimNode[] {
  return ['n1', 'n2', 'n3', 'n4', 'n5'].map((id, i) => ({
    id,
    cpuCores: 2,
    memoryBytes: 4 * gi,
    zone: `zone-${'abc'[i % 3]}`,
  }));
}

/**
 * Services, batch tasks and spec changes while nodes go down and come back at random, and the
 * three parts of the control loop see the store late and talk through delayed, reordered
 * messages. The sim checks capacity, placement on alive nodes, finished batch slots, attempts
 * that never move and view accounting after every step; here, once the faults stop, everything
 * must converge within a bounded number of ticks.
 */
function churn(seed: number): WorkloadSim {
  const sim = new WorkloadSim({ seed, nodes: nodes(), shards: 2, maxDelay: 2, lagChance: 0.35 });
  sim.deploy({ name: 'web', replicas: 4, priority: 10 });
  sim.deploy({ name: 'api', replicas: 3, priority: 10 });
  sim.deploy({ name: 'jobs', kind: 'batch', replicas: 5 });
  let env = 0;
  sim.run(FAULT_TICKS, () => {
    const roll = sim.rng.next();
    const ids = sim.nodeIds();
    const id = ids[sim.rng.int(ids.length)] as string;
    const down = ids.filter((n) => sim.statusOf(n) === 'down').length;
    if (roll < 0.06) {
      if (sim.statusOf(id) === 'alive' && down < 2) sim.setStatus(id, 'down');
      else if (sim.statusOf(id) === 'down') sim.setStatus(id, 'alive');
    } else if (roll < 0.08) sim.deploy({ name: 'web', replicas: 2 + sim.rng.int(5), priority: 10 });
    else if (roll < 0.095) sim.deploy({ name: 'api', replicas: 3, priority: 10, env: { V: String(++env) } });
    else if (roll < 0.105) sim.deploy({ name: 'tmp', replicas: 1 + sim.rng.int(2) });
    else if (roll < 0.11) sim.remove('tmp');
    else if (roll < 0.115) sim.removeWorkloadOnly('tmp');
  });
  for (const id of sim.nodeIds()) sim.setStatus(id, 'alive');
  sim.runUntil('convergence after the faults stopped', () => sim.converged(), SETTLE_TICKS);
  return sim;
}

describe('workload control loop simulation: rescheduling', () => {
  it('keeps every invariant while nodes fail, and converges once they are back', () => {
    const totals = { downs: 0, lost: 0, plans: 0, refused: 0, evictions: 0, unneeded: 0 };
    forSeeds(SEEDS, (seed) => {
      const sim = churn(seed);
      totals.downs += sim.stats.nodeDowns;
      totals.lost += sim.stats.lostMarked;
      totals.plans += sim.stats.plansCommitted;
      totals.refused += sim.stats.plansRefused;
      totals.evictions += sim.stats.evictions;
      totals.unneeded += sim.stats.evictionsUnneeded;
    });
    // The faults did happen, and replicas were lost and placed again.
    expect(totals.downs).to.be.greaterThan(SEEDS);
    expect(totals.lost).to.be.greaterThan(0);
    expect(totals.refused).to.be.greaterThan(0);
  });

  it('never redoes a batch slot that succeeded, even when its node goes down', () => {
    forSeeds(SEEDS, (seed) => {
      const sim = new WorkloadSim({ seed, nodes: nodes(), maxDelay: 1, lagChance: 0.2, batchTicks: 3 });
      sim.deploy({ name: 'jobs', kind: 'batch', replicas: 6 });
      sim.runUntil('every task to succeed', () => sim.converged(), 60);
      const before = [0, 1, 2, 3, 4, 5].map((i) => sim.replica('jobs', i));
      for (const id of sim.nodeIds()) sim.setStatus(id, 'down');
      sim.run(10);
      for (const id of sim.nodeIds()) sim.setStatus(id, 'alive');
      sim.run(10);
      const after = [0, 1, 2, 3, 4, 5].map((i) => sim.replica('jobs', i));
      expect(after).to.deep.equal(before);
    });
  });
});
