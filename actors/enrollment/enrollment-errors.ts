import { InvalidRequestError, UnavailableError } from '../../runtime/errors.ts';

/**
 * Why a join token was refused. runtime/errors.ts has a closed set of codes, so (as kv-errors.ts
 * does) the class reuses INVALID_REQUEST and a stable `reason` tells the conditions apart; specs
 * match on the class and `reason`, never on message text. No message ever contains a secret.
 */
export type TokenRefusalReason =
  | 'malformed'
  | 'unknown'
  | 'wrong-secret'
  | 'expired'
  | 'revoked'
  | 'used-up'
  | 'bound-elsewhere'
  | 'role-not-allowed'
  | 'member-exists'
  | 'blocked';

export const tokenRefusalReasons: ReadonlySet<string> = new Set<TokenRefusalReason>([
  'malformed',
  'unknown',
  'wrong-secret',
  'expired',
  'revoked',
  'used-up',
  'bound-elsewhere',
  'role-not-allowed',
  'member-exists',
  'blocked',
]);

export class TokenRefusedError extends InvalidRequestError {
  readonly reason: TokenRefusalReason;
  constructor(reason: TokenRefusalReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

/** A client presented no admin credential, or a wrong one. */
export class UnauthenticatedClientError extends InvalidRequestError {
  readonly reason = 'unauthenticated' as const;
}

/** The node cannot judge the request yet (its view of the members is not loaded). */
export class EnrollmentUnavailableError extends UnavailableError {}

/** Rebuilds an enrollment error that crossed the wire as `{ code, message, reason }`. */
export function enrollmentErrorFromWire(wire: { code: string; message: string; reason?: string }): Error {
  if (wire.reason !== undefined && tokenRefusalReasons.has(wire.reason))
    return new TokenRefusedError(wire.reason as TokenRefusalReason, wire.message);
  if (wire.reason === 'unauthenticated') return new UnauthenticatedClientError(wire.message);
  if (wire.code === 'UNAVAILABLE') return new EnrollmentUnavailableError(wire.message);
  return new InvalidRequestError(wire.message);
}
