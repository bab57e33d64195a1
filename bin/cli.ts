/**
 * The `cloudless` command. `start` runs a node: its actor system on the mesh and, with the
 * coordinator role, the Raft member and the KV front door (actors/raft/coordinator.ts). `peer`
 * holds the peer tools (peer-commands.ts), `kv` the store's client commands (kv-commands.ts),
 * `status` the Raft group as one coordinator sees it (status-command.ts); deploy, ps, scale, rm,
 * logs and explain are the workload commands (workload-commands.ts).
 */
import { access, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from 'winston';
import { startAgent } from '../actors/agent/start-agent.ts';
import { workloadService, workloadServicePath } from '../actors/coordinator/workload-service.ts';
import { Admission } from '../actors/enrollment/admission.ts';
import { startEnrollment } from '../actors/enrollment/node-enrollment.ts';
import { sampleResources, startMembership } from '../actors/membership/index.ts';
import { type Coordinator, raftMemberPath, startCoordinator } from '../actors/raft/coordinator.ts';
import { kvServicePath } from '../actors/raft/kv-service-protocol.ts';
import type { RaftStatusReply } from '../actors/raft/raft-member.ts';
import { ActorSystem } from '../runtime/actor-system.ts';
import { removeStaleTempFiles, writeFileDurably } from '../runtime/durable-file.ts';
import { AbortError, CloudlessError, InvalidRequestError } from '../runtime/errors.ts';
import { introspectionBehavior } from '../runtime/introspection.ts';
import { MetricsServer, type ReadinessCheck, registerRaftMetrics } from '../runtime/metrics-server.ts';
import {
  type ConfigLayer,
  configFromEnv,
  configFromFile,
  defaultNodeConfig,
  maskedConfig,
  type NodeConfig,
  resolveNodeConfig,
} from '../runtime/node-config.ts';
import { installFaultIpc } from '../transport/mesh-fault-ipc.ts';
import { MeshTransport } from '../transport/mesh-transport.ts';
import { loadOrCreateIdentity } from '../transport/node-identity.ts';
import { actorProtocol } from '../transport/peer-link.ts';
import { kvCommand, nodeFileName } from './kv-commands.ts';
import { nodesCommand } from './nodes-commands.ts';
import { peerCommand } from './peer-commands.ts';
import { statusCommand } from './status-command.ts';
import { tokenCommand } from './token-commands.ts';
import { workloadClientOptions, workloadCommand, workloadCommandsUsage } from './workload-commands.ts';

const usage = `Usage: cloudless <command> [options]

Commands:
  start      run a node in this process until interrupted (Ctrl-C or SIGTERM)
  kv         the replicated key-value store: get, put, del, ls, watch ('cloudless kv help')
  nodes      the cluster's members: 'nodes ls' (roles, status, zone, resources), 'nodes rm <PeerId>'
  token      join tokens: 'token create --roles R --ttl 1h [--uses N]', 'token ls', 'token revoke ID'
  status     the Raft group as a coordinator sees it: leader, term, indexes, members;
             --tree: a node's supervision tree (actors, mailboxes, restart counts)
${workloadCommandsUsage}
  peer       peer tools: id, ping, identify, keygen ('cloudless peer help' for details)
  version    print the version
  help       print this help
  ('cloudless <command> --help' prints a command's options)

Options for start (flags > CLOUDLESS_* environment > --config YAML > defaults):
  --config <file>         YAML file with any of the settings below (camelCase keys)
  --data-dir <dir>        where the node keeps its state            [CLOUDLESS_DATA_DIR, default .cloudless]
  --log-level <level>     debug | info | warn | error | silent      [CLOUDLESS_LOG_LEVEL, default info]
  --roles <list>          coordinator,agent,storage                 [CLOUDLESS_ROLES, default all]
  --listen <list>         comma-separated multiaddrs for the mesh    [CLOUDLESS_LISTEN, default /ip4/127.0.0.1/tcp/0]
  --behavior-modules <l>  comma-separated modules of defineBehavior exports for worker threads
                                                                    [CLOUDLESS_BEHAVIOR_MODULES]
  --worker-threads <n>    threads of the 'worker' dispatcher (0: none) [CLOUDLESS_WORKER_THREADS, default cores-1]
  --compute-modules <l>   comma-separated modules of defineComputeTask exports
                                                                    [CLOUDLESS_COMPUTE_MODULES]
  --join <multiaddr>      coordinators: a member of an existing group to ask for admission,
                          ending in /p2p/<PeerId>; without it a new node starts a one-member
                          group (a node with Raft state in <data-dir>/raft restarts from it)
                                                                    [CLOUDLESS_JOIN]
  --token <token>         the join token ('<id>.<secret>', from 'cloudless token create') a new
                          node presents; masked in logs; prefer CLOUDLESS_TOKEN (flags show in ps)
                                                                    [CLOUDLESS_TOKEN]
  --labels <k=v,...>      placement labels (Kubernetes label syntax) [CLOUDLESS_LABELS]
  --zone <zone>           the failure domain (rack, room, site)      [CLOUDLESS_ZONE]
  --metrics-addr <h:p>    serve /metrics, /healthz and /readyz over HTTP on HOST:PORT, e.g.
                          127.0.0.1:9464 (default: no endpoint)      [CLOUDLESS_METRICS_ADDR]
  --leave                 on SIGINT/SIGTERM, leave the cluster before stopping
                                                                    [CLOUDLESS_LEAVE_ON_STOP]

A stop on SIGINT/SIGTERM drains in order (leave if asked, the coordinator, the actors in
reverse start order, the mesh, the log) and exits 0; a second SIGINT/SIGTERM exits at once (1).

The node id is the PeerId of the Ed25519 key in <data-dir>/identity.key, created on first start
(mode 0600; a start refuses a key file that group or others can access). Once listening, start
writes <data-dir>/${nodeFileName} (PeerId, addresses, pid) so that 'cloudless kv' and 'cloudless status'
find the node; a clean stop removes it.

${workloadClientOptions}
`;

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM). */
  stopRequested: Promise<string>;
}

