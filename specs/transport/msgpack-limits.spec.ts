import { expect } from 'chai';
import { Packr } from 'msgpackr';
import type { Kernel } from '../../runtime/kernel.ts';
import { MessageCodec } from '../../runtime/message-codec.ts';
import { RemoteActorRef } from '../../runtime/remote-actor-ref.ts';
import { checkMsgpackLimits, type MsgpackLimits } from '../../transport/msgpack-limits.ts';
import { DecodeLimitError, type DecodeLimitReason } from '../../transport/transport-errors.ts';

const generous: MsgpackLimits = {
  maxDepth: 64,
  maxCollectionLength: 1_000_000,
  maxStringBytes: 1 << 22,
  maxItems: 10_000_000,
};

const packr = new Packr({ useRecords: false, moreTypes: true });

/** A standalone copy: msgpackr reuses its buffer between calls. */
function pack(value: unknown): Uint8Array {
  return Uint8Array.prototype.slice.call(packr.pack(value));
}

function bytesOf(...parts: (number | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((part) => (typeof part === 'number' ? Uint8Array.of(part) : part));
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

function repeat(times: number, ...pattern: number[]): Uint8Array {
  const out = new Uint8Array(times * pattern.length);
  for (let i = 0; i < times; i++) out.set(pattern, i * pattern.length);
  return out;
}

function rejection(bytes: Uint8Array, limits: Partial<MsgpackLimits> = {}): DecodeLimitError {
  try {
    checkMsgpackLimits(bytes, { ...generous, ...limits });
  } catch (error) {
    expect(error).to.be.instanceOf(DecodeLimitError);
    expect(error).to.have.property('code', 'INVALID_REQUEST');
    return error as DecodeLimitError;
  }
  expect.fail('expected checkMsgpackLimits to reject the input');
}

function expectRejected(bytes: Uint8Array, reason: DecodeLimitReason, limits: Partial<MsgpackLimits> = {}) {
  expect(rejection(bytes, limits).reason).to.equal(reason);
}

function expectAccepted(bytes: Uint8Array, limits: Partial<MsgpackLimits> = {}): void {
  checkMsgpackLimits(bytes, { ...generous, ...limits });
}

/** mulberry32: a small seeded generator, so every fuzz run sees the same inputs. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

const ref = new RemoteActorRef({} as Kernel, { node: 'node-a', path: '/user/worker' });
const codec = new MessageCodec({ resolve: (address) => address as never });

/** Everything the project's encoder writes, one kind per entry. */
const samples: Record<string, unknown> = {
  nil: null,
  booleans: [true, false],
  undefined: undefined,
  integers: [
    0,
    1,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2 ** 32 - 1,
    2 ** 32,
    2 ** 53 - 1,
    -1,
    -32,
    -33,
    -129,
    -32769,
    -(2 ** 31) - 1,
    -(2 ** 53),
  ],
  floats: [0.5, -1.25, Math.PI, Number.NaN, Number.POSITIVE_INFINITY, -0],
  bigints: [123n, -(2n ** 63n), 2n ** 64n - 1n, 2n ** 200n, -(2n ** 200n)],
  strings: [
    '',
    'a',
    'é🙂',
    'x'.repeat(31),
    'x'.repeat(32),
    'y'.repeat(255),
    'y'.repeat(256),
    'z'.repeat(70_000),
  ],
  nested: { a: { b: { c: [1, [2, [3, { d: 'deep' }]]] } }, list: [], empty: {} },
  // msgpackr writes a plain object with at most 65535 keys (map 16); a Map may be larger (map 32)
  wideObject: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i])),
  wideMap: new Map(Array.from({ length: 70_000 }, (_, i) => [i, `v${i % 10}`])),
  wideArray: Array.from({ length: 70_000 }, (_, i) => i % 3),
  mediumArray: Array.from({ length: 300 }, (_, i) => ({ i })),
  dates: [
    new Date(0),
    new Date(1_700_000_000_000),
    new Date(1_700_000_000_123),
    new Date(-1),
    new Date(Number.NaN),
    new Date(2 ** 42 * 1000),
  ],
  errors: [
    new Error('boom'),
    new TypeError('bad', { cause: new RangeError('inner') }),
    new AggregateError([new Error('x')], 'agg'),
  ],
  maps: new Map<unknown, unknown>([
    ['s', 1],
    [2, 'two'],
    [{ k: 1 }, [1]],
  ]),
  sets: new Set([1, 'a', new Set([2])]),
  regexps: [/ab+c/gi],
  // a Buffer is written as bin, any other Uint8Array as a typed-array ext
  bytes: [
    Buffer.from([1, 2, 3]),
    Buffer.alloc(300),
    Buffer.alloc(70_000),
    new Uint8Array(300),
    new Uint8Array(70_000),
  ],
  typedArrays: [
    new Int8Array([1, -1]),
    new Uint8ClampedArray([1, 2]),
    new Int16Array([1, -2]),
    new Uint16Array(200),
    new Int32Array([5]),
    new Uint32Array(20_000),
    new Float32Array([1.5]),
    new Float64Array([2.5, 3.5]),
    new BigInt64Array([1n]),
    new BigUint64Array([2n]),
    new ArrayBuffer(3),
    new DataView(new ArrayBuffer(2)),
  ],
  refs: { to: ref, replyTo: ref, many: [ref, { ref }], set: new Set([ref]) },
  envelope: {
    type: 'tell',
    to: ref,
    message: { op: 'put', key: 'k', value: new Uint8Array(5), at: new Date() },
  },
};

