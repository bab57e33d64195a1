import { expect } from 'chai';
import { FailureDetectorCore, type FailureDetectorWrite } from '../../actors/membership/failure-detector.ts';
import { forSeeds } from './for-seeds.ts';
import { percentile, runMembershipSim } from './membership-sim.ts';

/** A core that is leader for `ids` (all alive, modRevision 1) from t = 0. */
function leaderCore(ids: string[], graceMs = 1000): FailureDetectorCore {
  const core = new FailureDetectorCore({ self: 'leader', leaderGraceMs: graceMs });
  for (const id of ['leader', ...ids])
    core.step({ type: 'record', id, status: 'alive', modRevision: 1, at: 0 });
  core.step({ type: 'became-leader', at: 0 });
  return core;
}

/** Feeds the write's outcome back as the watch would. */
function commit(core: FailureDetectorCore, write: FailureDetectorWrite, revision: number, at: number): void {
  core.step({ type: 'write-settled', id: write.id, ok: true, at });
  core.step({ type: 'record', id: write.id, status: write.status, modRevision: revision, at });
}

describe('failure detector core', () => {
  it('judges nobody during the grace period, then counts silent members as just heard from', () => {
    const core = leaderCore(['a'], 1000);
    for (let t = 50; t < 1000; t += 50) expect(core.step({ type: 'tick', at: t })).to.deep.equal([]);
    expect(core.step({ type: 'tick', at: 1000 })).to.deep.equal([]);
    // Heard from "at" 1000: suspect once phi crosses 8, about 762 ms later.
    expect(core.step({ type: 'tick', at: 1700 })).to.deep.equal([]);
    const writes = core.step({ type: 'tick', at: 1800 });
    expect(writes).to.deep.equal([
      { type: 'write', id: 'a', expectedModRevision: 1, status: 'suspect', reason: 'phi' },
    ]);
  });

  it('marks suspect, then down after downAfterMs, one write in flight at a time, with a compare on modRevision', () => {
    const core = leaderCore(['a'], 0);
    for (let t = 0; t <= 2000; t += 200) core.step({ type: 'heartbeat', from: 'a', at: t });
    const [suspect] = core.step({ type: 'tick', at: 2800 });
    expect(suspect?.status).to.equal('suspect');
    expect(core.step({ type: 'tick', at: 2850 })).to.deep.equal([]);
    commit(core, suspect as FailureDetectorWrite, 7, 2805);
    expect(core.step({ type: 'tick', at: 3150 })).to.deep.equal([]);
    expect(core.step({ type: 'tick', at: 3200 })).to.deep.equal([
      { type: 'write', id: 'a', expectedModRevision: 7, status: 'down', reason: 'down-after' },
    ]);
  });

  it('marks a suspect or down member alive on its next heartbeat', () => {
    const core = leaderCore(['a'], 0);
    core.step({ type: 'record', id: 'a', status: 'down', modRevision: 5, at: 10 });
    expect(core.step({ type: 'heartbeat', from: 'a', at: 20 })).to.deep.equal([
      { type: 'write', id: 'a', expectedModRevision: 5, status: 'alive', reason: 'heartbeat' },
    ]);
  });

  it('never judges left members, nor itself, and writes itself alive if an old leader marked it down', () => {
    const core = leaderCore(['a'], 0);
    core.step({ type: 'record', id: 'a', status: 'left', modRevision: 2, at: 0 });
    core.step({ type: 'record', id: 'leader', status: 'down', modRevision: 3, at: 0 });
    const writes = core.step({ type: 'tick', at: 60_000 });
    expect(writes).to.deep.equal([
      { type: 'write', id: 'leader', expectedModRevision: 3, status: 'alive', reason: 'self' },
    ]);
    expect(core.step({ type: 'heartbeat', from: 'a', at: 60_001 })).to.deep.equal([]);
  });

  it('does nothing while not leader, and forgets a write that never settled after writeTimeoutMs', () => {
    const follower = new FailureDetectorCore({ self: 'f' });
    follower.step({ type: 'record', id: 'a', status: 'alive', modRevision: 1, at: 0 });
    expect(follower.step({ type: 'tick', at: 100_000 })).to.deep.equal([]);
    const core = leaderCore(['a'], 0);
    core.step({ type: 'heartbeat', from: 'a', at: 0 });
    expect(core.step({ type: 'tick', at: 1000 })).to.have.length(1);
    expect(core.step({ type: 'tick', at: 3000 })).to.deep.equal([]);
    expect(core.step({ type: 'tick', at: 6000 })).to.have.length(1);
  });

  it('writes reported resources at most every resourcesEveryMs', () => {
    const core = new FailureDetectorCore({ self: 'l', leaderGraceMs: 0, resourcesEveryMs: 1000 });
    core.step({ type: 'record', id: 'a', status: 'alive', modRevision: 1, at: 0 });
    core.step({ type: 'became-leader', at: 0 });
    const resources = {
      cpuCores: 2,
      cpuLoad1m: 0.5,
      memoryBytes: 8,
      memoryFreeBytes: 4,
      diskBytes: 10,
      diskFreeBytes: 5,
    };
    core.step({ type: 'heartbeat', from: 'a', at: 100, resources });
    expect(core.step({ type: 'tick', at: 200 })).to.deep.equal([]);
    core.step({ type: 'heartbeat', from: 'a', at: 1000, resources });
    expect(core.step({ type: 'tick', at: 1050 })).to.deep.equal([
      { type: 'write', id: 'a', expectedModRevision: 1, status: 'alive', resources, reason: 'resources' },
    ]);
  });
});

