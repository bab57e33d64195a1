import { expect } from 'chai';
import type { NodeId } from '../../actors/raft/index.ts';
import { forSeeds } from './for-seeds.ts';
import { RaftCluster } from './raft-cluster.ts';

const SEEDS = 30;
/** The lab snapshots every 10 applied entries (SnapshotInterval); a small interval compacts often. */
const SNAPSHOT_EVERY = 10;

function restart(c: RaftCluster, id: NodeId): void {
  c.crash(id);
  c.restart(id);
}

/**
 * The lab's snapcommon(): a follower falls behind (cut off, or crashed) while the rest commit
 * past several snapshots, so that it can only catch up through InstallSnapshot.
 */
function snapshotInstall(
  seed: number,
  options: { disconnect: boolean; crash: boolean; unreliable: boolean },
) {
  const c = new RaftCluster({ n: 3, seed, snapshotEvery: SNAPSHOT_EVERY, unreliable: options.unreliable });
  let value = 1;
  c.one(value++, 3, true);
  let leader = c.checkOneLeader();
  for (let i = 0; i < 8; i++) {
    let victim = c.ids[(c.ids.indexOf(leader) + 1) % 3] as NodeId;
    let sender = leader;
    if (i % 3 === 1) {
      sender = victim;
      victim = leader;
    }
    if (options.disconnect) c.disconnect(victim);
    if (options.crash) c.crash(victim);
    // Enough entries for the others to snapshot past the victim's log.
    for (let k = 0; k < SNAPSHOT_EVERY + 1; k++) c.start(sender, value++);
    c.one(value++, 2, true);
    if (options.disconnect) c.connect(victim);
    if (options.crash) {
      c.restart(victim);
      c.connect(victim);
    }
    c.one(value++, 3, true);
    leader = c.checkOneLeader();
  }
  c.finish();
  return c;
}

describe('raft simulation: snapshots and log compaction (lab 2D)', () => {
  it('SnapshotBasic: members snapshot as they apply, compact their logs, and still agree', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed, snapshotEvery: SNAPSHOT_EVERY });
      for (let i = 1; i <= 5 * SNAPSHOT_EVERY; i++) c.one(i, 3, true);
      for (const id of c.ids) {
        const core = c.core(id);
        expect(core?.log.snapshotIndex, id).to.be.greaterThan(3 * SNAPSHOT_EVERY);
        // The log keeps only what was applied since the last snapshot (plus anything uncommitted).
        expect(core?.log.length, id).to.be.lessThan(2 * SNAPSHOT_EVERY + 2);
      }
      c.finish();
    });
  });

  it('SnapshotInstall: a follower cut off past the compacted log catches up by InstallSnapshot', () => {
    forSeeds(SEEDS, (seed) => {
      const c = snapshotInstall(seed, { disconnect: true, crash: false, unreliable: false });
      expect([...c.installs.values()].reduce((a, b) => a + b, 0)).to.be.greaterThan(0);
    });
  });

  it('SnapshotInstallUnreliable: the same over a network that drops, delays and reorders', () => {
    forSeeds(SEEDS, (seed) => {
      snapshotInstall(seed, { disconnect: true, crash: false, unreliable: true });
    });
  });

  it('SnapshotInstallCrash: a crashed follower restarts from its own snapshot and installs the leader’s', () => {
    forSeeds(SEEDS, (seed) => {
      const c = snapshotInstall(seed, { disconnect: false, crash: true, unreliable: false });
      expect([...c.installs.values()].reduce((a, b) => a + b, 0)).to.be.greaterThan(0);
    });
  });

  it('SnapshotInstallUnCrash: crashes over an unreliable network', () => {
    forSeeds(SEEDS, (seed) => {
      snapshotInstall(seed, { disconnect: false, crash: true, unreliable: true });
    });
  });

  it('SnapshotAllCrash: every member crashes repeatedly; committed entries and indexes survive', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed, snapshotEvery: SNAPSHOT_EVERY });
      let value = 1;
      c.one(value++, 3, true);
      for (let i = 0; i < 5; i++) {
        for (let k = 0; k < SNAPSHOT_EVERY + 1; k++) c.one(value++, 3, true);
        const before = c.one(value++, 3, true);
        for (const id of c.ids) restart(c, id);
        const after = c.one(value++, 3, true);
        expect(after, `seed ${seed}`).to.be.greaterThan(before);
      }
      c.finish();
    });
  });

  it('SnapshotInit: a member restarted from a snapshot only (empty log after it) rebuilds its state', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed, snapshotEvery: SNAPSHOT_EVERY });
      let value = 1;
      for (let k = 0; k < SNAPSHOT_EVERY + 1; k++) c.one(value++, 3, true);
      for (const id of c.ids) c.snapshot(id);
      for (const id of c.ids) restart(c, id);
      c.one(value++, 3, true);
      for (const id of c.ids) restart(c, id);
      c.one(value++, 3, true);
      c.finish();
    });
  });
});
