/**
 * Fault commands from a parent process over Node's IPC channel, for chaos tests that spawn real
 * nodes with `stdio: [..., 'ipc']`. Only a process whose environment has
 * `CLOUDLESS_FAULT_INJECTION=1` turns fault injection on and obeys; any other process ignores
 * fault commands (with a warning), so a stray message never changes a real node.
 *
 * Commands (each may carry an `id`, echoed in its reply):
 *
 * - `{ type: 'fault:partition', peers: [PeerId…], add?: boolean }`: the peers this node cannot
 *   reach from now on (with `add: true`, in addition to those it already cannot reach);
 * - `{ type: 'fault:heal', peers?: [PeerId…] }`: heals the partition from those peers; without
 *   `peers`, turns every fault off (partitions, drops, delay);
 * - `{ type: 'fault:configure', dropProbability?, delayMs?, seed? }`: drops and delay of
 *   envelopes sent to every other peer; `seed` makes the drops replayable (mulberry32);
 * - `{ type: 'fault:status' }`: only the reply.
 *
 * Every command is answered with `{ type: 'fault:ack', id, command, ok: true, partitioned, rules,
 * stats }`, or `{ type: 'fault:ack', id, command, ok: false, error: { code, message } }` when it
 * was invalid.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { mulberry32 } from '../actors/raft/mulberry32.ts';
import { CloudlessError, InvalidRequestError } from '../runtime/errors.ts';
import type { MeshFaultRules, MeshFaultStats, MeshFaults } from './mesh-faults.ts';
import type { MeshTransport } from './mesh-transport.ts';

/** The environment variable that turns fault injection on: `CLOUDLESS_FAULT_INJECTION=1`. */
export const faultInjectionEnv = 'CLOUDLESS_FAULT_INJECTION';

export type FaultCommand =
  | {
      readonly type: 'fault:partition';
      readonly id?: number;
      readonly peers: string[];
      readonly add?: boolean;
    }
  | { readonly type: 'fault:heal'; readonly id?: number; readonly peers?: string[] }
  | {
      readonly type: 'fault:configure';
      readonly id?: number;
      readonly dropProbability?: number;
      readonly delayMs?: number;
      readonly seed?: number;
    }
  | { readonly type: 'fault:status'; readonly id?: number };

export type FaultAck =
  | {
      readonly type: 'fault:ack';
      readonly id?: number;
      readonly command: string;
      readonly ok: true;
      /** Peers this node is partitioned from, after the command. */
      readonly partitioned: string[];
      readonly rules: Required<MeshFaultRules>;
      readonly stats: MeshFaultStats;
    }
  | {
      readonly type: 'fault:ack';
      readonly id?: number;
      readonly command: string;
      readonly ok: false;
      readonly error: { readonly code: string; readonly message: string };
    };

/** The part of `process` the IPC glue uses (a spec may pass its own). */
export interface FaultIpcChannel {
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
  send?: (
    message: unknown,
    sendHandle: undefined,
    options: undefined,
    callback: (error: Error | null) => void,
  ) => boolean;
  channel?: { unref(): void } | null;
}

export interface FaultIpcInit {
  /** Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Default process. */
  channel?: FaultIpcChannel;
  /**
   * Runs when the parent goes away (the channel disconnects) while fault injection is on: a
   * test node must not outlive its harness. Default: SIGTERM to this process (a graceful stop).
   */
  onParentGone?: () => void;
}

/** Most peers one command may name. */
const maxPeers = 1024;

function commandId(message: Record<string, unknown>): number | undefined {
  const id = message.id;
  return typeof id === 'number' && Number.isFinite(id) ? id : undefined;
}

function peerList(value: unknown, command: string): string[] {
  if (!Array.isArray(value) || value.length > maxPeers) {
    throw new InvalidRequestError(`${command}: peers must be an array of at most ${maxPeers} PeerIds`);
  }
  return value.map((peer) => {
    if (typeof peer !== 'string' || peer.length > 128) {
      throw new InvalidRequestError(`${command}: every peer must be a PeerId string`);
    }
    try {
      return peerIdFromString(peer).toString();
    } catch (error) {
      throw new InvalidRequestError(`${command}: '${peer}' is not a PeerId`, { cause: error });
    }
  });
}

