/**
 * The `cloudless` command. `start` runs a node; until the mesh and the control plane land it
 * runs the node's local actor system and says so.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ActorSystem } from '../runtime/actor-system.ts';
import { removeStaleTempFiles, writeFileDurably } from '../runtime/durable-file.ts';
import { CloudlessError } from '../runtime/errors.ts';
import {
  type ConfigLayer,
  configFromEnv,
  configFromFile,
  type NodeConfig,
  resolveNodeConfig,
} from '../runtime/node-config.ts';

const usage = `Usage: cloudless <command> [options]

Commands:
  start      run a node in this process until interrupted (Ctrl-C or SIGTERM)
  version    print the version
  help       print this help

Options for start (flags > CLOUDLESS_* environment > --config YAML > defaults):
  --config <file>         YAML file with any of the settings below (camelCase keys)
  --data-dir <dir>        where the node keeps its state            [CLOUDLESS_DATA_DIR, default .cloudless]
  --log-level <level>     debug | info | warn | error | silent      [CLOUDLESS_LOG_LEVEL, default info]
  --node-id <id>          this node's id (default: kept in <data-dir>/node-id)  [CLOUDLESS_NODE_ID]
  --roles <list>          coordinator,agent,storage                 [CLOUDLESS_ROLES, default all]
  --behavior-modules <l>  comma-separated modules of defineBehavior exports for worker threads
                                                                    [CLOUDLESS_BEHAVIOR_MODULES]
  --worker-threads <n>    threads of the 'worker' dispatcher (0: none) [CLOUDLESS_WORKER_THREADS, default cores-1]
  --compute-modules <l>   comma-separated modules of defineComputeTask exports
                                                                    [CLOUDLESS_COMPUTE_MODULES]
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

async function loadOrCreateNodeId(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'node-id');
  await removeStaleTempFiles(file);
  try {
    const id = (await readFile(file, 'utf8')).trim();
    if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id)) return id;
    throw new CloudlessError('INVALID_REQUEST', `${file} holds an invalid node id; fix or delete the file`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const id = `node-${randomUUID().slice(0, 8)}`;
  await writeFileDurably(file, `${id}\n`);
  return id;
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
    },
  });
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
  const nodeId = config.nodeId ?? (await loadOrCreateNodeId(config.dataDir));
  const system = await ActorSystem.start({
    nodeId,
    logLevel: config.logLevel,
    mailbox: { capacity: config.mailboxCapacity },
    askTimeoutMs: config.askTimeoutMs,
    behaviorModules: config.behaviorModules,
    dispatchers: config.workerThreads > 0 ? { worker: { threads: config.workerThreads } } : {},
    compute: { modules: config.computeModules },
  });
  system.log.info('node started', { dataDir: config.dataDir, roles: config.roles });
  io.out(`cloudless: node ${nodeId} is up (data dir ${config.dataDir})`);
  const threads = config.workerThreads > 0 ? `, ${config.workerThreads} worker thread(s) for actors` : '';
  io.out(
    `  running: the local actor system (actor kernel, OTP supervision, receptionist${threads}, compute pool on demand)`,
  );
  io.out(
    `  not yet: libp2p mesh, Raft control plane, scheduler, node agent, object store; roles ${config.roles.join(',')} are accepted but have nothing to run`,
  );
  io.out('  stop with Ctrl-C');
  const signal = await io.stopRequested;
  io.out(`cloudless: ${signal} received, stopping`);
  await system.stop();
  io.out('cloudless: stopped');
  return 0;
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await start(rest, io);
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
    return error instanceof CloudlessError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
      ? 2
      : 1;
  }
}
