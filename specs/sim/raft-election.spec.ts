import { expect } from 'chai';
import type { NodeId } from '../../actors/raft/index.ts';
import { forSeeds } from './for-seeds.ts';
import { RaftCluster } from './raft-cluster.ts';

const SEEDS = 50;

describe('raft simulation: leader election (lab 2A)', () => {
  it('InitialElection: elects one leader and keeps its term when nothing fails', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      c.checkOneLeader();
      // Let the new leader's first heartbeats reach everyone (the lab sleeps before checking).
      c.run(4);
      const term1 = c.checkTerms();
      expect(term1).to.be.greaterThan(0);
      c.run(2 * c.electionTicks);
      const term2 = c.checkTerms();
      expect(term2).to.equal(term1);
      c.checkOneLeader();
    });
  });

  it('ReElection: elects a new leader after the old one is disconnected, and none without a quorum', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      const leader1 = c.checkOneLeader();
      c.disconnect(leader1);
      const leader2 = c.checkOneLeader();
      expect(leader2).to.not.equal(leader1);
      c.connect(leader1);
      const leader3 = c.checkOneLeader();
      const other = c.ids[(c.ids.indexOf(leader3) + 1) % 3] as NodeId;
      c.disconnect(leader3);
      c.disconnect(other);
      c.run(4 * c.electionTicks);
      c.checkNoLeader();
      c.connect(other);
      c.checkOneLeader();
      c.connect(leader3);
      c.checkOneLeader();
    });
  });

  it('ManyElections: keeps electing a leader while random minorities come and go', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 7, seed });
      c.checkOneLeader();
      for (let iter = 0; iter < 10; iter++) {
        const down = [c.randomInt(7), c.randomInt(7), c.randomInt(7)].map((i) => c.ids[i] as NodeId);
        for (const id of down) c.disconnect(id);
        c.checkOneLeader();
        for (const id of down) c.connect(id);
      }
      c.checkOneLeader();
    });
  });
});
