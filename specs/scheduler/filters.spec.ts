import { expect } from 'chai';
import {
  compileRequest,
  filterNames,
  filters,
  firstFailingFilter,
  type SchedulerNode,
  taintsOf,
  zoneMinimum,
} from '../../actors/scheduler/index.ts';
import { gi, mi, node, place, request } from './scheduler-fixtures.ts';

const kept = (nodes: SchedulerNode[], pass: (n: SchedulerNode) => string | undefined): string[] =>
  nodes.filter((n) => pass(n) === undefined).map((n) => n.id);

describe('scheduler filters', () => {
  it('node-status keeps only alive agents', () => {
    const nodes = [
      node('alive'),
      node('suspect', { status: 'suspect' }),
      node('down', { status: 'down' }),
      node('left', { status: 'left' }),
      node('coordinator', { isAgent: false }),
    ];
    const r = request();
    expect(kept(nodes, (n) => filters['node-status'](n, r))).to.deep.equal(['alive']);
    expect(filters['node-status'](nodes[1] as SchedulerNode, r)).to.contain('suspect');
  });

  it('taints remove nodes unless every taint is tolerated', () => {
    const nodes = [
      node('plain', { labels: { disk: 'ssd' } }),
      node('gpu', { labels: { 'taint.gpu': 'true' } }),
      node('gpu-maint', { labels: { 'taint.gpu': 'true', 'taint.maintenance': '' } }),
    ];
    expect(kept(nodes, (n) => filters.taints(n, request()))).to.deep.equal(['plain']);
    const gpu = request({ constraints: { tolerations: ['gpu'] } });
    expect(kept(nodes, (n) => filters.taints(n, gpu))).to.deep.equal(['plain', 'gpu']);
    expect(filters.taints(nodes[2] as SchedulerNode, gpu)).to.contain('maintenance');
    const both = request({ constraints: { tolerations: ['gpu', 'maintenance'] } });
    expect(kept(nodes, (n) => filters.taints(n, both))).to.deep.equal(['plain', 'gpu', 'gpu-maint']);
    // The same answers from the taints the view derived from the labels.
    for (const n of nodes) n.taints = taintsOf(n.labels);
    expect(nodes.map((n) => n.taints)).to.deep.equal([[], ['gpu'], ['gpu', 'maintenance']]);
    expect(kept(nodes, (n) => filters.taints(n, gpu))).to.deep.equal(['plain', 'gpu']);
    expect(filters.taints(nodes[2] as SchedulerNode, gpu)).to.contain('maintenance');
  });

  it('node-labels keeps nodes with every required label value', () => {
    const nodes = [
      node('ssd-amd', { labels: { disk: 'ssd', arch: 'amd64' } }),
      node('ssd-arm', { labels: { disk: 'ssd', arch: 'arm64' } }),
      node('hdd', { labels: { disk: 'hdd', arch: 'amd64' } }),
      node('none'),
    ];
    const r = request({ constraints: { nodeLabels: { disk: 'ssd', arch: 'amd64' } } });
    expect(kept(nodes, (n) => filters['node-labels'](n, r))).to.deep.equal(['ssd-amd']);
    expect(kept(nodes, (n) => filters['node-labels'](n, request()))).to.have.length(4);
  });

  it('zones keeps nodes in a listed zone, and any node when none is listed', () => {
    const nodes = [
      node('a', { zone: 'zone-a' }),
      node('b', { zone: 'zone-b' }),
      node('x', { zone: undefined }),
    ];
    const r = request({ constraints: { zones: ['zone-b', 'zone-c'] } });
    expect(kept(nodes, (n) => filters.zones(n, r))).to.deep.equal(['b']);
    expect(kept(nodes, (n) => filters.zones(n, request()))).to.deep.equal(['a', 'b', 'x']);
  });

  it('resources keeps nodes whose free cpu and memory cover the request, and names the numbers', () => {
    const nodes = [
      node('roomy', { cpu: 4000, memory: 8 * gi }),
      node('exact', { cpu: 2000, usedCpu: 0, memory: 1 * gi, usedMemory: 512 * mi }),
      node('cpu-short', { cpu: 4000, usedCpu: 3500 }),
      node('memory-short', { memory: 8 * gi, usedMemory: 7.75 * gi }),
    ];
    const r = request({ cpu: 2000, memory: 512 * mi });
    expect(kept(nodes, (n) => filters.resources(n, r))).to.deep.equal(['roomy', 'exact']);
    expect(filters.resources(nodes[2] as SchedulerNode, r)).to.equal(
      'node cpu-short: needs 2000m CPU, 500m free',
    );
    expect(filters.resources(nodes[3] as SchedulerNode, r)).to.contain('needs 512Mi memory, 256Mi free');
  });

  it('affinity keeps nodes running each named workload of the same namespace', () => {
    const both = node('both');
    place(both, 'db-0', 'default/db');
    place(both, 'cache-0', 'default/cache');
    const dbOnly = node('db-only');
    place(dbOnly, 'db-1', 'default/db');
    const otherNamespace = node('other-ns');
    place(otherNamespace, 'db-2', 'prod/db');
    place(otherNamespace, 'cache-1', 'prod/cache');
    const nodes = [both, dbOnly, otherNamespace, node('empty')];
    const r = request({ constraints: { affinity: ['db', 'cache'] } });
    expect(kept(nodes, (n) => filters.affinity(n, r))).to.deep.equal(['both']);
  });

  it('anti-affinity removes nodes running any named workload, including the workload itself', () => {
    const self = node('self');
    place(self, 'web-1', 'default/web');
    const db = node('db');
    place(db, 'db-0', 'default/db');
    const nodes = [self, db, node('empty')];
    const r = request({ workloadId: 'default/web', constraints: { antiAffinity: ['web', 'db'] } });
    expect(kept(nodes, (n) => filters['anti-affinity'](n, r))).to.deep.equal(['empty']);
  });

  it('zone-spread keeps only zones at the minimum count among zones with a feasible node', () => {
    const nodes = [
      node('a', { zone: 'zone-a' }),
      node('b', { zone: 'zone-b' }),
      node('none', { zone: undefined }),
    ];
    const counts = new Map([
      ['zone-a', 2],
      ['zone-b', 1],
      ['', 1],
      ['zone-c', 0],
    ]);
    const r = request({ zoneCounts: counts, constraints: { spreadAcrossZones: true } });
    // zone-c has no feasible node, so it does not lower the minimum.
    const minimum = zoneMinimum(nodes, r);
    expect(minimum).to.equal(1);
    expect(kept(nodes, (n) => filters['zone-spread'](n, r, { zoneMinimum: minimum }))).to.deep.equal([
      'b',
      'none',
    ]);
    // Without spreadAcrossZones the filter keeps everything.
    const free = request({ zoneCounts: counts });
    expect(kept(nodes, (n) => filters['zone-spread'](n, free, { zoneMinimum: 0 }))).to.have.length(3);
  });

  it('firstFailingFilter reports the first filter in order that removes the node', () => {
    const r = request({ cpu: 8000, constraints: { zones: ['zone-b'] } });
    const c = compileRequest(r);
    // Fails zones and resources: zones comes first.
    expect(filterNames[firstFailingFilter(node('a', { zone: 'zone-a' }), c)]).to.equal('zones');
    expect(filterNames[firstFailingFilter(node('b', { zone: 'zone-b' }), c)]).to.equal('resources');
    expect(filterNames[firstFailingFilter(node('d', { status: 'down', zone: 'zone-a' }), c)]).to.equal(
      'node-status',
    );
    expect(firstFailingFilter(node('fits', { zone: 'zone-b', cpu: 8000 }), c)).to.equal(-1);
  });
});
