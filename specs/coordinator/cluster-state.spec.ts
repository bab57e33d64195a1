import { expect } from 'chai';
import { ClusterState } from '../../actors/coordinator/cluster-state.ts';
import {
  encodeReplicaRecord,
  type ReplicaRecord,
  replicaKey,
  workloadKey,
} from '../../actors/coordinator/workload-records.ts';
import { memberKey } from '../../actors/membership/member-record.ts';
import {
  deleteEvent,
  memberPut,
  memberRecord,
  mi,
  replicaPut,
  replicaRecord,
  workloadPut,
  workloadRecord,
} from './coordinator-fixtures.ts';

const webKey = (index: number): string => replicaKey('default/web', index);

/** A state with node n1 (2 cores, 4 GiB) and workload web (500m, 256 MiB) at revisions 1 and 2. */
function baseState(): ClusterState {
  const state = new ClusterState();
  state.applyEvents([
    memberPut(memberRecord('n1'), 1),
    workloadPut(workloadRecord('web', { replicas: 3 }), 2),
  ]);
  return state;
}

function allocated(state: ClusterState, node = 'n1'): [number, number] {
  const n = state.nodes.get(node);
  return [n?.allocated.cpuMillicores ?? -1, n?.allocated.memoryBytes ?? -1];
}

