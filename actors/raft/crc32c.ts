/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum the storage conventions
 * name for persisted records. `node:zlib`'s `crc32` (present in Node 22) computes the IEEE CRC-32,
 * a different polynomial, so this table-driven version is used instead; its cost is negligible
 * next to the fsync every record waits for.
 */

const table = buildTable();

function buildTable(): Uint32Array {
  const out = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    out[n] = c >>> 0;
  }
  return out;
}

/** The CRC-32C of `bytes[start, end)`, as an unsigned 32-bit integer. */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) {
    crc = (table[(crc ^ (bytes[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}
