/**
 * Length-prefixed frames on a byte stream: a 4-byte unsigned big-endian payload length, then the
 * payload. A zero-length frame is valid.
 *
 * The decoder never copies a frame that arrived inside one chunk (it returns a view of that
 * chunk), and copies a frame that spans chunks exactly once, when its last byte arrives: the parts
 * are kept as views until then, so a large frame arriving in many small chunks costs O(size), and
 * the memory held is what the peer actually sent, never what its header announced. A header that
 * announces more than `maxFrameBytes` is refused as soon as its fourth byte arrives.
 */
import type { Uint8ArrayList } from 'uint8arraylist';
import { FrameTooLargeError } from './transport-errors.ts';

/** Bytes of the length prefix. */
export const frameHeaderBytes = 4;

/** The largest length the 4-byte prefix can carry. */
export const maxFrameLength = 0xffff_ffff;

function checkLength(length: number, what: string): void {
  if (!Number.isInteger(length) || length < 0 || length > maxFrameLength) {
    throw new RangeError(`${what} must be an integer from 0 to ${maxFrameLength}, got ${length}`);
  }
}

/** The 4-byte prefix of a frame of `length` bytes, for writing header and payload without a copy. */
export function frameHeader(length: number): Uint8Array {
  checkLength(length, 'frame length');
  const header = new Uint8Array(frameHeaderBytes);
  new DataView(header.buffer).setUint32(0, length);
  return header;
}

/** One frame in one new buffer: the prefix, then `payload`. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  checkLength(payload.byteLength, 'frame length');
  const frame = new Uint8Array(frameHeaderBytes + payload.byteLength);
  new DataView(frame.buffer).setUint32(0, payload.byteLength);
  frame.set(payload, frameHeaderBytes);
  return frame;
}

export interface FrameDecoderInit {
  /** The longest payload accepted; a header announcing more throws `FrameTooLargeError`. */
  maxFrameBytes: number;
}

function readLength(bytes: Uint8Array, at: number): number {
  return (
    (((bytes[at] as number) << 24) |
      ((bytes[at + 1] as number) << 16) |
      ((bytes[at + 2] as number) << 8) |
      (bytes[at + 3] as number)) >>>
    0
  );
}

/**
 * Turns the chunks of one stream into its frames. One decoder per stream; after it throws, it is
 * unusable and every later `push` throws the same error (the stream should be reset).
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  /** Header bytes received so far, while a header is split across chunks. */
  readonly #header = new Uint8Array(frameHeaderBytes);
  #headerFilled = 0;
  /** Payload length of the frame being read, or -1 while reading a header. */
  #expected = -1;
  /** Views of the payload bytes received so far, when the frame spans chunks. */
  #parts: Uint8Array[] = [];
  #received = 0;
  #error: FrameTooLargeError | undefined;

  constructor(init: FrameDecoderInit) {
    checkLength(init.maxFrameBytes, 'maxFrameBytes');
    this.#maxFrameBytes = init.maxFrameBytes;
  }

  /**
   * Bytes of an incomplete frame held (header bytes included): 0 means the stream is at a frame
   * boundary, so a stream that ends with this above 0 was cut mid-frame.
   */
  get pendingBytes(): number {
    return this.#expected < 0 ? this.#headerFilled : frameHeaderBytes + this.#received;
  }

  /**
   * Every frame completed by `chunk`, in order. A returned frame may be a view of the pushed
   * chunk: read it, do not write to it. Throws `FrameTooLargeError` when a header announces more
   * than `maxFrameBytes`; frames completed earlier in the same chunk are then dropped with the
   * stream.
   */
  push(chunk: Uint8Array | Uint8ArrayList): Uint8Array[] {
    if (this.#error !== undefined) throw this.#error;
    const frames: Uint8Array[] = [];
    if (chunk instanceof Uint8Array) {
      this.#consume(chunk, frames);
    } else {
      for (const buf of chunk) this.#consume(buf, frames);
    }
    return frames;
  }

  #consume(buf: Uint8Array, frames: Uint8Array[]): void {
    const end = buf.byteLength;
    let offset = 0;
    while (offset < end) {
      if (this.#expected < 0) {
        let length: number;
        if (this.#headerFilled === 0 && end - offset >= frameHeaderBytes) {
          length = readLength(buf, offset);
          offset += frameHeaderBytes;
        } else {
          const take = Math.min(frameHeaderBytes - this.#headerFilled, end - offset);
          this.#header.set(buf.subarray(offset, offset + take), this.#headerFilled);
          this.#headerFilled += take;
          offset += take;
          if (this.#headerFilled < frameHeaderBytes) return;
          this.#headerFilled = 0;
          length = readLength(this.#header, 0);
        }
        if (length > this.#maxFrameBytes) {
          this.#error = new FrameTooLargeError(length, this.#maxFrameBytes);
          throw this.#error;
        }
        if (length === 0) {
          frames.push(new Uint8Array(0));
          continue;
        }
        this.#expected = length;
      }

      const need = this.#expected - this.#received;
      const available = end - offset;
      if (available < need) {
        this.#parts.push(buf.subarray(offset));
        this.#received += available;
        return;
      }
      const last = buf.subarray(offset, offset + need);
      offset += need;
      if (this.#parts.length === 0) {
        frames.push(last);
      } else {
        const frame = new Uint8Array(this.#expected);
        let at = 0;
        for (const part of this.#parts) {
          frame.set(part, at);
          at += part.byteLength;
        }
        frame.set(last, at);
        frames.push(frame);
        this.#parts = [];
      }
      this.#expected = -1;
      this.#received = 0;
    }
  }
}
