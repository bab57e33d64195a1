import { expect } from 'chai';
import { TokenRefusedError } from '../../actors/enrollment/enrollment-errors.ts';
import {
  checkRoles,
  decodeTokenRecord,
  encodeTokenRecord,
  formatToken,
  generateToken,
  hashSecret,
  parseToken,
  secretMatches,
  type TokenRecord,
} from '../../actors/enrollment/token.ts';

function refusal(fn: () => unknown): TokenRefusedError {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(TokenRefusedError);
    return error as TokenRefusedError;
  }
  throw new Error('expected a TokenRefusedError');
}

describe('join tokens', () => {
  const token = generateToken();
  const text = formatToken(token);

  it('prints <16 hex>.<43 base64url> and parses back', () => {
    expect(text).to.match(/^[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    expect(parseToken(text)).to.deep.equal(token);
  });

  it('refuses malformed tokens with a message that never contains the secret', () => {
    const cases = [
      token.secret,
      `${token.id}${token.secret}`,
      `${token.id}.${token.secret}!`,
      `${token.id}.${token.secret.slice(1)}`,
      `XYZ.${token.secret}`,
      `${token.id.toUpperCase()}.${token.secret}`,
      `${text}${'a'.repeat(200)}`,
      42,
      undefined,
    ];
    for (const value of cases) {
      const error = refusal(() => parseToken(value));
      expect(error.reason).to.equal('malformed');
      expect(error.code).to.equal('INVALID_REQUEST');
      expect(error.message).not.to.include(token.secret);
      expect(error.message).not.to.include(token.secret.slice(1));
    }
  });

  it('hashes the secret with SHA-256 and compares in constant time', () => {
    const hash = hashSecret(token.secret);
    expect(hash).to.match(/^[0-9a-f]{64}$/);
    expect(hashSecret(token.secret)).to.equal(hash);
    expect(secretMatches(token.secret, hash)).to.equal(true);
    expect(secretMatches(generateToken().secret, hash)).to.equal(false);
    expect(secretMatches(token.secret, 'not-a-hash')).to.equal(false);
    expect(secretMatches(token.secret, '')).to.equal(false);
  });

  it('round-trips a record and refuses a broken one', () => {
    const record: TokenRecord = {
      version: 1,
      id: token.id,
      secretHash: hashSecret(token.secret),
      roles: ['agent', 'storage'],
      createdAt: 1,
      expiresAt: 2,
      maxUses: 3,
      uses: 0,
      revoked: false,
      boundPeers: [],
    };
    expect(decodeTokenRecord(encodeTokenRecord(record), 'k')).to.deep.equal(record);
    for (const broken of [
      '{',
      '[]',
      JSON.stringify({ ...record, version: 2 }),
      JSON.stringify({ ...record, secretHash: 'x' }),
      JSON.stringify({ ...record, roles: ['root'] }),
      JSON.stringify({ ...record, uses: -1 }),
      JSON.stringify({ ...record, maxUses: 0 }),
      JSON.stringify({ ...record, revoked: 'no' }),
      JSON.stringify({ ...record, boundPeers: 'x' }),
    ]) {
      expect(refusal(() => decodeTokenRecord(broken, 'k')).reason).to.equal('malformed');
    }
  });

  it('checks role lists', () => {
    expect(checkRoles('agent,storage', 'roles')).to.deep.equal(['agent', 'storage']);
    expect(checkRoles(['coordinator', 'coordinator'], 'roles')).to.deep.equal(['coordinator']);
    expect(() => checkRoles('agent,root', 'roles')).to.throw(TokenRefusedError);
    expect(() => checkRoles([], 'roles')).to.throw(TokenRefusedError);
  });
});
