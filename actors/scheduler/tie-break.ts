/**
 * Deterministic tie-breaking: when two nodes score the same, the one with the lower hash of
 * (replicaId, nodeId) wins. Equal nodes then take replicas in an order that differs per replica,
 * so ties spread over them instead of all landing on the first node of the view, and the same
 * inputs always give the same decision.
 */

const fnvOffset = 0x811c9dc5;
const fnvPrime = 0x01000193;

function fnv(hash: number, text: string): number {
  let h = hash;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, fnvPrime);
  }
  return h;
}

/** The hash state after the replica id: computed once per decision, continued per node. */
export function replicaHashSeed(replicaId: string): number {
  return fnv(fnv(fnvOffset, replicaId), '\u0000');
}

/** The tie-break hash of (replica, node), an unsigned 32-bit integer (FNV-1a, then a finalizer). */
export function tieBreakHash(seed: number, nodeId: string): number {
  let h = fnv(seed, nodeId);
  // murmur3's fmix32: FNV alone keeps too much of the last characters' order.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
