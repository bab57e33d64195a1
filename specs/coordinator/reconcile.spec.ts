import { expect } from 'chai';
import { ClusterState } from '../../actors/coordinator/cluster-state.ts';
import { type ControlWrite, reconcile } from '../../actors/coordinator/reconcile.ts';
import { type ReplicaRecord, replicaKey } from '../../actors/coordinator/workload-records.ts';
import type { KvEvent } from '../../actors/raft/kv-types.ts';
import {
  memberPut,
  memberRecord,
  replicaPut,
  replicaRecord,
  type WorkloadOptions,
  workloadPut,
  workloadRecord,
} from './coordinator-fixtures.ts';

const now = 50_000;
const key = (index: number, name = 'web'): string => replicaKey(`default/${name}`, index);

/** A state: nodes n1 (alive), n2 (down), n3 (left); one workload; its slots, each at its own revision. */
function stateWith(
  workload: WorkloadOptions & { name?: string },
  slots: Partial<ReplicaRecord>[],
): ClusterState {
  const state = new ClusterState();
  const name = workload.name ?? 'web';
  const events: KvEvent[] = [
    memberPut(memberRecord('n1'), 1),
    memberPut(memberRecord('n2', { status: 'down' }), 2),
    memberPut(memberRecord('n3', { status: 'left' }), 3),
    workloadPut(workloadRecord(name, workload), 4),
  ];
  for (const [index, fields] of slots.entries())
    events.push(replicaPut(replicaRecord(name, index, fields), 10 + index));
  state.applyEvents(events);
  return state;
}

const running = { node: 'n1', state: 'running', ready: true } as const;

function updateOf(writes: readonly ControlWrite[], k: string): Extract<ControlWrite, { type: 'update' }> {
  const write = writes.find((w) => w.key === k);
  expect(write?.type, `an update of ${k}`).to.equal('update');
  return write as Extract<ControlWrite, { type: 'update' }>;
}

