import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { UnauthenticatedClientError } from '../../actors/enrollment/enrollment-errors.ts';
import { KvClient } from '../../actors/raft/kv-client.ts';
import { CliNode, createToken, credentialFile, freePort, runCli } from '../support/cli-node.ts';
import { until } from '../support/deadline.ts';

/**
 * The cluster as a person runs it, through `cloudless start` processes: three coordinators and
 * two agents joining with tokens; an agent killed with SIGKILL is seen down and, restarted (no
 * token needed), alive again as the same member; the leader killed, a new one takes over and the
 * members are intact; refused tokens end a start with the coordinator's reason.
 */

interface Listed {
  readonly leader: string | null;
  readonly members: { readonly id: string; readonly status: string; readonly roles: readonly string[] }[];
}

describe('a cluster of cloudless start processes: tokens, membership, failure detection', function () {
  this.timeout(180_000);
  let root: string;
  const nodes: CliNode[] = [];

  const startTokens = { agent: '' };

  // The processes live across the specs (the leak hooks count what each spec leaves running).
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'cloudless-cluster-start-'));
    const c1 = await CliNode.start({ dataDir: path.join(root, 'c1'), port: await freePort() });
    nodes.push(c1);
    const coordinatorToken = await createToken(c1.dataDir, { roles: 'coordinator', uses: 2 });
    for (const name of ['c2', 'c3']) {
      const node = await CliNode.start({
        dataDir: path.join(root, name),
        port: await freePort(),
        join: c1.address,
        args: ['--token', coordinatorToken],
      });
      nodes.push(node);
      await node.waitFor('joined the group');
    }
    const agentToken = await createToken(c1.dataDir, { roles: 'agent', uses: 2 });
    startTokens.agent = agentToken;
    for (const name of ['a1', 'a2']) {
      nodes.push(
        await CliNode.start({
          dataDir: path.join(root, name),
          port: await freePort(),
          join: c1.address,
          args: ['--roles', 'agent', '--token', agentToken],
        }),
      );
    }
  });

  after(async () => {
    for (const node of nodes) await node.stop().catch(() => node.kill());
    await rm(root, { recursive: true, force: true });
  });

  async function list(via: CliNode): Promise<Listed | undefined> {
    const result = await runCli([
      'nodes',
      'ls',
      '--json',
      '--connect',
      via.address,
      '--credential',
      credentialFile(path.join(root, 'c1')),
      '--timeout-ms',
      '3000',
    ]);
    return result.code === 0
      ? (JSON.parse(result.stdout.trim().split('\n')[0] as string) as Listed)
      : undefined;
  }

  const statusOf = (listed: Listed | undefined, id: string): string | undefined =>
    listed?.members.find((m) => m.id === id)?.status;

  it('joins three coordinators and two agents with tokens, and refuses bad tokens with the reason', async () => {
    const c1 = nodes[0] as CliNode;
    const agentToken = startTokens.agent;
    const listed = await until(
      async () => {
        const l = await list(c1);
        return l !== undefined && l.members.filter((m) => m.status === 'alive').length === 5 ? l : undefined;
      },
      20_000,
      'five alive members',
      250,
    );
    expect(listed.members.filter((m) => m.roles.includes('agent') && m.roles.length === 1)).to.have.length(2);

    // The agent token is used up: a third agent is refused, exit code 2, with the reason.
    const refusedStart = async (token: string): Promise<{ code: number; stderr: string }> =>
      runCli(
        [
          'start',
          '--roles',
          'agent',
          '--data-dir',
          path.join(root, `refused-${Math.random().toString(36).slice(2)}`),
          '--listen',
          `/ip4/127.0.0.1/tcp/${await freePort()}`,
          '--join',
          c1.address,
          '--token',
          token,
          '--worker-threads',
          '0',
          '--log-level',
          'error',
        ],
        30_000,
      );
    const usedUp = await refusedStart(agentToken);
    expect(usedUp.code).to.equal(2);
    expect(usedUp.stderr).to.match(/token/);
    expect(usedUp.stderr).to.not.include(agentToken.split('.')[1] as string);
    // A well-formed token nobody made.
    const unknown = await refusedStart(`0123456789abcdef.${'A'.repeat(43)}`);
    expect(unknown.code).to.equal(2);
    // A revoked one.
    const revoked = await createToken(c1.dataDir, { roles: 'agent', uses: 1 });
    const revoke = await runCli([
      'token',
      'revoke',
      revoked.split('.')[0] as string,
      '--data-dir',
      c1.dataDir,
    ]);
    expect(revoke.code, revoke.stderr).to.equal(0);
    const afterRevoke = await refusedStart(revoked);
    expect(afterRevoke.code).to.equal(2);
    expect(afterRevoke.stderr).to.match(/revoked/);
  });

  it('refuses a client without the admin credential at once, and the CLI says to pass it', async () => {
    const c1 = nodes[0] as CliNode;
    const started = performance.now();
    const refusal = await KvClient.connect({ address: c1.address, timeoutMs: 10_000 }).then(
      async (client) => {
        try {
          await client.get('x');
          return undefined;
        } catch (error) {
          return error;
        } finally {
          await client.close();
        }
      },
      (error: unknown) => error,
    );
    expect(refusal).to.be.instanceOf(UnauthenticatedClientError);
    expect((refusal as UnauthenticatedClientError).code).to.equal('INVALID_REQUEST');
    expect(performance.now() - started, 'refused well before the 10 s call deadline').to.be.below(3000);
    // No --credential, no CLOUDLESS_CREDENTIAL, a data dir without the file.
    const cli = await runCli(
      [
        'kv',
        'get',
        'x',
        '--connect',
        c1.address,
        '--data-dir',
        path.join(root, 'no-credential'),
        '--timeout-ms',
        '10000',
      ],
      20_000,
    );
    expect(cli.code).to.not.equal(0);
    expect(cli.stderr).to.include('--credential');
  });

  it('marks a killed agent down, and alive again as the same member once it restarts', async () => {
    const [c1, , , a1] = nodes as [CliNode, CliNode, CliNode, CliNode];
    await a1.kill();
    await until(
      async () => (statusOf(await list(c1), a1.peerId) === 'down' ? true : undefined),
      10_000,
      'a1 down',
      200,
    );
    const again = await CliNode.start({
      dataDir: a1.dataDir,
      port: a1.port,
      join: c1.address,
      args: ['--roles', 'agent'],
    });
    nodes[3] = again;
    expect(again.peerId).to.equal(a1.peerId);
    await until(
      async () => (statusOf(await list(c1), a1.peerId) === 'alive' ? true : undefined),
      15_000,
      'a1 alive',
      200,
    );
  });

  it('keeps the members when the leader is killed: a new leader takes over, nobody else is marked down', async () => {
    const coordinators = nodes.slice(0, 3);
    const before = await list(coordinators[0] as CliNode);
    const leader = coordinators.find((n) => n.peerId === before?.leader) as CliNode;
    expect(leader, 'a leader among the coordinators').to.not.equal(undefined);
    await leader.kill();
    const survivor = coordinators.find((n) => n !== leader) as CliNode;
    const after = await until(
      async () => {
        const l = await list(survivor);
        return l !== undefined &&
          l.leader !== null &&
          l.leader !== leader.peerId &&
          statusOf(l, leader.peerId) === 'down'
          ? l
          : undefined;
      },
      20_000,
      'a new leader that sees the old one down',
      250,
    );
    const others = after.members.filter((m) => m.id !== leader.peerId);
    expect(others.map((m) => m.status)).to.deep.equal(others.map(() => 'alive'));
    expect(after.members).to.have.length(5);
  });
});
