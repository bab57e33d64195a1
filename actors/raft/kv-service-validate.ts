/**
 * Checks of every front-door request before it reaches the Raft member: the message came from
 * another process (a client or a peer), so types, sizes and ranges are checked here and a
 * malformed request is answered INVALID_REQUEST, never passed on.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { KvInvalidCommandError } from './kv-errors.ts';
import type { KvServiceRequest } from './kv-service-protocol.ts';
import {
  checkKey,
  checkLimit,
  checkPrefix,
  checkRevision,
  validateKvCommand,
  validateKvMeta,
} from './kv-validate.ts';

export const kvServiceLimits = {
  /** The longest a request may ask the front door to keep trying. */
  maxTimeoutMs: 120_000,
  maxAddresses: 16,
  maxAddressLength: 1024,
  maxNodeIdLength: 128,
} as const;

const requestTypes = new Set([
  'command',
  'query',
  'watch',
  'cancel-watch',
  'status',
  'join',
  'remove-member',
  'transfer-leadership',
]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isRef(value: unknown): value is ActorRef<never> {
  return isObject(value) && typeof value.tell === 'function' && typeof value.ask === 'function';
}

/** Where a request's answer goes (`replyTo`, or `subscriber` for a watch), if it names one. */
export function replyTargetOf(message: unknown): ActorRef<never> | undefined {
  if (!isObject(message)) return undefined;
  const target = message.type === 'watch' ? message.subscriber : message.replyTo;
  return isRef(target) ? target : undefined;
}

function checkFlag(value: unknown, what: string): void {
  if (value !== undefined && typeof value !== 'boolean')
    throw new KvInvalidCommandError(`${what} must be a boolean when given, got ${typeof value}`);
}

function checkTimeout(value: unknown): void {
  if (value === undefined) return;
  if (
    !Number.isSafeInteger(value) ||
    (value as number) < 1 ||
    (value as number) > kvServiceLimits.maxTimeoutMs
  ) {
    throw new KvInvalidCommandError(
      `timeoutMs must be an integer in [1, ${kvServiceLimits.maxTimeoutMs}], got ${String(value)}`,
    );
  }
}

/** A libp2p PeerId in its string form (the node ids of the group). */
export function checkNodeId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > kvServiceLimits.maxNodeIdLength) {
    throw new KvInvalidCommandError(`${what} must be a PeerId string, got ${typeof value}`);
  }
  try {
    peerIdFromString(value);
  } catch {
    throw new KvInvalidCommandError(
      `${what} '${value}' is not a PeerId; 'cloudless peer id' on that node prints it`,
    );
  }
  return value;
}

function checkAddresses(value: unknown): void {
  if (!Array.isArray(value) || value.length === 0 || value.length > kvServiceLimits.maxAddresses) {
    throw new KvInvalidCommandError(
      `addresses must be an array of 1 to ${kvServiceLimits.maxAddresses} multiaddrs where the node listens`,
    );
  }
  value.forEach((address: unknown, i) => {
    if (typeof address !== 'string' || address.length > kvServiceLimits.maxAddressLength) {
      throw new KvInvalidCommandError(
        `addresses[${i}] must be a multiaddr string of at most ${kvServiceLimits.maxAddressLength} characters`,
      );
    }
    try {
      multiaddr(address);
    } catch {
      throw new KvInvalidCommandError(`addresses[${i}] '${address}' is not a multiaddr`);
    }
  });
}

/** Returns the request typed, or throws `KvInvalidCommandError` naming the field and the rule. */
export function validateKvServiceRequest(message: unknown): KvServiceRequest {
  if (!isObject(message)) throw new KvInvalidCommandError('a request must be an object');
  if (!requestTypes.has(message.type as string)) {
    throw new KvInvalidCommandError(
      `unknown request type ${JSON.stringify(String(message.type))}; expected one of ${[...requestTypes].join(', ')}`,
    );
  }
  if (message.type === 'watch') {
    if (!isRef(message.subscriber)) throw new KvInvalidCommandError('watch.subscriber must be an actor ref');
  } else if (message.type !== 'cancel-watch' && !isRef(message.replyTo)) {
    throw new KvInvalidCommandError(`${String(message.type)}.replyTo must be an actor ref`);
  }
  checkTimeout(message.timeoutMs);
  switch (message.type) {
    case 'command':
      validateKvCommand(message.command);
      validateKvMeta({ clientId: message.clientId, seq: message.seq });
      break;
    case 'query':
      if (message.prefix === true) checkPrefix(message.key, 'query.key');
      else checkKey(message.key, 'query.key');
      checkFlag(message.prefix, 'query.prefix');
      if (message.limit !== undefined) checkLimit(message.limit, 'query.limit');
      if (message.fromKey !== undefined) checkKey(message.fromKey, 'query.fromKey');
      if (
        message.consistency !== undefined &&
        !['linearizable', 'serializable'].includes(message.consistency as string)
      ) {
        throw new KvInvalidCommandError(
          `query.consistency must be 'linearizable' or 'serializable', got ${String(message.consistency)}`,
        );
      }
      break;
    case 'watch':
      checkPrefix(message.prefix, 'watch.prefix');
      if (message.fromRevision !== undefined) checkRevision(message.fromRevision, 'watch.fromRevision');
      checkFlag(message.prevKv, 'watch.prevKv');
      break;
    case 'cancel-watch':
      checkRevision(message.watchId, 'cancel-watch.watchId');
      break;
    case 'join':
      checkNodeId(message.id, 'join.id');
      checkAddresses(message.addresses);
      break;
    case 'remove-member':
      checkNodeId(message.id, 'remove-member.id');
      break;
    case 'transfer-leadership':
      if (message.to !== undefined) checkNodeId(message.to, 'transfer-leadership.to');
      break;
    default:
      break;
  }
  return message as unknown as KvServiceRequest;
}
