/**
 * Join tokens in the Raft store: create, list, revoke, and redeem. Every change is one KV
 * transaction with a compare on what it read (a key's `modRevision`, or `version = 0` to create),
 * so two coordinators redeeming the same token at once can never both count the last use: the
 * loser re-reads and is refused. Redemption binds the token to the joining PeerId, counts the use
 * and creates the member record in the same transaction.
 */

import { InvalidRequestError, NotFoundError, UnavailableError } from '../../runtime/errors.ts';
import type { Role } from '../../runtime/node-config.ts';
import { TokenRefusedError } from './enrollment-errors.ts';
import type { KvPort } from './kv-port.ts';
import {
  blockedKey,
  decodeMemberRecord,
  encodeMemberRecord,
  type MemberDescription,
  type MemberRecord,
  memberKey,
} from './member-record.ts';
import {
  checkTokenId,
  decodeTokenRecord,
  encodeTokenRecord,
  formatToken,
  generateToken,
  hashSecret,
  parseToken,
  secretMatches,
  type TokenRecord,
  tokenKey,
  tokenLimits,
  tokensPrefix,
} from './token.ts';

export interface CreateTokenOptions {
  readonly roles: readonly Role[];
  readonly ttlMs: number;
  readonly maxUses?: number;
  readonly now?: number;
}

export interface RedeemRequest {
  /** The token as the joiner sent it (never logged or echoed). */
  readonly token: unknown;
  /** The PeerId of the connection the request came on: who the token is bound to. */
  readonly peerId: string;
  readonly member: MemberDescription;
  readonly now?: number;
}

/** Compare-and-retry rounds before a redemption gives up (only under heavy contention on one token). */
const maxAttempts = 8;

export class TokenStore {
  readonly #kv: KvPort;
  readonly #timeoutMs: number;

  constructor(components: { kv: KvPort }, init: { timeoutMs?: number } = {}) {
    this.#kv = components.kv;
    this.#timeoutMs = init.timeoutMs ?? 10_000;
  }