describe('cluster state', () => {
  describe('idempotent by revision', () => {
    it('applies its own commit, then ignores the same change when the watch brings it', () => {
      const state = baseState();
      const placed = replicaRecord('web', 0, { node: 'n1', state: 'starting' });
      state.applyCommitted([{ key: webKey(0), value: encodeReplicaRecord(placed) }], 5);
      expect(state.replicas.get(webKey(0))?.modRevision).to.equal(5);
      expect(allocated(state)).to.deep.equal([500, 256 * mi]);
      state.applyEvents([replicaPut(placed, 5)]);
      expect(allocated(state)).to.deep.equal([500, 256 * mi]);
      expect(state.nodes.get('n1')?.replicas.size).to.equal(1);
      expect(state.revision).to.equal(5);
    });

    it('never lets an older put win over a newer one', () => {
      const state = baseState();
      state.applyEvents([replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'running' }), 6)]);
      state.applyEvents([replicaPut(replicaRecord('web', 0), 4)]);
      expect(state.replicas.get(webKey(0))?.record.state).to.equal('running');
      expect(state.replicas.get(webKey(0))?.modRevision).to.equal(6);
    });

    it('does not bring back a key deleted at a later revision when an older put arrives', () => {
      const state = baseState();
      state.applyEvents([replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'running' }), 3)]);
      state.applyEvents([deleteEvent(webKey(0), 7)]);
      expect(state.replicas.has(webKey(0))).to.equal(false);
      expect(allocated(state)).to.deep.equal([0, 0]);
      state.applyEvents([replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'running' }), 5)]);
      expect(state.replicas.has(webKey(0))).to.equal(false);
      expect(state.slotsOf('default/web').size).to.equal(0);
      expect(allocated(state)).to.deep.equal([0, 0]);
      // A put after the delete is a new slot.
      state.applyEvents([replicaPut(replicaRecord('web', 0), 8)]);
      expect(state.replicas.get(webKey(0))?.modRevision).to.equal(8);
    });

    it('keeps a deleted workload and member deleted against older puts', () => {
      const state = baseState();
      state.applyEvents([deleteEvent(workloadKey('default/web'), 9), deleteEvent(memberKey('n1'), 9)]);
      state.applyEvents([workloadPut(workloadRecord('web'), 2), memberPut(memberRecord('n1'), 1)]);
      expect(state.workloads.has('default/web')).to.equal(false);
      expect(state.members.has('n1')).to.equal(false);
      expect(state.nodes.get('n1')?.status).to.equal('left');
    });
  });

  describe('capacity accounting', () => {
    it('counts placed replicas that have not finished, and only those', () => {
      const state = baseState();
      const states: [ReplicaRecord['state'], string | undefined][] = [
        ['pending', undefined],
        ['starting', 'n1'],
        ['running', 'n1'],
        ['succeeded', 'n1'],
        ['failed', 'n1'],
        ['lost', 'n1'],
      ];
      let revision = 3;
      for (const [index, [s, node]] of states.entries())
        state.applyEvents([replicaPut(replicaRecord('web', index, { state: s, node }), revision++)]);
      expect(allocated(state)).to.deep.equal([1000, 512 * mi]);
      expect([...(state.nodes.get('n1')?.replicas.keys() ?? [])].sort()).to.deep.equal([
        webKey(1),
        webKey(2),
      ]);
      expect(state.nodes.get('n1')?.workloads.get('default/web')).to.equal(2);
    });

    it('releases a replica when it finishes, is lost or moves back to pending', () => {
      const state = baseState();
      state.applyEvents([
        replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'running' }), 3),
        replicaPut(replicaRecord('web', 1, { node: 'n1', state: 'running' }), 4),
        replicaPut(replicaRecord('web', 2, { node: 'n1', state: 'running' }), 5),
      ]);
      expect(allocated(state)).to.deep.equal([1500, 768 * mi]);
      state.applyEvents([replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'lost' }), 6)]);
      state.applyEvents([replicaPut(replicaRecord('web', 1, { attempt: 2 }), 7)]);
      expect(allocated(state)).to.deep.equal([500, 256 * mi]);
      state.applyEvents([deleteEvent(webKey(2), 8)]);
      expect(allocated(state)).to.deep.equal([0, 0]);
      expect(state.nodes.get('n1')?.workloads.size).to.equal(0);
    });

    it("recounts a workload's placed replicas when its request changes", () => {
      const state = baseState();
      state.applyEvents([
        replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'running' }), 3),
        replicaPut(replicaRecord('web', 1), 4),
      ]);
      state.applyEvents([workloadPut(workloadRecord('web', { replicas: 3, cpu: 1500, memory: mi }), 5)]);
      expect(allocated(state)).to.deep.equal([1500, mi]);
      expect(state.nodes.get('n1')?.replicas.get(webKey(0))?.resources).to.deep.equal({
        cpuMillicores: 1500,
        memoryBytes: mi,
      });
      state.applyEvents([
        workloadPut(workloadRecord('web', { replicas: 3, priority: 7, cpu: 1500, memory: mi }), 6),
      ]);
      expect(state.nodes.get('n1')?.replicas.get(webKey(0))?.priority).to.equal(7);
    });

    it('counts a replica seen before its workload once the workload arrives', () => {
      const state = new ClusterState();
      state.applyEvents([memberPut(memberRecord('n1'), 1)]);
      state.applyEvents([replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'running' }), 2)]);
      expect(allocated(state)).to.deep.equal([0, 0]);
      state.applyEvents([workloadPut(workloadRecord('web'), 3)]);
      expect(allocated(state)).to.deep.equal([500, 256 * mi]);
    });

    it('keeps counting a slot whose workload was deleted, also when the slot is updated', () => {
      const state = baseState();
      state.applyEvents([replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'starting' }), 3)]);
      state.applyEvents([deleteEvent(workloadKey('default/web'), 4)]);
      expect(allocated(state)).to.deep.equal([500, 256 * mi]);
      // The agent's report lands after the workload is gone: the replica still runs there.
      state.applyEvents([
        replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'running', ready: true }), 5),
      ]);
      expect(allocated(state)).to.deep.equal([500, 256 * mi]);
      state.applyEvents([deleteEvent(webKey(0), 6)]);
      expect(allocated(state)).to.deep.equal([0, 0]);
    });

    it('takes over a placement the owner counted before its commit came back', () => {
      const state = baseState();
      state.applyEvents([replicaPut(replicaRecord('web', 0), 3)]);
      const request = state.placementRequest(webKey(0));
      expect(request?.resources).to.deep.equal({ cpuMillicores: 500, memoryBytes: 256 * mi });
      const node = state.nodes.get('n1');
      node?.replicas.set(webKey(0), {
        replicaId: webKey(0),
        workloadId: 'default/web',
        priority: 0,
        resources: { cpuMillicores: 500, memoryBytes: 256 * mi },
      });
      if (node !== undefined) {
        node.allocated.cpuMillicores += 500;
        node.allocated.memoryBytes += 256 * mi;
      }
      state.applyEvents([replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'starting' }), 4)]);
      expect(allocated(state)).to.deep.equal([500, 256 * mi]);
    });

    it("follows a member's status and resources, and load() starts over", () => {
      const state = baseState();
      state.applyEvents([memberPut(memberRecord('n1', { status: 'down', cpuCores: 4 }), 3)]);
      expect(state.nodes.get('n1')?.status).to.equal('down');
      expect(state.nodes.get('n1')?.capacity.cpuMillicores).to.equal(4000);
      state.load(
        [
          replicaPut(replicaRecord('web', 0, { node: 'n1', state: 'running' }), 3).kv,
          memberPut(memberRecord('n1'), 1).kv,
          workloadPut(workloadRecord('web'), 2).kv,
        ],
        10,
      );
      expect(state.revision).to.equal(10);
      expect(state.nodes.get('n1')?.status).to.equal('alive');
      expect(allocated(state)).to.deep.equal([500, 256 * mi]);
    });
  });
});
