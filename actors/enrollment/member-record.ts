/**
 * The member record at `/cloudless/members/<PeerId>` (docs/cluster.md) and the block list at
 * `/cloudless/blocked/<PeerId>`. Enrollment creates a record when a token is redeemed; the
 * membership actor changes its status; `cloudless nodes rm` deletes it and writes a block entry
 * in the same transaction. Everything read back from the store is checked before it is used.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { InvalidRequestError } from '../../runtime/errors.ts';
import type { Role } from '../../runtime/node-config.ts';
import {
  decodeMemberRecord as decodeMemberRecordOf,
  type MemberRecord,
  type MemberStatus,
  memberIdOfKey,
  memberKey,
  memberRecordLimits,
  membersPrefix,
  type Resources,
  validateResources,
} from '../membership/member-record.ts';
import { checkRoles } from './token.ts';

// The record itself is the membership part's (one definition for every writer and reader).
export { encodeMemberRecord } from '../membership/member-record.ts';
export { type MemberRecord, type MemberStatus, memberKey, membersPrefix, type Resources };

/** Decodes the record stored at `key` (its PeerId must match the key's). */
export function decodeMemberRecord(text: string, key: string): MemberRecord {
  return decodeMemberRecordOf(text, memberIdOfKey(key) ?? key);
}

export const blockedPrefix = '/cloudless/blocked/';

/** What a joining node says about itself (the rest of the record is the coordinator's). */
export interface MemberDescription {
  readonly roles: readonly Role[];
  readonly addresses: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly zone: string | undefined;
  readonly resources: Resources | undefined;
}

/** A description must make a record every reader accepts: the record's own bounds. */
export const memberLimits = {
  maxAddresses: memberRecordLimits.maxAddresses,
  maxAddressLength: memberRecordLimits.maxAddressLength,
  maxLabels: memberRecordLimits.maxLabels,
  maxLabelKeyLength: 63,
  maxLabelValueLength: memberRecordLimits.maxLabelLength,
  maxZoneLength: memberRecordLimits.maxZoneLength,
} as const;

const labelKey = /^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?$/;
const zoneName = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export function blockedKey(peerId: string): string {
  return `${blockedPrefix}${peerId}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function checkPeerId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 128)
    throw new InvalidRequestError(`${what} must be a PeerId string`);
  try {
    return peerIdFromString(value).toString();
  } catch {
    throw new InvalidRequestError(
      `${what} '${value}' is not a PeerId; 'cloudless peer id' on that node prints it`,
    );
  }
}

function checkAddresses(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.length > memberLimits.maxAddresses)
    throw new InvalidRequestError(
      `${what} must be an array of at most ${memberLimits.maxAddresses} multiaddrs`,
    );
  return value.map((address: unknown, i) => {
    if (typeof address !== 'string' || address.length > memberLimits.maxAddressLength)
      throw new InvalidRequestError(
        `${what}[${i}] must be a multiaddr string of at most ${memberLimits.maxAddressLength} characters`,
      );
    try {
      multiaddr(address);
    } catch {
      throw new InvalidRequestError(`${what}[${i}] '${address.slice(0, 80)}' is not a multiaddr`);
    }
    return address;
  });
}

export function checkLabels(value: unknown, what: string): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value)) throw new InvalidRequestError(`${what} must be an object of string labels`);
  const entries = Object.entries(value);
  if (entries.length > memberLimits.maxLabels)
    throw new InvalidRequestError(`${what} has ${entries.length} labels; at most ${memberLimits.maxLabels}`);
  const labels: Record<string, string> = {};
  for (const [key, label] of entries) {
    if (key.length > memberLimits.maxLabelKeyLength || !labelKey.test(key))
      throw new InvalidRequestError(
        `${what}: label key '${key.slice(0, 80)}' must be lowercase alphanumerics with . _ / - inside, at most ${memberLimits.maxLabelKeyLength} characters`,
      );
    if (typeof label !== 'string' || label.length > memberLimits.maxLabelValueLength)
      throw new InvalidRequestError(
        `${what}: label '${key}' must be a string of at most ${memberLimits.maxLabelValueLength} characters`,
      );
    labels[key] = label;
  }
  return labels;
}

export function checkZone(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > memberLimits.maxZoneLength || !zoneName.test(value))
    throw new InvalidRequestError(
      `${what} must be a DNS-1123 label (lowercase alphanumerics and '-', at most 63)`,
    );
  return value;
}

export function checkResources(value: unknown, what: string): Resources | undefined {
  if (value === undefined) return undefined;
  try {
    return validateResources(value, what);
  } catch (error) {
    throw new InvalidRequestError(`${what}: ${(error as Error).message}`, { cause: error });
  }
}

export function checkMemberDescription(value: Record<string, unknown>, what: string): MemberDescription {
  return {
    roles: checkRoles(value.roles, `${what}.roles`),
    addresses: checkAddresses(value.addresses, `${what}.addresses`),
    labels: checkLabels(value.labels, `${what}.labels`),
    zone: checkZone(value.zone, `${what}.zone`),
    resources: checkResources(value.resources, `${what}.resources`),
  };
}
