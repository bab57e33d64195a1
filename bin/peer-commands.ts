/**
 * `cloudless peer …`: look at this node's identity and at other libp2p nodes. `id` and `keygen`
 * work on identity files; `ping` and `identify` run a throwaway libp2p client (a fresh Ed25519 key,
 * no listener), so they never take a node's identity or port, and stop it before returning.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Connection } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import { AbortError, InvalidRequestError, TimeoutError, UnavailableError } from '../runtime/errors.ts';
import {
  type ConfigLayer,
  configFromEnv,
  configFromFile,
  resolveNodeConfig,
} from '../runtime/node-config.ts';
import { createMeshNode, defaultListen, type MeshNode } from '../transport/mesh-node.ts';
import { loadOrCreateIdentity, writeIdentityFile } from '../transport/node-identity.ts';
import type { CliIo } from './cli.ts';
import { runSubcommand } from './subcommands.ts';

export const peerUsage = `Usage: cloudless peer <command> [options]

Commands:
  id                     print this node's PeerId and the addresses it would listen on
  ping <multiaddr>       measure round-trip times to a libp2p node (ping 1.0.0)
  identify <multiaddr>   ask a libp2p node who it is (identify 1.0.0)
  keygen --out <file>    write a new Ed25519 identity file (mode 0600)

Options:
  --json                 print one JSON object on stdout instead of text (errors stay on stderr)
  id:        --data-dir <dir>  [CLOUDLESS_DATA_DIR, default .cloudless]   --config <file>
             --listen <multiaddr>  repeatable; default ${defaultListen.join(', ')}
             Creates the identity if the data dir has none, exactly as 'cloudless start' would.
             Addresses are printed, not bound: port 0 means "a free port chosen at start".
  ping:      --count <n>       pings, one after the other (1-1000, default 3)
  ping, identify:
             --timeout-ms <n>  deadline of each network wait: the dial, each ping, identify,
                               stopping the client (default 10000)
  keygen:    --force           replace an existing file (its PeerId is lost)

A <multiaddr> is a TCP address, optionally with the PeerId to expect:
  /ip4/127.0.0.1/tcp/4001   /dns4/node1.example/tcp/4001/p2p/12D3KooW…

Exit codes: 0 done, 1 the network operation failed, 2 bad input.`;

const defaultTimeoutMs = 10_000;
const maxMultiaddrLength = 1024;
const dialableHosts = new Set(['ip4', 'ip6', 'dns', 'dns4', 'dns6']);
const agentVersion = 'cloudless-peer-tool';

/** Parses a multiaddr from the command line and checks that a TCP transport can use it. */
function tcpMultiaddr(text: string, allowPeerId: boolean): Multiaddr {
  if (text.length > maxMultiaddrLength) {
    throw new InvalidRequestError(`multiaddr is ${text.length} characters; at most ${maxMultiaddrLength}`);
  }
  let address: Multiaddr;
  try {
    address = multiaddr(text);
  } catch (error) {
    throw new InvalidRequestError(
      `'${text}' is not a valid multiaddr (${(error as Error).message}); expected e.g. /ip4/127.0.0.1/tcp/4001`,
      { cause: error },
    );
  }
  const parts = address.getComponents();
  const [host, tcp, p2p, ...rest] = parts;
  const shapeOk =
    host !== undefined &&
    dialableHosts.has(host.name) &&
    tcp?.name === 'tcp' &&
    (p2p === undefined || (allowPeerId && p2p.name === 'p2p')) &&
    rest.length === 0;
  if (!shapeOk) {
    const shape = allowPeerId
      ? '/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>[/p2p/<PeerId>]'
      : '/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>';
    throw new InvalidRequestError(
      `'${text}' is not an address this node can use: Cloudless speaks TCP, as ${shape}`,
    );
  }
  return address;
}

function positiveInt(flag: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new InvalidRequestError(`${flag} must be a whole number from 1 to ${max}, got '${text}'`);
  }
  return value;
}

function oneAddress(command: string, positionals: string[]): Multiaddr {
  if (positionals.length !== 1 || positionals[0] === undefined) {
    throw new InvalidRequestError(
      `peer ${command} takes exactly one multiaddr, got ${positionals.length}: e.g. cloudless peer ${command} /ip4/127.0.0.1/tcp/4001`,
    );
  }
  return tcpMultiaddr(positionals[0], true);
}

/** Every error code and name in an error, its cause and its aggregated errors. */
function marks(error: unknown, depth = 0): string[] {
  if (depth > 3 || typeof error !== 'object' || error === null) return [];
  const { code, name, cause, errors } = error as {
    code?: unknown;
    name?: unknown;
    cause?: unknown;
    errors?: unknown;
  };
  const own = [code, name].filter((mark): mark is string => typeof mark === 'string');
  const nested = [cause, ...(Array.isArray(errors) ? errors : [])].flatMap((inner) =>
    marks(inner, depth + 1),
  );
  return [...own, ...nested];
}

