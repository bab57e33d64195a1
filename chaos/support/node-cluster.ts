/**
 * A cluster of real `cloudless start` processes on loopback for chaos tests and benchmarks:
 * start N nodes, then kill -9, restart, SIGSTOP/SIGCONT and partition them.
 *
 * Each node runs `node bin/cloudless.ts start --roles coordinator --data-dir <root>/n<i>
 * --listen /ip4/127.0.0.1/tcp/<port> --log-level warn --worker-threads 0 [--join <node 0> --token T]` with
 * `CLOUDLESS_FAULT_INJECTION=1` and an IPC channel, over which partitions are sent (see
 * transport/mesh-fault-ipc.ts). A node's PeerId and address come from its start banner. The
 * first start listens on a free port; a restart reuses that port, so peers find it again.
 *
 * Enrollment: node 0 bootstraps and writes its admin credential (`cluster.credential`, for
 * `KvClient.connect({ address, credential })`; `cluster.credentialFile` for the CLI). With `join`,
 * one join token is created on node 0 (`cloudless token create`, one use per joiner) and passed
 * to each joiner's first start.
 *
 * Partitions: `partition([[0, 1], [2]])` tells every node which peers it cannot reach (those
 * outside its group; a node in no group is cut off from all). The cluster remembers the
 * partition, so a restarted node is told again, and a paused node applies it when resumed.
 *
 * Nothing outlives the harness: `stop()` ends every process (SIGTERM, then SIGKILL after a
 * deadline) and removes the data dirs, and until then a process 'exit' hook SIGKILLs what is
 * left if the harness dies first (a node whose parent is gone also stops itself).
 *
 * Fault schedules draw from `random()`, a mulberry32 stream from `seed` (printed at start), so a
 * failing run can be replayed with the same seed.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { credentialFileName, readCredentialFile } from '../../actors/enrollment/admin-credential.ts';
import { mulberry32 } from '../../actors/raft/mulberry32.ts';
import { InvalidRequestError, TimeoutError, UnavailableError } from '../../runtime/errors.ts';
import type { FaultAck } from '../../transport/mesh-fault-ipc.ts';

const defaultEntry = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'bin',
  'cloudless.ts',
);

export interface NodeClusterInit {
  /** Nodes to start (at least 1). */
  size: number;
  /** Pass `--join <address of node 0>` to every other node; default false. */
  join?: boolean;
  /** `--roles`; default `coordinator`. */
  roles?: string;
  /** `--roles` per node index, over `roles` (e.g. `['coordinator', 'agent', 'agent']`). */
  nodeRoles?: readonly string[];
  /** More arguments for every `cloudless start`. */
  args?: string[];
  /** More environment for every node (over this process's). */
  env?: NodeJS.ProcessEnv;
  /** Seed of `random()`; default a random one. Printed at start either way. */
  seed?: number;
  /** Where the nodes' data dirs go; default a fresh temp dir (removed by `stop()`). */
  rootDir?: string;
  /** Deadline for a node's start banner; default 20 s. */
  startTimeoutMs?: number;
  /** Deadline for a fault command's ack; default 5 s. */
  ackTimeoutMs?: number;
  /** How long `stop()` waits after SIGTERM before SIGKILL; default 8 s. */
  stopTimeoutMs?: number;
  /** Where the harness prints (the seed, unexpected exits); default stderr. */
  log?: (line: string) => void;
  /** The CLI entry; default bin/cloudless.ts. */
  entry?: string;
}

export type ClusterNodeState = 'running' | 'paused' | 'killed' | 'exited' | 'stopped';

export interface ClusterNodeExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Lines kept per stream of a node, at most (the oldest are dropped). */
const maxLines = 1000;

/** One node of the cluster; its process changes on restart, its data dir and PeerId do not. */
export class ClusterNode {
  readonly index: number;
  readonly dataDir: string;
  peerId = '';
  /** Its dialable address, ending in /p2p/<PeerId>. */
  address = '';
  state: ClusterNodeState = 'stopped';
  process: ChildProcess | undefined;
  /** Resolves when the current process has exited. */
  exited: Promise<ClusterNodeExit> = Promise.resolve({ code: null, signal: null });
  /** The current process's stdout and stderr lines, most recent last. */
  readonly output: string[] = [];
  /** Fault commands sent while paused, answered once it runs again. */
  readonly deferred = new Set<Promise<FaultAck>>();
  port = 0;
  /** `--token` for its first start (a joiner's); a restart, with its data dir, needs none. */
  token: string | undefined;
  readonly #pendingAcks = new Map<
    number,
    { resolve: (ack: FaultAck) => void; reject: (error: Error) => void }
  >();

