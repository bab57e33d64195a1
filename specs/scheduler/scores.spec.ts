import { expect } from 'chai';
import {
  costScore,
  defaultWeights,
  localityScore,
  reliabilityScore,
  scoreContext,
  scoreNode,
  utilizationScore,
  validateWeights,
  weightedTotal,
} from '../../actors/scheduler/index.ts';
import { InvalidRequestError } from '../../runtime/errors.ts';
import { gi, node, place, request } from './scheduler-fixtures.ts';

describe('scheduler scores', () => {
  it('locality is neutral without preferences, 1 in a preferred zone and 0 elsewhere', () => {
    const a = node('a', { zone: 'zone-a' });
    const b = node('b', { zone: 'zone-b' });
    const none = request();
    expect(localityScore(a, scoreContext([a, b], none))).to.equal(0.5);
    const prefers = request({ constraints: { preferredZones: ['zone-b'] } });
    const context = scoreContext([a, b], prefers);
    expect(localityScore(a, context)).to.equal(0);
    expect(localityScore(b, context)).to.equal(1);
  });

  it('locality rewards zones holding more of the affinity workloads, averaged with zone preference', () => {
    const a1 = node('a1', { zone: 'zone-a' });
    const a2 = node('a2', { zone: 'zone-a' });
    const b1 = node('b1', { zone: 'zone-b' });
    place(a1, 'db-0', 'default/db');
    place(a2, 'db-1', 'default/db');
    place(a2, 'db-2', 'default/db');
    place(b1, 'db-3', 'default/db');
    const r = request({ constraints: { affinity: ['db'] } });
    const context = scoreContext([a1, a2, b1], r);
    expect(localityScore(a1, context)).to.equal(0.75);
    expect(localityScore(b1, context)).to.equal(0.25);
    const both = request({ constraints: { affinity: ['db'], preferredZones: ['zone-b'] } });
    const bothContext = scoreContext([a1, a2, b1], both);
    expect(localityScore(b1, bothContext)).to.equal((1 + 0.25) / 2);
    expect(localityScore(a1, bothContext)).to.equal((0 + 0.75) / 2);
  });

  it('reliability falls with failures', () => {
    expect(reliabilityScore(node('n'))).to.equal(1);
    expect(reliabilityScore(node('n', { failures: 1 }))).to.equal(0.5);
    expect(reliabilityScore(node('n', { failures: 3 }))).to.equal(0.25);
  });

  it('cost prefers cheaper nodes relative to the most expensive, and is 1 when all are free', () => {
    const cheap = node('cheap', { cost: 1 });
    const dear = node('dear', { cost: 4 });
    const { maxCost } = scoreContext([cheap, dear], request());
    expect(costScore(cheap, maxCost)).to.equal(0.75);
    expect(costScore(dear, maxCost)).to.equal(0);
    expect(costScore(node('free'), 0)).to.equal(1);
  });

  it('utilization scores the post-placement fill for binpack and the room left for spread', () => {
    const half = node('half', { cpu: 4000, usedCpu: 1000, memory: 8 * gi, usedMemory: 2 * gi });
    const r = request({ cpu: 1000, memory: 2 * gi });
    expect(utilizationScore(half, r, 'binpack')).to.equal(0.5);
    expect(utilizationScore(half, r, 'spread')).to.equal(0.5);
    const empty = node('empty', { cpu: 4000, memory: 8 * gi });
    expect(utilizationScore(empty, r, 'binpack')).to.equal(0.25);
    expect(utilizationScore(empty, r, 'spread')).to.equal(0.75);
  });

  it('weights the total as the weighted mean of the criteria', () => {
    const scores = { locality: 1, reliability: 0, cost: 0.5, utilization: 0 };
    expect(weightedTotal(scores, defaultWeights)).to.equal(0.375);
    expect(
      weightedTotal(scores, { ...defaultWeights, locality: 2, reliability: 0, cost: 0, utilization: 0 }),
    ).to.equal(1);
    expect(
      weightedTotal(scores, { ...defaultWeights, locality: 0, reliability: 0, cost: 0, utilization: 0 }),
    ).to.equal(0);
    const n = node('n', { failures: 1 });
    const r = request();
    const scored = scoreNode(n, r, defaultWeights, scoreContext([n], r));
    expect(scored.node).to.equal('n');
    expect(scored.total).to.equal(weightedTotal(scored.scores, defaultWeights));
    for (const value of Object.values(scored.scores)) expect(value).to.be.within(0, 1);
  });

  it('refuses negative or non-finite weights', () => {
    expect(() => validateWeights({ ...defaultWeights, cost: -1 })).to.throw(InvalidRequestError);
    expect(() => validateWeights({ ...defaultWeights, locality: Number.NaN })).to.throw(InvalidRequestError);
    expect(() => validateWeights(defaultWeights)).not.to.throw();
  });
});