function optionalNumber(message: Record<string, unknown>, key: string): number | undefined {
  const value = message[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidRequestError(`${String(message.type)}: ${key} must be a finite number`);
  }
  return value;
}

function seeded(seed: number): () => number {
  let state = seed | 0;
  return () => {
    const step = mulberry32(state);
    state = step.next;
    return step.value;
  };
}

/** Applies one command to `faults`; throws `InvalidRequestError` for a malformed one. */
export function applyFaultCommand(faults: MeshFaults, message: Record<string, unknown>): void {
  const command = String(message.type);
  switch (command) {
    case 'fault:partition': {
      const peers = peerList(message.peers, command);
      if (message.add !== true) {
        const next = new Set(peers);
        faults.heal([...faults.partitioned].filter((peerId) => !next.has(peerId)));
      }
      faults.partition(peers);
      return;
    }
    case 'fault:heal':
      if (message.peers === undefined) faults.clear();
      else faults.heal(peerList(message.peers, command));
      return;
    case 'fault:configure': {
      const seed = optionalNumber(message, 'seed');
      const rules = {
        dropProbability: optionalNumber(message, 'dropProbability'),
        delayMs: optionalNumber(message, 'delayMs'),
      };
      faults.configure(rules);
      if (seed !== undefined) faults.useRandom(seeded(seed));
      return;
    }
    case 'fault:status':
      return;
    default:
      throw new InvalidRequestError(
        `unknown fault command '${command.slice(0, 40)}'; use fault:partition, fault:heal, fault:configure or fault:status`,
      );
  }
}

function isFaultMessage(message: unknown): message is Record<string, unknown> {
  return (
    typeof message === 'object' &&
    message !== null &&
    typeof (message as { type?: unknown }).type === 'string' &&
    ((message as { type: string }).type as string).startsWith('fault:')
  );
}

/**
 * Lets the parent process inject faults into `mesh` over IPC when `CLOUDLESS_FAULT_INJECTION=1`
 * (see the module comment); otherwise only warns about fault commands it receives. Does not keep
 * the process alive. Returns a function that removes the listeners.
 */
export function installFaultIpc(mesh: MeshTransport, init: FaultIpcInit = {}): () => void {
  const env = init.env ?? process.env;
  const channel = init.channel ?? (process as unknown as FaultIpcChannel);
  const logger = mesh.kernel.logger;
  if (env[faultInjectionEnv] !== '1') {
    if (channel.send === undefined) return () => {};
    const ignore = (message: unknown): void => {
      if (!isFaultMessage(message)) return;
      logger.warn(
        `fault command '${String(message.type).slice(0, 40)}' ignored: fault injection is off ` +
          `(it is on only in a process started with ${faultInjectionEnv}=1)`,
      );
    };
    channel.on('message', ignore);
    channel.channel?.unref();
    return () => channel.off('message', ignore);
  }
  const faults = mesh.enableFaultInjection();
  logger.warn(`fault injection is on (${faultInjectionEnv}=1): the parent process may partition this node`);
  const reply = (ack: FaultAck): void => {
    channel.send?.(ack, undefined, undefined, (error) => {
      if (error !== null) logger.warn(`cannot answer a fault command: ${error.message}`);
    });
  };
  const onMessage = (message: unknown): void => {
    if (!isFaultMessage(message)) return;
    const id = commandId(message);
    const command = String(message.type).slice(0, 40);
    try {
      applyFaultCommand(faults, message);
    } catch (error) {
      const code = error instanceof CloudlessError ? error.code : 'INTERNAL';
      reply({
        type: 'fault:ack',
        id,
        command,
        ok: false,
        error: { code, message: (error as Error).message },
      });
      return;
    }
    reply({
      type: 'fault:ack',
      id,
      command,
      ok: true,
      partitioned: [...faults.partitioned],
      rules: faults.rules,
      stats: faults.stats,
    });
  };
  const onParentGone =
    init.onParentGone ??
    (() => {
      logger.warn('the parent process that injects faults is gone; stopping');
      process.kill(process.pid, 'SIGTERM');
    });
  const onDisconnect = (): void => onParentGone();
  channel.on('message', onMessage);
  channel.on('disconnect', onDisconnect);
  channel.channel?.unref();
  return () => {
    channel.off('message', onMessage);
    channel.off('disconnect', onDisconnect);
  };
}
