/**
 * What the control plane keeps about workloads in the Raft store (docs/workloads.md):
 *
 *   /cloudless/workloads/<namespace>/<name>          a WorkloadRecord (the spec and its revision)
 *   /cloudless/replicas/<namespace>/<name>/<index>   a ReplicaRecord (one slot of the workload)
 *   /cloudless/node-failures/<PeerId>                times the node was marked down (reliability)
 *
 * A replica slot keeps its key for the workload's life; each placement of it is an attempt with
 * its own `replicaId` (`<namespace>/<name>/<index>#<attempt>`), so a report about an old attempt
 * (an agent that was cut off) can never be taken for the current one.
 *
 * Records come from a store any admitted writer can change, so decoding checks the shape and
 * refuses (with the key) what it cannot use, rather than half-using it.
 */
import { InvalidRequestError } from '../../runtime/errors.ts';
import type { WorkloadSpec } from './workload-spec.ts';
import { validateWorkloadSpec } from './workload-validate.ts';

export const workloadsPrefix = '/cloudless/workloads/';
export const replicasPrefix = '/cloudless/replicas/';
export const nodeFailuresPrefix = '/cloudless/node-failures/';

const recordVersion = 1;

export const replicaStates = ['pending', 'starting', 'running', 'succeeded', 'failed', 'lost'] as const;
export type ReplicaState = (typeof replicaStates)[number];

/** States after which a replica attempt never runs again. */
export function isFinished(state: ReplicaState): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'lost';
}