function encodedSamples(): [string, Uint8Array][] {
  return Object.entries(samples).map(([name, value]) => [name, codec.encode(value)]);
}

describe('checkMsgpackLimits', () => {
  describe('what the project encodes', () => {
    it('accepts every kind of value msgpackr writes, with and without the actor-ref extension', () => {
      for (const [name, bytes] of encodedSamples()) {
        expect(() => checkMsgpackLimits(bytes, generous), name).not.to.throw();
        expect(() => checkMsgpackLimits(pack(samples[name]), generous), name).not.to.throw();
      }
      expect(() => checkMsgpackLimits(codec.encode(samples), generous)).not.to.throw();
    });

    it('sees refs as the tag extension 0xd4 0x43 followed by an array, and accepts them at the top level', () => {
      const bytes = codec.encode(ref);
      expect(Array.from(bytes.subarray(0, 4))).to.deep.equal([0xd4, 0x43, 0x00, 0x92]);
      expectAccepted(bytes);
      expect(codec.decode(bytes)).to.deep.equal({ node: 'node-a', path: '/user/worker' });
    });

    it('counts a tag extension as one level of depth and one item', () => {
      const set = pack(new Set([1])); // d4 73 00 91 01
      expectAccepted(set, { maxDepth: 2, maxItems: 3 });
      expectRejected(set, 'maxDepth', { maxDepth: 1 });
      expectRejected(set, 'maxItems', { maxItems: 2 });
    });
  });

  describe('limits', () => {
    it('refuses nesting deeper than maxDepth and accepts it at exactly maxDepth', () => {
      const nested = pack({ a: [[{ b: 1 }]] }); // map > array > array > map
      expectAccepted(nested, { maxDepth: 4 });
      expectRejected(nested, 'maxDepth', { maxDepth: 3 });
      expectAccepted(pack(7), { maxDepth: 0 });
      expectRejected(pack([]), 'maxDepth', { maxDepth: 0 });
    });

    it('counts empty containers as nesting', () => {
      expectRejected(pack([[[]]]), 'maxDepth', { maxDepth: 2 });
    });

    it('refuses an array or map with more than maxCollectionLength entries', () => {
      expectAccepted(pack([1, 2, 3]), { maxCollectionLength: 3 });
      expectRejected(pack([1, 2, 3, 4]), 'maxCollectionLength', { maxCollectionLength: 3 });
      expectAccepted(pack({ a: 1, b: 2, c: 3 }), { maxCollectionLength: 3 });
      expectRejected(pack({ a: 1, b: 2, c: 3, d: 4 }), 'maxCollectionLength', { maxCollectionLength: 3 });
      expectRejected(pack(new Array(70_000).fill(0)), 'maxCollectionLength', { maxCollectionLength: 65_535 });
      expectRejected(pack([[1, 2, 3, 4, 5, 6]]), 'maxCollectionLength', { maxCollectionLength: 5 });
    });

    it('refuses a str, bin or ext payload longer than maxStringBytes', () => {
      expectAccepted(pack('abcd'), { maxStringBytes: 4 });
      expectRejected(pack('abcde'), 'maxStringBytes', { maxStringBytes: 4 });
      expectRejected(pack({ k: 'é'.repeat(3) }), 'maxStringBytes', { maxStringBytes: 5 });
      expectRejected(pack('x'.repeat(70_000)), 'maxStringBytes', { maxStringBytes: 65_535 });
      expectAccepted(pack(Buffer.alloc(300)), { maxStringBytes: 300 });
      expectRejected(pack(Buffer.alloc(301)), 'maxStringBytes', { maxStringBytes: 300 });
      // a typed array is an ext whose payload is a subtype byte and the elements
      expectAccepted(pack(new Float64Array(40)), { maxStringBytes: 321 });
      expectRejected(pack(new Float64Array(40)), 'maxStringBytes', { maxStringBytes: 320 });
    });

    it('refuses more than maxItems values in total, counting map keys and values', () => {
      const bytes = pack({ a: [1, 2], b: 3 }); // map, a, array, 1, 2, b, 3
      expectAccepted(bytes, { maxItems: 7 });
      expectRejected(bytes, 'maxItems', { maxItems: 6 });
    });

    it('says which limit was broken, with the value and the limit', () => {
      const error = rejection(pack([1, 2, 3, 4]), { maxCollectionLength: 3 });
      expect(error.message).to.match(/maxCollectionLength/);
      expect(error.message).to.match(/\b4\b/);
      expect(error.message).to.match(/\b3\b/);
    });

    it('refuses a depth bomb of 100k nested arrays without overflowing the stack', () => {
      const bomb = bytesOf(repeat(100_000, 0x91), 0xc0);
      expectRejected(bomb, 'maxDepth');
      // the walk is iterative: even with no depth limit it reaches the bottom
      expectAccepted(bomb, { maxDepth: Number.POSITIVE_INFINITY });
      expectRejected(bytesOf(repeat(100_000, 0x81, 0xc0), 0xc0), 'maxDepth');
      expectRejected(bytesOf(repeat(100_000, 0xd4, 0x73, 0x00, 0x91), 0xc0), 'maxDepth');
    });

    it('refuses a map or array announcing more entries than there are bytes left', () => {
      expectRejected(bytesOf(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0), 'malformed', {
        maxCollectionLength: Number.POSITIVE_INFINITY,
      });
      expectRejected(bytesOf(0xdf, 0x80, 0, 0, 0, 0xc0, 0xc0), 'malformed', {
        maxCollectionLength: Number.POSITIVE_INFINITY,
      });
    });

    it('rejects limits that are not numbers ≥ 0 as a programming error', () => {
      expect(() => checkMsgpackLimits(pack(1), { ...generous, maxDepth: Number.NaN })).to.throw(RangeError);
      expect(() => checkMsgpackLimits(pack(1), { ...generous, maxItems: -1 })).to.throw(RangeError);
    });
  });

  describe('malformed input', () => {
    it('refuses the input cut at every byte position of small values and at spread positions of large ones', () => {
      for (const [name, bytes] of encodedSamples()) {
        // every position of the small ones; about 500 spread positions and the last 64 of the large ones
        const stride = Math.max(1, Math.floor(bytes.byteLength / 500));
        for (let cut = 0; cut < bytes.byteLength; cut += cut >= bytes.byteLength - 64 ? 1 : stride) {
          expect(rejection(bytes.subarray(0, cut)).reason, `${name} cut at ${cut}`).to.equal('malformed');
        }
      }
    });

    it('refuses an empty input', () => {
      expectRejected(new Uint8Array(0), 'malformed');
    });

    it('refuses the never-used byte 0xc1', () => {
      expectRejected(bytesOf(0xc1), 'malformed');
      expectRejected(bytesOf(0x92, 0x01, 0xc1), 'malformed');
    });

    it('refuses trailing bytes and a second top-level value', () => {
      expectRejected(bytesOf(pack({ a: 1 }), 0x00), 'malformed');
      expectRejected(bytesOf(pack('x'), pack('y')), 'malformed');
      expectRejected(bytesOf(0xc0, 0xc0), 'malformed');
    });

    it('refuses lengths that run past the end', () => {
      expectRejected(bytesOf(0xa5, 0x61), 'malformed');
      expectRejected(bytesOf(0xdb, 0x00, 0x00, 0x10, 0x00, 0x61), 'malformed');
      expectRejected(bytesOf(0xc6, 0x00, 0x00), 'malformed');
      expectRejected(bytesOf(0xc7, 0x05, 0x01, 0x00), 'malformed');
      expectRejected(bytesOf(0xd8, 0x01, 0x00), 'malformed');
      expectRejected(bytesOf(0xcb, 0x00, 0x00), 'malformed');
    });

    it('refuses the msgpackr extensions this encoder never writes: records, bundled strings, clone ids', () => {
      // a record definition (0x72) would make later bytes 0x40-0x7f decode as records
      expectRejected(bytesOf(0xd4, 0x72, 0x00, 0x91, 0xa1, 0x61, 0x01), 'malformed');
      expectRejected(bytesOf(0xd5, 0x72, 0x00, 0x01, 0x91, 0xa1, 0x61, 0x01), 'malformed');
      expectRejected(bytesOf(0xd6, 0x62, 0, 0, 0, 0, 0xc0), 'malformed');
      expectRejected(bytesOf(0xd6, 0x69, 0, 0, 0, 1, 0x90), 'malformed');
      expectRejected(bytesOf(0xd6, 0x70, 0, 0, 0, 1), 'malformed');
    });

    it('refuses a tag extension that does not wrap an array, or that is not a fixext 1', () => {
      expectRejected(bytesOf(0xd4, 0x73, 0x00, 0x01), 'malformed');
      expectRejected(bytesOf(0xd4, 0x43, 0x00, 0xa1, 0x61), 'malformed');
      expectRejected(bytesOf(0xd4, 0x65, 0x00), 'malformed');
      expectRejected(bytesOf(0xc7, 0x00, 0x73, 0x90), 'malformed');
      expectRejected(bytesOf(0xd5, 0x78, 0x00, 0x00, 0x90), 'malformed');
    });
  });

  describe('fuzzing', () => {
    it('throws nothing but DecodeLimitError on random mutations, and accepts only single values msgpackr reads as one', () => {
      const random = seeded(0xc10d1e55);
      const pick = (n: number) => Math.floor(random() * n);
      const seeds = encodedSamples()
        .map(([, bytes]) => bytes)
        .filter((bytes) => bytes.byteLength < 4096);
      const tight: MsgpackLimits = {
        maxDepth: 16,
        maxCollectionLength: 4096,
        maxStringBytes: 4096,
        maxItems: 20_000,
      };
      let accepted = 0;
      let rejected = 0;
      for (let round = 0; round < 20_000; round++) {
        const bytes = Uint8Array.from(seeds[pick(seeds.length)] as Uint8Array);
        let mutated: Uint8Array = bytes;
        const mutations = 1 + pick(4);
        for (let m = 0; m < mutations; m++) {
          const at = pick(mutated.byteLength + 1);
          switch (pick(5)) {
            case 0: // overwrite a byte
              if (at < mutated.byteLength) mutated[at] = pick(256);
              break;
            case 1: // flip a bit
              if (at < mutated.byteLength) mutated[at] = (mutated[at] as number) ^ (1 << pick(8));
              break;
            case 2: // insert a byte
              mutated = bytesOf(mutated.subarray(0, at), pick(256), mutated.subarray(at));
              break;
            case 3: // delete a run
              mutated = bytesOf(mutated.subarray(0, at), mutated.subarray(at + 1 + pick(8)));
              break;
            default: // truncate
              mutated = mutated.subarray(0, at);
          }
        }
        try {
          checkMsgpackLimits(mutated, tight);
        } catch (error) {
          expect(error, `round ${round}`).to.be.instanceOf(DecodeLimitError);
          rejected++;
          continue;
        }
        accepted++;
        // what the scan accepts, msgpackr reads as exactly one value (or refuses for its own reasons)
        let values: unknown[] | undefined;
        try {
          values = packr.unpackMultiple(mutated) as unknown[];
        } catch {
          values = undefined;
        }
        if (values !== undefined) expect(values, `round ${round}`).to.have.length(1);
      }
      expect(accepted).to.be.above(100);
      expect(rejected).to.be.above(100);
    });
  });
});
