import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { expect } from 'chai';
import { identityFileName, readIdentityFile } from '../../transport/node-identity.ts';
import { waitForOutput } from '../support/child-output.ts';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'bin', 'cloudless.ts');

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('cloudless command', () => {
  let dataDir: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-cli-'));
  });

  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('starts a node whose id is the PeerId of its identity file, and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [cli, 'start', '--data-dir', dataDir, '--log-level', 'warn']);
    const exited = exitOf(child);
    const output = await waitForOutput(child, 'stop with Ctrl-C');
    expect(output).to.include('not yet:');
    const identityFile = path.join(dataDir, identityFileName);
    expect((await stat(identityFile)).mode & 0o777).to.equal(0o600);
    const nodeId = peerIdFromPrivateKey(await readIdentityFile(identityFile)).toString();
    expect(output).to.include(`node ${nodeId} is up`);
    child.kill('SIGTERM');
    expect(await exited).to.equal(0);

    // A second start reuses the same identity.
    const again = spawn(process.execPath, [cli, 'start', '--data-dir', dataDir, '--log-level', 'warn']);
    const againExited = exitOf(again);
    expect(await waitForOutput(again, 'stop with Ctrl-C')).to.include(`node ${nodeId} is up`);
    again.kill('SIGINT');
    expect(await againExited).to.equal(0);
  });

  it('rejects an invalid setting with exit code 2 and names the setting and its source', async () => {
    const error = await run(process.execPath, [cli, 'start', '--data-dir', dataDir], {
      env: { ...process.env, CLOUDLESS_LOG_LEVEL: 'loud' },
    }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(error?.code).to.equal(2);
    expect(error?.stderr).to.include('logLevel (from environment CLOUDLESS_LOG_LEVEL)');
  });

  it('takes settings from a YAML file below the environment and flags', async () => {
    const config = path.join(dataDir, 'node.yaml');
    await writeFile(config, 'logLevel: warn\nroles: [coordinator, agent]\nworkerThreads: 0\n');
    const fromFile = spawn(process.execPath, [cli, 'start', '--config', config, '--data-dir', dataDir]);
    const fromFileExited = exitOf(fromFile);
    expect(await waitForOutput(fromFile, 'stop with Ctrl-C')).to.include(
      'node agent: /user/agent runs replicas',
    );
    fromFile.kill('SIGTERM');
    expect(await fromFileExited).to.equal(0);

    const child = spawn(
      process.execPath,
      [cli, 'start', '--config', config, '--data-dir', dataDir, '--roles', 'coordinator,storage'],
      { env: { ...process.env, CLOUDLESS_ROLES: 'coordinator' } },
    );
    const exited = exitOf(child);
    expect(await waitForOutput(child, 'stop with Ctrl-C')).to.include('the storage role is accepted');
    child.kill('SIGTERM');
    expect(await exited).to.equal(0);
  });

  it('rejects a configured node id from any source with exit code 2, naming the source', async () => {
    const config = path.join(dataDir, 'node.yaml');
    await writeFile(config, 'nodeId: from-file\n');
    const attempts: { args: string[]; env?: NodeJS.ProcessEnv; source: string }[] = [
      { args: ['--node-id', 'from-flag'], source: 'flags' },
      { args: [], env: { CLOUDLESS_NODE_ID: 'from-env' }, source: 'environment' },
      { args: ['--config', config], source: config },
    ];
    for (const { args, env, source } of attempts) {
      const error = await run(process.execPath, [cli, 'start', '--data-dir', dataDir, ...args], {
        env: { ...process.env, ...env },
      }).then(
        () => undefined,
        (e: { code: number; stderr: string }) => e,
      );
      expect(error?.code, source).to.equal(2);
      expect(error?.stderr).to.include(`nodeId (from ${source})`);
    }
  });

  it('refuses to start with an identity file that others can read, naming the file (exit code 2)', async () => {
    const first = spawn(process.execPath, [cli, 'start', '--data-dir', dataDir, '--log-level', 'warn']);
    const firstExited = exitOf(first);
    await waitForOutput(first, 'stop with Ctrl-C');
    first.kill('SIGTERM');
    expect(await firstExited).to.equal(0);

    const identityFile = path.join(dataDir, identityFileName);
    await chmod(identityFile, 0o644);
    const error = await run(process.execPath, [cli, 'start', '--data-dir', dataDir]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(error?.code).to.equal(2);
    expect(error?.stderr).to.include(identityFile);
    expect(error?.stderr).to.include('chmod 600');
  });

  it('rejects unknown settings in the YAML file', async () => {
    const config = path.join(dataDir, 'node.yaml');
    await writeFile(config, 'logLevl: warn\n');
    const error = await run(process.execPath, [cli, 'start', '--config', config]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(error?.code).to.equal(2);
    expect(error?.stderr).to.include('logLevl');
  });

  it('rejects an unknown command with exit code 2', async () => {
    const error = await run(process.execPath, [cli, 'frobnicate']).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(error?.code).to.equal(2);
    expect(error?.stderr).to.include("unknown command 'frobnicate'");
  });
});
