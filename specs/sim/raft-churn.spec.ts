import type { NodeId } from '../../actors/raft/index.ts';
import { forSeeds } from './for-seeds.ts';
import { RaftCluster } from './raft-cluster.ts';

const SEEDS = 20;

/**
 * The lab's internalChurn: clients propose all the time on whichever member they reach while
 * members are crashed, restarted, cut off and reconnected at random. Safety is checked on every
 * step by the cluster; at the end, with every fault healed, everything must still agree and
 * make progress.
 */
function churn(seed: number, unreliable: boolean): void {
  const c = new RaftCluster({ n: 5, seed, unreliable, snapshotEvery: 25 });
  let value = 1;
  for (let round = 0; round < 200; round++) {
    for (let k = 0; k < 3; k++) c.start(c.ids[c.randomInt(5)] as NodeId, value++);
    const id = c.ids[c.randomInt(5)] as NodeId;
    const roll = c.random();
    if (roll < 0.1 && c.isAlive(id)) c.crash(id);
    else if (roll < 0.25 && !c.isAlive(id)) c.restart(id);
    else if (roll < 0.35) c.disconnect(id);
    else if (roll < 0.6) c.connect(id);
    c.run(1 + c.randomInt(5));
  }
  c.setUnreliable(false);
  for (const id of c.ids) {
    if (!c.isAlive(id)) c.restart(id);
  }
  c.heal();
  c.one(value++, 5, true);
  c.finish();
}

describe('raft simulation: churn (lab 2C)', () => {
  it('ReliableChurn: stays safe and recovers while members crash, restart and reconnect', () => {
    forSeeds(SEEDS, (seed) => churn(seed, false));
  });

  it('UnreliableChurn: the same over a network that drops, delays and reorders', () => {
    forSeeds(SEEDS, (seed) => churn(seed, true));
  });
});
