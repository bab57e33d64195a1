import { expect } from 'chai';
import type { NodeId } from '../../actors/raft/index.ts';
import { forSeeds } from './for-seeds.ts';
import { RaftCluster } from './raft-cluster.ts';

const SEEDS = 50;
const at = (c: RaftCluster, i: number): NodeId =>
  c.ids[((i % c.ids.length) + c.ids.length) % c.ids.length] as NodeId;

describe('raft simulation: log agreement (lab 2B)', () => {
  it('BasicAgree: commits commands at increasing indexes on every member', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 5, seed });
      let previous = 0;
      for (let k = 1; k <= 3; k++) {
        expect(c.nCommitted(previous + 2).count, 'committed before start').to.equal(0);
        const index = c.one(k * 100, 5, false);
        expect(index).to.be.greaterThan(previous);
        previous = index;
      }
      c.finish();
    });
  });

  it('FailAgree: agrees despite a disconnected follower, which catches up on return', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      c.one(101, 3, false);
      const leader = c.checkOneLeader();
      const follower = at(c, c.ids.indexOf(leader) + 1);
      c.disconnect(follower);
      c.one(102, 2, false);
      c.one(103, 2, false);
      c.run(c.electionTicks);
      c.one(104, 2, false);
      c.one(105, 2, false);
      c.connect(follower);
      c.one(106, 3, true);
      c.run(c.electionTicks);
      c.one(107, 3, true);
      c.finish();
    });
  });

  it('FailNoAgree: commits nothing without a quorum, and recovers when the quorum returns', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 5, seed });
      c.one(10, 5, false);
      const leader = c.checkOneLeader();
      const i = c.ids.indexOf(leader);
      for (const k of [1, 2, 3]) c.disconnect(at(c, i + k));
      const r = c.start(leader, 20);
      expect(r.isLeader).to.equal(true);
      c.run(2 * c.electionTicks);
      expect(c.nCommitted(r.index).count).to.equal(0);
      for (const k of [1, 2, 3]) c.connect(at(c, i + k));
      const leader2 = c.checkOneLeader();
      const r2 = c.start(leader2, 30);
      if (r2.isLeader) expect(r2.index).to.be.greaterThan(0);
      c.one(1000, 5, true);
      c.finish();
    });
  });

  it('ConcurrentStarts: commands started in the same tick all commit, at distinct indexes', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      for (let attempt = 0; ; attempt++) {
        expect(attempt, 'term kept changing').to.be.lessThan(5);
        const leader = c.checkOneLeader();
        const first = c.start(leader, 1);
        if (!first.isLeader) continue;
        const indexes = [first.index];
        let ok = true;
        for (let k = 0; k < 5; k++) {
          const r = c.start(leader, 100 + k);
          if (r.term !== first.term) ok = false;
          indexes.push(r.index);
        }
        if (!ok) continue;
        const values = indexes.map((index) => c.wait(index, 3, first.term));
        if (values.includes(undefined)) continue;
        expect(new Set(indexes).size).to.equal(indexes.length);
        expect(values).to.deep.equal([1, 100, 101, 102, 103, 104]);
        break;
      }
      c.finish();
    });
  });

  it('Rejoin: a partitioned leader with uncommitted entries rejoins and gives them up', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      c.one(101, 3, true);
      const leader1 = c.checkOneLeader();
      c.disconnect(leader1);
      c.start(leader1, 102);
      c.start(leader1, 103);
      c.start(leader1, 104);
      c.one(103, 2, true);
      const leader2 = c.checkOneLeader();
      c.disconnect(leader2);
      c.connect(leader1);
      c.one(104, 2, true);
      c.connect(leader2);
      c.one(105, 3, true);
      c.finish();
    });
  });

  it('Count: uses few messages to elect, to agree, and while idle', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      const heartbeatTicks = 2;
      // Messages of both directions are counted; the lab counts request-reply pairs.
      const idleBound = (ticks: number): number =>
        2 * (c.ids.length - 1) * (Math.ceil(ticks / heartbeatTicks) + 1);
      const t0 = c.now;
      const leader = c.checkOneLeader();
      const total1 = c.messagesSent;
      expect(total1, 'messages to elect the first leader').to.be.within(1, 16 + idleBound(c.now - t0));
      const r = c.start(leader, 1);
      expect(r.isLeader).to.equal(true);
      const t1 = c.now;
      const iters = 10;
      const indexes = [r.index];
      for (let k = 2; k <= iters + 1; k++) indexes.push(c.start(leader, k).index);
      for (const index of indexes) c.wait(index, 3, r.term);
      const total2 = c.messagesSent;
      expect(total2 - total1, 'messages to agree on 11 commands').to.be.at.most(
        2 * (iters + 1) * (c.ids.length - 1) + idleBound(c.now - t1),
      );
      c.run(c.electionTicks);
      expect(c.messagesSent - total2, 'messages while idle').to.be.at.most(idleBound(c.electionTicks));
      c.finish();
    });
  });

  it('Backup: a leader backs up quickly over long runs of conflicting entries', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 5, seed });
      let value = 1;
      c.one(value++, 5, true);
      const leader1 = c.checkOneLeader();
      const l1 = c.ids.indexOf(leader1);
      for (const k of [2, 3, 4]) c.disconnect(at(c, l1 + k));
      for (let k = 0; k < 50; k++) c.start(leader1, value++);
      c.run(c.electionTicks / 2);
      c.disconnect(at(c, l1));
      c.disconnect(at(c, l1 + 1));
      for (const k of [2, 3, 4]) c.connect(at(c, l1 + k));
      for (let k = 0; k < 50; k++) c.one(value++, 3, true);
      const leader2 = c.checkOneLeader();
      let other = at(c, l1 + 2);
      if (leader2 === other) other = at(c, c.ids.indexOf(leader2) + 1);
      c.disconnect(other);
      for (let k = 0; k < 50; k++) c.start(leader2, value++);
      c.run(c.electionTicks / 2);
      for (const id of c.ids) c.disconnect(id);
      c.connect(at(c, l1));
      c.connect(at(c, l1 + 1));
      c.connect(other);
      for (let k = 0; k < 50; k++) c.one(value++, 3, true);
      for (const id of c.ids) c.connect(id);
      c.one(value++, 5, true);
      c.finish();
    });
  });
});
