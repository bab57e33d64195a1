import { expect } from 'chai';
import { Uint8ArrayList } from 'uint8arraylist';
import { CloudlessError } from '../../runtime/errors.ts';
import { encodeFrame, FrameDecoder, frameHeader } from '../../transport/frame-codec.ts';
import { FrameTooLargeError } from '../../transport/transport-errors.ts';

function bytesOf(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** Payloads of various sizes, zero-length ones included, with recognisable contents. */
const payloads = [
  bytesOf(1, 2, 3),
  new Uint8Array(0),
  Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff),
  new Uint8Array(0),
  new Uint8Array(0),
  bytesOf(0xff),
  Uint8Array.from({ length: 17 }, (_, i) => 0x80 + i),
];
const stream = concat(payloads.map((payload) => encodeFrame(payload)));

function expectFrames(frames: Uint8Array[], expected: Uint8Array[]): void {
  expect(frames.map((frame) => Array.from(frame))).to.deep.equal(expected.map((frame) => Array.from(frame)));
}

function caught(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  expect.fail('expected an error');
}

describe('frame codec', () => {
  describe('encodeFrame and frameHeader', () => {
    it('writes a 4-byte big-endian length before the payload', () => {
      expect(Array.from(encodeFrame(bytesOf(9, 8, 7)))).to.deep.equal([0, 0, 0, 3, 9, 8, 7]);
      expect(Array.from(frameHeader(0x01020304))).to.deep.equal([1, 2, 3, 4]);
      expect(Array.from(frameHeader(0xffffffff))).to.deep.equal([0xff, 0xff, 0xff, 0xff]);
      expect(Array.from(encodeFrame(new Uint8Array(0)))).to.deep.equal([0, 0, 0, 0]);
    });

    it('gives a header that, followed by the payload, is the same bytes as encodeFrame', () => {
      const payload = Uint8Array.from({ length: 70_000 }, (_, i) => i & 0xff);
      expect(concat([frameHeader(payload.byteLength), payload])).to.deep.equal(encodeFrame(payload));
    });

    it('encodes a payload that is a view into a larger buffer from its own bytes only', () => {
      const backing = Uint8Array.from({ length: 10 }, (_, i) => i);
      expect(Array.from(encodeFrame(backing.subarray(3, 5)))).to.deep.equal([0, 0, 0, 2, 3, 4]);
    });

    it('refuses a length that the 4-byte header cannot carry', () => {
      expect(() => frameHeader(-1)).to.throw(RangeError);
      expect(() => frameHeader(1.5)).to.throw(RangeError);
      expect(() => frameHeader(2 ** 32)).to.throw(RangeError);
      expect(() => frameHeader(Number.NaN)).to.throw(RangeError);
    });
  });

  describe('FrameDecoder', () => {
    it('returns every frame of a chunk in order, zero-length frames included', () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
      expectFrames(decoder.push(stream), payloads);
      expect(decoder.pendingBytes).to.equal(0);
    });

    it('decodes the same frames whichever byte position the stream is split at', () => {
      for (let cut = 0; cut <= stream.byteLength; cut++) {
        const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
        const frames = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
        expectFrames(frames, payloads);
        expect(decoder.pendingBytes, `cut at ${cut}`).to.equal(0);
      }
    });

    it('decodes the same frames when the stream is split at every pair of positions', () => {
      const small = concat([bytesOf(0, 0, 0, 2, 5, 6), bytesOf(0, 0, 0, 0), bytesOf(0, 0, 0, 3, 7, 8, 9)]);
      const expected = [bytesOf(5, 6), new Uint8Array(0), bytesOf(7, 8, 9)];
      for (let first = 0; first <= small.byteLength; first++) {
        for (let second = first; second <= small.byteLength; second++) {
          const decoder = new FrameDecoder({ maxFrameBytes: 16 });
          const frames = [
            ...decoder.push(small.subarray(0, first)),
            ...decoder.push(small.subarray(first, second)),
            ...decoder.push(small.subarray(second)),
          ];
          expectFrames(frames, expected);
        }
      }
    });

    it('decodes a stream fed one byte at a time', () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
      const frames: Uint8Array[] = [];
      for (let i = 0; i < stream.byteLength; i++) frames.push(...decoder.push(stream.subarray(i, i + 1)));
      expectFrames(frames, payloads);
    });

    it('keeps a partial frame across pushes and reports the bytes it holds', () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
      const frame = encodeFrame(bytesOf(1, 2, 3, 4, 5));
      expect(decoder.push(frame.subarray(0, 2))).to.deep.equal([]);
      expect(decoder.pendingBytes).to.equal(2);
      expect(decoder.push(frame.subarray(2, 6))).to.deep.equal([]);
      expect(decoder.pendingBytes).to.equal(6);
      expectFrames(decoder.push(frame.subarray(6)), [bytesOf(1, 2, 3, 4, 5)]);
      expect(decoder.pendingBytes).to.equal(0);
    });

    it('returns nothing for an empty chunk', () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 8 });
      expect(decoder.push(new Uint8Array(0))).to.deep.equal([]);
      expect(decoder.push(new Uint8ArrayList())).to.deep.equal([]);
    });

    it('returns a frame that arrived whole as a view of its chunk, without copying it', () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
      const chunk = concat([encodeFrame(bytesOf(1, 2)), encodeFrame(bytesOf(3))]);
      const [first, second] = decoder.push(chunk);
      expect(first?.buffer).to.equal(chunk.buffer);
      expect(first?.byteOffset).to.equal(4);
      expect(second?.buffer).to.equal(chunk.buffer);
      expect(second?.byteOffset).to.equal(10);
    });

    it('assembles a large frame arriving in many small chunks', () => {
      const payload = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 31) & 0xff);
      const framed = encodeFrame(payload);
      const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20 });
      const frames: Uint8Array[] = [];
      for (let at = 0; at < framed.byteLength; at += 61) {
        frames.push(...decoder.push(framed.subarray(at, at + 61)));
      }
      expect(frames).to.have.length(1);
      expect(frames[0]).to.deep.equal(payload);
    });

    it('reads a Uint8ArrayList, whose buffers may split frames anywhere', () => {
      for (let cut = 0; cut <= stream.byteLength; cut += 5) {
        const list = new Uint8ArrayList(
          stream.subarray(0, cut),
          stream.subarray(cut, cut + 3),
          stream.subarray(cut + 3, cut + 250),
          stream.subarray(cut + 250),
        );
        const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
        expectFrames(decoder.push(list), payloads);
      }
    });

    it('mixes Uint8ArrayList and Uint8Array chunks on one stream', () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
      const frames = [
        ...decoder.push(new Uint8ArrayList(stream.subarray(0, 5), stream.subarray(5, 9))),
        ...decoder.push(stream.subarray(9, 200)),
        ...decoder.push(new Uint8ArrayList(stream.subarray(200))),
      ];
      expectFrames(frames, payloads);
    });

    it('accepts a frame of exactly maxFrameBytes', () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 3 });
      expectFrames(decoder.push(encodeFrame(bytesOf(1, 2, 3))), [bytesOf(1, 2, 3)]);
    });

    it('refuses a header announcing more than maxFrameBytes before any payload byte arrives', () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 1000 });
      const error = caught(() => decoder.push(frameHeader(1001)));
      expect(error).to.be.instanceOf(FrameTooLargeError);
      expect(error).to.be.instanceOf(CloudlessError);
      expect(error).to.include({ code: 'INVALID_REQUEST', announcedBytes: 1001, maxFrameBytes: 1000 });
    });

    it('refuses an oversized header split across chunks on the push that completes it', () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 1000 });
      const header = frameHeader(0xffffffff);
      expect(decoder.push(concat([encodeFrame(bytesOf(1)), header.subarray(0, 3)]))).to.have.length(1);
      expect(() => decoder.push(header.subarray(3))).to.throw(FrameTooLargeError);
    });

    it('stays unusable after an error, throwing the same error on every later push', () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 10 });
      const first = caught(() => decoder.push(frameHeader(11)));
      expect(caught(() => decoder.push(encodeFrame(bytesOf(1))))).to.equal(first);
      expect(caught(() => decoder.push(new Uint8Array(0)))).to.equal(first);
    });

    it('refuses a maxFrameBytes the header cannot express', () => {
      expect(() => new FrameDecoder({ maxFrameBytes: -1 })).to.throw(RangeError);
      expect(() => new FrameDecoder({ maxFrameBytes: Number.NaN })).to.throw(RangeError);
      expect(() => new FrameDecoder({ maxFrameBytes: 2 ** 32 })).to.throw(RangeError);
    });
  });
});
