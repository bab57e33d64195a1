/**
 * The member record every node agrees on, stored as JSON at `/cloudless/members/<PeerId>`
 * (docs/cluster.md), and the sampling of a node's resources that heartbeats carry.
 *
 * The JSON comes from the Raft store, which any admitted writer can change, so decoding is strict:
 * unknown fields, wrong types, oversized strings or lists are refused with an error naming the
 * field, never half-used. `undefined` fields are left out of the JSON (it has no undefined).
 */
import { statfs } from 'node:fs/promises';
import os from 'node:os';
import { InvalidRequestError } from '../../runtime/errors.ts';

export const membersPrefix = '/cloudless/members/';

export const memberRoles = ['coordinator', 'agent', 'storage'] as const;
export type MemberRole = (typeof memberRoles)[number];

export const memberStatuses = ['alive', 'suspect', 'down', 'left'] as const;
export type MemberStatus = (typeof memberStatuses)[number];

export interface Resources {
  readonly cpuCores: number;
  readonly cpuLoad1m: number;
  readonly memoryBytes: number;
  readonly memoryFreeBytes: number;
  readonly diskBytes: number;
  readonly diskFreeBytes: number;
}

export interface MemberRecord {
  readonly id: string;
  readonly roles: readonly MemberRole[];
  readonly addresses: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly zone: string | undefined;
  readonly status: MemberStatus;
  readonly resources: Resources | undefined;
  readonly joinedAt: number;
  readonly statusSince: number;
  readonly tokenId: string | undefined;
}

/**
 * Bounds on a record, whatever a writer tried. Enrollment checks a joining node's description
 * against the same bounds (actors/enrollment/member-record.ts), so every record it creates can be
 * read back: the largest description (64 labels of 63 + 253 characters, 16 addresses of 1,024)
 * fits in `maxBytes`.
 */
export const memberRecordLimits = {
  maxBytes: 64 * 1024,
  maxIdLength: 128,
  maxAddresses: 16,
  maxAddressLength: 1024,
  maxLabels: 64,
  maxLabelLength: 253,
  maxZoneLength: 63,
} as const;

export function memberKey(id: string): string {
  return `${membersPrefix}${id}`;
}

/** The PeerId a member key names, or undefined for a key outside the prefix. */
export function memberIdOfKey(key: string): string | undefined {
  if (!key.startsWith(membersPrefix)) return undefined;
  const id = key.slice(membersPrefix.length);
  return id.length > 0 && !id.includes('/') ? id : undefined;
}

const recordFields = new Set([
  'id',
  'roles',
  'addresses',
  'labels',
  'zone',
  'status',
  'resources',
  'joinedAt',
  'statusSince',
  'tokenId',
]);
const resourceFields = [
  'cpuCores',
  'cpuLoad1m',
  'memoryBytes',
  'memoryFreeBytes',
  'diskBytes',
  'diskFreeBytes',
] as const;

function invalid(where: string, problem: string): InvalidRequestError {
  return new InvalidRequestError(
    `member record ${where}: ${problem}; rewrite the record with 'cloudless nodes' tooling or remove it`,
  );
}

function boundedString(value: unknown, field: string, max: number, where: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max)
    throw invalid(where, `${field} must be a non-empty string of at most ${max} characters`);
  return value;
}

function time(value: unknown, field: string, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw invalid(
      where,
      `${field} must be a non-negative integer (ms since the epoch), got ${String(value)}`,
    );
  return value;
}

/** Checks resources from a record or a heartbeat (a remote peer's claim). */
export function validateResources(value: unknown, where = 'resources'): Resources {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(where, 'resources must be an object');
  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object))
    if (!(resourceFields as readonly string[]).includes(key))
      throw invalid(where, `unknown resource '${key}'`);
  const out: Record<string, number> = {};
  for (const field of resourceFields) {
    const n = object[field];
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > 2 ** 60)
      throw invalid(where, `resources.${field} must be a finite non-negative number`);
    out[field] = n;
  }
  return out as unknown as Resources;
}

