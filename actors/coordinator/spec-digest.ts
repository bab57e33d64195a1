/**
 * A workload spec's identity: the SHA-256 of its canonical JSON. Two submissions of the same spec
 * (keys in another order, defaults left out or written out, once validated) have the same digest;
 * any change of a value gives another. The coordinator compares digests to tell a no-op update
 * from a real one and to name a spec revision.
 */
import { createHash } from 'node:crypto';
import type { WorkloadSpec } from './workload-spec.ts';

/**
 * JSON with the keys of every object sorted (by UTF-16 code units) and no whitespace; fields that
 * are `undefined` are left out, as JSON.stringify does. Arrays keep their order (it matters).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError(`canonicalJson: ${typeof value} has no JSON form`);
    return json;
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  }
  const record = value as Record<string, unknown>;
  const fields = Object.keys(record)
    .filter((key) => record[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
  return `{${fields.join(',')}}`;
}

/** SHA-256 (lowercase hex) of the spec's canonical JSON; pass a validated spec. */
export function specDigest(spec: WorkloadSpec): string {
  return createHash('sha256').update(canonicalJson(spec), 'utf8').digest('hex');
}
