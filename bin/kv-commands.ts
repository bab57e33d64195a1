/**
 * `cloudless kv …`: the replicated key-value store from the command line, through `KvClient`
 * (an ephemeral client identity, one link to one coordinator). The coordinator is `--connect`
 * or, by default, the node running from `--data-dir`, found through `<data-dir>/node.json`,
 * which `cloudless start` writes once it listens.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { multiaddr } from '@multiformats/multiaddr';
import { resolveCredential } from '../actors/enrollment/admin-credential.ts';
import { KvClient, type KvConsistency } from '../actors/raft/kv-client.ts';
import type { KeyValue, KvEvent } from '../actors/raft/kv-types.ts';
import { checkKey, checkPrefix, kvLimits } from '../actors/raft/kv-validate.ts';
import { AbortError, DataCorruptError, InvalidRequestError, UnavailableError } from '../runtime/errors.ts';
import {
  type ConfigLayer,
  configFromEnv,
  configFromFile,
  resolveNodeConfig,
} from '../runtime/node-config.ts';
import type { CliIo } from './cli.ts';
import { runSubcommand } from './subcommands.ts';

/** What `cloudless start` writes in its data dir once it listens, and removes on a clean stop. */
export const nodeFileName = 'node.json';

export const kvUsage = `Usage: cloudless kv <command> [options]

Commands:
  get <key> [--prefix] [--limit N] [--serializable]   print a key (or the keys starting with it)
  put <key> <value>                                    set a key
  del <key> [--prefix]                                 delete a key (or every key starting with it)
  ls [prefix] [--limit N] [--serializable]             list keys (all, or those starting with prefix)
  watch [prefix] [--from-revision R]                   print changes as they happen, until Ctrl-C

Options:
  --connect <multiaddr>   the coordinator to talk to, e.g. /ip4/127.0.0.1/tcp/7000/p2p/12D3KooW…
                          (default: the node running from --data-dir, found through its ${nodeFileName})
  --data-dir <dir>        [CLOUDLESS_DATA_DIR, default .cloudless]   --config <file>
  --timeout-ms <n>        deadline of the connection and of each request (default 10000)
  --credential <file>     the admin credential [CLOUDLESS_CREDENTIAL holds it; default <data-dir>/admin.credential]
  --json                  one JSON object per line on stdout (errors stay on stderr)

Reads are linearizable (answered by the leader after it confirms it still leads) unless
--serializable (answered by the connected node at once, possibly stale). --limit defaults to 1000.

Exit codes: 0 done, 1 the store or the network failed (or get found no key), 2 bad input.`;

export const defaultTimeoutMs = 10_000;
const defaultListLimit = 1000;

/** The options every command that talks to a node takes (kv, status, nodes, token). */
export const commonOptions = {
  connect: { type: 'string' },
  'data-dir': { type: 'string' },
  config: { type: 'string' },
  'timeout-ms': { type: 'string' },
  credential: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export interface CommonValues {
  connect?: string | undefined;
  'data-dir'?: string | undefined;
  config?: string | undefined;
  'timeout-ms'?: string | undefined;
  /** The admin credential file (default CLOUDLESS_CREDENTIAL, then <data-dir>/admin.credential). */
  credential?: string | undefined;
  json?: boolean | undefined;
}

export function wholeNumber(
  flag: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidRequestError(`${flag} must be a whole number from ${min} to ${max}, got '${text}'`);
  }
  return value;
}

function checkAddress(text: string, flag: string): string {
  if (text.length > 1024) throw new InvalidRequestError(`${flag} is ${text.length} characters; at most 1024`);
  try {
    multiaddr(text);
  } catch (error) {
    throw new InvalidRequestError(
      `${flag} '${text}' is not a multiaddr (${(error as Error).message}); expected e.g. /ip4/127.0.0.1/tcp/7000/p2p/<PeerId>`,
      { cause: error },
    );
  }
  return text;
}

