/**
 * kill -9 during start: the node identity (identity.key, whose PeerId is the node id) must be
 * written durably (temp file, fsync, rename, fsync of the directory), so a start killed at any
 * moment leaves either no identity or a whole one that passes its checksum, and the next start
 * cleans up and reuses it. Exits non-zero on the first violation.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { NotFoundError } from '../runtime/errors.ts';
import { identityFileName, readIdentityFile } from '../transport/node-identity.ts';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'cloudless.ts');

function start(dataDir: string): ChildProcess {
  return spawn(
    process.execPath,
    [cli, 'start', '--data-dir', dataDir, '--log-level', 'error', '--worker-threads', '0'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}

/** The PeerId in the identity file; undefined when there is none; throws when it is torn. */
async function readId(dataDir: string): Promise<string | undefined> {
  try {
    return peerIdFromPrivateKey(await readIdentityFile(path.join(dataDir, identityFileName))).toString();
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

function fail(message: string): never {
  process.stderr.write(`chaos/node-restart: FAILED: ${message}\n`);
  process.exit(1);
}

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-chaos-'));
try {
  const rounds = 20;
  let firstId: string | undefined;
  for (let round = 0; round < rounds; round++) {
    const child = start(dataDir);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 400));
    child.kill('SIGKILL');
    await exited;
    const id = await readId(dataDir).catch((error: Error) =>
      fail(`round ${round}: torn identity file: ${error.message}`),
    );
    // Once written, the identity is never replaced, however the later starts die.
    if (firstId !== undefined && id !== firstId)
      fail(`round ${round}: the identity changed from ${firstId} to ${id}`);
    firstId ??= id;
  }
  const ids = new Set<string>();
  for (let clean = 0; clean < 2; clean++) {
    const child = start(dataDir);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const output = await new Promise<string>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => reject(new Error(`no start within 15 s: ${seen}`)), 15_000);
      child.stdout?.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (seen.includes('stop with Ctrl-C')) {
          clearTimeout(timer);
          resolve(seen);
        }
      });
    });
    child.kill('SIGTERM');
    if ((await exited) !== 0) fail('a clean start did not stop with exit code 0');
    const match = /node (\S+) is up/.exec(output);
    if (match?.[1] === undefined) fail(`no node id in the start output: ${output}`);
    ids.add(match[1]);
  }
  if (ids.size !== 1) fail(`the node id changed between starts: ${[...ids].join(', ')}`);
  const onDisk = await readId(dataDir);
  if (!ids.has(onDisk ?? ''))
    fail(`the node id ${[...ids][0]} is not the PeerId of identity.key (${onDisk})`);
  if (firstId !== undefined && onDisk !== firstId) fail(`the identity changed from ${firstId} to ${onDisk}`);
  const leftovers = (await readdir(dataDir)).filter((name) => name.endsWith('.tmp'));
  if (leftovers.length > 0) fail(`temp files left behind: ${leftovers.join(', ')}`);
  process.stdout.write(`chaos/node-restart: ok (${rounds} kills, node id ${[...ids][0]} kept)\n`);
} finally {
  await rm(dataDir, { recursive: true, force: true });
}
