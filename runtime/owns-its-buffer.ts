/**
 * Whether a byte array can be moved between threads without harm: it must be the whole of an
 * `ArrayBuffer` of its own. Moving a view into a larger buffer (Node pools small `Buffer`s in
 * one 8 KiB slab) would detach every other view of that buffer.
 */
export function ownsItsBuffer(value: unknown): value is Uint8Array<ArrayBuffer> {
  return (
    value instanceof Uint8Array &&
    value.buffer instanceof ArrayBuffer &&
    value.byteOffset === 0 &&
    value.byteLength === value.buffer.byteLength
  );
}
