import { KvInvalidCommandError } from './kv-errors.ts';
import type { KvCommand, KvCommandMeta } from './kv-types.ts';

/** Size and count limits of commands; keys and values are measured in UTF-8 bytes. */
export const kvLimits = {
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
  maxClientIdBytes: 256,
  /** Ops in each branch of a txn, and compares in a txn (etcd's default max-txn-ops). */
  maxTxnOps: 128,
  /** Largest `limit` of a range or txn get. */
  maxRangeLimit: 10_000,
} as const;

function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkString(value: unknown, what: string, maxBytes: number, allowEmpty: boolean): string {
  if (typeof value !== 'string')
    throw new KvInvalidCommandError(`${what} must be a string, got ${typeof value}`);
  if (!allowEmpty && value.length === 0) throw new KvInvalidCommandError(`${what} must not be empty`);
  // A lone surrogate would not survive UTF-8 encoding (snapshot, wire) and replicas would diverge.
  if (!value.isWellFormed()) throw new KvInvalidCommandError(`${what} contains a lone UTF-16 surrogate`);
  if (value.length > maxBytes || utf8Bytes(value) > maxBytes) {
    throw new KvInvalidCommandError(`${what} is ${utf8Bytes(value)} UTF-8 bytes; the limit is ${maxBytes}`);
  }
  return value;
}

export function checkKey(value: unknown, what = 'key'): string {
  return checkString(value, what, kvLimits.maxKeyBytes, false);
}

/** A prefix for a read or watch: like a key, but '' (every key) is allowed. */
export function checkPrefix(value: unknown, what = 'prefix'): string {
  return checkString(value, what, kvLimits.maxKeyBytes, true);
}

function checkFlag(value: unknown, what: string): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new KvInvalidCommandError(`${what} must be a boolean when given, got ${typeof value}`);
  }
}

export function checkLimit(value: unknown, what = 'limit'): number {
  if (value === undefined) return kvLimits.maxRangeLimit;
  if (!Number.isSafeInteger(value) || (value as number) < 1 || (value as number) > kvLimits.maxRangeLimit) {
    throw new KvInvalidCommandError(
      `${what} must be an integer in [1, ${kvLimits.maxRangeLimit}], got ${String(value)}`,
    );
  }
  return value as number;
}

export function checkRevision(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new KvInvalidCommandError(`${what} must be a non-negative integer, got ${String(value)}`);
  }
  return value as number;
}

function checkOp(op: unknown, where: string, allowGet: boolean): void {
  if (!isObject(op)) throw new KvInvalidCommandError(`${where} must be an object`);
  switch (op.type) {
    case 'put':
      checkKey(op.key, `${where}.key`);
      checkString(op.value, `${where}.value`, kvLimits.maxValueBytes, true);
      checkFlag(op.prevKv, `${where}.prevKv`);
      return;
    case 'delete':
      checkKey(op.key, `${where}.key`);
      checkFlag(op.prefix, `${where}.prefix`);
      checkFlag(op.prevKv, `${where}.prevKv`);
      return;
    case 'get':
      if (allowGet) {
        checkKey(op.key, `${where}.key`);
        checkFlag(op.prefix, `${where}.prefix`);
        checkLimit(op.limit, `${where}.limit`);
        return;
      }
      break;
    default:
      break;
  }
  const allowed = allowGet ? "'put', 'delete' or 'get'" : "'put', 'delete' or 'txn'";
  throw new KvInvalidCommandError(`${where}.type must be ${allowed}, got ${JSON.stringify(String(op.type))}`);
}

function checkCompare(compare: unknown, where: string): void {
  if (!isObject(compare)) throw new KvInvalidCommandError(`${where} must be an object`);
  checkKey(compare.key, `${where}.key`);
  if (!['=', '!=', '<', '>'].includes(compare.op as string)) {
    throw new KvInvalidCommandError(`${where}.op must be '=', '!=', '<' or '>', got ${String(compare.op)}`);
  }
  switch (compare.target) {
    case 'value':
      checkString(compare.value, `${where}.value`, kvLimits.maxValueBytes, true);
      return;
    case 'version':
    case 'createRevision':
    case 'modRevision':
      checkRevision(compare.value, `${where}.value`);
      return;
    default:
      throw new KvInvalidCommandError(
        `${where}.target must be 'value', 'version', 'createRevision' or 'modRevision', got ${String(compare.target)}`,
      );
  }
}

function checkList(value: unknown, where: string): readonly unknown[] {
  if (!Array.isArray(value)) throw new KvInvalidCommandError(`${where} must be an array`);
  if (value.length > kvLimits.maxTxnOps) {
    throw new KvInvalidCommandError(
      `${where} has ${value.length} entries; the limit is ${kvLimits.maxTxnOps}`,
    );
  }
  return value;
}

/**
 * Checks a command from outside the process before it is proposed (the shell should call it on
 * ingress) and again on apply. Throws KvInvalidCommandError; returns the command typed.
 */
export function validateKvCommand(command: unknown): KvCommand {
  if (!isObject(command)) throw new KvInvalidCommandError('command must be an object');
  if (command.type === 'txn') {
    checkList(command.compare, 'txn.compare').forEach((c, i) => {
      checkCompare(c, `txn.compare[${i}]`);
    });
    for (const branch of ['success', 'failure'] as const) {
      checkList(command[branch], `txn.${branch}`).forEach((op, i) => {
        checkOp(op, `txn.${branch}[${i}]`, true);
      });
    }
  } else {
    checkOp(command, 'command', false);
  }
  return command as unknown as KvCommand;
}

export function validateKvMeta(meta: unknown): KvCommandMeta {
  if (!isObject(meta))
    throw new KvInvalidCommandError('command meta must be an object with clientId and seq');
  checkString(meta.clientId, 'clientId', kvLimits.maxClientIdBytes, false);
  if (!Number.isSafeInteger(meta.seq) || (meta.seq as number) < 1) {
    throw new KvInvalidCommandError(`seq must be a positive integer, got ${String(meta.seq)}`);
  }
  return meta as unknown as KvCommandMeta;
}
