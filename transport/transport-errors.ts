/**
 * Errors raised while reading bytes from a remote peer. Both are `INVALID_REQUEST`: the peer sent
 * something this node refuses to read, and the stream it came on should be reset. Across the wire
 * they travel as `{ code, message }` and are rebuilt as `InvalidRequestError`.
 */
import { InvalidRequestError } from '../runtime/errors.ts';

/** A frame header announced a payload longer than the decoder's `maxFrameBytes`. */
export class FrameTooLargeError extends InvalidRequestError {
  readonly announcedBytes: number;
  readonly maxFrameBytes: number;

  constructor(announcedBytes: number, maxFrameBytes: number) {
    super(
      `frame header announces ${announcedBytes} bytes, more than the limit of ${maxFrameBytes} bytes ` +
        '(maxFrameBytes); the sender must split the message, or both ends must raise the limit',
    );
    this.announcedBytes = announcedBytes;
    this.maxFrameBytes = maxFrameBytes;
  }
}

/** Which check of `checkMsgpackLimits` refused the bytes; a closed set, usable as a metric label. */
export type DecodeLimitReason =
  | 'maxDepth'
  | 'maxCollectionLength'
  | 'maxStringBytes'
  | 'maxItems'
  | 'malformed';

/**
 * MessagePack bytes from a remote peer break a decode limit (depth, collection length, string
 * length, item count) or are not one well-formed value. Messages name the limit, the value found
 * and the byte offset, never the content.
 */
export class DecodeLimitError extends InvalidRequestError {
  readonly reason: DecodeLimitReason;

  constructor(reason: DecodeLimitReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/**
 * A peer refused this node's actor-protocol stream (it admits only members and admitted clients,
 * and this node is neither): its refusal frame says why. `INVALID_REQUEST` with `reason`
 * `not-admitted`: retrying does not help until this node enrolls or presents the admin credential.
 */
export class NotAdmittedError extends InvalidRequestError {
  readonly reason = 'not-admitted' as const;
}