/** Turns a failed dial, ping or identify into an error that names the address and what to check. */
function networkFailure(address: Multiaddr, what: string, error: unknown, elapsedMs: number): Error {
  const found = new Set(marks(error));
  const message = (error as Error).message ?? String(error);
  const target = address.toString();
  const options = { cause: error };
  if (found.has('ECONNREFUSED')) {
    return new UnavailableError(
      `cannot dial ${target}: connection refused; is a node listening there? check the address and that the node is running`,
      options,
    );
  }
  if (found.has('ENOTFOUND') || found.has('EAI_AGAIN')) {
    return new UnavailableError(
      `cannot dial ${target}: the host name does not resolve (${message}); check the name`,
      options,
    );
  }
  if (found.has('EHOSTUNREACH') || found.has('ENETUNREACH')) {
    return new UnavailableError(
      `cannot dial ${target}: no route to the host (${message}); check the address and this machine's network`,
      options,
    );
  }
  if (found.has('EncryptionFailedError') && /does not match expected remote/.test(message)) {
    return new UnavailableError(
      `cannot dial ${target}: the node there has another PeerId than the /p2p/ part of the address (${message}); ` +
        "check the address: run 'cloudless peer id' on that node",
      options,
    );
  }
  if (found.has('EncryptionFailedError')) {
    return new UnavailableError(
      `cannot dial ${target}: the Noise handshake failed (${message}); is a libp2p node (a Cloudless node) listening on that port? check the port`,
      options,
    );
  }
  if (found.has('UnsupportedProtocolError')) {
    return new UnavailableError(
      `${target} is a libp2p node but does not answer ${what} (${message}); it may not run that service`,
      options,
    );
  }
  if (found.has('TimeoutError') || found.has('AbortError')) {
    return new TimeoutError(
      `no answer from ${target} to ${what} within ${Math.round(elapsedMs)} ms; check the address, firewalls, and that ` +
        'the node is running; raise --timeout-ms for slow links',
      options,
    );
  }
  return new UnavailableError(
    `${what} ${target} failed: ${message}; check the address and that the node is running`,
    options,
  );
}

interface Session {
  client: MeshNode;
  /** Runs one network wait under the --timeout-ms deadline and Ctrl-C, with errors made readable. */
  wait<T>(what: string, operation: (signal: AbortSignal) => Promise<T>): Promise<T>;
}

/** Runs `body` with a throwaway libp2p client and always stops the client, within the deadline. */
async function withClient<T>(
  io: CliIo,
  address: Multiaddr,
  timeoutMs: number,
  body: (session: Session) => Promise<T>,
): Promise<T> {
  const interrupt = new AbortController();
  void io.stopRequested.then((signal) => interrupt.abort(new AbortError(`interrupted by ${signal}`)));
  const client = await createMeshNode({
    privateKey: await generateKeyPair('Ed25519'),
    listen: [],
    agentVersion,
    identifyOnConnect: false,
  });
  const session: Session = {
    client,
    async wait(what, operation) {
      const deadline = AbortSignal.timeout(timeoutMs);
      const started = performance.now();
      try {
        return await operation(AbortSignal.any([deadline, interrupt.signal]));
      } catch (error) {
        if (interrupt.signal.aborted)
          throw new AbortError(`${what} ${address} interrupted`, { cause: error });
        if (deadline.aborted) {
          throw new TimeoutError(
            `no answer from ${address} to ${what} within --timeout-ms ${timeoutMs}; check the address, firewalls, and ` +
              'that the node is running; raise --timeout-ms for slow links',
            { cause: error },
          );
        }
        throw networkFailure(address, what, error, performance.now() - started);
      }
    },
  };
  try {
    return await body(session);
  } finally {
    await stopWithin(client, timeoutMs, io);
  }
}

/** Stops a libp2p node, giving up on waiting (with a warning) after the deadline. */
async function stopWithin(node: MeshNode, timeoutMs: number, io: CliIo): Promise<void> {
  const cancel = new AbortController();
  const expired = sleep(timeoutMs, 'expired' as const, { signal: cancel.signal }).catch(
    () => 'cancelled' as const,
  );
  try {
    const stopped = Promise.resolve(node.stop()).then(() => 'stopped' as const);
    const outcome = await Promise.race([stopped, expired]);
    if (outcome === 'expired')
      io.err(`cloudless: warning: the libp2p client did not stop within ${timeoutMs} ms`);
  } finally {
    cancel.abort();
  }
}

function dial(session: Session, address: Multiaddr): Promise<Connection> {
  return session.wait('dial', (signal) => session.client.dial(address, { signal }));
}