/** Loopback first: the CLI runs on the node's machine. */
function localAddress(addresses: readonly string[]): string | undefined {
  const rewritten = addresses.map((address) =>
    address.replace(/^\/ip4\/0\.0\.0\.0\//, '/ip4/127.0.0.1/').replace(/^\/ip6\/::\//, '/ip6/::1/'),
  );
  return (
    rewritten.find((address) => address.startsWith('/ip4/127.') || address.startsWith('/ip6/::1/')) ??
    rewritten[0]
  );
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The coordinator to talk to: `--connect`, or the node running from the data dir. */
export async function resolveTarget(
  values: CommonValues,
  io: CliIo,
): Promise<{ address: string; source: string }> {
  if (values.connect !== undefined)
    return { address: checkAddress(values.connect, '--connect'), source: '--connect' };
  const layers: { source: string; values: ConfigLayer }[] = [];
  if (values.config !== undefined)
    layers.push({ source: values.config, values: await configFromFile(values.config) });
  layers.push({ source: 'environment', values: configFromEnv(io.env) });
  layers.push({ source: 'flags', values: { dataDir: values['data-dir'] } });
  const { dataDir } = resolveNodeConfig(layers);
  const file = path.join(dataDir, nodeFileName);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    throw new UnavailableError(
      `no local node in ${dataDir}: start one with 'cloudless start' or pass --connect <multiaddr>`,
    );
  }
  let record: { peerId?: unknown; addresses?: unknown; pid?: unknown };
  try {
    record = JSON.parse(text) as typeof record;
  } catch (error) {
    throw new DataCorruptError(`${file} is not JSON; restart the node to rewrite it, or pass --connect`, {
      cause: error,
    });
  }
  const addresses = Array.isArray(record?.addresses)
    ? record.addresses.filter((address): address is string => typeof address === 'string')
    : [];
  const address = localAddress(addresses);
  if (typeof record?.peerId !== 'string' || address === undefined || typeof record.pid !== 'number') {
    throw new DataCorruptError(
      `${file} lacks peerId, addresses or pid; restart the node to rewrite it, or pass --connect`,
    );
  }
  if (!processRuns(record.pid)) {
    throw new UnavailableError(
      `the node in ${dataDir} (pid ${record.pid}) is not running (it did not stop cleanly); ` +
        `start it again with 'cloudless start --data-dir ${dataDir}', or pass --connect`,
    );
  }
  return { address: checkAddress(address, file), source: file };
}

/** The data dir the command's flags, environment and config file name. */
export async function dataDirOf(values: CommonValues, io: CliIo): Promise<string> {
  const layers: { source: string; values: ConfigLayer }[] = [];
  if (values.config !== undefined)
    layers.push({ source: values.config, values: await configFromFile(values.config) });
  layers.push({ source: 'environment', values: configFromEnv(io.env) });
  layers.push({ source: 'flags', values: { dataDir: values['data-dir'] } });
  return resolveNodeConfig(layers).dataDir;
}

/** Connects a client (Ctrl-C aborts), runs `body`, and always closes the client. */
export async function withKvClient<T>(
  values: CommonValues,
  io: CliIo,
  body: (client: KvClient, interrupt: AbortSignal) => Promise<T>,
): Promise<T> {
  const timeoutMs = wholeNumber('--timeout-ms', values['timeout-ms'], defaultTimeoutMs, 1, 3_600_000);
  const target = await resolveTarget(values, io);
  const credential = await resolveCredential({
    file: values.credential,
    env: io.env,
    dataDir: await dataDirOf(values, io),
  });
  const interrupt = new AbortController();
  void io.stopRequested.then((signal) => interrupt.abort(new AbortError(`interrupted by ${signal}`)));
  let client: KvClient;
  try {
    client = await KvClient.connect({
      address: target.address,
      timeoutMs,
      signal: interrupt.signal,
      credential,
    });
  } catch (error) {
    if (interrupt.signal.aborted)
      throw new AbortError(`connecting to ${target.address} interrupted`, { cause: error });
    if (!(error instanceof UnavailableError) || target.source === '--connect') throw error;
    throw new UnavailableError(`${error.message} (address from ${target.source})`, { cause: error });
  }
  try {
    return await body(client, interrupt.signal);
  } finally {
    await client.close();
  }
}

export function formatKv(kv: KeyValue): string {
  return `${kv.key} = ${kv.value} (rev ${kv.modRevision})`;
}

function formatEvent(event: KvEvent): string {
  return event.type === 'put'
    ? `PUT ${formatKv(event.kv)}`
    : `DELETE ${event.kv.key} (rev ${event.kv.modRevision})`;
}

function positionals(command: string, given: string[], min: number, max: number, shape: string): string[] {
  if (given.length < min || given.length > max) {
    throw new InvalidRequestError(
      `kv ${command} takes ${shape}, got ${given.length} argument(s): e.g. cloudless kv ${command} ${shape}`,
    );
  }
  return given;
}

async function kvGet(argv: string[], io: CliIo): Promise<number> {
  const parsed = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      ...commonOptions,
      prefix: { type: 'boolean' },
      limit: { type: 'string' },
      serializable: { type: 'boolean' },
    },
  });
  const { values } = parsed;
  const [key] = positionals('get', parsed.positionals, 1, 1, '<key>') as [string];
  const prefix = values.prefix === true;
  if (prefix) checkPrefix(key, 'key');
  else checkKey(key, 'key');
  const limit = wholeNumber('--limit', values.limit, defaultListLimit, 1, kvLimits.maxRangeLimit);
  const consistency: KvConsistency = values.serializable === true ? 'serializable' : 'linearizable';
  const json = values.json === true;
  return withKvClient(values, io, async (client, signal) => {
    if (prefix) {
      const page = await client.range(key, { limit, consistency, signal });
      for (const kv of page.kvs) io.out(json ? JSON.stringify(kv) : formatKv(kv));
      if (page.more)
        io.err(`cloudless: more keys start with '${key}'; raise --limit (at most ${kvLimits.maxRangeLimit})`);
      return 0;
    }
    const page = await client.range(key, { limit: 1, consistency, signal });
    const kv = page.kvs.find((found) => found.key === key);
    if (kv === undefined) {
      if (json) io.out(JSON.stringify({ key, found: false, revision: page.revision }));
      else io.err(`cloudless: no key '${key}' (store revision ${page.revision})`);
      return 1;
    }
    io.out(json ? JSON.stringify(kv) : formatKv(kv));
    return 0;
  });
}

