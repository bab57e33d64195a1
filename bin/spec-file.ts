/**
 * Reading a workload spec file for `cloudless deploy -f`: `loadWorkloadSpec` (actors/coordinator/
 * workload-file.ts) parses, resolves a worker module against the file and validates, reporting
 * every problem at once; this adds, to each problem about a field that has no position yet, the
 * line of that field (or of its nearest ancestor present in the file), so a problem reads
 * `driver.command [required] (line 5, column 3): …`.
 */
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from 'yaml';
import { InvalidSpecError, rootField, type SpecProblem } from '../actors/coordinator/workload-errors.ts';
import { loadWorkloadSpec } from '../actors/coordinator/workload-file.ts';
import type { WorkloadSpec } from '../actors/coordinator/workload-spec.ts';
import { InvalidRequestError } from '../runtime/errors.ts';

/** `driver.args[2]` → `['driver', 'args', 2]`. */
function fieldPath(field: string): (string | number)[] {
  const segments: (string | number)[] = [];
  for (const match of field.matchAll(/\[(\d+)\]|([^.[\]]+)/g)) {
    if (match[1] !== undefined) segments.push(Number(match[1]));
    else if (match[2] !== undefined) segments.push(match[2]);
  }
  return segments;
}

/** The offset of the field in the document, or of its deepest ancestor found there. */
function offsetOf(root: Node | null | undefined, segments: readonly (string | number)[]): number | undefined {
  let node: unknown = root;
  let offset: number | undefined = (root as Node | null | undefined)?.range?.[0];
  let i = 0;
  while (i < segments.length) {
    if (isMap(node)) {
      // A label key may hold dots (`example.com/gpu`): try the longest key first.
      let found = false;
      for (let k = segments.length - i; k >= 1 && !found; k--) {
        const key = segments.slice(i, i + k).join('.');
        const pair = (node as YAMLMap).items.find(
          (item) => isScalar(item.key) && String(item.key.value) === key,
        );
        if (pair === undefined) continue;
        offset = (pair.key as Node).range?.[0] ?? offset;
        node = pair.value;
        i += k;
        found = true;
      }
      if (!found) return offset;
    } else if (isSeq(node) && typeof segments[i] === 'number') {
      const item = node.items[segments[i] as number] as Node | undefined;
      if (item === undefined) return offset;
      offset = item.range?.[0] ?? offset;
      node = item;
      i++;
    } else return offset;
  }
  return offset;
}

/** The problems with the line and column of their field where the file has it. */
function withPositions(problems: readonly SpecProblem[], text: string): SpecProblem[] {
  const lineCounter = new LineCounter();
  let document: ReturnType<typeof parseDocument>;
  try {
    document = parseDocument(text, { version: '1.2', schema: 'core', uniqueKeys: false, lineCounter });
  } catch {
    return [...problems];
  }
  return problems.map((problem) => {
    if (problem.line !== undefined || problem.field === rootField) return problem;
    const offset = offsetOf(document.contents, fieldPath(problem.field));
    if (offset === undefined) return problem;
    const { line, col } = lineCounter.linePos(offset);
    return { ...problem, line, column: col };
  });
}

/**
 * Reads, parses and validates a spec file; an unreadable file is an InvalidRequestError and an
 * invalid one an InvalidSpecError listing every problem with its line.
 */
export async function readSpecFile(file: string): Promise<WorkloadSpec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new InvalidRequestError(
      `cannot read the spec file ${file}: ${(error as Error).message}; pass -f <spec.yaml|spec.json>`,
      { cause: error },
    );
  }
  try {
    return loadWorkloadSpec(text, file);
  } catch (error) {
    if (!(error instanceof InvalidSpecError)) throw error;
    throw new InvalidSpecError(withPositions(error.problems, text), {
      subject: JSON.stringify(file),
      cause: error,
    });
  }
}
