import { errorFromWire, InvalidRequestError } from '../../runtime/errors.ts';

/**
 * Why a workload spec was refused. runtime/errors.ts has a closed set of codes and a spec that
 * breaks the rules is an invalid request, so (as kv-errors.ts and enrollment-errors.ts do) the
 * class keeps INVALID_REQUEST and adds the stable `reason` 'invalid-spec'; specs and clients match
 * on the class, `code` + `reason`, or a problem's `field` and `rule`, never on message text.
 */

/** The rule a problem broke: stable words, matched on by specs and tools. */
export type SpecRule =
  | 'required'
  | 'type'
  | 'unknown-field'
  | 'one-of'
  | 'dns-1123-label'
  | 'non-empty'
  | 'max-length'
  | 'max-items'
  | 'integer'
  | 'range'
  | 'quantity'
  | 'env-name'
  | 'absolute-path'
  | 'module-path'
  | 'js-identifier'
  | 'host'
  | 'http-path'
  | 'batch-always'
  | 'at-least-initial'
  | 'at-most-interval'
  | 'max-size'
  | 'max-depth'
  | 'no-nul'
  | 'syntax'
  | 'duplicate-key'
  | 'single-document'
  | 'alias-limit';

export interface SpecProblem {
  /** Dotted path of the offending field: `driver.command`, `driver.args[2]`, `constraints.nodeLabels.gpu`; `(root)` for the whole document. */
  readonly field: string;
  readonly rule: SpecRule;
  /** For people: what is wrong and what to write instead. */
  readonly message: string;
  /** 1-based position in the file, for syntax problems. */
  readonly line?: number;
  readonly column?: number;
}

/** The field name of problems about the document as a whole. */
export const rootField = '(root)';

/** At most this many problems are kept (a hostile document could otherwise produce thousands). */
export const maxReportedProblems = 100;

const specRules: ReadonlySet<string> = new Set<SpecRule>([
  'required',
  'type',
  'unknown-field',
  'one-of',
  'dns-1123-label',
  'non-empty',
  'max-length',
  'max-items',
  'integer',
  'range',
  'quantity',
  'env-name',
  'absolute-path',
  'module-path',
  'js-identifier',
  'host',
  'http-path',
  'batch-always',
  'at-least-initial',
  'at-most-interval',
  'max-size',
  'max-depth',
  'no-nul',
  'syntax',
  'duplicate-key',
  'single-document',
  'alias-limit',
]);

function problemLine(problem: SpecProblem): string {
  const at = problem.line === undefined ? '' : ` (line ${problem.line}, column ${problem.column ?? 1})`;
  return `  - ${problem.field} [${problem.rule}]${at}: ${problem.message}`;
}

/** A workload spec (or spec file) broke one or more rules; `problems` lists every one of them. */
export class InvalidSpecError extends InvalidRequestError {
  readonly reason = 'invalid-spec' as const;
  readonly problems: readonly SpecProblem[];

  /**
   * @param problems every problem found (at least one); more than `maxReportedProblems` are cut.
   * @param subject what was checked, for the first line: a file name or a workload id.
   */
  constructor(
    problems: readonly SpecProblem[],
    options?: { subject?: string; omitted?: number; cause?: unknown },
  ) {
    const kept = problems.slice(0, maxReportedProblems);
    const omitted = (options?.omitted ?? 0) + problems.length - kept.length;
    const subject = options?.subject === undefined ? 'workload spec' : `workload spec ${options.subject}`;
    const count = kept.length + omitted;
    const lines = [
      `${subject} is invalid (${count} problem${count === 1 ? '' : 's'}); fix ${count === 1 ? 'it' : 'them'} and submit again:`,
      ...kept.map(problemLine),
    ];
    if (omitted > 0) lines.push(`  … and ${omitted} more`);
    super(lines.join('\n'), options?.cause === undefined ? undefined : { cause: options.cause });
    this.problems = kept;
  }

  /** The wire form keeps the problems, so `workloadErrorFromWire` rebuilds them as they were. */
  override toJSON(): {
    code: 'INVALID_REQUEST';
    message: string;
    reason: 'invalid-spec';
    problems: SpecProblem[];
  } {
    return {
      code: 'INVALID_REQUEST',
      message: this.message,
      reason: this.reason,
      problems: [...this.problems],
    };
  }
}

const problemLinePattern = /^ {2}- (.+?) \[([a-z0-9-]+)\](?: \(line (\d+), column (\d+)\))?: (.*)$/;

function problemsFromWire(value: unknown): SpecProblem[] | undefined {
  if (!Array.isArray(value) || value.length === 0 || value.length > maxReportedProblems) return undefined;
  const problems: SpecProblem[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null) return undefined;
    const { field, rule, message, line, column } = item as Record<string, unknown>;
    if (typeof field !== 'string' || field.length > 4096) return undefined;
    if (typeof rule !== 'string' || !specRules.has(rule)) return undefined;
    if (typeof message !== 'string' || message.length > 4096) return undefined;
    const problem: { -readonly [K in keyof SpecProblem]: SpecProblem[K] } = {
      field,
      rule: rule as SpecRule,
      message,
    };
    if (Number.isSafeInteger(line)) problem.line = line as number;
    if (Number.isSafeInteger(column)) problem.column = column as number;
    problems.push(problem);
  }
  return problems;
}

/** Reads the problems back from the message text, for a transport that kept only `{ code, message }`. */
function problemsFromMessage(message: string): SpecProblem[] | undefined {
  const problems: SpecProblem[] = [];
  for (const line of message.split('\n').slice(1)) {
    const match = problemLinePattern.exec(line);
    if (match === null) continue;
    const rule = match[2] as string;
    if (!specRules.has(rule)) continue;
    const problem: { -readonly [K in keyof SpecProblem]: SpecProblem[K] } = {
      field: match[1] as string,
      rule: rule as SpecRule,
      message: match[5] as string,
    };
    if (match[3] !== undefined) problem.line = Number(match[3]);
    if (match[4] !== undefined) problem.column = Number(match[4]);
    problems.push(problem);
  }
  return problems.length === 0 ? undefined : problems;
}

/**
 * Rebuilds an error that crossed the wire: an InvalidSpecError (from its `problems`, or from the
 * problem lines of its message when only `{ code, message }` travelled) with the very message it
 * had; any other error as `errorFromWire` does (PolicyViolationError, NotFoundError, …).
 */
export function workloadErrorFromWire(wire: {
  code?: unknown;
  message?: unknown;
  reason?: unknown;
  problems?: unknown;
}): Error {
  if (wire.code === 'INVALID_REQUEST' && typeof wire.message === 'string') {
    const problems =
      problemsFromWire(wire.problems) ??
      (wire.reason === 'invalid-spec' || wire.message.startsWith('workload spec')
        ? problemsFromMessage(wire.message)
        : undefined);
    if (problems !== undefined) {
      const error = new InvalidSpecError(problems);
      error.message = wire.message;
      return error;
    }
  }
  return errorFromWire(wire);
}