/** Checks a record object (decoded JSON or built in process). */
export function validateMemberRecord(value: unknown, expectedId?: string): MemberRecord {
  const where = expectedId === undefined ? '' : `for ${expectedId}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(where, 'it must be a JSON object');
  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object))
    if (!recordFields.has(key)) throw invalid(where, `unknown field '${key}'`);
  const id = boundedString(object.id, 'id', memberRecordLimits.maxIdLength, where);
  if (expectedId !== undefined && id !== expectedId)
    throw invalid(where, `id '${id}' differs from the key's PeerId`);
  const roles = object.roles;
  if (
    !Array.isArray(roles) ||
    roles.length === 0 ||
    roles.length > memberRoles.length ||
    !roles.every((role) => (memberRoles as readonly unknown[]).includes(role)) ||
    new Set(roles).size !== roles.length
  )
    throw invalid(where, `roles must be distinct values of ${memberRoles.join(', ')}`);
  const addresses = object.addresses;
  if (!Array.isArray(addresses) || addresses.length > memberRecordLimits.maxAddresses)
    throw invalid(where, `addresses must be a list of at most ${memberRecordLimits.maxAddresses} multiaddrs`);
  for (const address of addresses) {
    boundedString(address, 'an address', memberRecordLimits.maxAddressLength, where);
    if (!(address as string).startsWith('/')) throw invalid(where, `address '${address}' is not a multiaddr`);
  }
  const labels = object.labels;
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels))
    throw invalid(where, 'labels must be an object of strings');
  const labelEntries = Object.entries(labels as Record<string, unknown>);
  if (labelEntries.length > memberRecordLimits.maxLabels)
    throw invalid(where, `at most ${memberRecordLimits.maxLabels} labels`);
  for (const [k, v] of labelEntries) {
    boundedString(k, 'a label name', memberRecordLimits.maxLabelLength, where);
    if (typeof v !== 'string' || v.length > memberRecordLimits.maxLabelLength)
      throw invalid(
        where,
        `label '${k}' must be a string of at most ${memberRecordLimits.maxLabelLength} characters`,
      );
  }
  const zone =
    object.zone === undefined
      ? undefined
      : boundedString(object.zone, 'zone', memberRecordLimits.maxZoneLength, where);
  if (!(memberStatuses as readonly unknown[]).includes(object.status))
    throw invalid(where, `status must be one of ${memberStatuses.join(', ')}, got ${String(object.status)}`);
  const resources = object.resources === undefined ? undefined : validateResources(object.resources, where);
  const tokenId =
    object.tokenId === undefined ? undefined : boundedString(object.tokenId, 'tokenId', 64, where);
  return {
    id,
    roles: roles as MemberRole[],
    addresses: addresses as string[],
    labels: { ...(labels as Record<string, string>) },
    zone,
    status: object.status as MemberStatus,
    resources,
    joinedAt: time(object.joinedAt, 'joinedAt', where),
    statusSince: time(object.statusSince, 'statusSince', where),
    tokenId,
  };
}

/** The JSON stored for `record` (fields in the documented order, undefined ones left out). */
export function encodeMemberRecord(record: MemberRecord): string {
  const checked = validateMemberRecord(JSON.parse(JSON.stringify(record)) as unknown, record.id);
  return JSON.stringify(checked);
}

/** Decodes and checks the JSON at `/cloudless/members/<expectedId>`. */
export function decodeMemberRecord(json: string, expectedId?: string): MemberRecord {
  if (json.length > memberRecordLimits.maxBytes)
    throw invalid(
      expectedId ?? '',
      `it is ${json.length} bytes, over the ${memberRecordLimits.maxBytes}-byte limit`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw invalid(expectedId ?? '', `it is not JSON (${(error as Error).message})`);
  }
  return validateMemberRecord(parsed, expectedId);
}

/** This machine's resources now; the disk is the file system holding `dataDir`. */
export async function sampleResources(dataDir: string): Promise<Resources> {
  const disk = await statfs(dataDir).then(
    (s) => ({ diskBytes: s.blocks * s.bsize, diskFreeBytes: s.bavail * s.bsize }),
    // A data dir that vanished should not stop heartbeats: report the disk as unknown (0).
    () => ({ diskBytes: 0, diskFreeBytes: 0 }),
  );
  return {
    cpuCores: os.availableParallelism(),
    cpuLoad1m: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
    memoryBytes: os.totalmem(),
    memoryFreeBytes: os.freemem(),
    ...disk,
  };
}