export interface WorkloadRecord {
  readonly spec: WorkloadSpec;
  /** SHA-256 of the canonical spec (spec-digest.ts): the same spec again changes nothing. */
  readonly digest: string;
  /** 1 for the first spec, +1 per changed spec; replicas of an older revision are rolled. */
  readonly revision: number;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface ReplicaRecord {
  /** `<namespace>/<name>`. */
  readonly workloadId: string;
  readonly index: number;
  /** Placements of this slot so far (1 for the first). */
  readonly attempt: number;
  /** The workload revision this attempt runs. */
  readonly specRevision: number;
  /** Where it is placed; undefined while pending. */
  readonly node: string | undefined;
  readonly state: ReplicaState;
  /** Passes the health check (or runs, without one). */
  readonly ready: boolean;
  /** Restarts by the agent within this attempt. */
  readonly restarts: number;
  readonly exitCode: number | undefined;
  /** Why it is in this state, in words (exit reason, "node X down", "preempted by …"). */
  readonly reason: string | undefined;
  /** Whether the node enforces its resource limits, as the agent reported. */
  readonly limits: string | undefined;
  /** Attempts of this slot that ended lost or preempted (shown by ps). */
  readonly lostCount: number;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export function workloadKey(workloadId: string): string {
  return `${workloadsPrefix}${workloadId}`;
}

export function replicaPrefixOf(workloadId: string): string {
  return `${replicasPrefix}${workloadId}/`;
}

export function replicaKey(workloadId: string, index: number): string {
  return `${replicasPrefix}${workloadId}/${index}`;
}

export function nodeFailuresKey(node: string): string {
  return `${nodeFailuresPrefix}${node}`;
}

/** The id of one attempt of a slot: what agents run and report about. */
export function replicaIdOf(record: Pick<ReplicaRecord, 'workloadId' | 'index' | 'attempt'>): string {
  return `${record.workloadId}/${record.index}#${record.attempt}`;
}

/** `<namespace>/<name>` and the index a replica key names, or undefined for another key. */
export function parseReplicaKey(key: string): { workloadId: string; index: number } | undefined {
  if (!key.startsWith(replicasPrefix)) return undefined;
  const parts = key.slice(replicasPrefix.length).split('/');
  if (parts.length !== 3) return undefined;
  const [namespace, name, indexText] = parts as [string, string, string];
  const index = Number(indexText);
  if (!Number.isSafeInteger(index) || index < 0 || String(index) !== indexText) return undefined;
  return { workloadId: `${namespace}/${name}`, index };
}

/** `<namespace>/<name>` a workload key names, or undefined. */
export function parseWorkloadKey(key: string): string | undefined {
  if (!key.startsWith(workloadsPrefix)) return undefined;
  const rest = key.slice(workloadsPrefix.length);
  return rest.split('/').length === 2 ? rest : undefined;
}

function refuse(key: string, problem: string): InvalidRequestError {
  return new InvalidRequestError(`record at ${key}: ${problem}; remove it or deploy the workload again`);
}

function parse(json: string, key: string, maxBytes: number): Record<string, unknown> {
  if (json.length > maxBytes) throw refuse(key, `${json.length} bytes is over the ${maxBytes}-byte limit`);
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw refuse(key, `not JSON (${(error as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw refuse(key, 'not an object');
  const object = value as Record<string, unknown>;
  if (object.v !== recordVersion)
    throw refuse(key, `format version ${String(object.v)}, expected ${recordVersion}`);
  return object;
}

function integer(object: Record<string, unknown>, field: string, key: string): number {
  const value = object[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw refuse(key, `${field} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return value;
}

function optionalString(
  object: Record<string, unknown>,
  field: string,
  key: string,
  max: number,
): string | undefined {
  const value = object[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > max)
    throw refuse(key, `${field} must be a string of at most ${max} characters`);
  return value;
}

export function encodeWorkloadRecord(record: WorkloadRecord): string {
  return JSON.stringify({ v: recordVersion, ...record });
}

export function decodeWorkloadRecord(json: string, key: string): WorkloadRecord {
  const object = parse(json, key, 512 * 1024);
  let spec: WorkloadSpec;
  try {
    spec = validateWorkloadSpec(object.spec);
  } catch (error) {
    throw refuse(key, `its spec is invalid (${(error as Error).message})`);
  }
  if (typeof object.digest !== 'string' || !/^[0-9a-f]{64}$/.test(object.digest))
    throw refuse(key, 'digest must be 64 hex digits');
  return {
    spec,
    digest: object.digest,
    revision: integer(object, 'revision', key),
    createdAt: integer(object, 'createdAt', key),
    updatedAt: integer(object, 'updatedAt', key),
  };
}

export function encodeReplicaRecord(record: ReplicaRecord): string {
  return JSON.stringify({ v: recordVersion, ...record });
}

export function decodeReplicaRecord(json: string, key: string): ReplicaRecord {
  const object = parse(json, key, 16 * 1024);
  const slot = parseReplicaKey(key);
  if (slot === undefined) throw refuse(key, 'the key does not name a replica slot');
  if (object.workloadId !== slot.workloadId || object.index !== slot.index)
    throw refuse(key, 'workloadId and index differ from the key');
  const state = object.state;
  if (!(replicaStates as readonly unknown[]).includes(state))
    throw refuse(key, `state must be one of ${replicaStates.join(', ')}`);
  const node = optionalString(object, 'node', key, 128);
  if ((state === 'starting' || state === 'running' || state === 'succeeded') && node === undefined)
    throw refuse(key, `a ${String(state)} replica needs a node`);
  if (typeof object.ready !== 'boolean') throw refuse(key, 'ready must be a boolean');
  const exitCode = object.exitCode;
  if (exitCode !== undefined && (typeof exitCode !== 'number' || !Number.isSafeInteger(exitCode)))
    throw refuse(key, 'exitCode must be an integer');
  return {
    workloadId: slot.workloadId,
    index: slot.index,
    attempt: integer(object, 'attempt', key),
    specRevision: integer(object, 'specRevision', key),
    node,
    state: state as ReplicaState,
    ready: object.ready,
    restarts: integer(object, 'restarts', key),
    exitCode: exitCode as number | undefined,
    reason: optionalString(object, 'reason', key, 2048),
    limits: optionalString(object, 'limits', key, 512),
    lostCount: integer(object, 'lostCount', key),
    createdAt: integer(object, 'createdAt', key),
    updatedAt: integer(object, 'updatedAt', key),
  };
}

/** The count of a `/cloudless/node-failures/<id>` value (0 for a missing or unreadable one). */
export function decodeNodeFailures(json: string | undefined): { count: number; lastAt: number } {
  if (json === undefined) return { count: 0, lastAt: 0 };
  try {
    const value = JSON.parse(json) as { count?: unknown; lastAt?: unknown };
    const count = typeof value.count === 'number' && Number.isSafeInteger(value.count) ? value.count : 0;
    const lastAt = typeof value.lastAt === 'number' ? value.lastAt : 0;
    return { count: Math.max(0, count), lastAt };
  } catch {
    return { count: 0, lastAt: 0 };
  }
}
