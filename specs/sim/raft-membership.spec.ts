import { expect } from 'chai';
import { type NodeId, proposeMembershipChange } from '../../actors/raft/index.ts';
import { forSeeds } from './for-seeds.ts';
import { RaftCluster } from './raft-cluster.ts';

const SEEDS = 30;

/** Adds `id` as a learner, waits until it has caught up, then promotes it (what the member shell does). */
function addVoter(c: RaftCluster, id: NodeId, voters: NodeId[]): NodeId[] {
  c.changeMembership({ type: 'add-learner', id, addresses: [`/ip4/127.0.0.1/tcp/${id.length}`] });
  for (let i = 0; i < 200; i++) {
    const leader = c.ids.find((x) => c.isConnected(x) && c.core(x)?.role === 'leader');
    if (leader !== undefined && c.caughtUp(leader, id)) break;
    c.tickOnce();
  }
  c.changeMembership({ type: 'promote', id });
  const next = [...voters, id];
  c.waitForVoters(next);
  return next;
}

describe('raft simulation: membership changes, ReadIndex, leadership transfer', () => {
  it('a member outside the group never campaigns until a leader adds it', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed, joiners: 2 });
      c.one(1, 3, true);
      c.run(20 * c.electionTicks);
      for (const id of ['j0', 'j1']) {
        expect(c.core(id)?.role).to.equal('follower');
        expect(c.core(id)?.term).to.equal(0);
      }
    });
  });

  it('grows from one member to five, one learner at a time, committing throughout', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 1, seed, joiners: 4, unreliable: seed % 2 === 0 });
      let value = 1;
      c.one(value++, 1, true);
      let voters: NodeId[] = ['n0'];
      for (const id of ['j0', 'j1', 'j2', 'j3']) {
        voters = addVoter(c, id, voters);
        c.one(value++, voters.length, true);
      }
      // Five voters tolerate two failures.
      const leader = c.checkOneLeader();
      const others = voters.filter((id) => id !== leader);
      c.crash(others[0] as NodeId);
      c.crash(others[1] as NodeId);
      c.one(value++, 3, true);
      c.finish();
    });
  });

  it('a learner joining after compaction catches up through InstallSnapshot', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed, joiners: 1, snapshotEvery: 10 });
      for (let v = 1; v <= 35; v++) c.one(v, 3, true);
      addVoter(c, 'j0', ['n0', 'n1', 'n2']);
      expect(c.installs.get('j0') ?? 0).to.be.greaterThan(0);
      c.one(100, 4, true);
      c.finish();
    });
  });

  it('removes a follower, then the leader itself, which steps down once its removal commits', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 5, seed, unreliable: seed % 3 === 0 });
      let value = 1;
      c.one(value++, 5, true);
      let leader = c.checkOneLeader();
      const follower = c.ids.find((id) => id !== leader) as NodeId;
      c.changeMembership({ type: 'remove', id: follower });
      let voters = c.ids.filter((id) => id !== follower);
      c.waitForVoters(voters);
      c.one(value++, 4, true);
      leader = c.checkOneLeader();
      c.changeMembership({ type: 'remove', id: leader });
      voters = voters.filter((id) => id !== leader);
      c.waitForVoters(voters);
      const next = c.checkOneLeader();
      expect(next).to.not.equal(leader);
      expect(voters).to.include(next);
      c.one(value++, 3, true);
      // The removed members never lead again.
      c.run(20 * c.electionTicks);
      expect(c.core(leader)?.role).to.not.equal('leader');
      expect(c.core(follower)?.role).to.not.equal('leader');
      c.finish();
    });
  });

  it('refuses a second membership change while one is uncommitted', () => {
    forSeeds(5, (seed) => {
      const c = new RaftCluster({ n: 3, seed, joiners: 2 });
      c.one(1, 3, true);
      const leader = c.checkOneLeader();
      c.disconnect(c.ids.find((id) => id !== leader && id.startsWith('n')) as NodeId);
      c.disconnect(c.ids.filter((id) => id !== leader && id.startsWith('n'))[1] as NodeId);
      c.changeMembership({ type: 'add-learner', id: 'j0', addresses: [] });
      // Without a quorum the first change cannot commit, so the second is refused.
      const core = c.core(leader);
      if (core === undefined) throw new Error('no leader core');
      expect(core.membershipIndex).to.be.greaterThan(core.commitIndex);
      const second = proposeMembershipChange(core, { type: 'add-learner', id: 'j1', addresses: [] });
      expect(second.type).to.equal('rejected');
      expect(second.type === 'rejected' && second.retryable).to.equal(true);
      const invalid = proposeMembershipChange(core, { type: 'promote', id: 'n0' });
      expect(invalid.type).to.equal('rejected');
    });
  });

  it('ReadIndex: a leader confirms reads with a quorum, at an index at least its commit index', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed, unreliable: seed % 2 === 0 });
      const index = c.one(7, 3, true);
      const leader = c.checkOneLeader();
      expect(c.readIndex(leader, 'r1')).to.equal('accepted');
      for (let i = 0; i < 40 && !c.readsReady.has('r1'); i++) c.tickOnce();
      expect(c.readsReady.get('r1')).to.be.at.least(index);
      // A follower never serves one.
      const follower = c.ids.find((id) => id !== leader) as NodeId;
      expect(c.readIndex(follower, 'r2')).to.equal('not-leader');
    });
  });

  it('ReadIndex: a leader cut off from the majority never confirms a read, even as the majority writes', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 5, seed });
      c.one(1, 5, true);
      const old = c.checkOneLeader();
      const rest = c.ids.filter((id) => id !== old);
      c.partition([old], rest);
      expect(c.readIndex(old, 'stale')).to.equal('accepted');
      c.one(2, 4, true);
      c.run(5);
      // Check-quorum makes it step down; until then it must not have confirmed the read.
      expect(c.readsReady.has('stale')).to.equal(false);
      expect(c.core(old)?.role).to.not.equal('leader');
    });
  });

  it('ReadIndex: a new leader waits until an entry of its own term is committed', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      c.one(1, 3, true);
      const old = c.checkOneLeader();
      c.disconnect(old);
      const next = c.checkOneLeader();
      const core = c.core(next);
      if (core === undefined) throw new Error('no core');
      c.readIndex(next, 'r');
      const ready = c.readsReady.get('r');
      if (ready !== undefined) {
        // Confirmed: its term's entry is committed and the index covers it.
        expect(ready).to.be.at.least(c.core(next)?.commitIndex ?? 0);
      }
      for (let i = 0; i < 40 && !c.readsReady.has('r'); i++) c.tickOnce();
      expect(c.readsReady.get('r')).to.be.at.least(2);
    });
  });

  it('transfers leadership to a chosen voter, catching it up first, refusing proposals meanwhile', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      let value = 1;
      c.one(value++, 3, true);
      const leader = c.checkOneLeader();
      const target = c.ids.find((id) => id !== leader) as NodeId;
      // Let the target lag behind, then ask for the transfer.
      c.disconnect(target);
      for (let k = 0; k < 5; k++) c.one(value++, 2, true);
      c.connect(target);
      expect(c.transfer(leader, target)).to.equal('accepted');
      expect(c.start(leader, 'refused').isLeader).to.equal(false);
      for (let i = 0; i < 10 * c.electionTicks && c.core(target)?.role !== 'leader'; i++) c.tickOnce();
      expect(c.core(target)?.role).to.equal('leader');
      c.one(value++, 3, true);
      c.finish();
    });
  });

  it('gives up a transfer to an unreachable voter after an election timeout and keeps leading', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      c.one(1, 3, true);
      const leader = c.checkOneLeader();
      const target = c.ids.find((id) => id !== leader) as NodeId;
      c.disconnect(target);
      c.transfer(leader, target);
      c.run(2 * c.electionTicks);
      expect(c.core(leader)?.role).to.equal('leader');
      expect(c.core(leader)?.transferee).to.equal(undefined);
      c.one(2, 2, true);
    });
  });
});