describe('failure detection in the deterministic simulation', () => {
  it('makes no false downs under jitter, losses and bounded pauses, and detects kills within 1.5 s', () => {
    forSeeds(5, (seed) => {
      const kills = Array.from({ length: 10 }, (_, k) => ({ at: 5000 + k * 3000, member: 10 + k }));
      const pauses = Array.from({ length: 20 }, (_, k) => ({ at: 3000 + k * 1500, member: 30 + k, ms: 350 }));
      const result = runMembershipSim({
        members: 60,
        seed,
        durationMs: 40_000,
        kills,
        pauses,
        lossRate: 0.05,
        jitterMs: 60,
      });
      expect(result.falseDowns).to.deep.equal([]);
      const latencies = result.detections.map(
        (d) => (d.visibleDownAt ?? Number.POSITIVE_INFINITY) - d.killedAt,
      );
      expect(latencies).to.have.length(10);
      for (const latency of latencies) expect(latency).to.be.within(700, 1500);
    });
  });

  it('makes no false downs across leader changes and still detects the old leader and killed members', () => {
    forSeeds(5, (seed) => {
      const kills = [
        { at: 9900, member: 20 },
        { at: 12_000, member: 21 },
      ];
      const result = runMembershipSim({
        members: 60,
        seed,
        durationMs: 30_000,
        kills,
        leaderCrashes: [10_000],
      });
      expect(result.leaderChanges).to.equal(2);
      expect(result.falseDowns).to.deep.equal([]);
      expect(result.detections).to.have.length(3);
      for (const detection of result.detections) {
        // Election (≤ 1.2 s) + grace (2 s) + suspicion and down (≈ 1.2 s) at worst.
        expect((detection.visibleDownAt ?? Number.POSITIVE_INFINITY) - detection.killedAt).to.be.below(4600);
      }
    });
  });

  it('detects kills among 5,000 members within the benchmark target, in seconds of real time', () => {
    const kills = Array.from({ length: 20 }, (_, k) => ({ at: 5000 + k * 2000, member: 100 + k * 211 }));
    const started = performance.now();
    const result = runMembershipSim({ members: 5000, seed: 7, durationMs: 50_000, kills });
    expect(performance.now() - started).to.be.below(20_000);
    expect(result.falseDowns).to.deep.equal([]);
    const latencies = result.detections.map(
      (d) => (d.visibleDownAt ?? Number.POSITIVE_INFINITY) - d.killedAt,
    );
    expect(percentile(latencies, 95)).to.be.below(5000);
  });
});
