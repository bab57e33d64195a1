/**
 * `cloudless kv` and `cloudless status` against real coordinator processes on loopback: one node,
 * then a three-node group formed with --join that survives the SIGKILL of its leader and takes the
 * killed node back from its data dir.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { CliNode, createToken, credentialFile, freePort, runCli } from '../support/cli-node.ts';
import { until } from '../support/deadline.ts';

interface StatusJson {
  id: string;
  role: string;
  term: number;
  leaderId?: string;
  commitIndex: number;
  appliedIndex: number;
  membership: { voters: string[]; learners: string[]; addresses: Record<string, string[]> };
}

/** `--credential` of the bootstrap node's admin credential: only its data dir holds the file. */
let credential: string[] = [];

async function statusOf(node: CliNode): Promise<StatusJson | undefined> {
  const result = await runCli([
    'status',
    '--json',
    '--data-dir',
    node.dataDir,
    '--timeout-ms',
    '3000',
    ...credential,
  ]);
  return result.code === 0 ? (JSON.parse(result.stdout) as StatusJson) : undefined;
}

describe('cloudless kv and status', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  const nodes: CliNode[] = [];

  async function dataDir(): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-kv-cli-'));
    dirs.push(dir);
    return dir;
  }

  async function start(init: {
    dataDir: string;
    port: number;
    join?: string;
    args?: string[];
  }): Promise<CliNode> {
    const node = await CliNode.start(init);
    nodes.push(node);
    return node;
  }

  afterEach(async () => {
    credential = [];
    await Promise.allSettled(nodes.splice(0).map((node) => node.stop()));
    await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('puts, gets, lists and deletes through one node, in text and --json, and reports its status', async () => {
    const node = await start({ dataDir: await dataDir(), port: await freePort() });
    expect(node.output).to.include('started a new one-member group');
    expect((await stat(path.join(node.dataDir, 'node.json'))).isFile()).to.equal(true);
    const on = ['--data-dir', node.dataDir];

    const put = await runCli(['kv', 'put', 'app/a', 'one', ...on]);
    expect(put.code, put.stderr).to.equal(0);
    expect(put.stdout).to.match(/^OK \(rev \d+\)/);
    expect((await runCli(['kv', 'put', 'app/b', 'two', '--json', ...on])).stdout).to.match(/"revision":\d+/);

    const get = await runCli(['kv', 'get', 'app/a', ...on]);
    expect(get.stdout.trim()).to.match(/^app\/a = one \(rev \d+\)$/);
    const json = JSON.parse((await runCli(['kv', 'get', 'app/b', '--json', ...on])).stdout);
    expect(json).to.include({ key: 'app/b', value: 'two', version: 1 });

    const ls = await runCli(['kv', 'ls', 'app/', ...on]);
    expect(ls.stdout.trim().split('\n')).to.deep.equal(['app/a', 'app/b']);
    const prefixed = await runCli(['kv', 'get', 'app/', '--prefix', '--json', ...on]);
    expect(
      prefixed.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).key),
    ).to.deep.equal(['app/a', 'app/b']);

    const del = await runCli(['kv', 'del', 'app/', '--prefix', '--json', ...on]);
    expect(JSON.parse(del.stdout)).to.include({ deleted: 2 });
    const missing = await runCli(['kv', 'get', 'app/a', ...on]);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.include("no key 'app/a'");

    const status = await statusOf(node);
    expect(status?.role).to.equal('leader');
    expect(status?.membership.voters).to.deep.equal([node.peerId]);
    const text = await runCli(['status', ...on]);
    expect(text.stdout).to.include('voters (1)');

    // Bad input is exit code 2 and never reaches the node; no node is exit code 1 with the fix.
    expect((await runCli(['kv', 'put', 'only-key', ...on])).code).to.equal(2);
    expect((await runCli(['kv', 'get', 'k', '--limit', '0', ...on])).code).to.equal(2);
    const none = await runCli(['kv', 'get', 'k', '--data-dir', await dataDir()]);
    expect(none.code).to.equal(1);
    expect(none.stderr).to.include("start one with 'cloudless start' or pass --connect");

    expect(await node.stop()).to.equal(0);
    await until(
      () =>
        stat(path.join(node.dataDir, 'node.json')).then(
          () => undefined,
          () => true,
        ),
      5000,
      'node.json removed on a clean stop',
    );
  });

  it('forms a three-node group with --join, forwards writes to the leader, survives the SIGKILL of the leader and takes the node back', async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const first = await start({ dataDir: await dataDir(), port: ports[0] as number });
    // The admin credential is only in the bootstrap node's data dir; commands on the others name it.
    credential = ['--credential', credentialFile(first.dataDir)];
    // Both joiners redeem a join token created on the bootstrap node.
    const token = ['--token', await createToken(first.dataDir, { roles: 'coordinator', uses: 2 })];
    // One at a time, as the README does it: the group makes one membership change at a time.
    const second = await start({
      dataDir: await dataDir(),
      port: ports[1] as number,
      join: first.address,
      args: token,
    });
    await second.waitFor('joined the group');
    const third = await start({
      dataDir: await dataDir(),
      port: ports[2] as number,
      join: first.address,
      args: token,
    });
    await third.waitFor('joined the group');
    const all = [first, second, third];
    await until(
      async () => ((await statusOf(first))?.membership.voters.length === 3 ? true : undefined),
      30_000,
      'three voters',
      200,
    );

    // Node 3 follows: the write is forwarded to the leader; a linearizable read through node 1 sees it.
    const put = await runCli(['kv', 'put', 'cluster/k', 'v3', '--data-dir', third.dataDir, ...credential]);
    expect(put.code, put.stderr).to.equal(0);
    const read = await runCli(['kv', 'get', 'cluster/k', '--data-dir', first.dataDir, ...credential]);
    expect(read.stdout.trim()).to.match(/^cluster\/k = v3 /);

    const leaderId = (await statusOf(first))?.leaderId;
    const leader = all.find((node) => node.peerId === leaderId);
    expect(leader, 'a leader among the three').to.not.equal(undefined);
    await (leader as CliNode).kill();
    const survivors = all.filter((node) => node !== leader);

    const after = await runCli([
      'kv',
      'put',
      'cluster/after',
      'yes',
      '--data-dir',
      (survivors[0] as CliNode).dataDir,
      '--timeout-ms',
      '20000',
      ...credential,
    ]);
    expect(after.code, after.stderr).to.equal(0);
    const newLeader = await until(
      async () => {
        const status = await statusOf(survivors[1] as CliNode);
        return status?.leaderId !== undefined && status.leaderId !== leaderId ? status.leaderId : undefined;
      },
      20_000,
      'a new leader',
      200,
    );
    expect(survivors.map((node) => node.peerId)).to.include(newLeader);

    // The killed node comes back from its data dir (no --join) as the same member and catches up.
    const restarted = await start({ dataDir: (leader as CliNode).dataDir, port: (leader as CliNode).port });
    expect(restarted.peerId).to.equal(leaderId);
    await until(
      async () => {
        const got = await runCli([
          'kv',
          'get',
          'cluster/after',
          '--serializable',
          '--data-dir',
          restarted.dataDir,
          '--timeout-ms',
          '3000',
          ...credential,
        ]);
        return got.code === 0 && got.stdout.includes('yes') ? true : undefined;
      },
      30_000,
      'the restarted node to catch up',
      300,
    );
    const seen = await statusOf(survivors[0] as CliNode);
    expect(seen?.membership.voters).to.have.members(all.map((node) => node.peerId));
  });
});
