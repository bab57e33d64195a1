/**
 * The `cloudless` command. `start` runs a node: its actor system on the mesh and, with the
 * coordinator role, the Raft member and the KV front door (actors/raft/coordinator.ts). `peer`
 * holds the peer tools (peer-commands.ts), `kv` the store's client commands (kv-commands.ts),
 * `status` the Raft group as one coordinator sees it (status-command.ts).
 */
import { access, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Coordinator, raftMemberPath, startCoordinator } from '../actors/raft/coordinator.ts';
import { kvServicePath } from '../actors/raft/kv-service-protocol.ts';
import { ActorSystem } from '../runtime/actor-system.ts';
import { removeStaleTempFiles, writeFileDurably } from '../runtime/durable-file.ts';
import { CloudlessError, InvalidRequestError } from '../runtime/errors.ts';
import {
  type ConfigLayer,
  configFromEnv,
  configFromFile,
  type NodeConfig,
  resolveNodeConfig,
} from '../runtime/node-config.ts';
import { installFaultIpc } from '../transport/mesh-fault-ipc.ts';
import { MeshTransport } from '../transport/mesh-transport.ts';
import { loadOrCreateIdentity } from '../transport/node-identity.ts';
import { actorProtocol } from '../transport/peer-link.ts';
import { kvCommand, nodeFileName } from './kv-commands.ts';
import { peerCommand } from './peer-commands.ts';
import { statusCommand } from './status-command.ts';

const usage = `Usage: cloudless <command> [options]

Commands:
  start      run a node in this process until interrupted (Ctrl-C or SIGTERM)
  kv         the replicated key-value store: get, put, del, ls, watch ('cloudless kv help')
  status     the Raft group as a coordinator sees it: leader, term, indexes, members
  peer       peer tools: id, ping, identify, keygen ('cloudless peer help' for details)
  version    print the version
  help       print this help

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

The node id is the PeerId of the Ed25519 key in <data-dir>/identity.key, created on first start
(mode 0600; a start refuses a key file that group or others can access). Once listening, start
writes <data-dir>/${nodeFileName} (PeerId, addresses, pid) so that 'cloudless kv' and 'cloudless status'
find the node; a clean stop removes it.
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
    },
  });
  rejectConfiguredNodeId(layers);
  const config: NodeConfig = resolveNodeConfig(layers);
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
      unreachableAfterMs: config.unreachableAfterMs,
      maxFrameBytes: config.maxFrameBytes,
      agentVersion: `cloudless/${await packageVersion()}`,
    });
  } catch (error) {
    await system.stop();
    throw new CloudlessError(
      'UNAVAILABLE',
      `cannot listen on ${config.listen.join(', ')}: ${(error as Error).message}; check --listen (is the port free?)`,
      { cause: error },
    );
  }
  // Only when CLOUDLESS_FAULT_INJECTION=1 (chaos runs): the parent may partition this node over IPC.
  installFaultIpc(mesh);
  let coordinator: Coordinator | undefined;
  const nodeFile = path.join(config.dataDir, nodeFileName);
  try {
    if (config.roles.includes('coordinator')) {
      coordinator = await startCoordinator({ system, mesh }, { dataDir: config.dataDir, join: config.join });
    }
    await removeStaleTempFiles(nodeFile);
    const record = { version: 1, peerId: nodeId, addresses: mesh.multiaddrs, pid: process.pid };
    await writeFileDurably(nodeFile, `${JSON.stringify(record)}\n`);
  } catch (error) {
    await coordinator?.stop();
    await system.stop();
    await mesh.stop();
    throw error;
  }
  system.log.info('node started', {
    dataDir: config.dataDir,
    roles: config.roles,
    identityFile: identity.file,
  });
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
  const idle = config.roles.filter((role) => role !== 'coordinator');
  if (idle.length > 0) {
    io.out(
      `  not yet: scheduler, node agent, object store; roles ${idle.join(',')} are accepted but have nothing to run`,
    );
  }
  io.out(`  local commands find this node through ${nodeFile}`);
  io.out('  stop with Ctrl-C');
  const signal = await io.stopRequested;
  io.out(`cloudless: ${signal} received, stopping`);
  // The coordinator first (it stops joining and dialing), then the actors, while the mesh still
  // carries their goodbyes (remote stops, death notices).
  await coordinator?.stop();
  await rm(nodeFile, { force: true });
  await system.stop();
  await mesh.stop();
  io.out('cloudless: stopped');
  return 0;
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
