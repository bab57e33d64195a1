/**
 * A structural scan of MessagePack bytes from a remote peer, run before they are decoded: it walks
 * the format without building any value, in one pass with an explicit stack (a depth bomb costs
 * one array slot per level, never a stack frame), and refuses input that breaks a decode limit or
 * is not exactly one well-formed value. What it accepts is what msgpackr produces with
 * `new Packr({ useRecords: false, moreTypes: true })` plus the actor-ref extension of
 * runtime/message-codec.ts.
 *
 * Counting rules:
 * - every encoded value is one item: each array element, each map key and each map value, and a
 *   tag extension (below) as well as the value it wraps;
 * - depth is the number of enclosing arrays, maps and tag extensions (what msgpackr recurses on);
 *   a scalar at the top level has depth 0, the elements of a top-level array depth 1;
 * - a map's collection length is its number of entries (key/value pairs);
 * - `maxStringBytes` bounds every str, bin and ext payload (the ext type byte not included).
 *
 * msgpackr's extensions need their own rules, because some change how the bytes after them are
 * read:
 * - tag extensions are written as fixext1 (`0xd4 type 0x00`) followed by the value they wrap as
 *   the next item: Error (0x65), Set (0x73), RegExp (0x78) and the actor ref (0x43). msgpackr
 *   always wraps an array; the scan requires one, and refuses these types in any other ext form,
 *   which msgpackr never writes (its unpacker would read a following value for some of them);
 * - record definitions (0x72), bundled strings (0x62) and structured-clone ids and pointers
 *   (0x69, 0x70) are refused: this configuration never writes them, yet msgpackr's unpacker obeys
 *   them whatever the options (a record definition makes later bytes 0x40-0x7f decode as
 *   records, so the scan could no longer tell what they are);
 * - every other ext type (undefined 0x00, bigint 0x42, typed arrays 0x74, timestamps 0xff, …) is
 *   an opaque payload.
 * A new msgpackr extension with `write` (a tag) must be added to `extensionKinds` below.
 */
import { DecodeLimitError, type DecodeLimitReason } from './transport-errors.ts';

export interface MsgpackLimits {
  /** Most arrays, maps and tag extensions enclosing any value. */
  maxDepth: number;
  /** Most entries in one array or map. */
  maxCollectionLength: number;
  /** Longest str, bin or ext payload, in bytes. */
  maxStringBytes: number;
  /** Most encoded values in the whole input. */
  maxItems: number;
}

const opaqueExtension = 0;
const tagExtension = 1;
const refusedExtension = 2;

/** What each ext type means to the scan; see the module comment. */
const extensionKinds = new Uint8Array(256);
/** The actor-ref extension type of runtime/message-codec.ts. */
const refExtensionType = 0x43;
for (const type of [refExtensionType, 0x65, 0x73, 0x78]) extensionKinds[type] = tagExtension;
for (const type of [0x62, 0x69, 0x70, 0x72]) extensionKinds[type] = refusedExtension;

const stringKind = 1;
const arrayKind = 2;
const mapKind = 3;
const extKind = 4;

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

function malformed(detail: string, at: number): DecodeLimitError {
  return new DecodeLimitError('malformed', `malformed MessagePack: ${detail} at byte ${at}`);
}

function truncated(at: number, length: number): DecodeLimitError {
  return malformed(`input of ${length} bytes ends inside the value that starts`, at);
}

function overLimit(reason: DecodeLimitReason, what: string, value: number, limit: number, at: number) {
  return new DecodeLimitError(
    reason,
    `MessagePack ${what} ${value} exceeds ${reason} ${limit} at byte ${at}; ` +
      'the sender must send smaller messages, or the receiver must raise the limit',
  );
}

/** A big-endian unsigned integer of `width` bytes at `at`, or a truncation error. */
function readUint(bytes: Uint8Array, at: number, width: number, head: number): number {
  if (width > bytes.length - at) throw truncated(head, bytes.length);
  if (width === 1) return bytes[at] as number;
  if (width === 2) return ((bytes[at] as number) << 8) | (bytes[at + 1] as number);
  return (
    (((bytes[at] as number) << 24) |
      ((bytes[at + 1] as number) << 16) |
      ((bytes[at + 2] as number) << 8) |
      (bytes[at + 3] as number)) >>>
    0
  );
}

function checkLimit(name: string, value: number): void {
  if (!(value >= 0)) throw new RangeError(`${name} must be a number ≥ 0, got ${value}`);
}

/**
 * Throws `DecodeLimitError` unless `bytes` hold exactly one well-formed MessagePack value within
 * `limits`. Reads each header byte once, skips payloads, and keeps one number per open container.
 */
