/**
 * The metric naming rule (CONVENTIONS.md, docs/observability.md), checked on parsed /metrics
 * output: `cloudless_<subsystem>_<name>_<unit>`, counters ending in `_total`, every family with
 * help, and labels only from a fixed set.
 */
import { expect } from 'chai';
import type { ParsedMetricFamily } from 'parse-prometheus-text-format';

export const metricNamePattern = /^cloudless_[a-z0-9]+_[a-z0-9_]+$/;
/** The units a name may end in; `term`, `index` and `bool` are Raft's dimensionless positions and flags. */
export const metricUnits = [
  'total',
  'seconds',
  'bytes',
  'messages',
  'actors',
  'asks',
  'peers',
  'term',
  'index',
  'bool',
];
/** Every label a metric may carry, with the values it may take. */
const boundedLabels: Record<string, (value: string) => boolean> = {
  reason: (value) => /^[a-z-]{1,32}$/.test(value),
};

export function checkMetricFamilies(families: readonly ParsedMetricFamily[]): void {
  expect(families.length).to.be.greaterThan(0);
  for (const family of families) {
    expect(family.name).to.match(metricNamePattern);
    expect(
      metricUnits.some((unit) => family.name.endsWith(`_${unit}`)),
      `${family.name} ends in a unit`,
    ).to.equal(true);
    if (family.type === 'COUNTER') expect(family.name, 'a counter').to.match(/_total$/);
    expect(family.help, `${family.name} has help`).to.not.equal('');
    for (const sample of family.metrics) {
      for (const [label, value] of Object.entries(sample.labels ?? {})) {
        const allowed = boundedLabels[label];
        expect(allowed, `${family.name} label ${label}`).to.not.equal(undefined);
        expect(allowed?.(value), `${family.name} ${label}=${value}`).to.equal(true);
      }
    }
  }
}
