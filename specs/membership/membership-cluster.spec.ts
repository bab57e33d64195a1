import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { KvClient } from '../../actors/raft/kv-client.ts';
import { nodesLsCommand } from '../../bin/nodes-ls-command.ts';
import { until } from '../support/deadline.ts';
import {
  adminCredential,
  createJoinToken,
  credentialFileOf,
  MembershipProcess,
  seenEverywhere,
} from './membership-process.ts';

describe('membership across real processes', function () {
  this.timeout(180_000);
  let dir: string;
  let coordinators: MembershipProcess[] = [];
  let agents: MembershipProcess[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-membership-'));
    const first = await MembershipProcess.start({ dataDir: path.join(dir, 'c0'), roles: 'coordinator' });
    coordinators = [first];
    // Enrollment: the joiners' first starts redeem tokens created on the bootstrap node.
    const coordinatorToken = await createJoinToken(first, { roles: ['coordinator'], uses: 2 });
    const agentToken = await createJoinToken(first, { roles: ['agent'], uses: 1 });
    for (const name of ['c1', 'c2']) {
      coordinators.push(
        await MembershipProcess.start({
          dataDir: path.join(dir, name),
          roles: 'coordinator',
          join: first.address,
          token: coordinatorToken,
        }),
      );
    }
    agents = [
      await MembershipProcess.start({
        dataDir: path.join(dir, 'a0'),
        roles: 'agent',
        join: first.address,
        token: agentToken,
      }),
    ];
    const all = [...coordinators, ...agents];
    for (const node of all) await seenEverywhere(all, node.peerId, 'alive', 30_000);
  });

  after(async () => {
    await Promise.all([...agents, ...coordinators].map((node) => node.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  const everyone = (): MembershipProcess[] => [...coordinators, ...agents];

  it('marks an agent killed with SIGKILL down on every node, and alive again as the same member on restart', async () => {
    const agent = agents[0] as MembershipProcess;
    const id = agent.peerId;
    const joinedAt = agent.view.get(id)?.joinedAt;
    await agent.kill();
    const killedAt = Date.now();
    const seen = await seenEverywhere(everyone(), id, 'down', 10_000);
    expect(seen - killedAt).to.be.below(3000);
    const restarted = await MembershipProcess.start({
      dataDir: agent.dataDir,
      roles: 'agent',
      join: (coordinators[1] as MembershipProcess).address,
    });
    agents[0] = restarted;
    expect(restarted.peerId).to.equal(id);
    await seenEverywhere(everyone(), id, 'alive', 10_000);
    expect((coordinators[0] as MembershipProcess).view.get(id)?.joinedAt).to.equal(joinedAt);
    // Joined through a coordinator that may be a follower: its heartbeats must still reach the leader.
    const mark = restarted.changes.length;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(
      restarted.changes.slice(mark).filter((change) => change.id === id && change.status !== 'alive'),
    ).to.deep.equal([]);
  });

  it('lists the members with nodes ls --json', async () => {
    const lines: string[] = [];
    const io = {
      out: (l: string) => lines.push(l),
      err: (l: string) => lines.push(l),
      env: {},
      stopRequested: new Promise<string>(() => undefined),
    };
    const code = await nodesLsCommand(
      [
        '--json',
        '--connect',
        (coordinators[0] as MembershipProcess).address,
        '--credential',
        credentialFileOf(coordinators[0] as MembershipProcess),
      ],
      io,
    );
    expect(code).to.equal(0);
    const listing = JSON.parse(lines[0] as string) as {
      members: { id: string; status: string; roles: string[] }[];
      term: number;
    };
    expect(listing.members.map((m) => m.id).sort()).to.deep.equal(
      everyone()
        .map((n) => n.peerId)
        .sort(),
    );
    expect(listing.members.every((m) => m.status === 'alive')).to.equal(true);
  });

  it('keeps membership intact when the leader is killed: a new leader detects without false downs', async () => {
    const bootstrap = coordinators[0] as MembershipProcess;
    const client = await KvClient.connect({
      address: bootstrap.address,
      credential: await adminCredential(bootstrap),
    });
    let leaderId: string;
    try {
      leaderId = (await client.status()).leaderId as string;
    } finally {
      await client.close();
    }
    const leader = coordinators.find((node) => node.peerId === leaderId) as MembershipProcess;
    const survivors = everyone().filter((node) => node !== leader);
    const marks = survivors.map((node) => node.changes.length);
    await leader.kill();
    // The old leader is a member too: the new leader marks it down once its grace is over.
    await seenEverywhere(survivors, leaderId, 'down', 15_000);
    survivors.forEach((node, i) => {
      const falseDowns = node.changes
        .slice(marks[i])
        .filter((change) => change.status === 'down' && change.id !== leaderId);
      expect(falseDowns, `false downs seen by ${node.peerId}`).to.deep.equal([]);
    });
    for (const node of survivors) {
      await until(
        () =>
          survivors.every((other) => node.view.get(other.peerId)?.status === 'alive') ? true : undefined,
        10_000,
        'every survivor alive everywhere',
      );
    }
  });
  it('finds a service registered on an agent from a coordinator, and drops it once the agent is down', async () => {
    const agent = agents[0] as MembershipProcess;
    const coordinator = coordinators[1] as MembershipProcess;
    await agent.request({ type: 'register-echo' });
    const found = await until(
      async () => {
        const answer = await coordinator.request<{ nodes: string[] }>({ type: 'find-echo' });
        return answer.nodes.includes(agent.peerId) ? answer : undefined;
      },
      10_000,
      'the agent’s echo service found from a coordinator',
      200,
    );
    expect(found.nodes).to.deep.equal([agent.peerId]);
    await agent.kill();
    await seenEverywhere(everyone(), agent.peerId, 'down', 10_000);
    const after = await coordinator.request<{ nodes: string[] }>({ type: 'find-echo' });
    expect(after.nodes).to.deep.equal([]);
  });
});
