/**
 * A real `cloudless start` process for the CLI specs, and `cloudless …` commands run against it.
 * Every wait has a deadline; `stop()` falls back to SIGKILL, so a spec's `after` never hangs.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentialFileName, readCredentialFile } from '../../actors/enrollment/admin-credential.ts';
import { waitForOutput } from './child-output.ts';
import { until, withDeadline } from './deadline.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const cliEntry = path.join(root, 'bin', 'cloudless.ts');

/** A loopback TCP port free right now (the OS picks it; the listener is closed before returning). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `cloudless <args>` to completion (killed after `timeoutMs`). */
export function runCli(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliEntry, ...args], { timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * The admin credential the bootstrap node at `dataDir` writes just after its banner: waits for
 * the file and resolves with its content (for `KvClient.connect({ address, credential })`).
 */
export function adminCredential(dataDir: string, timeoutMs = 20_000): Promise<string> {
  const file = path.join(dataDir, credentialFileName);
  return until(
    () => readCredentialFile(file).catch(() => undefined),
    timeoutMs,
    `the admin credential in ${file}`,
    50,
  );
}

/** The path of the admin credential the bootstrap node at `dataDir` writes (the CLI's `--credential`). */
export function credentialFile(dataDir: string): string {
  return path.join(dataDir, credentialFileName);
}

/**
 * `cloudless token create --roles <roles> --ttl 1h --uses <uses>` on the bootstrap node at
 * `dataDir` (retried until the credential is stored, just after the node's banner); resolves with
 * the token for `start --join … --token`.
 */
export async function createToken(
  dataDir: string,
  init: { roles?: string; uses?: number; timeoutMs?: number } = {},
): Promise<string> {
  const args = [
    'token',
    'create',
    '--roles',
    init.roles ?? 'coordinator',
    '--ttl',
    '1h',
    '--uses',
    String(init.uses ?? 1),
    '--data-dir',
    dataDir,
    '--timeout-ms',
    '5000',
    '--json',
  ];
  let last: CliResult | undefined;
  try {
    return await until(
      async () => {
        last = await runCli(args);
        if (last.code !== 0) return undefined;
        return (JSON.parse(last.stdout.split('\n')[0] as string) as { token: string }).token;
      },
      init.timeoutMs ?? 30_000,
      `a join token from ${dataDir}`,
      200,
    );
  } catch (error) {
    throw new Error(`token create failed: ${last?.stderr.trim() ?? ''}`, { cause: error });
  }
}

export class CliNode {
  readonly dataDir: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Everything the node printed on stdout so far. */
  readonly #stdout: { text: string };
  readonly exited: Promise<number | null>;

  private constructor(
    dataDir: string,
    port: number,
    child: ChildProcess,
    stdout: { text: string },
    exited: Promise<number | null>,
  ) {
    this.dataDir = dataDir;
    this.port = port;
    this.child = child;
    this.#stdout = stdout;
    this.exited = exited;
  }

  get output(): string {
    return this.#stdout.text;
  }

  /** Resolves once stdout contains `text`. */
  waitFor(text: string, timeoutMs = 30_000): Promise<true> {
    return until(
      () => (this.#stdout.text.includes(text) ? true : undefined),
      timeoutMs,
      `'${text}' from ${this.dataDir}`,
      50,
    );
  }

  /**
   * Starts a coordinator on 127.0.0.1:`port` and waits for its banner. A first start with `join`
   * needs a join token: pass `args: ['--token', await createToken(bootstrap.dataDir)]`.
   */
  static async start(init: {
    dataDir: string;
    port: number;
    join?: string;
    args?: string[];
  }): Promise<CliNode> {
    const args = [
      cliEntry,
      'start',
      '--roles',
      'coordinator',
      '--data-dir',
      init.dataDir,
      '--listen',
      `/ip4/127.0.0.1/tcp/${init.port}`,
      '--log-level',
      process.env.CLI_SPEC_VERBOSE === '1' ? 'info' : 'warn',
      '--worker-threads',
      '0',
      ...(init.join === undefined ? [] : ['--join', init.join]),
      ...(init.args ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    if (process.env.CLI_SPEC_VERBOSE === '1') child.stderr?.pipe(process.stderr);
    else child.stderr?.resume();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const stdout = { text: '' };
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout.text += chunk.toString();
    });
    try {
      await waitForOutput(child, 'stop with Ctrl-C', 20_000);
      return new CliNode(init.dataDir, init.port, child, stdout, exited);
    } catch (error) {
      child.kill('SIGKILL');
      await exited;
      throw error;
    }
  }

  /** The node's address with its PeerId, as printed in the banner. */
  get address(): string {
    const match = /listening: (\S+)/.exec(this.output);
    if (match?.[1] === undefined) throw new Error(`no listening address in: ${this.output}`);
    return match[1];
  }

  get peerId(): string {
    return this.address.split('/p2p/')[1] as string;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`; resolves with the exit code. */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill('SIGTERM');
    try {
      return await withDeadline(this.exited, timeoutMs, `node ${this.dataDir} to stop on SIGTERM`);
    } catch (error) {
      this.child.kill('SIGKILL');
      await this.exited;
      throw error;
    }
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await withDeadline(this.exited, 10_000, `node ${this.dataDir} to exit on SIGKILL`);
  }
}
