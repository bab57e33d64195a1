import { expect } from 'chai';
import { decide, planPreemption, type SchedulerNode } from '../../actors/scheduler/index.ts';
import { node, place, request } from './scheduler-fixtures.ts';

/** A 4-core node filled to the brim with the given replicas (cpu in millicores). */
function full(
  id: string,
  replicas: { id: string; priority: number; cpu: number }[],
  zone = 'zone-a',
): SchedulerNode {
  const n = node(id, { cpu: 4000, zone });
  for (const r of replicas)
    place(n, r.id, `default/${r.id.split('-')[0]}`, { priority: r.priority, cpu: r.cpu, memory: 0 });
  return n;
}

describe('scheduler preemption', () => {
  it('evicts only replicas of strictly lower priority, and is pending when only equal ones would do', () => {
    const n = full('n1', [
      { id: 'peer-0', priority: 100, cpu: 3000 },
      { id: 'low-0', priority: 10, cpu: 1000 },
    ]);
    const r = request({ cpu: 2000, memory: 0, priority: 100 });
    const decision = decide([n], r);
    expect(decision.type).to.equal('pending');
    if (decision.type === 'pending')
      expect(decision.reason).to.contain('would evicting replicas of priority below 100');
    const higher = decide([n], request({ cpu: 1000, memory: 0, priority: 100 }));
    expect(higher.type).to.equal('preempt');
    if (higher.type !== 'preempt') return;
    expect(higher.evictions.map((e) => e.replicaId)).to.deep.equal(['low-0']);
    expect(higher.evictions.every((e) => e.priority < 100)).to.equal(true);
  });

  it('takes a minimal set: lowest priority first, largest first, and gives back what is not needed', () => {
    const n = full('n1', [
      { id: 'a-small', priority: 0, cpu: 500 },
      { id: 'b-big', priority: 0, cpu: 2000 },
      { id: 'c-mid', priority: 5, cpu: 1000 },
      { id: 'd-rest', priority: 50, cpu: 500 },
    ]);
    const plan = planPreemption(n, request({ cpu: 2000, memory: 0, priority: 10 }));
    expect(plan?.victims.map((v) => v.replicaId)).to.deep.equal(['b-big']);
    // 2500m needed: b-big (0) then a-small (0) suffice; c-mid is not taken.
    const more = planPreemption(n, request({ cpu: 2500, memory: 0, priority: 10 }));
    expect(more?.victims.map((v) => v.replicaId)).to.deep.equal(['b-big', 'a-small']);
    // 3000m needed: both priority-0 replicas are not enough, c-mid is taken, then a-small is given back.
    const most = planPreemption(n, request({ cpu: 3000, memory: 0, priority: 10 }));
    expect(most?.victims.map((v) => v.replicaId)).to.deep.equal(['b-big', 'c-mid']);
    expect(planPreemption(n, request({ cpu: 4000, memory: 0, priority: 10 }))).to.equal(undefined);
  });

  it('chooses the node with the lowest victim priority, then the fewest victims, and explains', () => {
    const mid = full('mid', [{ id: 'mid-0', priority: 50, cpu: 4000 }]);
    const lowMany = full('low-many', [
      { id: 'x-0', priority: 1, cpu: 2000 },
      { id: 'x-1', priority: 1, cpu: 2000 },
    ]);
    const lowOne = full('low-one', [
      { id: 'y-0', priority: 1, cpu: 1000 },
      { id: 'y-1', priority: 1, cpu: 3000 },
    ]);
    const r = request({ replicaId: 'default/api/0', cpu: 3000, memory: 0, priority: 100 });
    const decision = decide([mid, lowMany, lowOne], r);
    expect(decision.type).to.equal('preempt');
    if (decision.type !== 'preempt') return;
    expect(decision.node).to.equal('low-one');
    expect(decision.evictions).to.deep.equal([
      { replicaId: 'y-1', workloadId: 'default/y', node: 'low-one', priority: 1 },
    ]);
    expect(decision.filtered.resources?.count).to.equal(3);
    expect(decision.reason).to.contain('node low-one');
    expect(decision.reason).to.contain('y-1');
    expect(decision.reason).to.contain('frees 3000m CPU');
  });

  it('only preempts on nodes that pass every other filter', () => {
    const wrongZone = full('wrong-zone', [{ id: 'z-0', priority: 0, cpu: 4000 }], 'zone-b');
    const tainted = full('tainted', [{ id: 't-0', priority: 0, cpu: 4000 }]);
    tainted.labels = { 'taint.gpu': '' };
    const r = request({ cpu: 1000, memory: 0, priority: 100, constraints: { zones: ['zone-a'] } });
    const decision = decide([wrongZone, tainted], r);
    expect(decision.type).to.equal('pending');
    if (decision.type === 'pending') expect(decision.reason).to.contain('preemption cannot help');
    for (const n of [wrongZone, tainted]) expect(n.replicas.size).to.equal(1);
  });
});
