/**
 * A mesh node in its own process, for the multi-process specs and benchmarks:
 *
 *   node --conditions=development specs/support/mesh-node-process.ts --data-dir <dir> [options]
 *
 * It loads (or creates) the node identity in `--data-dir`, so a restart with the same directory
 * keeps its PeerId; starts an actor system and the mesh; spawns the fixture actors of
 * mesh-fixture-actors.ts; and prints one JSON line `{ "peerId": …, "multiaddrs": [...] }` on
 * stdout when it is ready. SIGTERM (or its stdin closing, when the parent is gone) stops the mesh
 * and the system and lets the process exit by itself; if something keeps it alive for 5 s after
 * that, it names what and exits with code 3.
 *
 * Options: --listen <multiaddr> (repeatable), --unreachable-after-ms <n>,
 * --max-inbound-streams <n>, --max-frame-bytes <n>, --deny <PeerId> (repeatable: the gate refuses
 * it), --behavior-module <path> (repeatable), --log-level <level> (default warn).
 */
import { parseArgs } from 'node:util';
import { ActorSystem } from '../../runtime/actor-system.ts';
import type { LogLevel } from '../../runtime/logging.ts';
import { MeshTransport, type MeshTransportInit } from '../../transport/mesh-transport.ts';
import { loadOrCreateIdentity } from '../../transport/node-identity.ts';
import {
  adminBehavior,
  blackholeBehavior,
  echoBehavior,
  relayBehavior,
  sinkBehavior,
} from './mesh-fixture-actors.ts';

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    listen: { type: 'string', multiple: true },
    'unreachable-after-ms': { type: 'string' },
    'max-inbound-streams': { type: 'string' },
    'max-frame-bytes': { type: 'string' },
    deny: { type: 'string', multiple: true },
    'behavior-module': { type: 'string', multiple: true },
    'log-level': { type: 'string', default: 'warn' },
  },
});

function optionalNumber(name: string): number | undefined {
  const text = values[name as keyof typeof values] as string | undefined;
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value)) throw new RangeError(`--${name} takes a number, got '${text}'`);
  return value;
}

const dataDir = values['data-dir'];
if (dataDir === undefined) throw new RangeError('--data-dir <dir> is required');

const identity = await loadOrCreateIdentity(dataDir);
const behaviorModules = values['behavior-module'] ?? [];
const system = await ActorSystem.start({
  nodeId: identity.peerId.toString(),
  logLevel: values['log-level'] as LogLevel,
  behaviorModules,
  // Remote spawns run on this thread: no worker-thread dispatchers.
  dispatchers: {},
});
const denied = new Set(values.deny ?? []);
const init: MeshTransportInit = {
  privateKey: identity.privateKey,
  listen: values.listen,
  unreachableAfterMs: optionalNumber('unreachable-after-ms'),
  maxInboundStreams: optionalNumber('max-inbound-streams'),
  maxFrameBytes: optionalNumber('max-frame-bytes'),
};
if (denied.size > 0) init.gate = { admit: (peerId) => !denied.has(peerId) };
const mesh = await MeshTransport.start(system, init);

system.spawn(echoBehavior(), { name: 'echo' });
system.spawn(sinkBehavior(), { name: 'sink' });
system.spawn(relayBehavior(), { name: 'relay' });
system.spawn(blackholeBehavior(), { name: 'blackhole' });
system.spawn(
  adminBehavior((address) => mesh.connect(address)),
  { name: 'admin' },
);

let stopping = false;
async function shutdown(why: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  system.log.debug(`mesh node process stopping: ${why}`);
  process.stdin.destroy();
  await mesh.stop();
  await system.stop();
  setTimeout(() => {
    process.stderr.write(
      `mesh node process still running 5 s after stopping: ${process.getActiveResourcesInfo().join(', ')}\n`,
    );
    process.exit(3);
  }, 5000).unref();
}

process.once('SIGTERM', () => void shutdown('SIGTERM'));
// The parent holds the other end of stdin: when it goes away, so does this node.
process.stdin.on('end', () => void shutdown('stdin closed'));
process.stdin.on('error', () => void shutdown('stdin failed'));
process.stdin.resume();

process.stdout.write(`${JSON.stringify({ peerId: mesh.peerId, multiaddrs: mesh.multiaddrs })}\n`);