  constructor(index: number, dataDir: string) {
    this.index = index;
    this.dataDir = dataDir;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** Whether the process is alive (running or paused). */
  get alive(): boolean {
    return this.state === 'running' || this.state === 'paused';
  }

  /** @internal */
  expectAck(
    id: number,
    handlers: { resolve: (ack: FaultAck) => void; reject: (error: Error) => void },
  ): void {
    this.#pendingAcks.set(id, handlers);
  }

  /** @internal */
  settleAck(id: number): { resolve: (ack: FaultAck) => void; reject: (error: Error) => void } | undefined {
    const handlers = this.#pendingAcks.get(id);
    this.#pendingAcks.delete(id);
    return handlers;
  }

  /** @internal Fails every ack still awaited (the process exited). */
  failAcks(error: Error): void {
    const pending = [...this.#pendingAcks.values()];
    this.#pendingAcks.clear();
    for (const { reject } of pending) reject(error);
  }
}

function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    const step = mulberry32(state);
    state = step.next;
    return step.value;
  };
}

export class NodeCluster {
  readonly seed: number;
  readonly nodes: readonly ClusterNode[];
  readonly rootDir: string;
  /**
   * The admin credential of node 0 (the content of `<n0>/admin.credential`), for
   * `KvClient.connect({ address, credential })`. Without `join` every node bootstraps its own
   * group, with its own credential in its data dir; this is node 0's.
   */
  credential = '';
  readonly #init: NodeClusterInit;
  readonly #ownsRoot: boolean;
  readonly #random: () => number;
  readonly #log: (line: string) => void;
  /** For each node, the indexes of the nodes it cannot reach. */
  #blocked = new Map<number, Set<number>>();
  #commandSeq = 0;
  readonly #ackTimeoutMs: number;
  #stopping = false;
  readonly #onExit = (): void => this.#killAllSync();

  private constructor(init: NodeClusterInit, rootDir: string, ownsRoot: boolean, seed: number) {
    this.#init = init;
    this.rootDir = rootDir;
    this.#ownsRoot = ownsRoot;
    this.seed = seed;
    this.#random = seededRandom(seed);
    this.#ackTimeoutMs = init.ackTimeoutMs ?? 5000;
    this.#log = init.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.nodes = Array.from({ length: init.size }, (_, i) => new ClusterNode(i, path.join(rootDir, `n${i}`)));
  }

  /** Starts `init.size` nodes (node 0 first, so the others can join it) and waits for their banners. */
  static async start(init: NodeClusterInit): Promise<NodeCluster> {
    if (!(Number.isInteger(init.size) && init.size >= 1 && init.size <= 64)) {
      throw new InvalidRequestError(`a cluster has 1 to 64 nodes, not ${String(init.size)}`);
    }
    const seed = init.seed ?? Math.floor(Math.random() * 2 ** 31);
    const ownsRoot = init.rootDir === undefined;
    const rootDir = init.rootDir ?? (await mkdtemp(path.join(os.tmpdir(), 'cloudless-cluster-')));
    const cluster = new NodeCluster(init, rootDir, ownsRoot, seed);
    cluster.#log(
      `node-cluster: seed ${seed} (pass seed: ${seed} to replay), ${init.size} node(s) in ${rootDir}`,
    );
    process.on('exit', cluster.#onExit);
    try {
      const first = cluster.nodes[0] as ClusterNode;
      await cluster.#spawn(first);
      cluster.credential = await cluster.#awaitCredential(first);
      if (init.join === true && init.size > 1) {
        const token = await cluster.#createToken(first, init.size - 1);
        for (const node of cluster.nodes.slice(1)) node.token = token;
      }
      await Promise.all(cluster.nodes.slice(1).map((node) => cluster.#spawn(node)));
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The path of node 0's admin credential file (the CLI's `--credential`). */
  get credentialFile(): string {
    return path.join(this.node(0).dataDir, credentialFileName);
  }

  /** Waits until the bootstrap node wrote its admin credential (it does so after its banner). */
  async #awaitCredential(node: ClusterNode): Promise<string> {
    const file = path.join(node.dataDir, credentialFileName);
    const timeoutMs = this.#init.startTimeoutMs ?? 20_000;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        return await readCredentialFile(file);
      } catch (error) {
        if (!node.alive)
          throw new UnavailableError(`node ${node.index} exited before it wrote ${file}`, { cause: error });
        if (performance.now() > deadline)
          throw new TimeoutError(`node ${node.index} wrote no admin credential within ${timeoutMs} ms`, {
            cause: error,
          });
      }
      await sleep(50);
    }
  }

