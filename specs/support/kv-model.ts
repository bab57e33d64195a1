/**
 * The sequential specification of one key of the replicated key-value store, for the
 * linearizability checker: a register holding a value and its version (puts since creation,
 * reset by a delete; 0 when missing, as in etcd). Histories are partitioned by key, so every
 * operation must touch exactly one key: get, put, delete, and a txn whose compares and ops are all
 * on that key (compare-and-swap). Compares on `value` and `version` are modelled; revisions are
 * store-wide, so a per-key model cannot check `createRevision`/`modRevision` and rejects them.
 */

import type { KvCompare, KvDelete, KvGet, KvPut, KvTxn } from '../../actors/raft/kv-types.ts';
import { InvalidRequestError } from '../../runtime/errors.ts';
import type { Model, Operation } from './linearizability.ts';

/** The register of one key: null when the key is missing. */
export type KvRegister = { readonly value: string; readonly version: number } | null;

export type KvModelInput = KvGet | KvPut | KvDelete | KvTxn;

/** A get's answer: `value` null when the key was missing; `version` checked when given. */
export interface KvModelGetOutput {
  readonly type: 'get';
  readonly value: string | null;
  readonly version?: number;
}

export interface KvModelPutOutput {
  readonly type: 'put';
}

/** `deleted` (0 or 1) is checked when given. */
export interface KvModelDeleteOutput {
  readonly type: 'delete';
  readonly deleted?: number;
}

export type KvModelOpOutput = KvModelGetOutput | KvModelPutOutput | KvModelDeleteOutput;

/** `responses`, one per op of the branch taken, is checked when given. */
export interface KvModelTxnOutput {
  readonly type: 'txn';
  readonly succeeded: boolean;
  readonly responses?: readonly KvModelOpOutput[];
}

export type KvModelOutput = KvModelOpOutput | KvModelTxnOutput;

export type KvOperation = Operation<KvModelInput, KvModelOutput>;

/** The one key `input` touches; throws `InvalidRequestError` for what a per-key model cannot check. */
export function keyOf(input: KvModelInput): string {
  if (input.type !== 'txn') {
    if (input.type !== 'put' && input.prefix === true) {
      throw new InvalidRequestError(
        `a ${input.type} with prefix ${JSON.stringify(input.key)} spans keys; record single-key operations only`,
      );
    }
    return input.key;
  }
  const keys = new Set<string>();
  for (const compare of input.compare) {
    if (compare.target !== 'value' && compare.target !== 'version') {
      throw new InvalidRequestError(
        `txn compare on ${compare.target} is store-wide; compare value or version only`,
      );
    }
    keys.add(compare.key);
  }
  for (const op of [...input.success, ...input.failure]) keys.add(keyOf(op));
  const [key, ...others] = keys;
  if (key === undefined || others.length > 0) {
    throw new InvalidRequestError(
      `txn touches keys [${[...keys].join(', ')}]; the per-key model needs exactly one`,
    );
  }
  return key;
}

function compares(register: KvRegister, compare: KvCompare): boolean {
  if (compare.target === 'value') {
    // A compare on the value of a missing key is false whatever the op (as in etcd).
    if (register === null) return false;
    return holds(register.value, compare.op, String(compare.value));
  }
  return holds(register?.version ?? 0, compare.op, Number(compare.value));
}

function holds<T extends string | number>(actual: T, op: KvCompare['op'], expected: T): boolean {
  switch (op) {
    case '=':
      return actual === expected;
    case '!=':
      return actual !== expected;
    case '<':
      return actual < expected;
    case '>':
      return actual > expected;
  }
}

/** Applies a single op: the next register and the op's full answer. */
function applyOp(
  register: KvRegister,
  op: KvGet | KvPut | KvDelete,
): { next: KvRegister; output: KvModelOpOutput } {
  switch (op.type) {
    case 'get':
      return {
        next: register,
        output:
          register === null
            ? { type: 'get', value: null }
            : { type: 'get', value: register.value, version: register.version },
      };
    case 'put':
      return { next: { value: op.value, version: (register?.version ?? 0) + 1 }, output: { type: 'put' } };
    case 'delete':
      return { next: null, output: { type: 'delete', deleted: register === null ? 0 : 1 } };
  }
}

/** Does the recorded `actual` agree with the model's `expected` (optional fields unchecked when absent)? */
function agrees(expected: KvModelOpOutput, actual: KvModelOpOutput): boolean {
  if (expected.type !== actual.type) return false;
  if (expected.type === 'get' && actual.type === 'get') {
    if (expected.value !== actual.value) return false;
    return actual.version === undefined || actual.version === (expected.version ?? 0);
  }
  if (expected.type === 'delete' && actual.type === 'delete') {
    return actual.deleted === undefined || actual.deleted === expected.deleted;
  }
  return true;
}

function step(
  register: KvRegister,
  input: KvModelInput,
  output: KvModelOutput | undefined,
): KvRegister | undefined {
  if (input.type !== 'txn') {
    const { next, output: expected } = applyOp(register, input);
    if (output !== undefined && !agrees(expected, output as KvModelOpOutput)) return undefined;
    return next;
  }
  const succeeded = input.compare.every((compare) => compares(register, compare));
  if (output !== undefined && (output.type !== 'txn' || output.succeeded !== succeeded)) return undefined;
  const responses = output?.type === 'txn' ? output.responses : undefined;
  const ops = succeeded ? input.success : input.failure;
  if (responses !== undefined && responses.length !== ops.length) return undefined;
  let current = register;
  for (const [index, op] of ops.entries()) {
    const { next, output: expected } = applyOp(current, op);
    const actual = responses?.[index];
    if (actual !== undefined && !agrees(expected, actual)) return undefined;
    current = next;
  }
  return current;
}

function describe(input: KvModelInput, output: KvModelOutput | undefined): string {
  const result = output === undefined ? '?' : JSON.stringify(output);
  switch (input.type) {
    case 'get':
      return `get(${input.key}) → ${result}`;
    case 'put':
      return `put(${input.key}, ${JSON.stringify(input.value)}) → ${result}`;
    case 'delete':
      return `delete(${input.key}) → ${result}`;
    case 'txn': {
      const when = input.compare
        .map((c) => `${c.target}(${c.key}) ${c.op} ${JSON.stringify(c.value)}`)
        .join(' && ');
      const ops = (list: readonly (KvGet | KvPut | KvDelete)[]): string =>
        list.map((op) => (op.type === 'put' ? `put ${JSON.stringify(op.value)}` : op.type)).join(', ');
      return `txn(if ${when} then [${ops(input.success)}] else [${ops(input.failure)}]) → ${result}`;
    }
  }
}

/** Splits a history by the key each operation touches. */
export function partitionByKey(history: readonly KvOperation[]): ReadonlyMap<string, readonly KvOperation[]> {
  const partitions = new Map<string, KvOperation[]>();
  for (const op of history) {
    const key = keyOf(op.input);
    const list = partitions.get(key);
    if (list === undefined) partitions.set(key, [op]);
    else list.push(op);
  }
  return partitions;
}

/** The per-key register model of the key-value store, every key initially missing. */
export const kvModel: Model<KvRegister, KvModelInput, KvModelOutput> = {
  init: () => null,
  step,
  stateKey: (register) => (register === null ? '-' : `${register.version}:${register.value}`),
  partition: partitionByKey,
  describe,
};