async function packageVersion(): Promise<string> {
  const text = await readFile(new URL('../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/** The node id is the PeerId now; a configured one would name a node its key cannot prove. */
function rejectConfiguredNodeId(layers: { source: string; values: ConfigLayer }[]): void {
  const sources = layers.filter((layer) => layer.values.nodeId !== undefined).map((layer) => layer.source);
  if (sources.length === 0) return;
  throw new InvalidRequestError(
    `nodeId (from ${sources.join(', ')}) can no longer be set: a node's id is the PeerId of its key in ` +
      '<data-dir>/identity.key; remove --node-id, CLOUDLESS_NODE_ID or nodeId from the YAML file ' +
      "('cloudless peer id' prints the id)",
  );
}

/** Data dirs from before identity.key kept a node-id file; say once that it is no longer read. */
async function hasLegacyNodeIdFile(dataDir: string): Promise<boolean> {
  return access(path.join(dataDir, 'node-id')).then(
    () => true,
    () => false,
  );
}

/** A part of the running node, stopped in reverse start order (see `stopNode`). */
export interface NodePart {
  readonly name: string;
  stop(): Promise<void>;
  /**
   * With `--leave`: called first on SIGINT/SIGTERM, while everything still runs, to leave the
   * cluster (the membership part writes this member's record as `left`). Bounded by `signal`.
   */
  leave?(signal: AbortSignal): Promise<void>;
  /** An input to /readyz, e.g. the membership part's 'joined'. */
  readonly readiness?: readonly [name: string, check: ReadinessCheck];
}

/** How long a `--leave` may take before the stop goes on without it. */
const leaveTimeoutMs = 10_000;
/** How long the log may take to flush at exit. */
const logFlushTimeoutMs = 2_000;

/** Resolves when `promise` settles or after `timeoutMs`, whichever is first; never rejects. */
async function settleWithin(promise: Promise<unknown>, timeoutMs: number): Promise<'settled' | 'timed out'> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'timed out'>((resolve) => {
    timer = setTimeout(() => resolve('timed out'), timeoutMs);
  });
  try {
    return await Promise.race([
      promise.then(
        () => 'settled' as const,
        () => 'settled' as const,
      ),
      expired,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ends winston and waits (bounded) until its transports have written everything. */
async function flushLog(log: Logger): Promise<void> {
  const finished = new Promise<void>((resolve) => log.once('finish', () => resolve()));
  log.end();
  await settleWithin(finished, logFlushTimeoutMs);
}

/** How the banner names this program: the way it was run from this repo, or `cloudless`. */
function commandName(): string {
  const script = process.argv[1];
  if (script === undefined) return 'cloudless';
  const relative = path.relative(process.cwd(), script);
  return relative === path.join('bin', 'cloudless.ts') ? 'node bin/cloudless.ts' : 'cloudless';
}

function describeLabels(labels: Readonly<Record<string, string>>): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? 'none' : entries.map(([key, value]) => `${key}=${value}`).join(',');
}

async function start(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      'log-level': { type: 'string' },
      'node-id': { type: 'string' },
      roles: { type: 'string' },
      'behavior-modules': { type: 'string' },
      'worker-threads': { type: 'string' },
      'compute-modules': { type: 'string' },
      listen: { type: 'string' },
      join: { type: 'string' },
      token: { type: 'string' },
      labels: { type: 'string' },
      zone: { type: 'string' },
      'metrics-addr': { type: 'string' },
      leave: { type: 'boolean' },
    },
  });
  const layers: { source: string; values: ConfigLayer }[] = [];
  if (values.config !== undefined)
    layers.push({ source: values.config, values: await configFromFile(values.config) });
  layers.push({ source: 'environment', values: configFromEnv(io.env) });
  layers.push({
    source: 'flags',
    values: {
      dataDir: values['data-dir'],
      logLevel: values['log-level'],
      nodeId: values['node-id'],
      roles: values.roles,
      behaviorModules: values['behavior-modules'],
      workerThreads: values['worker-threads'],
      computeModules: values['compute-modules'],
      listen: values.listen,
      join: values.join,
      token: values.token,
      labels: values.labels,
      zone: values.zone,
      metricsAddr: values['metrics-addr'],
      leaveOnStop: values.leave,
    },
  });
  rejectConfiguredNodeId(layers);
  const config: NodeConfig = resolveNodeConfig(layers);
  if (!config.roles.includes('coordinator') && config.join === undefined) {
    // Agents and storage nodes keep nothing of the cluster themselves: they need a coordinator.
    throw new InvalidRequestError(
      `roles ${config.roles.join(',')} without the coordinator role need a cluster to join: pass ` +
        "--join <a coordinator's multiaddr> (or CLOUDLESS_JOIN, or 'join' in the --config YAML file), " +
        'or add coordinator to --roles to start a new cluster',
    );
  }
  try {
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new CloudlessError(
      'INVALID_REQUEST',
      `cannot create data dir ${config.dataDir}: ${(error as Error).message}; pass --data-dir with a writable directory`,
      { cause: error },
    );
  }
  const identity = await loadOrCreateIdentity(config.dataDir);
  const nodeId = identity.peerId.toString();
  const admission = new Admission({ self: nodeId });
  const system = await ActorSystem.start({
    nodeId,
    logLevel: config.logLevel,
    mailbox: { capacity: config.mailboxCapacity },
    askTimeoutMs: config.askTimeoutMs,
    behaviorModules: config.behaviorModules,
    dispatchers: config.workerThreads > 0 ? { worker: { threads: config.workerThreads } } : {},
    compute: { modules: config.computeModules },
  });
  let mesh: MeshTransport;
  try {
    mesh = await MeshTransport.start(system, {
      privateKey: identity.privateKey,
      listen: config.listen,
      // Strangers may connect and enroll; only members and admitted clients reach actors.
      gate: admission,
      admission,
      unreachableAfterMs: config.unreachableAfterMs,
      maxFrameBytes: config.maxFrameBytes,
      agentVersion: `cloudless/${await packageVersion()}`,
    });
  } catch (error) {
    await system.stop();
    await flushLog(system.log);
    throw new CloudlessError(
      'UNAVAILABLE',
      `cannot listen on ${config.listen.join(', ')}: ${(error as Error).message}; check --listen (is the port free?)`,
      { cause: error },
    );
  }
  // Only when CLOUDLESS_FAULT_INJECTION=1 (chaos runs): the parent may partition this node over IPC.
  installFaultIpc(mesh);
  system.spawnSystemActor(introspectionBehavior(), { name: 'introspection' });
  const phase = { started: false, stopping: false };
  /** Started parts, in start order; stopped in reverse. */
  const parts: NodePart[] = [];
  let coordinator: Coordinator | undefined;
  let metrics: MetricsServer | undefined;
  // What a joining node tells the coordinator about itself; heartbeats keep it current after.
  const resources = await sampleResources(config.dataDir);
  const nodeFile = path.join(config.dataDir, nodeFileName);
  try {
    if (config.metricsAddr !== undefined) {
      const readiness = new Map<string, ReadinessCheck>([
        ['started', () => (phase.stopping ? 'stopping' : phase.started ? undefined : 'starting its roles')],
      ]);
      metrics = await MetricsServer.start(
        { registry: system.metrics },
        { address: config.metricsAddr, readiness },
      );
      const server = metrics;
      parts.push({ name: 'metrics endpoint', stop: () => server.stop() });
    }
    if (config.roles.includes('coordinator')) {
      const started = await startCoordinator(
        { system, mesh },
        {
          dataDir: config.dataDir,
          join: config.join,
          admission,
          ...(config.token === undefined
            ? {}
            : {
                enroll: {
                  token: config.token,
                  roles: config.roles,
                  labels: config.labels,
                  zone: config.zone,
                  resources,
                },
              }),
        },
      );
      coordinator = started;
      const memberStatus = (signal: AbortSignal): Promise<RaftStatusReply> =>
        started.member.ask<RaftStatusReply>((replyTo) => ({ type: 'status', replyTo }), {
          signal,
          timeoutMs: 1000,
        });
      parts.push({
        name: 'coordinator',
        stop: () => started.stop(),
        readiness: [
          'raft leader',
          async (signal) =>
            (await memberStatus(signal)).leaderId === undefined ? 'no Raft leader known' : undefined,
        ],
      });
      registerRaftMetrics(system.metrics, {
        async status(signal) {
          const status = await memberStatus(signal);
          return { ...status, isLeader: status.role === 'leader' };
        },
      });
    }
    const enrollment = await startEnrollment(
      { system, mesh, admission, coordinator },
      {
        dataDir: config.dataDir,
        roles: config.roles,
        join: config.join,
        token: config.token,
        labels: config.labels,
        zone: config.zone,
        resources,
      },
    );
    parts.push({ name: 'enrollment', stop: () => enrollment.stop() });
    // A joining agent or storage node is a member only once its token is redeemed; a refused
    // token ends the start here with the coordinator's reason.
    const interrupted = io.stopRequested.then((signal) => {
      throw new AbortError(`${signal} received while starting; stopped before the node was up`);
    });
    interrupted.catch(() => undefined);
    if (coordinator === undefined) await Promise.race([enrollment.enrolled, interrupted]);
    // The bootstrap node's commands need the admin credential: have it before saying the node is up.
    if (enrollment.credential !== undefined) await Promise.race([enrollment.credential, interrupted]);
    // After the coordinator, so that it stops first (and leaves while the store is still up).
    const membership = await startMembership(
      { system, mesh, coordinator },
      {
        roles: config.roles,
        dataDir: config.dataDir,
        coordinators: config.join === undefined ? [] : [config.join],
        labels: config.labels,
        ...(config.zone === undefined ? {} : { zone: config.zone }),
      },
    );
    parts.push({
      name: 'membership',
      stop: () => membership.stop(),
      leave: () => membership.leave(),
      readiness: [
        'joined',
        async () => ((await membership.members(1000)).loaded ? undefined : 'member records not loaded yet'),
      ],
    });
    if (coordinator !== undefined) {
      const member = coordinator.member;
      system.spawn(workloadService({ member }), { name: 'workloads' });
    }
    if (config.roles.includes('agent')) {
      const agent = startAgent({ system, membership }, { dataDir: config.dataDir });
      parts.push({ name: 'node agent', stop: () => agent.stop() });
    }
    for (const part of parts) if (part.readiness !== undefined) metrics?.setReadinessCheck(...part.readiness);
    await removeStaleTempFiles(nodeFile);
    const record = { version: 1, peerId: nodeId, addresses: mesh.multiaddrs, pid: process.pid };
    await writeFileDurably(nodeFile, `${JSON.stringify(record)}\n`);
  } catch (error) {
    for (const part of [...parts].reverse()) await part.stop();
    await system.stop();
    await mesh.stop();
    await flushLog(system.log);
    throw error;
  }
  phase.started = true;
  system.log.info('node started', { config: maskedConfig(config), identityFile: identity.file });
  if (await hasLegacyNodeIdFile(config.dataDir)) {
    system.log.warn(
      'the node-id file is no longer read: the node id is the PeerId of identity.key; delete node-id',
      {
        dataDir: config.dataDir,
      },
    );
  }
  io.out(`cloudless: node ${nodeId} is up (data dir ${config.dataDir})`);
  io.out(`  identity: ${identity.file}${identity.created ? ' (created now)' : ''}`);
  for (const address of mesh.multiaddrs) io.out(`  listening: ${address}`);
  io.out(
    `  roles: ${config.roles.join(',')}; labels: ${describeLabels(config.labels)}; zone: ${config.zone ?? 'none'}`,
  );
  if (metrics !== undefined) io.out(`  metrics: http://${metrics.address}/metrics (and /healthz, /readyz)`);
  const threads = config.workerThreads > 0 ? `, ${config.workerThreads} worker thread(s) for actors` : '';
  io.out(
    `  running: the actor system (kernel, OTP supervision, receptionist${threads}, compute pool on demand) on the libp2p mesh (${actorProtocol})`,
  );
  if (coordinator !== undefined) {
    const group = coordinator.bootstrapped
      ? 'started a new one-member group'
      : config.join === undefined
        ? `restarted from ${path.join(config.dataDir, 'raft')}`
        : `joining via ${config.join} (retrying until a member answers)`;
    io.out(`  coordinator: Raft member ${raftMemberPath}, KV front door ${kvServicePath}; ${group}`);
    void coordinator.joined?.then(
      (membership) =>
        io.out(
          `cloudless: joined the group via ${config.join} (${membership.voters.length} voter(s), ${membership.learners.length} learner(s))`,
        ),
      () => undefined,
    );
  }
  if (coordinator !== undefined)
    io.out(
      `  workloads: front door ${workloadServicePath}; scheduler shards and plan applier run on the Raft leader`,
    );
  if (config.roles.includes('agent'))
    io.out(`  node agent: /user/agent runs replicas in ${path.join(config.dataDir, 'replicas')}`);
  if (config.roles.includes('storage'))
    io.out('  not yet: object store; the storage role is accepted but has nothing to run');
  io.out(`  local commands find this node through ${nodeFile}`);
  const cli = commandName();
  const dirFlag =
    config.dataDir === path.resolve(defaultNodeConfig.dataDir) ? '' : ` --data-dir ${config.dataDir}`;
  io.out('next, in another terminal:');
  io.out(`  ${cli} status${dirFlag} --tree          this node's actors and their restarts`);
  if (coordinator !== undefined) {
    io.out(`  ${cli} status${dirFlag}                 the Raft group: leader, term, members`);
    io.out(`  ${cli} kv put hello world${dirFlag}     then: ${cli} kv get hello${dirFlag}`);
    io.out(`  ${cli} token create --roles agent --ttl 1h${dirFlag}   a join token for another node`);
    io.out(
      `  ${cli} start --roles agent --data-dir /tmp/node2 --join ${mesh.multiaddrs[0] ?? '<this address>'} --token <token>`,
    );
  }
  io.out('  stop with Ctrl-C');
  const signal = await io.stopRequested;
  io.out(`cloudless: ${signal} received, stopping (again to force)`);
  await stopNode({ system, mesh, parts, nodeFile, leave: config.leaveOnStop, phase });
  io.out('cloudless: stopped');
  return 0;
}

/**
 * The stop sequence: stop accepting work (/readyz says 503), leave the cluster if asked, stop the
 * parts in reverse start order (the coordinator stops joining and dialing, then its front door,
 * then its member), remove node.json, stop the actor system (its supervision tree stops every
 * child in reverse start order) while the mesh still carries the goodbyes, then the mesh, and
 * last flush the log.
 */
async function stopNode(node: {
  system: ActorSystem;
  mesh: MeshTransport;
  parts: readonly NodePart[];
  nodeFile: string;
  leave: boolean;
  phase: { stopping: boolean };
}): Promise<void> {
  const { system, mesh, parts, nodeFile } = node;
  node.phase.stopping = true;
  const reversed = [...parts].reverse();
  if (node.leave) {
    const leaving = reversed.filter((part) => part.leave !== undefined);
    if (leaving.length === 0)
      system.log.warn('--leave: no part of this node can leave a cluster yet; stopping without');
    const signal = AbortSignal.timeout(leaveTimeoutMs);
    for (const part of leaving) {
      const outcome = await settleWithin(part.leave?.(signal) ?? Promise.resolve(), leaveTimeoutMs);
      system.log.info('left the cluster', { part: part.name, outcome });
    }
  }
  for (const part of reversed) {
    await part.stop().catch((error: unknown) => {
      system.log.warn('a part of the node did not stop cleanly', {
        part: part.name,
        error: (error as Error).message,
      });
    });
  }
  await rm(nodeFile, { force: true });
  await system.stop();
  await mesh.stop();
  await flushLog(system.log);
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await start(rest, io);
      case 'peer':
        return await peerCommand(rest, io);
      case 'kv':
        return await kvCommand(rest, io);
      case 'status':
        return await statusCommand(rest, io);
      case 'nodes':
        return await nodesCommand(rest, io);
      case 'token':
        return await tokenCommand(rest, io);
      case 'deploy':
      case 'ps':
      case 'scale':
      case 'rm':
      case 'logs':
      case 'explain':
        return await workloadCommand(command, rest, io);
      case 'version':
      case '--version':
        io.out(await packageVersion());
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.out(usage);
        return 0;
      default:
        io.err(`cloudless: unknown command '${command}'\n\n${usage}`);
        return 2;
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    io.err(`cloudless: ${message}`);
    return exitCodeOf(error);
  }
}

/** 2 for bad input (flags, settings, files, addresses), 1 for what failed while running. */
function exitCodeOf(error: unknown): number {
  if (error instanceof CloudlessError) return networkCodes.has(error.code) ? 1 : 2;
  return (error as { code?: unknown }).code?.toString().startsWith('ERR_PARSE_ARGS') === true ? 2 : 1;
}

/** A peer that does not answer, or a group without a leader, is not bad input. */
const networkCodes = new Set<string>(['UNAVAILABLE', 'TIMEOUT', 'ABORTED', 'NOT_LEADER']);
