import { type ChildProcess, spawn } from 'node:child_process';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { nodeFileName } from '../../bin/kv-commands.ts';
import { waitForOutput } from '../support/child-output.ts';
import { cliEntry, freePort, runCli } from '../support/cli-node.ts';
import { until, withDeadline } from '../support/deadline.ts';
import { checkMetricFamilies } from '../support/metric-names.ts';

function get(port: number, pathname: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: pathname, agent: false, timeout: 5000 },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          body += chunk;
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${pathname}: no answer within 5000 ms`)));
    req.on('error', reject);
    req.end();
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('cloudless start: defaults, status --tree, metrics endpoint, graceful stop', function () {
  this.timeout(90_000);
  let cwd: string;
  let child: ChildProcess | undefined;
  let exited: Promise<number | null> | undefined;

  beforeEach(async () => {
    cwd = await mkdtemp(path.join(os.tmpdir(), 'cloudless-start-'));
  });

  afterEach(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await withDeadline(exited as Promise<number | null>, 10_000, 'the node to exit on SIGKILL');
    }
    child = undefined;
    await rm(cwd, { recursive: true, force: true });
  });

  it('runs every role from ./.cloudless like npm start, shows its tree and metrics, and stops cleanly on SIGTERM', async () => {
    const metricsPort = await freePort();
    // No --roles, no --data-dir, no --listen: npm start's defaults, in a fresh directory.
    child = spawn(
      process.execPath,
      [
        cliEntry,
        'start',
        '--worker-threads',
        '0',
        '--log-level',
        'warn',
        '--metrics-addr',
        `127.0.0.1:${metricsPort}`,
      ],
      { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stderr?.resume();
    exited = exitOf(child);
    const banner = await waitForOutput(child, 'stop with Ctrl-C', 30_000);
    const dataDir = path.join(cwd, '.cloudless');
    expect(banner).to.include(`(data dir ${dataDir})`);
    expect(banner).to.include('roles: coordinator,agent,storage');
    expect(banner).to.match(/listening: \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//);
    expect(banner).to.include(`metrics: http://127.0.0.1:${metricsPort}/metrics`);
    expect(banner).to.include('status --tree');
    expect(banner).to.include('kv put hello world');
    expect(banner).to.include('token create --roles agent --ttl 1h');
    await access(path.join(dataDir, nodeFileName));

    // Ready once the roles run and the one-member group has elected itself.
    expect((await get(metricsPort, '/healthz')).status).to.equal(200);
    await until(
      async () => ((await get(metricsPort, '/readyz')).status === 200 ? true : undefined),
      20_000,
      '/readyz to answer 200',
      100,
    );
    const families = parsePrometheusTextFormat((await get(metricsPort, '/metrics')).body);
    checkMetricFamilies(families);
    const names = families.map((family) => family.name);
    expect(names).to.include.members([
      'cloudless_actor_live_actors',
      'cloudless_transport_peers',
      'cloudless_raft_term',
      'cloudless_raft_is_leader_bool',
    ]);
    expect(
      families.find((family) => family.name === 'cloudless_raft_is_leader_bool')?.metrics[0]?.value,
    ).to.equal('1');

    const tree = await runCli(['status', '--tree', '--data-dir', dataDir]);
    expect(tree.code, tree.stderr).to.equal(0);
    expect(tree.stdout).to.match(/^ {4}coordinator {2}\[supervisor, restarts 0, mailbox \d+\]$/m);
    expect(tree.stdout).to.match(/^ {6}raft {2}\[restarts 0, mailbox \d+\]$/m);
    expect(tree.stdout).to.match(/^ {4}introspection {2}\[/m);
    const json = await runCli(['status', '--tree', '--json', '--data-dir', dataDir]);
    expect(json.code, json.stderr).to.equal(0);
    type Node = { path: string; restarts: number; children: Node[] };
    const parsed = JSON.parse(json.stdout) as { actors: Node[]; truncated: boolean };
    expect(parsed.truncated).to.equal(false);
    const user = parsed.actors[0]?.children.find((node) => node.path === '/user');
    const coordinator = user?.children.find((node) => node.path === '/user/coordinator');
    expect(coordinator?.children.map((node) => node.path)).to.deep.equal([
      '/user/coordinator/raft',
      '/user/coordinator/kv',
    ]);

    child.kill('SIGTERM');
    expect(await withDeadline(exited, 20_000, 'the node to stop on SIGTERM')).to.equal(0);
    const error = await access(path.join(dataDir, nodeFileName)).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(error?.code, 'node.json is removed').to.equal('ENOENT');
    // Nothing is left listening: the metrics port is free again.
    const refused = await get(metricsPort, '/healthz').then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(refused?.code).to.equal('ECONNREFUSED');
  });

  it('refuses a bad --metrics-addr before starting, naming the flag (exit code 2)', async () => {
    const result = await runCli(['start', '--data-dir', path.join(cwd, 'd'), '--metrics-addr', 'localhost']);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('metricsAddr (from flag --metrics-addr)');
  });

  it('refuses an agent or storage node without --join, saying how to fix it (exit code 2)', async () => {
    const result = await runCli(['start', '--data-dir', path.join(cwd, 'd'), '--roles', 'agent,storage']);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('--join');
    expect(result.stderr).to.include('coordinator');
  });

  it('never prints the token it was given, in the banner or the logs', async () => {
    const secret = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn';
    child = spawn(
      process.execPath,
      [
        cliEntry,
        'start',
        '--roles',
        'coordinator',
        // A member that never answers: the join keeps retrying in the background meanwhile.
        '--join',
        '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWGq1dZ1xFp4fGjH8ELmzquofF7MFUwuiFxzFezmc38kqk',
        '--worker-threads',
        '0',
        '--log-level',
        'info',
        '--data-dir',
        path.join(cwd, 'd'),
      ],
      {
        cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CLOUDLESS_TOKEN: `a1b2c3d4e5f60718.${secret}` },
      },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    exited = exitOf(child);
    const banner = await waitForOutput(child, 'stop with Ctrl-C', 30_000);
    child.kill('SIGINT');
    expect(await withDeadline(exited, 20_000, 'the node to stop on SIGINT')).to.equal(0);
    expect(stderr).to.include('a1b2c3d4e5f60718.<redacted>');
    expect(banner + stderr).to.not.include(secret);
  });
});