  /** Returns the token text (shown once) and the stored record (which holds only the hash). */
  async create(options: CreateTokenOptions): Promise<{ token: string; record: TokenRecord }> {
    const now = options.now ?? Date.now();
    const maxUses = options.maxUses ?? 1;
    if (!Number.isSafeInteger(maxUses) || maxUses < 1 || maxUses > tokenLimits.maxUses)
      throw new InvalidRequestError(
        `--uses must be a whole number from 1 to ${tokenLimits.maxUses}, got ${maxUses}`,
      );
    if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs < 1000 || options.ttlMs > tokenLimits.maxTtlMs)
      throw new InvalidRequestError(`--ttl must be from 1s to 3650d, got ${options.ttlMs} ms`);
    const parsed = generateToken();
    const record: TokenRecord = {
      version: 1,
      id: parsed.id,
      secretHash: hashSecret(parsed.secret),
      roles: [...options.roles],
      createdAt: now,
      expiresAt: now + options.ttlMs,
      maxUses,
      uses: 0,
      revoked: false,
      boundPeers: [],
    };
    const key = tokenKey(parsed.id);
    const outcome = await this.#kv.txn(
      {
        compare: [{ key, target: 'version', op: '=', value: 0 }],
        success: [{ type: 'put', key, value: encodeTokenRecord(record) }],
        failure: [],
      },
      { timeoutMs: this.#timeoutMs },
    );
    // 64 random bits: a collision means a broken random source, not bad luck.
    if (!outcome.succeeded) throw new UnavailableError(`token id ${parsed.id} exists already; create again`);
    return { token: formatToken(parsed), record };
  }

  async list(): Promise<TokenRecord[]> {
    const records: TokenRecord[] = [];
    let fromKey: string | undefined;
    for (;;) {
      const page = await this.#kv.range(tokensPrefix, {
        limit: 1000,
        ...(fromKey === undefined ? {} : { fromKey }),
        timeoutMs: this.#timeoutMs,
      });
      for (const kv of page.kvs) records.push(decodeTokenRecord(kv.value, kv.key));
      if (!page.more || page.nextKey === undefined) return records;
      fromKey = page.nextKey;
    }
  }

  async revoke(id: string): Promise<TokenRecord> {
    checkTokenId(id);
    const key = tokenKey(id);
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const kv = await this.#kv.get(key, { timeoutMs: this.#timeoutMs });
      if (kv === undefined) throw new NotFoundError(`no token ${id}; 'cloudless token ls' lists them`);
      const record = decodeTokenRecord(kv.value, key);
      if (record.revoked) return record;
      const revoked = { ...record, revoked: true };
      const outcome = await this.#kv.txn(
        {
          compare: [{ key, target: 'modRevision', op: '=', value: kv.modRevision }],
          success: [{ type: 'put', key, value: encodeTokenRecord(revoked) }],
          failure: [],
        },
        { timeoutMs: this.#timeoutMs },
      );
      if (outcome.succeeded) return revoked;
    }
    throw new UnavailableError(`token ${id} kept changing while being revoked; try again`);
  }

  /**
   * Redeems a token for `peerId`, or throws `TokenRefusedError` with the reason. A retry by the
   * same PeerId with the same token after a lost answer finds its member record and gets it back
   * without counting another use.
   */
  async redeem(request: RedeemRequest): Promise<{ member: MemberRecord; tokenId: string }> {
    const { id, secret } = parseToken(request.token);
    const key = tokenKey(id);
    const mKey = memberKey(request.peerId);
    const bKey = blockedKey(request.peerId);
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const now = request.now ?? Date.now();
      const [tokenKv, memberKv, blockedKv] = await Promise.all([
        this.#kv.get(key, { timeoutMs: this.#timeoutMs }),
        this.#kv.get(mKey, { timeoutMs: this.#timeoutMs }),
        this.#kv.get(bKey, { timeoutMs: this.#timeoutMs }),
      ]);
      if (tokenKv === undefined)
        throw new TokenRefusedError(
          'unknown',
          `no token ${id}; it may never have existed or was deleted; ask an operator for a new one ('cloudless token create')`,
        );
      const record = decodeTokenRecord(tokenKv.value, key);
      if (!secretMatches(secret, record.secretHash))
        throw new TokenRefusedError(
          'wrong-secret',
          `the secret of token ${id} does not match; check that the whole token was copied`,
        );
      if (blockedKv !== undefined)
        throw new TokenRefusedError(
          'blocked',
          `node ${request.peerId} was removed from the cluster ('cloudless nodes rm'); it cannot join again with this identity`,
        );
      if (record.revoked)
        throw new TokenRefusedError('revoked', `token ${id} was revoked; ask an operator for a new one`);
      const existing = memberKv === undefined ? undefined : decodeMemberRecord(memberKv.value, mKey);
      if (existing !== undefined && existing.status !== 'left') {
        if (existing.tokenId === id) return { member: existing, tokenId: id };
        throw new TokenRefusedError(
          'member-exists',
          `node ${request.peerId} is a member already (joined ${existing.tokenId === undefined ? 'as the bootstrap node' : `with token ${existing.tokenId}`}); it needs no token`,
        );
      }
      if (record.expiresAt <= now)
        throw new TokenRefusedError(
          'expired',
          `token ${id} expired at ${new Date(record.expiresAt).toISOString()}; ask an operator for a new one`,
        );
      if (record.uses >= record.maxUses) {
        const elsewhere = record.maxUses === 1 && !record.boundPeers.includes(request.peerId);
        throw elsewhere
          ? new TokenRefusedError(
              'bound-elsewhere',
              `token ${id} was redeemed already by node ${record.boundPeers[0]}; a token is bound to the node that used it; ask an operator for a new one`,
            )
          : new TokenRefusedError(
              'used-up',
              `token ${id} has been used ${record.uses} of ${record.maxUses} times; ask an operator for a new one`,
            );
      }
      const denied = request.member.roles.filter((role) => !record.roles.includes(role));
      if (denied.length > 0)
        throw new TokenRefusedError(
          'role-not-allowed',
          `token ${id} allows roles ${record.roles.join(',')}, not ${denied.join(',')}; start with allowed --roles or ask for a token with them`,
        );
      // Field by field: the request a description came in also carries the token, which must
      // never reach the store.
      const { roles, addresses, labels, zone, resources } = request.member;
      const member: MemberRecord = {
        id: request.peerId,
        roles,
        addresses,
        labels,
        zone,
        resources,
        status: 'alive',
        joinedAt: now,
        statusSince: now,
        tokenId: id,
      };
      const redeemed: TokenRecord = {
        ...record,
        uses: record.uses + 1,
        boundPeers: [...record.boundPeers, request.peerId].slice(-tokenLimits.maxBoundPeers),
      };
      const outcome = await this.#kv.txn(
        {
          compare: [
            { key, target: 'modRevision', op: '=', value: tokenKv.modRevision },
            { key: mKey, target: 'modRevision', op: '=', value: memberKv?.modRevision ?? 0 },
            { key: bKey, target: 'version', op: '=', value: 0 },
          ],
          success: [
            { type: 'put', key, value: encodeTokenRecord(redeemed) },
            { type: 'put', key: mKey, value: encodeMemberRecord(member) },
          ],
          failure: [],
        },
        { timeoutMs: this.#timeoutMs },
      );
      if (outcome.succeeded) return { member, tokenId: id };
    }
    throw new UnavailableError(`token ${id} kept changing while being redeemed; try joining again`);
  }
}
