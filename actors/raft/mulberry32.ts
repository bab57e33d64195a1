/**
 * mulberry32: a tiny seeded PRNG whose whole state is one 32-bit integer, so a Raft core can keep
 * it in its (immutable) state and stay replayable from a seed. Returns the value in [0, 1) and
 * the next state; the input state is not changed.
 */
export function mulberry32(state: number): { value: number; next: number } {
  const next = (state + 0x6d2b79f5) | 0;
  let t = next;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return { value: ((t ^ (t >>> 14)) >>> 0) / 4294967296, next };
}