async function kvPut(argv: string[], io: CliIo): Promise<number> {
  const parsed = parseArgs({ args: argv, strict: true, allowPositionals: true, options: commonOptions });
  const [key, value] = positionals('put', parsed.positionals, 2, 2, '<key> <value>') as [string, string];
  checkKey(key, 'key');
  if (Buffer.byteLength(value) > kvLimits.maxValueBytes) {
    throw new InvalidRequestError(
      `value is ${Buffer.byteLength(value)} bytes; the limit is ${kvLimits.maxValueBytes}`,
    );
  }
  return withKvClient(parsed.values, io, async (client, signal) => {
    const { revision } = await client.put(key, value, { signal });
    io.out(parsed.values.json === true ? JSON.stringify({ key, revision }) : `OK (rev ${revision})`);
    return 0;
  });
}

async function kvDel(argv: string[], io: CliIo): Promise<number> {
  const parsed = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: { ...commonOptions, prefix: { type: 'boolean' } },
  });
  const [key] = positionals('del', parsed.positionals, 1, 1, '<key>') as [string];
  checkKey(key, 'key');
  const prefix = parsed.values.prefix === true;
  return withKvClient(parsed.values, io, async (client, signal) => {
    const { deleted, revision } = await client.delete(key, { prefix, signal });
    io.out(
      parsed.values.json === true
        ? JSON.stringify({ key, deleted, revision })
        : `deleted ${deleted} key${deleted === 1 ? '' : 's'} (rev ${revision})`,
    );
    return 0;
  });
}

async function kvLs(argv: string[], io: CliIo): Promise<number> {
  const parsed = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: { ...commonOptions, limit: { type: 'string' }, serializable: { type: 'boolean' } },
  });
  const [prefix = ''] = positionals('ls', parsed.positionals, 0, 1, '[prefix]');
  checkPrefix(prefix, 'prefix');
  const limit = wholeNumber('--limit', parsed.values.limit, defaultListLimit, 1, kvLimits.maxRangeLimit);
  const consistency: KvConsistency = parsed.values.serializable === true ? 'serializable' : 'linearizable';
  const json = parsed.values.json === true;
  return withKvClient(parsed.values, io, async (client, signal) => {
    const page = await client.range(prefix, { limit, consistency, signal });
    for (const kv of page.kvs) io.out(json ? JSON.stringify(kv) : kv.key);
    if (page.more)
      io.err(
        `cloudless: more keys start with '${prefix}'; raise --limit (at most ${kvLimits.maxRangeLimit})`,
      );
    return 0;
  });
}

async function kvWatch(argv: string[], io: CliIo): Promise<number> {
  const parsed = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: { ...commonOptions, 'from-revision': { type: 'string' } },
  });
  const [prefix = ''] = positionals('watch', parsed.positionals, 0, 1, '[prefix]');
  checkPrefix(prefix, 'prefix');
  const fromRevision = wholeNumber(
    '--from-revision',
    parsed.values['from-revision'],
    0,
    0,
    Number.MAX_SAFE_INTEGER,
  );
  const json = parsed.values.json === true;
  return withKvClient(parsed.values, io, async (client, interrupt) => {
    let endWatch: (error?: Error) => void = () => undefined;
    const ended = new Promise<Error | undefined>((resolve) => {
      endWatch = resolve;
    });
    const watch = await client.watch(prefix, {
      fromRevision,
      signal: interrupt,
      onEvents: (events) => {
        for (const event of events) io.out(json ? JSON.stringify(event) : formatEvent(event));
      },
      onEnd: (error) => endWatch(error),
    });
    io.err(
      `cloudless: watching '${prefix}' from revision ${fromRevision === 0 ? watch.revision + 1 : fromRevision} (Ctrl-C stops)`,
    );
    const interrupted = new Promise<'interrupted'>((resolve) => {
      if (interrupt.aborted) resolve('interrupted');
      interrupt.addEventListener('abort', () => resolve('interrupted'), { once: true });
    });
    const outcome = await Promise.race([ended, interrupted]);
    if (outcome === 'interrupted') {
      watch.cancel();
      return 0;
    }
    if (outcome !== undefined) throw outcome;
    return 0;
  });
}

export function kvCommand(argv: string[], io: CliIo): Promise<number> {
  return runSubcommand(
    'kv',
    { get: kvGet, put: kvPut, del: kvDel, delete: kvDel, ls: kvLs, watch: kvWatch },
    kvUsage,
    argv,
    io,
  );
}
