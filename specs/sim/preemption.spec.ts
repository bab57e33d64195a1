import { expect } from 'chai';
import { forSeeds } from './for-seeds.ts';
import { gi, type SimNode, WorkloadSim } from './workload-sim.ts';

const SEEDS = 20;

/** Agents of 2 cores / 4 GiB: four 500m replicas each. */
function nodes(count: number): SimNode[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `n${i + 1}`,
    cpuCores: 2,
    memoryBytes: 4 * gi,
    zone: `zone-${'ab'[i % 2]}`,
  }));
}

describe('workload control loop simulation: preemption', () => {
  it('evicts only as many lower-priority replicas as the higher ones need, and reschedules them when capacity returns', () => {
    forSeeds(SEEDS, (seed) => {
      const sim = new WorkloadSim({ seed, nodes: nodes(3), maxDelay: 2, lagChance: 0.35 });
      sim.deploy({ name: 'low', replicas: 12, priority: 0 });
      sim.runUntil('the low-priority service to fill the cluster', () => sim.converged(), 80);
      // Same priority: waits, never preempts.
      sim.deploy({ name: 'peer', replicas: 2, priority: 0 });
      sim.run(20);
      expect(sim.stats.evictions).to.equal(0);
      expect([sim.replica('peer', 0)?.state, sim.replica('peer', 1)?.state]).to.deep.equal([
        'pending',
        'pending',
      ]);
      sim.remove('peer');

      sim.deploy({ name: 'high', replicas: 6, priority: 100 });
      sim.runUntil(
        'the high-priority replicas to run',
        () => [0, 1, 2, 3, 4, 5].every((i) => sim.replica('high', i)?.state === 'running'),
        80,
      );
      const evicted = Array.from({ length: 12 }, (_, i) => i).filter(
        (i) => (sim.replica('low', i)?.lostCount ?? 0) > 0,
      );
      expect(evicted).to.have.length(6);
      expect(sim.stats.evictions).to.equal(6);
      // The cluster was full: each eviction was needed, judged on the state the plan committed on.
      expect(sim.stats.evictionsUnneeded).to.equal(0);
      for (const i of evicted) {
        const record = sim.replica('low', i);
        expect(record?.state).to.equal('pending');
        expect(record?.attempt).to.equal(2);
        expect(record?.reason).to.match(/preempted/);
      }

      // Capacity returns: the evicted slots run again, as their second attempt.
      sim.deploy({ name: 'high', replicas: 0, priority: 100 });
      sim.runUntil('the evicted replicas to run again', () => sim.converged(), 80);
      for (const i of evicted) {
        const record = sim.replica('low', i);
        expect(record?.state).to.equal('running');
        expect([record?.attempt, record?.lostCount]).to.deep.equal([2, 1]);
      }
    });
  });

  it('keeps priorities straight while nodes fail, and runs everything once they are back', () => {
    let evictions = 0;
    forSeeds(SEEDS, (seed) => {
      const sim = new WorkloadSim({ seed, nodes: nodes(4), maxDelay: 2, lagChance: 0.35 });
      sim.deploy({ name: 'bulk', replicas: 6, priority: 0 });
      sim.deploy({ name: 'jobs', kind: 'batch', replicas: 4, priority: 10 });
      sim.deploy({ name: 'mid', replicas: 3, priority: 50 });
      sim.deploy({ name: 'top', replicas: 3, priority: 100 });
      sim.run(120, () => {
        const ids = sim.nodeIds();
        const id = ids[sim.rng.int(ids.length)] as string;
        if (sim.rng.chance(0.08)) {
          const down = ids.filter((n) => sim.statusOf(n) === 'down').length;
          if (sim.statusOf(id) === 'alive' && down < 2) sim.setStatus(id, 'down');
          else if (sim.statusOf(id) === 'down') sim.setStatus(id, 'alive');
        }
      });
      for (const id of sim.nodeIds()) sim.setStatus(id, 'alive');
      sim.runUntil('convergence after the faults stopped', () => sim.converged(), 150);
      evictions += sim.stats.evictions;
    });
    // With half the cluster down, 16 replicas do not fit in 8 places: preemption did happen.
    expect(evictions).to.be.greaterThan(0);
  });
});
