/**
 * The workload commands (deploy, ps, scale, rm, logs, explain) as a person runs them, against one
 * real `cloudless start --roles coordinator,agent` process: the examples deploy and run, the
 * commands show what runs where and why, and bad input never reaches the cluster.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import type { WorkloadStatus } from '../../actors/coordinator/workload-service.ts';
import { CliNode, type CliResult, cliEntry, freePort, runCli } from '../support/cli-node.ts';
import { until, withDeadline } from '../support/deadline.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const example = (name: string): string => path.join(root, 'examples', name);

describe('cloudless deploy, ps, scale, rm, logs and explain', function () {
  this.timeout(60_000);
  let dir: string;
  let node: CliNode;

  function cli(args: string[], timeoutMs = 30_000): Promise<CliResult> {
    return runCli([...args, '--data-dir', node.dataDir], timeoutMs);
  }

  async function psJson(workload: string): Promise<WorkloadStatus | undefined> {
    const result = await cli(['ps', workload, '--json']);
    return result.code === 0 ? (JSON.parse(result.stdout) as WorkloadStatus) : undefined;
  }

  // One node for every spec here: the leak hooks count what each spec leaves running.
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-workload-cli-'));
    node = await CliNode.start({
      dataDir: path.join(dir, 'node'),
      port: await freePort(),
      args: ['--roles', 'coordinator,agent'],
    });
  });

  after(async () => {
    await node?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('deploys examples/web.yaml and waits until its three replicas run and are ready', async () => {
    const deploy = await cli(['deploy', '-f', example('web.yaml')]);
    expect(deploy.code, deploy.stderr).to.equal(0);
    expect(deploy.stdout).to.include('workload default/web created (revision 1)');
    expect(deploy.stdout).to.include('default/web: 3/3 ready');
  });

  it('ps lists the replicas with their node, and a summary line per workload without a name', async () => {
    const ps = await cli(['ps', 'web']);
    expect(ps.code, ps.stderr).to.equal(0);
    const lines = ps.stdout.trim().split('\n');
    expect(lines[0]).to.match(/^WORKLOAD\s+REPLICA\s+ATTEMPT\s+NODE\s+STATE\s+RESTARTS\s+AGE\s+REASON$/);
    const rows = lines.slice(1);
    expect(rows).to.have.length(3);
    for (const [index, row] of rows.entries()) {
      expect(row).to.match(
        new RegExp(`^default/web\\s+${index}\\s+1\\s+${node.peerId.slice(-8)}\\s+running \\(ready\\)`),
      );
    }
    const all = await cli(['ps', '--wide']);
    expect(all.stdout).to.include(node.peerId);
    expect(all.stdout).to.match(/default\/web\s+service\s+1\s+3\s+3\s+3/);
    // Whether the node enforces the limits is reported, never pretended (this host has no
    // writable cgroup v2 with cpu and memory controllers, or has one).
    expect(all.stdout).to.match(/LIMITS/);
    expect(all.stdout).to.match(/(not enforced: |enforced: cgroup v2)/);
  });

  it("logs prints a replica's output", async () => {
    const logs = await cli(['logs', 'web', '--replica', '2']);
    expect(logs.code, logs.stderr).to.equal(0);
    expect(logs.stdout).to.match(/^listening on \{"address":"127\.0\.0\.1"/);
    const tail = await cli(['logs', 'default/web', '--tail', '5']);
    expect(tail.stdout).to.match(/^\d*\}\n$/);
  });

  it('explain shows the candidate nodes with their scores per criterion', async () => {
    const explain = await cli(['explain', 'web']);
    expect(explain.code, explain.stderr).to.equal(0);
    expect(explain.stdout).to.include(`replica 0 (default/web/0#1): running on ${node.peerId.slice(-8)}`);
    expect(explain.stdout).to.match(/NODE\s+LOCALITY\s+RELIABILITY\s+COST\s+UTILIZATION\s+TOTAL/);
    expect(explain.stdout).to.match(
      new RegExp(`${node.peerId.slice(-8)}(\\s+[01]\\.\\d\\d){4}\\s+\\d\\.\\d{3}`),
    );
  });

  it('deploys the same file again as unchanged, scales and removes', async () => {
    const again = await cli(['deploy', '-f', example('web.yaml'), '--detach']);
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout.trim()).to.equal('workload default/web unchanged (revision 1)');

    const scale = await cli(['scale', 'web', '1']);
    expect(scale.code, scale.stderr).to.equal(0);
    expect(scale.stdout).to.include('workload default/web scaled (revision 1)');
    await until(
      async () => ((await psJson('web'))?.replicas.length === 1 ? true : undefined),
      10_000,
      'one replica',
      200,
    );

    const removed = await cli(['rm', 'web']);
    expect(removed.code, removed.stderr).to.equal(0);
    expect(removed.stdout.trim()).to.equal('workload default/web removed');
    const gone = await cli(['ps', 'web']);
    expect(gone.code).to.equal(1);
    expect(gone.stderr).to.include('there is no workload default/web');
  });

  it('refuses an invalid spec file with exit code 2, listing every problem with its line', async () => {
    const file = path.join(dir, 'invalid.yaml');
    await writeFile(
      file,
      [
        'name: Not_A_Label',
        'kind: sometimes',
        'replicas: -1',
        'driver:',
        '  type: process',
        'resources:',
        '  cpuMillicores: lots',
        'colour: blue',
        '',
      ].join('\n'),
    );
    const deploy = await cli(['deploy', '-f', file]);
    expect(deploy.code).to.equal(2);
    expect(deploy.stderr).to.include(`workload spec ${JSON.stringify(file)} is invalid (6 problems)`);
    for (const expected of [
      'name [dns-1123-label] (line 1, column 1)',
      'kind [one-of] (line 2, column 1)',
      'replicas [range] (line 3, column 1)',
      'driver.command [required] (line 4, column 1)',
      'resources.cpuMillicores [quantity] (line 7, column 3)',
      'colour [unknown-field] (line 8, column 1)',
    ])
      expect(deploy.stderr).to.include(expected);
    // Nothing reached the cluster.
    expect((await cli(['ps', '--json'])).stdout).to.equal('');
    // Bad input elsewhere is exit code 2 too.
    expect((await cli(['deploy', '-f', path.join(dir, 'missing.yaml')])).code).to.equal(2);
    expect((await cli(['scale', 'web', 'many'])).code).to.equal(2);
    expect((await cli(['explain', 'nothing-here'])).code).to.equal(1);
  });

  it('deploys examples/batch.yaml and waits until every task has succeeded', async function () {
    this.timeout(90_000);
    const deploy = await cli(['deploy', '-f', example('batch.yaml'), '--wait-timeout', '80s'], 85_000);
    expect(deploy.code, deploy.stderr).to.equal(0);
    expect(deploy.stdout).to.include('workload default/checksum created (revision 1)');
    expect(deploy.stdout).to.include('default/checksum: 4/4 succeeded');
    const logs = await cli(['logs', 'checksum', '--replica', '3']);
    expect(logs.stdout).to.match(/^3: [0-9a-f]{64}\n$/);
    expect((await cli(['rm', 'checksum'])).code).to.equal(0);
  });

  it('exits 1 with the reason when a task fails, and when replicas are not placed in time', async () => {
    const failing = path.join(dir, 'failing.yaml');
    await writeFile(
      failing,
      [
        'name: failing',
        'kind: batch',
        'replicas: 1',
        'driver: { type: process, command: node, args: ["-e", "process.exit(3)"] }',
        'resources: { cpuMillicores: 10m, memoryBytes: 16Mi }',
        'restartPolicy: { policy: never }',
      ].join('\n'),
    );
    const failed = await cli(['deploy', '-f', failing]);
    expect(failed.code).to.equal(1);
    expect(failed.stderr).to.match(/task 0 of default\/failing failed: .*code 3/);

    const huge = path.join(dir, 'huge.yaml');
    await writeFile(
      huge,
      [
        'name: huge',
        'driver: { type: process, command: node, args: ["-e", "setInterval(() => {}, 1000)"] }',
        'resources: { cpuMillicores: 512000, memoryBytes: 16Mi }',
      ].join('\n'),
    );
    const pending = await cli(['deploy', '-f', huge, '--wait-timeout', '2s']);
    expect(pending.code).to.equal(1);
    expect(pending.stderr).to.include('default/huge is not ready after 2s');
    expect(pending.stderr).to.match(/replica 0 \(attempt 1\): pending: .*512000m CPU/);
    const explain = await cli(['explain', 'huge']);
    expect(explain.stdout).to.match(/resources\s+removed 1 node\s+e\.g\. .*512000m CPU/);
  });

  it('logs -f prints new output as it comes and stops cleanly on SIGINT', async () => {
    const ticker = path.join(dir, 'ticker.yaml');
    await writeFile(
      ticker,
      [
        'name: ticker',
        'driver:',
        '  type: process',
        '  command: node',
        '  args: ["-e", "let n = 0; setInterval(() => console.log(\'tick \' + n++), 100)"]',
        'resources: { cpuMillicores: 10m, memoryBytes: 16Mi }',
      ].join('\n'),
    );
    expect((await cli(['deploy', '-f', ticker])).code).to.equal(0);
    const child = spawn(process.execPath, [cliEntry, 'logs', 'ticker', '-f', '--data-dir', node.dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.resume();
    try {
      // Lines that were written after the first read: follow polls for them.
      await until(() => (/tick 2\d\n/.test(stdout) ? true : undefined), 20_000, 'tick 2x from logs -f', 50);
      child.kill('SIGINT');
      expect(await withDeadline(exited, 10_000, 'logs -f to exit on SIGINT')).to.equal(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    }
    const ticks = stdout.trim().split('\n');
    expect(ticks.slice(0, 20)).to.deep.equal(Array.from({ length: 20 }, (_, n) => `tick ${n}`));
  });
});
