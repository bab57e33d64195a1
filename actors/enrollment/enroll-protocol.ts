/**
 * The enrollment protocol `/cloudless/enroll/1.0.0`: one request and one answer per stream, each
 * a 4-byte big-endian length and a msgpack body of at most 64 KiB, within a 10 s deadline. It is
 * the only protocol (besides identify and ping) a peer that is not admitted may speak.
 *
 *   { type: 'join', token, roles, addresses, labels?, zone?, resources? }
 *     → { ok: true, member, coordinators: [{ id, addresses }] }
 *   { type: 'client', credential } → { ok: true }
 *   any failure → { ok: false, error: { code, message, reason? } }
 */
import type { Stream } from '@libp2p/interface';
import { Packr } from 'msgpackr';
import { InvalidRequestError, TimeoutError, UnavailableError } from '../../runtime/errors.ts';
import { checkMsgpackLimits, type MsgpackLimits } from '../../transport/msgpack-limits.ts';
import { checkMemberDescription, type MemberDescription, type MemberRecord } from './member-record.ts';

export const enrollProtocol = '/cloudless/enroll/1.0.0';

export const enrollLimits = {
  maxMessageBytes: 64 * 1024,
  deadlineMs: 10_000,
  /** Enrollment requests served at once by one node; more are answered UNAVAILABLE. */
  maxConcurrent: 32,
  maxCoordinators: 64,
} as const;

const decodeLimits: MsgpackLimits = {
  maxDepth: 8,
  maxCollectionLength: 256,
  maxStringBytes: 4096,
  maxItems: 4096,
};

// Plain data only: no records, no extension types, no refs.
const packr = new Packr({ useRecords: false, moreTypes: false });

export interface EnrollWireError {
  readonly code: string;
  readonly message: string;
  readonly reason?: string;
}

export interface JoinRequest extends MemberDescription {
  readonly type: 'join';
  readonly token: string;
}

export interface ClientRequest {
  readonly type: 'client';
  readonly credential: string;
}

export type EnrollRequest = JoinRequest | ClientRequest;

export interface CoordinatorAddress {
  readonly id: string;
  readonly addresses: readonly string[];
}

export type EnrollReply =
  | {
      readonly ok: true;
      readonly member?: MemberRecord;
      readonly coordinators?: readonly CoordinatorAddress[];
    }
  | { readonly ok: false; readonly error: EnrollWireError };

export function encodeEnrollMessage(value: unknown): Uint8Array {
  const body = packr.pack(value);
  if (body.length > enrollLimits.maxMessageBytes)
    throw new InvalidRequestError(
      `an enrollment message is ${body.length} bytes; the limit is ${enrollLimits.maxMessageBytes}`,
    );
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

/** Reads one length-prefixed message (at most 64 KiB), or throws when the stream ends, overflows or `signal` fires. */
export function readEnrollMessage(stream: Stream, signal: AbortSignal): Promise<unknown> {
  return new Promise<unknown>((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let received = 0;
    let expected: number | undefined;
    const cleanup = (): void => {
      stream.removeEventListener('message', onMessage);
      stream.removeEventListener('close', onClose);
      stream.removeEventListener('remoteCloseWrite', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onAbort = (): void =>
      fail(
        new TimeoutError(`no complete enrollment message within ${enrollLimits.deadlineMs} ms`, {
          cause: signal.reason,
        }),
      );
    const onClose = (): void =>
      fail(new UnavailableError('the enrollment stream closed before a whole message arrived'));
    const onMessage = (event: { data: Uint8Array | { subarray(): Uint8Array } }): void => {
      const data = event.data instanceof Uint8Array ? event.data : event.data.subarray();
      chunks.push(data);
      received += data.length;
      if (received > 4 + enrollLimits.maxMessageBytes) {
        fail(
          new InvalidRequestError(
            `an enrollment message is larger than ${enrollLimits.maxMessageBytes} bytes`,
          ),
        );
        return;
      }
      const all = chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
      if (expected === undefined && all.length >= 4) {
        expected = new DataView(all.buffer, all.byteOffset, 4).getUint32(0);
        if (expected > enrollLimits.maxMessageBytes) {
          fail(
            new InvalidRequestError(
              `an enrollment message announces ${expected} bytes; the limit is ${enrollLimits.maxMessageBytes}`,
            ),
          );
          return;
        }
      }
      if (expected === undefined || all.length < 4 + expected) return;
      if (all.length > 4 + expected) {
        fail(new InvalidRequestError('one enrollment message per stream, and nothing after it'));
        return;
      }
      cleanup();
      try {
        const body = all.subarray(4);
        checkMsgpackLimits(body, decodeLimits);
        resolve(packr.unpack(body));
      } catch (error) {
        reject(
          new InvalidRequestError(`an enrollment message is not valid msgpack: ${(error as Error).message}`, {
            cause: error,
          }),
        );
      }
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    stream.addEventListener('message', onMessage);
    stream.addEventListener('close', onClose);
    stream.addEventListener('remoteCloseWrite', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks a request from a peer; the token and credential are only checked for type and size here. */
export function validateEnrollRequest(value: unknown): EnrollRequest {
  if (!isObject(value)) throw new InvalidRequestError('an enrollment request must be an object');
  if (value.type === 'client') {
    if (typeof value.credential !== 'string' || value.credential.length > 256)
      throw new InvalidRequestError('client.credential must be a string of at most 256 characters');
    return { type: 'client', credential: value.credential };
  }
  if (value.type === 'join') {
    if (typeof value.token !== 'string' || value.token.length > 256)
      throw new InvalidRequestError('join.token must be a string of at most 256 characters');
    return { type: 'join', token: value.token, ...checkMemberDescription(value, 'join') };
  }
  throw new InvalidRequestError(
    `unknown enrollment request type ${JSON.stringify(String(value.type).slice(0, 40))}; expected join or client`,
  );
}

/**
 * A deadline whose timer is cleared as soon as the work is done (`AbortSignal.timeout` keeps its
 * timer alive until it fires, which holds a finished request's resources for the whole deadline).
 */
export function deadline(ms: number, ...signals: AbortSignal[]): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new TimeoutError(`the enrollment deadline of ${ms} ms passed`)),
    ms,
  );
  return {
    signal: AbortSignal.any([controller.signal, ...signals]),
    clear: () => clearTimeout(timer),
  };
}
