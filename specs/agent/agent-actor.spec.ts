import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { type AgentMessage, agentActor, type LeaderView } from '../../actors/agent/agent-actor.ts';
import type { AssignedReplica, Assignments } from '../../actors/agent/agent-protocol.ts';
import type { Driver, ReplicaExit, ReplicaHandle, ReplicaLaunch } from '../../actors/agent/driver.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { ActorSystem } from '../../runtime/actor-system.ts';
import { until } from '../support/deadline.ts';

/** A driver that runs nothing: it records launches and stops, and exits when told. */
class FakeDriver implements Driver {
  readonly type = 'process' as const;
  readonly running = new Map<string, (exit: ReplicaExit) => void>();
  readonly launched: string[] = [];
  readonly stopped: string[] = [];

  start(launch: ReplicaLaunch): Promise<ReplicaHandle> {
    this.launched.push(launch.replicaId);
    let finish: (exit: ReplicaExit) => void = () => {};
    const exited = new Promise<ReplicaExit>((resolve) => {
      finish = resolve;
    });
    this.running.set(launch.replicaId, finish);
    return Promise.resolve({
      pid: 0,
      limits: { enforced: false, detail: 'fake driver' },
      exited,
      stop: () => {
        this.stopped.push(launch.replicaId);
        this.running.delete(launch.replicaId);
        finish({ code: undefined, signal: 'SIGTERM', reason: 'stopped' });
        return exited;
      },
    });
  }
}

function assigned(replicaId: string): AssignedReplica {
  return {
    replicaId,
    workloadId: replicaId.split('/').slice(0, 2).join('/'),
    index: 0,
    attempt: 1,
    kind: 'service',
    driver: { type: 'process', command: 'fake', args: [], env: {} },
    resources: { cpuMillicores: 100, memoryBytes: 1 << 20 },
    restartPolicy: { policy: 'always', initialBackoffMs: 10, maxBackoffMs: 100, multiplier: 2 },
  };
}

describe('node agent: assignments only from the leader', () => {
  let system: ActorSystem;
  let dataDir: string;
  let driver: FakeDriver;
  let agent: ActorRef<AgentMessage>;
  let leader: LeaderView;

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-agent-'));
    system = await ActorSystem.start({ nodeId: 'agent-node', logLevel: 'silent', dispatchers: {} });
    driver = new FakeDriver();
    leader = { leaderId: 'leader-a', term: 3 };
    agent = system.spawn(
      agentActor({
        dataDir,
        leader: () => Promise.resolve(leader),
        drivers: { process: driver },
        leaderRefreshMs: 20,
        stopGraceMs: 100,
      }),
      { name: 'agent' },
    );
  });

  afterEach(async () => {
    await system.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const send = (from: string, term: number, ids: string[]): void =>
    agent.tell({ type: 'assignments', from, term, replicas: ids.map(assigned) } satisfies Assignments);

  it('runs what the leader assigns and stops what it no longer lists', async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    send('leader-a', 3, ['default/web/0#1', 'default/web/1#1']);
    await until(() => (driver.launched.length === 2 ? true : undefined), 2000, 'two launches');
    send('leader-a', 3, ['default/web/1#1']);
    await until(() => (driver.stopped.includes('default/web/0#1') ? true : undefined), 2000, 'a stop');
    expect(driver.running.has('default/web/1#1')).to.equal(true);
  });

  it('refuses assignments from a node that is not the leader, and from an older term', async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    send('impostor', 3, ['default/evil/0#1']);
    send('leader-a', 2, ['default/stale/0#1']);
    send('leader-a', 3, ['default/web/0#1']);
    await until(() => (driver.launched.length === 1 ? true : undefined), 2000, 'one launch');
    // A claim of a newer term is checked against the membership view before it is refused.
    send('impostor', 9, ['default/evil/1#1']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(driver.launched).to.deep.equal(['default/web/0#1']);
    expect(driver.stopped).to.deep.equal([]);
  });

  it('accepts a new leader once its membership view names it', async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    send('leader-a', 3, ['default/web/0#1']);
    await until(() => (driver.launched.length === 1 ? true : undefined), 2000, 'one launch');
    leader = { leaderId: 'leader-b', term: 4 };
    send('leader-b', 4, ['default/web/0#1', 'default/web/1#1']);
    await until(() => (driver.launched.length === 2 ? true : undefined), 2000, 'the new leader obeyed');
    // The old leader, deposed, is refused now.
    send('leader-a', 3, []);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(driver.stopped).to.deep.equal([]);
  });

  it('restarts a replica that exits, with backoff, under restart policy always', async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    send('leader-a', 3, ['default/web/0#1']);
    await until(() => (driver.running.has('default/web/0#1') ? true : undefined), 2000, 'running');
    driver.running.get('default/web/0#1')?.({ code: 1, signal: undefined, reason: 'exited with code 1' });
    await until(() => (driver.launched.length === 2 ? true : undefined), 2000, 'a restart');
  });
});
