import { expect } from 'chai';
import { checkPlan, type Plan, type SchedulerNode } from '../../actors/scheduler/index.ts';
import { node, place, request } from './scheduler-fixtures.ts';

function snapshot(nodes: SchedulerNode[]): string {
  return JSON.stringify(nodes.map((n) => [n.id, n.allocated, [...n.workloads], [...n.replicas.keys()]]));
}

describe('scheduler plan check', () => {
  it('applies a plan whose placements all fit', () => {
    const nodes = [node('a', { cpu: 2000 }), node('b', { cpu: 2000 })];
    const requests = [
      request({ replicaId: 'default/web/0', cpu: 1000 }),
      request({ replicaId: 'default/web/1', cpu: 1000 }),
      request({ replicaId: 'default/web/2', cpu: 2000 }),
    ];
    const plan: Plan = {
      planId: 'p1',
      placements: [
        { replicaId: 'default/web/0', node: 'a' },
        { replicaId: 'default/web/1', node: 'a' },
        { replicaId: 'default/web/2', node: 'b' },
      ],
      evictions: [],
    };
    expect(checkPlan(nodes, plan, requests)).to.deep.equal({ ok: true });
    expect(nodes.map((n) => n.allocated.cpuMillicores)).to.deep.equal([2000, 2000]);
    expect(nodes[0]?.workloads.get('default/web')).to.equal(2);
    expect([...(nodes[1] as SchedulerNode).replicas.keys()]).to.deep.equal(['default/web/2']);
  });

  it('refuses a plan that no longer fits and applies none of it', () => {
    const a = node('a', { cpu: 2000 });
    const b = node('b', { cpu: 2000 });
    // Since the shard decided, something else took most of b.
    place(b, 'other/0', 'default/other', { cpu: 1500 });
    const down = node('c', { status: 'down' });
    const nodes = [a, b, down];
    const before = snapshot(nodes);
    const plan: Plan = {
      planId: 'p2',
      placements: [
        { replicaId: 'default/web/0', node: 'a' },
        { replicaId: 'default/web/1', node: 'b' },
        { replicaId: 'default/web/2', node: 'c' },
      ],
      evictions: [],
    };
    const requests = [0, 1, 2].map((i) => request({ replicaId: `default/web/${i}`, cpu: 1000 }));
    const result = checkPlan(new Map(nodes.map((n) => [n.id, n])), plan, requests);
    expect(result.ok).to.equal(false);
    if (result.ok) return;
    expect(result.conflicts.map((c) => [c.replicaId, c.node])).to.deep.equal([
      ['default/web/1', 'b'],
      ['default/web/2', 'c'],
    ]);
    expect(result.conflicts[0]?.reason).to.contain('needs 1000m CPU, 500m free');
    expect(snapshot(nodes)).to.equal(before);
  });

  it('counts placements of the same plan against each other', () => {
    const a = node('a', { cpu: 1500 });
    const requests = [0, 1].map((i) => request({ replicaId: `default/web/${i}`, cpu: 1000 }));
    const plan: Plan = {
      planId: 'p3',
      placements: requests.map((r) => ({ replicaId: r.replicaId, node: 'a' })),
      evictions: [],
    };
    const result = checkPlan([a], plan, requests);
    expect(result.ok).to.equal(false);
    expect(a.replicas.size).to.equal(0);
  });

  it('applies the plan’s evictions first, and refuses evicting equal priority or a vanished replica', () => {
    const a = node('a', { cpu: 2000 });
    place(a, 'low/0', 'default/low', { priority: 0, cpu: 2000 });
    const r = request({ replicaId: 'default/web/0', cpu: 1500, priority: 100 });
    const eviction = { replicaId: 'low/0', workloadId: 'default/low', node: 'a', priority: 0 };
    const plan: Plan = {
      planId: 'p4',
      placements: [{ replicaId: r.replicaId, node: 'a' }],
      evictions: [eviction],
    };

    const equal = request({ replicaId: 'default/web/0', cpu: 1500, priority: 0 });
    const refused = checkPlan([a], plan, [equal]);
    expect(refused.ok).to.equal(false);
    expect(a.replicas.has('low/0')).to.equal(true);

    const gone = checkPlan([a], { ...plan, evictions: [{ ...eviction, replicaId: 'low/9' }] }, [r]);
    expect(gone.ok).to.equal(false);
    if (!gone.ok) expect(gone.conflicts.map((c) => c.replicaId)).to.deep.equal(['low/9', 'default/web/0']);

    expect(checkPlan([a], plan, [r])).to.deep.equal({ ok: true });
    expect([...a.replicas.keys()]).to.deep.equal(['default/web/0']);
    expect(a.allocated.cpuMillicores).to.equal(1500);
    expect(a.workloads.has('default/low')).to.equal(false);
  });
});