  /**
   * `cloudless token create` on node `node` for the cluster's roles with `uses` uses; retried until
   * the deadline (the bootstrap node stores the credential's hash just after writing the file).
   */
  async #createToken(node: ClusterNode, uses: number): Promise<string> {
    const init = this.#init;
    const args = [
      init.entry ?? defaultEntry,
      'token',
      'create',
      '--roles',
      this.#joinerRoles(),
      '--ttl',
      '1h',
      '--uses',
      String(uses),
      '--data-dir',
      node.dataDir,
      '--timeout-ms',
      '5000',
      '--json',
    ];
    const timeoutMs = init.startTimeoutMs ?? 20_000;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          args,
          { timeout: 15_000, env: { ...process.env, ...init.env } },
          (error, stdout, stderr) =>
            resolve({
              code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1,
              stdout,
              stderr,
            }),
        );
      });
      if (result.code === 0) {
        const token = (JSON.parse(result.stdout.split('\n')[0] as string) as { token?: unknown }).token;
        if (typeof token === 'string') return token;
        throw new UnavailableError(`token create printed no token: ${result.stdout}`);
      }
      if (!node.alive || performance.now() > deadline)
        throw new UnavailableError(
          `cannot create a join token on node ${node.index} (exit ${result.code}): ${result.stderr.trim()}`,
        );
      await sleep(200);
    }
  }

  /** The next number in [0, 1) of the seeded stream (for fault schedules). */
  random(): number {
    return this.#random();
  }

  /** A seeded integer in [0, n). */
  randomInt(n: number): number {
    return Math.floor(this.#random() * n);
  }

  /** A seeded split of the nodes into two non-empty groups (for a cluster of at least 2). */
  randomSplit(): number[][] {
    const order = this.nodes.map((node) => node.index);
    for (let i = order.length - 1; i > 0; i--) {
      const j = this.randomInt(i + 1);
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    const cut = 1 + this.randomInt(Math.max(1, order.length - 1));
    return [order.slice(0, cut), order.slice(cut)];
  }

  node(i: number): ClusterNode {
    const node = this.nodes[i];
    if (node === undefined)
      throw new InvalidRequestError(`no node ${i}: the cluster has ${this.nodes.length}`);
    return node;
  }

  /** SIGKILL (kill -9); resolves once the process is gone. */
  async kill(i: number): Promise<ClusterNodeExit> {
    const node = this.node(i);
    if (!node.alive) return node.exited;
    node.state = 'killed';
    node.process?.kill('SIGKILL');
    return node.exited;
  }

  /** Starts the node again with the same data dir and port (killing it first if it runs). */
  async restart(i: number): Promise<ClusterNode> {
    const node = this.node(i);
    if (node.alive) await this.kill(i);
    await this.#spawn(node);
    return node;
  }

  /** SIGSTOP: the process freezes (its peers see a node that stopped answering). */
  pause(i: number): void {
    const node = this.node(i);
    if (node.state !== 'running') throw new InvalidRequestError(`node ${i} is ${node.state}, not running`);
    node.process?.kill('SIGSTOP');
    node.state = 'paused';
  }

  /** SIGCONT; resolves once the node answered the fault commands sent while it was paused. */
  async resume(i: number): Promise<void> {
    const node = this.node(i);
    if (node.state !== 'paused') throw new InvalidRequestError(`node ${i} is ${node.state}, not paused`);
    node.process?.kill('SIGCONT');
    node.state = 'running';
    const deferred = [...node.deferred];
    node.deferred.clear();
    const timeoutMs = this.#ackTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all(deferred),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new TimeoutError(
                  `node ${i} did not ack its fault commands within ${timeoutMs} ms of SIGCONT`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Partitions the cluster into `groups` of node indexes: each node can reach only the nodes of
   * its own group (a node in no group reaches none). Resolves with the acks of the running nodes;
   * paused nodes answer when resumed, killed ones are told when restarted.
   */
  async partition(groups: number[][]): Promise<FaultAck[]> {
    const groupOf = new Map<number, number>();
    groups.forEach((group, g) => {
      for (const i of group) {
        this.node(i);
        if (groupOf.has(i)) throw new InvalidRequestError(`node ${i} is in more than one group`);
        groupOf.set(i, g);
      }
    });
    const blocked = new Map<number, Set<number>>();
    for (const node of this.nodes) {
      const group = groupOf.get(node.index);
      blocked.set(
        node.index,
        new Set(
          this.nodes
            .filter((other) => other !== node && (group === undefined || groupOf.get(other.index) !== group))
            .map((other) => other.index),
        ),
      );
    }
    this.#blocked = blocked;
    return this.#tellAll((node) => this.#partitionCommand(node));
  }

  /** Heals every partition (and turns drops and delays off) on every node. */
  async heal(): Promise<FaultAck[]> {
    this.#blocked = new Map();
    return this.#tellAll(() => ({ type: 'fault:heal' }));
  }

  /** Sends any fault command to node `i` and resolves with its ack (rejects when `ok` is false). */
  async command(i: number, command: Record<string, unknown>): Promise<FaultAck> {
    const node = this.node(i);
    if (node.state !== 'running')
      throw new UnavailableError(`node ${i} is ${node.state}; it cannot take commands`);
    return this.#send(node, command);
  }

  /** Ends every node (SIGTERM, SIGKILL after the deadline) and removes the data dirs it created. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const deadlineMs = this.#init.stopTimeoutMs ?? 8000;
    await Promise.all(
      this.nodes.map(async (node) => {
        if (!node.alive) return;
        const child = node.process as ChildProcess;
        child.kill('SIGTERM');
        // A stopped process handles SIGTERM once continued.
        if (node.state === 'paused') child.kill('SIGCONT');
        node.state = 'stopped';
        let timer: NodeJS.Timeout | undefined;
        const forced = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, deadlineMs);
        });
        const outcome = await Promise.race([node.exited, forced]);
        clearTimeout(timer);
        if (outcome === undefined) {
          this.#log(
            `node-cluster: node ${node.index} did not stop within ${deadlineMs} ms of SIGTERM; SIGKILL`,
          );
          child.kill('SIGKILL');
          await node.exited;
        }
      }),
    );
    this.#killOrphanReplicas();
    process.off('exit', this.#onExit);
    if (this.#ownsRoot) await rm(this.rootDir, { recursive: true, force: true });
  }

  #killAllSync(): void {
    for (const node of this.nodes) if (node.alive) node.process?.kill('SIGKILL');
    this.#killOrphanReplicas();
    if (this.#ownsRoot) rmSync(this.rootDir, { recursive: true, force: true });
  }

  /**
   * Replicas run in their own process groups, so an agent killed with SIGKILL leaves them running
   * (its next start would kill them; a harness that stops for good must do it itself).
   */
  #killOrphanReplicas(): void {
    for (const node of this.nodes) {
      const dir = path.join(node.dataDir, 'replicas');
      let entries: string[];
      try {
        entries = readdirSync(dir);
      } catch {
        continue;
      }
      for (const entry of entries) {
        try {
          const pid = Number(readFileSync(path.join(dir, entry, 'pid'), 'utf8').trim());
          if (Number.isSafeInteger(pid) && pid > 1) process.kill(-pid, 'SIGKILL');
        } catch {
          // No pid file (not a process replica, or it exited) or the group is gone already.
        }
      }
    }
  }

  #partitionCommand(node: ClusterNode): Record<string, unknown> {
    const peers = [...(this.#blocked.get(node.index) ?? [])].map((i) => this.node(i).peerId);
    return { type: 'fault:partition', peers };
  }

  async #tellAll(command: (node: ClusterNode) => Record<string, unknown>): Promise<FaultAck[]> {
    const running: Promise<FaultAck>[] = [];
    for (const node of this.nodes) {
      if (node.state === 'running') running.push(this.#send(node, command(node)));
      else if (node.state === 'paused') {
        // No deadline while it is frozen: resume() gives it one.
        const ack = this.#send(node, command(node), undefined);
        // Answered after SIGCONT: resume() awaits it; a kill meanwhile must not be unhandled.
        ack.catch(() => undefined);
        node.deferred.add(ack);
      }
    }
    return Promise.all(running);
  }

  /** Sends a command; its ack must come within the deadline, or any time when `timeoutMs` is undefined. */
  #send(
    node: ClusterNode,
    command: Record<string, unknown>,
    timeoutMs: number | undefined = this.#ackTimeoutMs,
  ): Promise<FaultAck> {
    const child = node.process;
    if (child === undefined || !child.connected) {
      return Promise.reject(new UnavailableError(`node ${node.index} has no IPC channel; is it running?`));
    }
    const id = ++this.#commandSeq;
    return new Promise<FaultAck>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      node.expectAck(id, {
        resolve: (ack) => {
          clearTimeout(timer);
          if (ack.ok) resolve(ack);
          else
            reject(
              new InvalidRequestError(`node ${node.index} refused ${ack.command}: ${ack.error.message}`),
            );
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      child.send({ ...command, id }, (error) => {
        if (error === null) return;
        node.settleAck(id)?.reject(
          new UnavailableError(`cannot send ${String(command.type)} to node ${node.index}`, {
            cause: error,
          }),
        );
      });
      if (timeoutMs === undefined) return;
      timer = setTimeout(() => {
        node.settleAck(id);
        reject(
          new TimeoutError(
            `node ${node.index} did not ack ${String(command.type)} within ${timeoutMs} ms; ` +
              'was it started with CLOUDLESS_FAULT_INJECTION=1, and does its start call installFaultIpc?',
          ),
        );
      }, timeoutMs);
    });
  }

  #rolesOf(index: number): string {
    return this.#init.nodeRoles?.[index] ?? this.#init.roles ?? 'coordinator';
  }

  /** Every role a joining node starts with: what the join token must allow. */
  #joinerRoles(): string {
    const roles = new Set<string>();
    for (const node of this.nodes.slice(1))
      for (const role of this.#rolesOf(node.index).split(',')) roles.add(role);
    return [...roles].join(',') || 'coordinator';
  }

  async #spawn(node: ClusterNode): Promise<void> {
    const init = this.#init;
    const listen = `/ip4/127.0.0.1/tcp/${node.port}`;
    const args = [
      init.entry ?? defaultEntry,
      'start',
      '--roles',
      this.#rolesOf(node.index),
      '--data-dir',
      node.dataDir,
      '--listen',
      listen,
      '--log-level',
      'warn',
      '--worker-threads',
      '0',
      ...(init.join === true && node.index > 0 ? ['--join', this.node(0).address] : []),
      // Only the first start redeems the token: a restart is already a member.
      ...(node.token !== undefined && node.peerId === '' ? ['--token', node.token] : []),
      ...(init.args ?? []),
    ];
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, ...init.env, CLOUDLESS_FAULT_INJECTION: '1' },
    });
    node.process = child;
    node.state = 'running';
    node.output.length = 0;
    node.deferred.clear();
    node.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        node.failAcks(new UnavailableError(`node ${node.index} exited (code ${code}, signal ${signal})`));
        if (node.process === child && node.alive) {
          node.state = 'exited';
          if (!this.#stopping)
            this.#log(`node-cluster: node ${node.index} exited by itself (code ${code}, signal ${signal})`);
        }
        resolve({ code, signal });
      });
    });
    child.on('message', (message: FaultAck) => {
      if (message?.type !== 'fault:ack' || typeof message.id !== 'number') return;
      node.settleAck(message.id)?.resolve(message);
    });
    const keep = (line: string): void => {
      node.output.push(line);
      if (node.output.length > maxLines) node.output.shift();
    };
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', keep);
    const banner = new Promise<{ peerId: string; address: string }>((resolve, reject) => {
      let peerId: string | undefined;
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        keep(line);
        const up = /^cloudless: node (\S+) is up/.exec(line);
        if (up?.[1] !== undefined) peerId = up[1];
        const listening = /^\s+listening: (\S+)/.exec(line);
        if (listening?.[1] !== undefined && peerId !== undefined) resolve({ peerId, address: listening[1] });
      });
      void node.exited.then(({ code, signal }) =>
        reject(
          new UnavailableError(
            `node ${node.index} exited (code ${code}, signal ${signal}) before it was up:\n${node.output.slice(-20).join('\n')}`,
          ),
        ),
      );
    });
    const timeoutMs = init.startTimeoutMs ?? 20_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const up = await Promise.race([
        banner,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () =>
              reject(new TimeoutError(`node ${node.index} printed no start banner within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
      if (node.peerId !== '' && node.peerId !== up.peerId) {
        throw new UnavailableError(`node ${node.index} came back as ${up.peerId}, not ${node.peerId}`);
      }
      node.peerId = up.peerId;
      node.address = up.address;
      node.port = Number(/\/tcp\/(\d+)/.exec(up.address)?.[1] ?? 0);
    } catch (error) {
      node.state = 'killed';
      child.kill('SIGKILL');
      await node.exited;
      throw error;
    } finally {
      clearTimeout(timer);
    }
    // A restarted node forgot its faults: tell it the partition it is in.
    if ((this.#blocked.get(node.index)?.size ?? 0) > 0) await this.#send(node, this.#partitionCommand(node));
  }
}
