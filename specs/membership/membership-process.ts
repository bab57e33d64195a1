/**
 * Membership node processes (specs/fixtures/membership-node.ts) for the multi-process specs and
 * the benchmark: every view change each node reports over IPC is kept, so a spec can wait until
 * every node has seen a status. Every wait has a deadline; `kill()`/`stop()` always end the process.
 */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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

  static async start(init: { dataDir: string; roles: string; join?: string }): Promise<MembershipProcess> {
    const args = [
      '--roles',
      init.roles,
      '--data-dir',
      init.dataDir,
      ...(init.join === undefined ? [] : ['--join', init.join]),
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