describe('reconcile', () => {
  it('creates every missing slot pending, attempt 1, with a create (no revision to compare)', () => {
    const state = stateWith({ replicas: 3 }, [running]);
    const { writes, unplaced } = reconcile(state, now);
    expect(writes.map((w) => [w.type, w.key])).to.deep.equal([
      ['create', key(1)],
      ['create', key(2)],
    ]);
    const created = writes[0] as Extract<ControlWrite, { type: 'create' }>;
    expect(created.record).to.include({ state: 'pending', attempt: 1, specRevision: 1, lostCount: 0 });
    expect(created.record.node).to.equal(undefined);
    expect(unplaced).to.deep.equal([]);
  });

  it('deletes the slots at or past the replica count, comparing their revision', () => {
    const state = stateWith({ replicas: 1 }, [running, running, {}]);
    const { writes } = reconcile(state, now);
    expect(writes).to.deep.equal([
      { type: 'delete', key: key(1), expectedModRevision: 11 },
      { type: 'delete', key: key(2), expectedModRevision: 12 },
    ]);
  });

  it('marks a replica on a down, left or unknown node lost, with the reason', () => {
    const state = stateWith({ replicas: 4 }, [
      { node: 'n2', state: 'running', ready: true },
      { node: 'n3', state: 'starting' },
      { node: 'n9', state: 'running' },
      running,
    ]);
    const { writes } = reconcile(state, now);
    expect(writes).to.have.length(3);
    const reasons = [0, 1, 2].map((i) => {
      const write = updateOf(writes, key(i));
      expect(write.expectedModRevision).to.equal(10 + i);
      expect(write.record).to.include({ state: 'lost', ready: false, attempt: 1, updatedAt: now });
      return write.record.reason;
    });
    expect(reasons).to.deep.equal(['node n2 is down', 'node n3 has left', 'node n9 is not a member']);
  });

  it('gives a lost slot a new pending attempt (attempt + 1, lostCount + 1) and says why', () => {
    const state = stateWith({ replicas: 1, revision: 3 }, [
      { node: 'n2', state: 'lost', attempt: 2, lostCount: 1, reason: 'node n2 is down', specRevision: 3 },
    ]);
    const { writes, unplaced } = reconcile(state, now);
    const write = updateOf(writes, key(0));
    expect(write.expectedModRevision).to.equal(10);
    expect(write.record).to.include({
      state: 'pending',
      attempt: 3,
      lostCount: 2,
      specRevision: 3,
      ready: false,
      reason: 'attempt 2 lost: node n2 is down',
    });
    expect(write.record.node).to.equal(undefined);
    expect(unplaced).to.deep.equal([]);
  });

  it('never redoes a batch slot that succeeded, even on a node that is down, and leaves failed slots failed', () => {
    const state = stateWith({ kind: 'batch', replicas: 3 }, [
      { node: 'n2', state: 'succeeded', exitCode: 0 },
      { node: 'n3', state: 'failed', exitCode: 1 },
      { node: 'n1', state: 'failed', exitCode: 1 },
    ]);
    expect(reconcile(state, now)).to.deep.equal({ writes: [], unplaced: [] });
  });

  it('leaves a failed service slot failed, also on a node that is gone', () => {
    const state = stateWith({ replicas: 1, revision: 2 }, [{ node: 'n2', state: 'failed', specRevision: 1 }]);
    expect(reconcile(state, now)).to.deep.equal({ writes: [], unplaced: [] });
  });

  it('reports pending slots without a node as unplaced, and nothing else', () => {
    const state = stateWith({ replicas: 4 }, [
      {},
      { node: 'n1', state: 'starting' },
      running,
      { attempt: 3 },
    ]);
    const { writes, unplaced } = reconcile(state, now);
    expect(writes).to.deep.equal([]);
    expect(unplaced).to.deep.equal([key(0), key(3)]);
  });

  describe('rolling update', () => {
    it('rolls one slot of an older revision when every slot is running and ready', () => {
      const old = { ...running, specRevision: 1 };
      const state = stateWith({ replicas: 3, revision: 2 }, [old, old, old]);
      const { writes } = reconcile(state, now);
      expect(writes).to.have.length(1);
      const write = updateOf(writes, key(0));
      expect(write.record).to.include({
        state: 'pending',
        attempt: 2,
        specRevision: 2,
        lostCount: 0,
        reason: 'rolled to revision 2',
      });
    });

    it('rolls the next slot only once the rolled one runs ready on the new revision', () => {
      const old = { ...running, specRevision: 1 };
      const fresh = { ...running, specRevision: 2, attempt: 2 };
      const waiting = stateWith({ replicas: 3, revision: 2 }, [
        { node: 'n1', state: 'starting', specRevision: 2, attempt: 2 },
        old,
        old,
      ]);
      expect(reconcile(waiting, now).writes).to.deep.equal([]);
      const notReady = stateWith({ replicas: 3, revision: 2 }, [{ ...fresh, ready: false }, old, old]);
      expect(reconcile(notReady, now).writes).to.deep.equal([]);
      const ready = stateWith({ replicas: 3, revision: 2 }, [fresh, old, old]);
      const { writes } = reconcile(ready, now);
      expect(writes.map((w) => w.key)).to.deep.equal([key(1)]);
    });

    it('does not roll while an older-revision slot is not ready or another slot is pending', () => {
      const old = { ...running, specRevision: 1 };
      const oneNotReady = stateWith({ replicas: 2, revision: 2 }, [old, { ...old, ready: false }]);
      expect(reconcile(oneNotReady, now).writes).to.deep.equal([]);
      const onePending = stateWith({ replicas: 2, revision: 2 }, [old, { specRevision: 2, attempt: 2 }]);
      const result = reconcile(onePending, now);
      expect(result.writes).to.deep.equal([]);
      expect(result.unplaced).to.deep.equal([key(1)]);
    });

    it('does not roll batch slots', () => {
      const state = stateWith({ kind: 'batch', replicas: 2, revision: 2 }, [
        { ...running, specRevision: 1 },
        { ...running, specRevision: 1 },
      ]);
      expect(reconcile(state, now).writes).to.deep.equal([]);
    });
  });

  it('deletes the slots of a workload that no longer exists', () => {
    const state = stateWith({ replicas: 1 }, [running]);
    state.applyEvents([
      replicaPut(replicaRecord('gone', 0, { node: 'n1', state: 'running' }), 20),
      replicaPut(replicaRecord('gone', 1), 21),
    ]);
    const { writes, unplaced } = reconcile(state, now);
    expect(writes).to.deep.equal([
      { type: 'delete', key: key(0, 'gone'), expectedModRevision: 20 },
      { type: 'delete', key: key(1, 'gone'), expectedModRevision: 21 },
    ]);
    expect(unplaced).to.deep.equal([]);
  });

  it('changes nothing in the state it reads', () => {
    const state = stateWith({ replicas: 2 }, [{ node: 'n2', state: 'running' }]);
    const before = JSON.stringify([...state.replicas]);
    reconcile(state, now);
    expect(JSON.stringify([...state.replicas])).to.equal(before);
  });
});
