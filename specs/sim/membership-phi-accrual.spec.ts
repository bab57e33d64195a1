import { expect } from 'chai';
import { PhiAccrualDetector, phiOf } from '../../actors/membership/phi-accrual.ts';

describe('phi-accrual detector', () => {
  it('gives phi log10(2) at the mean and grows through the tail (exact values of the logistic approximation)', () => {
    expect(phiOf(500, 500, 50)).to.equal(Math.log10(2));
    expect(phiOf(600, 500, 50)).to.be.closeTo(1.642828, 1e-6);
    expect(phiOf(760, 500, 50)).to.be.closeTo(7.917043, 1e-6);
    expect(phiOf(800, 500, 50)).to.be.closeTo(10.782601, 1e-6);
    expect(phiOf(5000, 500, 50)).to.equal(Number.POSITIVE_INFINITY);
  });

  it('reports 0 before the first heartbeat', () => {
    expect(new PhiAccrualDetector().phi(10_000)).to.equal(0);
  });

  it('seeds the window with the first-heartbeat estimate ± a quarter', () => {
    const detector = new PhiAccrualDetector({ firstHeartbeatEstimateMs: 200 });
    detector.heartbeat(0);
    expect(detector.meanMs).to.equal(200);
    expect(detector.stdDeviationMs).to.equal(50);
    // mean 200 + pause 300 = 500, std 50: phi(800) is the value at 6 standard deviations.
    expect(detector.phi(800)).to.be.closeTo(10.782601, 1e-6);
  });

  it('learns a steady rhythm and crosses phi 8 about 762 ms after the last heartbeat at 200 ms with the defaults', () => {
    const detector = new PhiAccrualDetector();
    for (let t = 0; t <= 2000; t += 200) detector.heartbeat(t);
    expect(detector.sampleCount).to.equal(12);
    expect(detector.meanMs).to.equal(200);
    expect(detector.stdDeviationMs).to.be.closeTo(20.412415, 1e-6);
    expect(detector.phi(2000 + 750)).to.be.below(8);
    expect(detector.phi(2000 + 765)).to.be.above(8);
  });

  it('bounds the window: old intervals are dropped', () => {
    const detector = new PhiAccrualDetector({ maxSampleSize: 4 });
    for (let t = 0; t <= 10_000; t += 1000) detector.heartbeat(t);
    expect(detector.sampleCount).to.equal(4);
    expect(detector.meanMs).to.equal(1000);
    expect(detector.stdDeviationMs).to.equal(0);
  });

  it('ignores heartbeats that arrive out of order', () => {
    const detector = new PhiAccrualDetector();
    detector.heartbeat(1000);
    detector.heartbeat(900);
    expect(detector.lastHeartbeatAt).to.equal(1000);
    expect(detector.sampleCount).to.equal(2);
  });

  it('refuses options that make no sense', () => {
    expect(() => new PhiAccrualDetector({ maxSampleSize: 1 })).to.throw(RangeError);
    expect(() => new PhiAccrualDetector({ minStdDeviationMs: 0 })).to.throw(RangeError);
    expect(() => new PhiAccrualDetector({ acceptableHeartbeatPauseMs: -1 })).to.throw(RangeError);
  });
});