async function peerId(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      'data-dir': { type: 'string' },
      config: { type: 'string' },
      listen: { type: 'string', multiple: true },
      json: { type: 'boolean' },
    },
  });
  // The same sources and precedence as `cloudless start`, so both find the same data dir.
  const layers: { source: string; values: ConfigLayer }[] = [];
  if (values.config !== undefined)
    layers.push({ source: values.config, values: await configFromFile(values.config) });
  layers.push({ source: 'environment', values: configFromEnv(io.env) });
  layers.push({ source: 'flags', values: { dataDir: values['data-dir'] } });
  const { dataDir } = resolveNodeConfig(layers);
  const listen = (values.listen ?? defaultListen).map((text) => tcpMultiaddr(text, false));
  const identity = await loadOrCreateIdentity(dataDir);
  const id = identity.peerId.toString();
  const addresses = listen.map((address) => address.encapsulate(`/p2p/${id}`).toString());
  if (values.json === true) {
    io.out(
      JSON.stringify({
        peerId: id,
        identityFile: identity.file,
        created: identity.created,
        listen: addresses,
      }),
    );
    return 0;
  }
  io.out(`peer id: ${id}`);
  io.out(`identity: ${identity.file}${identity.created ? ' (created now)' : ''}`);
  const ephemeral = listen.some((address) => address.getComponents()[1]?.value === '0');
  io.out(`listen addresses${ephemeral ? ' (tcp/0: the node picks a free port when it starts)' : ''}:`);
  for (const address of addresses) io.out(`  ${address}`);
  return 0;
}

async function peerPing(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      count: { type: 'string' },
      'timeout-ms': { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const address = oneAddress('ping', positionals);
  const count = positiveInt('--count', values.count, 3, 1000);
  const timeoutMs = positiveInt('--timeout-ms', values['timeout-ms'], defaultTimeoutMs, 3_600_000);
  const json = values.json === true;
  const { remote, rtts } = await withClient(io, address, timeoutMs, async (session) => {
    const connection = await dial(session, address);
    const remote = connection.remotePeer.toString();
    if (!json) io.out(`PING ${address} (peer ${remote})`);
    const rtts: number[] = [];
    for (let seq = 1; seq <= count; seq++) {
      // By PeerId, so every ping reuses the connection just dialed.
      const rtt = await session.wait('ping', (signal) =>
        session.client.services.ping.ping(connection.remotePeer, { signal }),
      );
      rtts.push(rtt);
      if (!json) io.out(`  seq=${seq} time=${rtt} ms`);
    }
    return { remote, rtts };
  });
  const min = Math.min(...rtts);
  const max = Math.max(...rtts);
  const avg = Math.round((rtts.reduce((sum, rtt) => sum + rtt, 0) / rtts.length) * 1000) / 1000;
  if (json) {
    io.out(
      JSON.stringify({
        address: address.toString(),
        peerId: remote,
        count,
        rttMs: rtts,
        minMs: min,
        avgMs: avg,
        maxMs: max,
      }),
    );
  } else {
    io.out(`${count} pings: min/avg/max = ${min}/${avg}/${max} ms`);
  }
  return 0;
}

async function peerIdentify(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      'timeout-ms': { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const address = oneAddress('identify', positionals);
  const timeoutMs = positiveInt('--timeout-ms', values['timeout-ms'], defaultTimeoutMs, 3_600_000);
  const result = await withClient(io, address, timeoutMs, async (session) => {
    const connection = await dial(session, address);
    return session.wait('identify', (signal) =>
      session.client.services.identify.identify(connection, { signal }),
    );
  });
  const report = {
    address: address.toString(),
    peerId: result.peerId.toString(),
    agentVersion: result.agentVersion ?? null,
    protocolVersion: result.protocolVersion ?? null,
    protocols: [...result.protocols].sort(),
    listenAddrs: result.listenAddrs.map(String),
  };
  if (values.json === true) {
    io.out(JSON.stringify(report));
    return 0;
  }
  io.out(`peer id:          ${report.peerId}`);
  io.out(`agent version:    ${report.agentVersion ?? '(not sent)'}`);
  io.out(`protocol version: ${report.protocolVersion ?? '(not sent)'}`);
  io.out('protocols:');
  for (const protocol of report.protocols) io.out(`  ${protocol}`);
  io.out('listen addresses:');
  for (const listenAddr of report.listenAddrs) io.out(`  ${listenAddr}`);
  return 0;
}

async function peerKeygen(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      out: { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  if (values.out === undefined || values.out.trim() === '') {
    throw new InvalidRequestError(
      'peer keygen needs --out <file>: where to write the new identity, e.g. --out ./identity.key',
    );
  }
  const key = await generateKeyPair('Ed25519');
  await writeIdentityFile(values.out, key, { overwrite: values.force === true });
  const id = peerIdFromPrivateKey(key).toString();
  const file = path.resolve(values.out);
  if (values.json === true) io.out(JSON.stringify({ file, peerId: id }));
  else io.out(`wrote ${file} (mode 0600) for peer ${id}`);
  return 0;
}

export function peerCommand(argv: string[], io: CliIo): Promise<number> {
  return runSubcommand(
    'peer',
    { id: peerId, ping: peerPing, identify: peerIdentify, keygen: peerKeygen },
    peerUsage,
    argv,
    io,
  );
}
