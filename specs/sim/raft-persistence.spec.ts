import type { NodeId } from '../../actors/raft/index.ts';
import { forSeeds } from './for-seeds.ts';
import { RaftCluster } from './raft-cluster.ts';

const SEEDS = 50;
const at = (c: RaftCluster, i: number): NodeId =>
  c.ids[((i % c.ids.length) + c.ids.length) % c.ids.length] as NodeId;

/** The lab's start1(): kill the member and start it again from what it persisted. */
function restart(c: RaftCluster, id: NodeId): void {
  c.crash(id);
  c.restart(id);
}

describe('raft simulation: persistence and unreliable networks (lab 2C)', () => {
  it('Persist1: keeps committed entries across crashes of every member, of the leader and of a follower', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      c.one(11, 3, true);
      for (const id of c.ids) restart(c, id);
      c.one(12, 3, true);
      const leader1 = c.checkOneLeader();
      c.disconnect(leader1);
      restart(c, leader1);
      c.connect(leader1);
      c.one(13, 3, true);
      const leader2 = c.checkOneLeader();
      c.disconnect(leader2);
      c.one(14, 2, true);
      restart(c, leader2);
      c.connect(leader2);
      c.wait(c.core(leader2)?.log.length ?? 1, 3, -1);
      const i3 = at(c, c.ids.indexOf(c.checkOneLeader()) + 1);
      c.disconnect(i3);
      c.one(15, 2, true);
      restart(c, i3);
      c.connect(i3);
      c.one(16, 3, true);
      c.finish();
    });
  });

  it('Persist2: survives repeated crashes and restarts of majorities', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 5, seed });
      let index = 1;
      for (let iter = 0; iter < 5; iter++) {
        c.one(10 + index++, 5, true);
        const l = c.ids.indexOf(c.checkOneLeader());
        c.disconnect(at(c, l + 1));
        c.disconnect(at(c, l + 2));
        c.one(10 + index++, 3, true);
        c.disconnect(at(c, l));
        c.disconnect(at(c, l + 3));
        c.disconnect(at(c, l + 4));
        restart(c, at(c, l + 1));
        restart(c, at(c, l + 2));
        c.connect(at(c, l + 1));
        c.connect(at(c, l + 2));
        c.run(c.electionTicks);
        restart(c, at(c, l + 3));
        c.connect(at(c, l + 3));
        c.one(10 + index++, 3, true);
        c.connect(at(c, l + 4));
        c.connect(at(c, l));
      }
      c.one(1000, 5, true);
      c.finish();
    });
  });

  it('Persist3: a partitioned leader and one follower crash; the leader restarts and the group goes on', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 3, seed });
      c.one(101, 3, true);
      const leader = c.ids.indexOf(c.checkOneLeader());
      c.disconnect(at(c, leader + 2));
      c.one(102, 2, true);
      c.crash(at(c, leader));
      c.crash(at(c, leader + 1));
      c.connect(at(c, leader + 2));
      c.restart(at(c, leader));
      c.connect(at(c, leader));
      c.one(103, 2, true);
      c.restart(at(c, leader + 1));
      c.connect(at(c, leader + 1));
      c.one(104, 3, true);
      c.finish();
    });
  });

  it('Figure8: never loses or changes a committed entry while leaders crash right after proposing', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 5, seed });
      let value = 1;
      c.one(value++, 1, true);
      let up = 5;
      for (let iter = 0; iter < 1000; iter++) {
        let leader: NodeId | undefined;
        for (const id of c.ids) if (c.isAlive(id) && c.start(id, value++).isLeader) leader = id;
        c.run(c.random() < 0.1 ? c.randomInt(c.electionTicks / 2) : c.randomInt(2));
        if (leader !== undefined) {
          c.crash(leader);
          up--;
        }
        if (up < 3) {
          const s = at(c, c.randomInt(5));
          if (!c.isAlive(s)) {
            c.restart(s);
            up++;
          }
        }
      }
      for (const id of c.ids) if (!c.isAlive(id)) c.restart(id);
      c.one(value++, 5, true);
      c.finish();
    });
  });

  it('UnreliableAgree: agrees over a network that drops, delays and reorders messages', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 5, seed, unreliable: true });
      for (let iter = 1; iter < 50; iter++) {
        for (let j = 0; j < 4; j++) {
          for (const id of c.ids) c.start(id, 100 * iter + j);
        }
        c.one(iter, 1, true);
      }
      c.setUnreliable(false);
      c.run(2 * c.electionTicks);
      c.one(100, 5, true);
      c.finish();
    });
  });

  it('Figure8Unreliable: stays safe with long reordering while leaders are cut off', () => {
    forSeeds(SEEDS, (seed) => {
      const c = new RaftCluster({ n: 5, seed, unreliable: true });
      let value = 1;
      c.one(value++, 1, true);
      let up = 5;
      for (let iter = 0; iter < 1000; iter++) {
        if (iter === 200) c.setLongReordering(true);
        let leader: NodeId | undefined;
        for (const id of c.ids) if (c.start(id, value++).isLeader && c.isConnected(id)) leader = id;
        c.run(c.random() < 0.1 ? c.randomInt(c.electionTicks / 2) : c.randomInt(2));
        if (leader !== undefined && c.random() < 0.5) {
          c.disconnect(leader);
          up--;
        }
        if (up < 3) {
          const s = at(c, c.randomInt(5));
          if (!c.isConnected(s)) {
            c.connect(s);
            up++;
          }
        }
      }
      for (const id of c.ids) c.connect(id);
      c.one(value++, 5, true);
      c.finish();
    });
  });
});
