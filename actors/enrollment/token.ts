/**
 * Join tokens: `<id>.<secret>`, the id 8 random bytes in hex (it names the record at
 * `/cloudless/tokens/<id>` and may be logged), the secret 32 random bytes in base64url (only its
 * SHA-256 is stored, compared in constant time). Parsing never echoes the secret back: a
 * malformed token is described by its shape, not its text.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { roles as allRoles, type Role } from '../../runtime/node-config.ts';
import { TokenRefusedError } from './enrollment-errors.ts';

export const tokensPrefix = '/cloudless/tokens/';

const idPattern = /^[0-9a-f]{16}$/;
const secretPattern = /^[A-Za-z0-9_-]{43}$/;
const hashPattern = /^[0-9a-f]{64}$/;
/** Longest token text looked at; anything longer is malformed without being scanned. */
const maxTokenLength = 128;

export const tokenLimits = {
  maxUses: 1_000_000,
  /** Ten years: a longer TTL is a mistake, not a policy. */
  maxTtlMs: 10 * 365 * 24 * 3600 * 1000,
  maxBoundPeers: 1000,
} as const;

export interface ParsedToken {
  readonly id: string;
  readonly secret: string;
}

export interface TokenRecord {
  readonly version: 1;
  readonly id: string;
  /** SHA-256 of the secret, hex. */
  readonly secretHash: string;
  readonly roles: readonly Role[];
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly maxUses: number;
  readonly uses: number;
  readonly revoked: boolean;
  /** PeerIds that redeemed it, in order. */
  readonly boundPeers: readonly string[];
}

export function tokenKey(id: string): string {
  return `${tokensPrefix}${id}`;
}

export function checkTokenId(id: unknown): string {
  if (typeof id !== 'string' || !idPattern.test(id)) {
    throw new TokenRefusedError(
      'malformed',
      `a token id is 16 lowercase hex characters (the part before the dot); got ${typeof id === 'string' ? `${id.length} characters` : typeof id}`,
    );
  }
  return id;
}

/** Splits `<id>.<secret>`; a malformed token throws without the text in the message. */
export function parseToken(text: unknown): ParsedToken {
  const hint =
    "expected '<16 hex characters>.<43 base64url characters>' as printed by 'cloudless token create'";
  if (typeof text !== 'string')
    throw new TokenRefusedError('malformed', `the token must be a string; ${hint}`);
  if (text.length > maxTokenLength)
    throw new TokenRefusedError('malformed', `the token is ${text.length} characters long; ${hint}`);
  const dot = text.indexOf('.');
  if (dot < 0)
    throw new TokenRefusedError('malformed', `the token has no '.' between id and secret; ${hint}`);
  const id = text.slice(0, dot);
  const secret = text.slice(dot + 1);
  if (!idPattern.test(id))
    throw new TokenRefusedError(
      'malformed',
      `the token id has ${id.length} characters or non-hex ones; ${hint}`,
    );
  if (!secretPattern.test(secret))
    throw new TokenRefusedError(
      'malformed',
      `the secret of token ${id} has ${secret.length} characters or ones outside base64url; ${hint}`,
    );
  return { id, secret };
}

export function formatToken(token: ParsedToken): string {
  return `${token.id}.${token.secret}`;
}

export function generateToken(random: (size: number) => Buffer = randomBytes): ParsedToken {
  return { id: random(8).toString('hex'), secret: random(32).toString('base64url') };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant time in the secret: both sides are hashed to the same length first. */
export function secretMatches(secret: string, expectedHash: string): boolean {
  const actual = Buffer.from(hashSecret(secret), 'hex');
  const expected = Buffer.from(hashPattern.test(expectedHash) ? expectedHash : '', 'hex');
  if (expected.length !== actual.length) return false;
  return timingSafeEqual(actual, expected);
}

/** Parses and checks a `--roles`-style list or array; at least one known role, no repeats. */
export function checkRoles(value: unknown, what: string): Role[] {
  const list = typeof value === 'string' ? value.split(',').map((role) => role.trim()) : value;
  if (!Array.isArray(list) || list.length === 0 || list.length > allRoles.length) {
    throw new TokenRefusedError(
      'malformed',
      `${what} must list 1 to ${allRoles.length} of ${allRoles.join(', ')}`,
    );
  }
  const seen = new Set<Role>();
  for (const role of list) {
    if (typeof role !== 'string' || !(allRoles as readonly string[]).includes(role)) {
      throw new TokenRefusedError(
        'malformed',
        `${what}: unknown role ${JSON.stringify(String(role).slice(0, 40))}; expected ${allRoles.join(', ')}`,
      );
    }
    seen.add(role as Role);
  }
  return [...seen];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function wholeNumber(value: unknown, min: number, max: number): boolean {
  return Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max;
}

/** Decodes and checks a stored record; anything off is an error naming the key, never used. */
export function decodeTokenRecord(text: string, key: string): TokenRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TokenRefusedError('malformed', `${key} does not hold JSON; revoke or delete the token`, {
      cause: error,
    });
  }
  const bad = (field: string): never => {
    throw new TokenRefusedError('malformed', `${key} has an invalid ${field}; revoke or delete the token`);
  };
  if (!isObject(value)) return bad('record');
  if (value.version !== 1) bad('version');
  checkTokenId(value.id);
  if (typeof value.secretHash !== 'string' || !hashPattern.test(value.secretHash)) bad('secretHash');
  try {
    checkRoles(value.roles, 'roles');
  } catch {
    bad('roles');
  }
  if (!wholeNumber(value.createdAt, 0, Number.MAX_SAFE_INTEGER)) bad('createdAt');
  if (!wholeNumber(value.expiresAt, 0, Number.MAX_SAFE_INTEGER)) bad('expiresAt');
  if (!wholeNumber(value.maxUses, 1, tokenLimits.maxUses)) bad('maxUses');
  if (!wholeNumber(value.uses, 0, tokenLimits.maxUses)) bad('uses');
  if (typeof value.revoked !== 'boolean') bad('revoked');
  if (
    !Array.isArray(value.boundPeers) ||
    value.boundPeers.length > tokenLimits.maxBoundPeers ||
    !value.boundPeers.every((peer) => typeof peer === 'string' && peer.length <= 128)
  )
    bad('boundPeers');
  return value as unknown as TokenRecord;
}

export function encodeTokenRecord(record: TokenRecord): string {
  return JSON.stringify(record);
}

/** What `token ls` shows: everything but the hash. */
export function describeToken(
  record: TokenRecord,
  now: number,
): Omit<TokenRecord, 'secretHash'> & {
  readonly state: 'active' | 'expired' | 'revoked' | 'used-up';
} {
  const { secretHash: _hidden, ...rest } = record;
  const state = record.revoked
    ? 'revoked'
    : record.uses >= record.maxUses
      ? 'used-up'
      : record.expiresAt <= now
        ? 'expired'
        : 'active';
  return { ...rest, state };
}
