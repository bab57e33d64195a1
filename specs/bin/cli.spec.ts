import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'bin', 'cloudless.ts');

function waitForOutput(child: ChildProcess, text: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(
      () => reject(new Error(`no '${text}' within ${timeoutMs} ms; got: ${seen}`)),
      timeoutMs,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve(seen);
      }
    });
  });
}

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

  it('starts a node, keeps its node id in the data dir, and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [cli, 'start', '--data-dir', dataDir, '--log-level', 'warn']);
    const exited = exitOf(child);
    const output = await waitForOutput(child, 'stop with Ctrl-C');
    expect(output).to.include('not yet:');
    const nodeId = (await readFile(path.join(dataDir, 'node-id'), 'utf8')).trim();
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
    expect(error?.stderr).to.match(/logLevel \(from environment\)/);
  });

  it('takes settings from a YAML file below the environment and flags', async () => {
    const config = path.join(dataDir, 'node.yaml');
    await writeFile(config, 'logLevel: warn\nroles: [agent]\nnodeId: from-file\n');
    const child = spawn(process.execPath, [
      cli,
      'start',
      '--config',
      config,
      '--data-dir',
      dataDir,
      '--node-id',
      'from-flag',
    ]);
    const exited = exitOf(child);
    const output = await waitForOutput(child, 'stop with Ctrl-C');
    expect(output).to.include('node from-flag is up');
    expect(output).to.include('roles agent are accepted');
    child.kill('SIGTERM');
    expect(await exited).to.equal(0);
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
    const error = await run(process.execPath, [cli, 'deploy']).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(error?.code).to.equal(2);
    expect(error?.stderr).to.include("unknown command 'deploy'");
  });
});
