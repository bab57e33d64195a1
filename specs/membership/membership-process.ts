/**
 * Membership node processes (specs/fixtures/membership-node.ts) for the multi-process specs and
 * the benchmark: every view change each node reports over IPC is kept, so a spec can wait until
 * every node has seen a status. Every wait has a deadline; `kill()`/`stop()` always end the process.
 *
 * Enrollment is on, as in `cloudless start`: a node's first start with `join` needs a `token`
 * (`createJoinToken(bootstrap, …)`), and clients need the bootstrap node's `adminCredential`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentialFileName, readCredentialFile } from '../../actors/enrollment/admin-credential.ts';
import { TokenStore } from '../../actors/enrollment/token-store.ts';
import { KvClient } from '../../actors/raft/kv-client.ts';
import type { Role } from '../../runtime/node-config.ts';
import { waitForOutput } from '../support/child-output.ts';
import { until, withDeadline } from '../support/deadline.ts';

const fixture = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/membership-node.ts');

export interface ViewChange {
  readonly id: string;
  readonly status: string;
  readonly joinedAt: number;
  readonly at: number;
}

export class MembershipProcess {
  readonly dataDir: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly changes: ViewChange[] = [];
  /** Latest status of each member in this node's view. */
  readonly view = new Map<string, ViewChange>();
  startingAt = 0;
  address = '';

  private constructor(dataDir: string, child: ChildProcess) {
    this.dataDir = dataDir;
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.on('message', (message: { type: string } & ViewChange) => {
      if (message.type === 'starting') this.startingAt = message.at;
      if (message.type !== 'change') return;
      this.changes.push(message);
      this.view.set(message.id, message);
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get peerId(): string {
    return this.address.split('/p2p/')[1] as string;
  }

  /** `token`: the join token of a first start with `join` (a restart needs none). */
  static async start(init: {
    dataDir: string;
    roles: string;
    join?: string;
    token?: string;
  }): Promise<MembershipProcess> {
    const args = [
      '--roles',
      init.roles,
      '--data-dir',
      init.dataDir,
      ...(init.join === undefined ? [] : ['--join', init.join]),
      ...(init.token === undefined ? [] : ['--token', init.token]),
    ];
    const child = fork(fixture, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    if (process.env.CLI_SPEC_VERBOSE === '1') child.stderr?.pipe(process.stderr);
    else child.stderr?.resume();
    const node = new MembershipProcess(init.dataDir, child);
    try {
      const output = await waitForOutput(child, 'ready', 30_000);
      node.address = /listening: (\S+)/.exec(output)?.[1] ?? '';
      child.stdout?.resume();
      return node;
    } catch (error) {
      child.kill('SIGKILL');
      await node.exited;
      throw error;
    }
  }

  /** Sends an IPC command to the fixture and resolves with its answer (`id` pairs them). */
  request<T>(command: { type: string }, timeoutMs = 10_000): Promise<T> {
    const id = ++this.#requests;
    return withDeadline(
      new Promise<T>((resolve, reject) => {
        const onMessage = (message: { id?: number; type?: string; error?: string }): void => {
          if (message.id !== id) return;
          this.child.off('message', onMessage);
          if (message.type === 'failed') reject(new Error(message.error));
          else resolve(message as T);
        };
        this.child.on('message', onMessage);
        this.child.send({ ...command, id });
      }),
      timeoutMs,
      `${command.type} from ${this.dataDir}`,
    );
  }

  #requests = 0;

  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await withDeadline(this.exited, 10_000, `${this.dataDir} to exit on SIGKILL`);
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    try {
      await withDeadline(this.exited, 15_000, `${this.dataDir} to stop on SIGTERM`);
    } catch {
      await this.kill();
    }
  }
}

/** The file the bootstrap node writes its admin credential to (the CLI's `--credential`). */
export function credentialFileOf(bootstrap: MembershipProcess): string {
  return path.join(bootstrap.dataDir, credentialFileName);
}

/** The bootstrap node's admin credential (written just after it is up), for KvClients. */
export function adminCredential(bootstrap: MembershipProcess, timeoutMs = 20_000): Promise<string> {
  const file = credentialFileOf(bootstrap);
  return until(
    () => readCredentialFile(file).catch(() => undefined),
    timeoutMs,
    `the admin credential in ${file}`,
    50,
  );
}

/**
 * A join token for `roles` with `uses` uses, created through the bootstrap node (retried until
 * its credential's hash is stored, just after it is up).
 */
export async function createJoinToken(
  bootstrap: MembershipProcess,
  init: { roles: Role[]; uses: number; timeoutMs?: number },
): Promise<string> {
  const credential = await adminCredential(bootstrap);
  let last: unknown;
  try {
    return await until(
      async () => {
        try {
          const client = await KvClient.connect({ address: bootstrap.address, credential, timeoutMs: 5000 });
          try {
            const { token } = await new TokenStore({ kv: client }).create({
              roles: init.roles,
              ttlMs: 3_600_000,
              maxUses: init.uses,
            });
            return token;
          } finally {
            await client.close();
          }
        } catch (error) {
          last = error;
          return undefined;
        }
      },
      init.timeoutMs ?? 30_000,
      `a join token from ${bootstrap.address}`,
      200,
    );
  } catch (error) {
    throw new Error(`cannot create a join token: ${(last as Error | undefined)?.message}`, { cause: error });
  }
}

/** Waits until every live node's view shows `id` with `status`; resolves with the time the last one saw it. */
export async function seenEverywhere(
  nodes: readonly MembershipProcess[],
  id: string,
  status: string,
  timeoutMs: number,
): Promise<number> {
  return until(
    () => {
      const live = nodes.filter((node) => node.alive);
      let last = 0;
      for (const node of live) {
        const change = node.view.get(id);
        if (change?.status !== status) return undefined;
        last = Math.max(last, change.at);
      }
      return live.length > 0 ? last : undefined;
    },
    timeoutMs,
    `every node to see ${id} ${status}`,
    20,
  );
}