export function checkMsgpackLimits(bytes: Uint8Array, limits: MsgpackLimits): void {
  const { maxDepth, maxCollectionLength, maxStringBytes, maxItems } = limits;
  checkLimit('maxDepth', maxDepth);
  checkLimit('maxCollectionLength', maxCollectionLength);
  checkLimit('maxStringBytes', maxStringBytes);
  checkLimit('maxItems', maxItems);

  const end = bytes.length;
  let pos = 0;
  let items = 0;
  /** Values still to read in each open container; slot 0 is the top level (one value). */
  const remaining: number[] = [1];
  let depth = 0;
  /** The previous item was a tag extension, so this one must be an array. */
  let mustBeArray = false;

  for (;;) {
    const left = remaining[depth] as number;
    if (left === 0) {
      if (depth === 0) break;
      depth--;
      continue;
    }
    remaining[depth] = left - 1;
    if (pos >= end) throw truncated(pos, end);
    if (++items > maxItems) throw overLimit('maxItems', 'value count', items, maxItems, pos);
    const at = pos;
    const head = bytes[pos++] as number;
    if (mustBeArray) {
      mustBeArray = false;
      if (!((head >= 0x90 && head <= 0x9f) || head === 0xdc || head === 0xdd)) {
        throw malformed(`tag extension wraps ${hex(head)} instead of an array`, at);
      }
    }
    // positive and negative fixint
    if (head < 0x80 || head >= 0xe0) continue;

    let kind: number;
    let length: number;
    if (head < 0x90) {
      kind = mapKind;
      length = head & 0x0f;
    } else if (head < 0xa0) {
      kind = arrayKind;
      length = head & 0x0f;
    } else if (head < 0xc0) {
      kind = stringKind;
      length = head & 0x1f;
    } else {
      switch (head) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          continue;
        case 0xcc: // uint 8
        case 0xd0: // int 8
          if (pos >= end) throw truncated(at, end);
          pos += 1;
          continue;
        case 0xcd: // uint 16
        case 0xd1: // int 16
          if (2 > end - pos) throw truncated(at, end);
          pos += 2;
          continue;
        case 0xca: // float 32
        case 0xce: // uint 32
        case 0xd2: // int 32
          if (4 > end - pos) throw truncated(at, end);
          pos += 4;
          continue;
        case 0xcb: // float 64
        case 0xcf: // uint 64
        case 0xd3: // int 64
          if (8 > end - pos) throw truncated(at, end);
          pos += 8;
          continue;
        case 0xc4: // bin 8
        case 0xd9: // str 8
          kind = stringKind;
          length = readUint(bytes, pos, 1, at);
          pos += 1;
          break;
        case 0xc5: // bin 16
        case 0xda: // str 16
          kind = stringKind;
          length = readUint(bytes, pos, 2, at);
          pos += 2;
          break;
        case 0xc6: // bin 32
        case 0xdb: // str 32
          kind = stringKind;
          length = readUint(bytes, pos, 4, at);
          pos += 4;
          break;
        case 0xd4: // fixext 1
          kind = extKind;
          length = 1;
          break;
        case 0xd5: // fixext 2
          kind = extKind;
          length = 2;
          break;
        case 0xd6: // fixext 4
          kind = extKind;
          length = 4;
          break;
        case 0xd7: // fixext 8
          kind = extKind;
          length = 8;
          break;
        case 0xd8: // fixext 16
          kind = extKind;
          length = 16;
          break;
        case 0xc7: // ext 8
          kind = extKind;
          length = readUint(bytes, pos, 1, at);
          pos += 1;
          break;
        case 0xc8: // ext 16
          kind = extKind;
          length = readUint(bytes, pos, 2, at);
          pos += 2;
          break;
        case 0xc9: // ext 32
          kind = extKind;
          length = readUint(bytes, pos, 4, at);
          pos += 4;
          break;
        case 0xdc: // array 16
          kind = arrayKind;
          length = readUint(bytes, pos, 2, at);
          pos += 2;
          break;
        case 0xdd: // array 32
          kind = arrayKind;
          length = readUint(bytes, pos, 4, at);
          pos += 4;
          break;
        case 0xde: // map 16
          kind = mapKind;
          length = readUint(bytes, pos, 2, at);
          pos += 2;
          break;
        case 0xdf: // map 32
          kind = mapKind;
          length = readUint(bytes, pos, 4, at);
          pos += 4;
          break;
        default: // 0xc1, never used
          throw malformed(`the never-used byte ${hex(head)}`, at);
      }
    }

    if (kind === stringKind) {
      if (length > maxStringBytes)
        throw overLimit('maxStringBytes', 'str/bin length in bytes', length, maxStringBytes, at);
      if (length > end - pos) throw truncated(at, end);
      pos += length;
      continue;
    }

    if (kind === extKind) {
      if (length > maxStringBytes)
        throw overLimit('maxStringBytes', 'ext payload length in bytes', length, maxStringBytes, at);
      // the type byte, then the payload
      if (length >= end - pos) throw truncated(at, end);
      const type = bytes[pos] as number;
      const extension = extensionKinds[type];
      if (extension === opaqueExtension) {
        pos += 1 + length;
        continue;
      }
      if (extension === refusedExtension) {
        throw malformed(`extension type ${hex(type)} (never sent by this project's encoder)`, at);
      }
      if (head !== 0xd4) throw malformed(`tag extension type ${hex(type)} outside a fixext 1`, at);
      if (depth >= maxDepth) throw overLimit('maxDepth', 'nesting depth', depth + 1, maxDepth, at);
      pos += 2;
      remaining[++depth] = 1;
      mustBeArray = true;
      continue;
    }

    if (length > maxCollectionLength) {
      const what = kind === mapKind ? 'map entry count' : 'array length';
      throw overLimit('maxCollectionLength', what, length, maxCollectionLength, at);
    }
    if (depth >= maxDepth) throw overLimit('maxDepth', 'nesting depth', depth + 1, maxDepth, at);
    const values = kind === mapKind ? length * 2 : length;
    // every value takes at least one byte
    if (values > end - pos) throw truncated(at, end);
    if (values > 0) remaining[++depth] = values;
  }

  if (pos !== end) throw malformed(`${end - pos} bytes of trailing data after the value`, pos);
}
