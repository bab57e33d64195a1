/**
 * What every benchmark shares: flags (`--json`, `--runs N`), best-of-N measurement after a
 * warm-up, progress on stderr, and the one JSON line on stdout that docs/performance.md records.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';

// Not strict: a benchmark may take options of its own (e.g. reschedule.ts --trials).
const { values } = parseArgs({
  options: { json: { type: 'boolean', default: false }, runs: { type: 'string', default: '3' } },
  strict: false,
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1)
  throw new RangeError(`--runs takes a positive integer, got ${values.runs}`);

export function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Best of `--runs` measurements after one warm-up run (the JIT settles in the first). */
export async function best(
  name: string,
  measure: () => Promise<number>,
  options: { higherIsBetter?: boolean; digits?: number } = {},
): Promise<number> {
  const higherIsBetter = options.higherIsBetter ?? true;
  const scale = 10 ** (options.digits ?? 0);
  await measure();
  let result = higherIsBetter ? 0 : Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const value = await measure();
    result = higherIsBetter ? Math.max(result, value) : Math.min(result, value);
  }
  const rounded = Math.round(result * scale) / scale;
  progress(`${name}: ${rounded.toLocaleString('en-US')}`);
  return rounded;
}

/** Prints the benchmark's line: the last line on stdout with `--json`, pretty on stderr without. */
export function report(line: { benchmark: string; [field: string]: unknown }): void {
  const full = {
    ...line,
    machine: {
      cores: os.availableParallelism(),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
    },
  };
  if (values.json) process.stdout.write(`${JSON.stringify(full)}\n`);
  else progress(JSON.stringify(full, null, 2));
}
