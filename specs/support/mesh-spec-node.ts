/**
 * The spec process's own mesh node: an actor system whose node id is a fresh Ed25519 PeerId, with
 * the mesh attached, recording its dead letters. `stop()` also waits until the handles and timers
 * libp2p keeps for a moment after `node.stop()` are gone (up to a deadline), so a spec that
 * starts and stops a node leaves nothing behind for the leak hook to find.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { ActorSystem, type ActorSystemOptions } from '../../runtime/actor-system.ts';
import { TimeoutError } from '../../runtime/errors.ts';
import type { DeadLetter } from '../../runtime/kernel.ts';
import { MeshTransport, type MeshTransportInit } from '../../transport/mesh-transport.ts';

export interface SpecNode {
  readonly system: ActorSystem;
  readonly mesh: MeshTransport;
  readonly privateKey: PrivateKey;
  readonly peerId: string;
  /** Every dead letter published since the node started. */
  readonly deadLetters: DeadLetter[];
  /** Stops mesh and system, then waits for what libp2p leaves running to go. */
  stop(): Promise<void>;
}

/** Resource kinds the leak hook ignores (see leak-hooks.ts). */
const ambient = new Set(['TTYWrap', 'PipeWrap', 'FSReqCallback', 'FSReqPromise', 'SignalWrap']);

export function resourceCounts(): Map<string, number> {
  const out = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) {
    if (!ambient.has(kind)) out.set(kind, (out.get(kind) ?? 0) + 1);
  }
  return out;
}

/** Resolves once no resource kind counts more than in `baseline`; rejects after `timeoutMs`. */
export async function resourcesBackTo(baseline: Map<string, number>, timeoutMs = 3000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let extra: string[] = [];
  while (performance.now() < deadline) {
    extra = [];
    for (const [kind, count] of resourceCounts()) {
      const over = count - (baseline.get(kind) ?? 0);
      if (over > 0) extra.push(`${over} × ${kind}`);
    }
    if (extra.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new TimeoutError(`still running ${timeoutMs} ms after stopping: ${extra.join(', ')}`);
}

/** Starts a node; `init.privateKey` defaults to a fresh Ed25519 key. */
export async function startSpecNode(
  init: Partial<MeshTransportInit> = {},
  systemOptions: ActorSystemOptions = {},
): Promise<SpecNode> {
  const baseline = resourceCounts();
  const privateKey = init.privateKey ?? (await generateKeyPair('Ed25519'));
  const peerId = peerIdFromPrivateKey(privateKey).toString();
  const system = await ActorSystem.start({
    logLevel: process.env.MESH_SPEC_VERBOSE === '1' ? 'debug' : 'silent',
    dispatchers: {},
    ...systemOptions,
    nodeId: peerId,
  });
  const deadLetters: DeadLetter[] = [];
  system.on('dead-letter:publish', (letter) => deadLetters.push(letter));
  let mesh: MeshTransport;
  try {
    mesh = await MeshTransport.start(system, { ...init, privateKey });
  } catch (error) {
    await system.stop();
    throw error;
  }
  return {
    system,
    mesh,
    privateKey,
    peerId,
    deadLetters,
    async stop() {
      await mesh.stop();
      await system.stop();
      await resourcesBackTo(baseline);
    },
  };
}

/**
 * For a describe that keeps libp2p nodes up across its specs: libp2p arms short-lived timers of
 * its own as streams open and close (close timeouts, window updates). Each spec waits for them to
 * run out before the root leak hook counts, so the hook still catches what a spec really leaves.
 */
export function settleLibp2pTimersAfterEach(): void {
  let baseline = new Map<string, number>();
  beforeEach(() => {
    baseline = resourceCounts();
  });
  afterEach(async () => {
    // If it never settles, the root hook reports what is left.
    await resourcesBackTo(baseline, 3000).catch(() => undefined);
  });
}
