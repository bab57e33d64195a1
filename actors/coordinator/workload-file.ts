/**
 * Reading a workload spec file (YAML, or JSON when the name ends in `.json`) as the CLI does:
 * `parseWorkloadFile` refuses oversized files, syntax errors (with line and column), duplicate
 * keys, more than one document and alias expansion bombs; `loadWorkloadSpec` then resolves a
 * worker module path relative to the file and validates. Every refusal is an InvalidSpecError.
 */
import path from 'node:path';
import { isScalar, parseAllDocuments, type YAMLError } from 'yaml';
import { InvalidSpecError, rootField, type SpecProblem, type SpecRule } from './workload-errors.ts';
import type { WorkloadSpec } from './workload-spec.ts';
import { validateWorkloadSpec } from './workload-validate.ts';

export const workloadFileLimits = {
  /** The file's size in UTF-8 bytes, comments included. */
  maxFileBytes: 256 * 1024,
  /** Alias uses a document may expand (yaml's `maxAliasCount`); a spec rarely needs any. */
  maxAliasCount: 50,
} as const;

function subjectOf(fileName: string | undefined): string | undefined {
  return fileName === undefined ? undefined : JSON.stringify(fileName);
}

function refuse(problems: readonly SpecProblem[], fileName: string | undefined): never {
  throw new InvalidSpecError(problems, { subject: subjectOf(fileName) });
}

/** 1-based line and column of a character offset. */
function positionOf(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lineStart = before.lastIndexOf('\n') + 1;
  return { line: before.split('\n').length, column: offset - lineStart + 1 };
}

function parseJson(text: string, fileName: string | undefined): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    const message = error.message;
    const lineColumn = /\(line (\d+) column (\d+)\)/.exec(message);
    const offset = /at position (\d+)/.exec(message);
    const where = lineColumn
      ? { line: Number(lineColumn[1]), column: Number(lineColumn[2]) }
      : offset
        ? positionOf(text, Number(offset[1]))
        : // "Unexpected end of JSON input" names no position: the end of the text.
          positionOf(text, text.length);
    refuse(
      [
        {
          field: rootField,
          rule: 'syntax',
          message: `not valid JSON: ${message.replace(/ in JSON at position \d+.*$/, '')}`,
          ...where,
        },
      ],
      fileName,
    );
  }
}

function yamlProblem(error: YAMLError): SpecProblem {
  const rule: SpecRule =
    error.code === 'DUPLICATE_KEY'
      ? 'duplicate-key'
      : error.code === 'MULTIPLE_DOCS'
        ? 'single-document'
        : 'syntax';
  // yaml's pretty message quotes the source line; keep only the sentence (a line may hold a secret).
  const sentence = (error.message.split(/ at line \d+, column \d+/)[0] ?? error.message).trim();
  const start = error.linePos?.[0];
  return start === undefined
    ? { field: rootField, rule, message: sentence }
    : { field: rootField, rule, message: sentence, line: start.line, column: start.col };
}

function parseYaml(text: string, fileName: string | undefined): unknown {
  const parsed = parseAllDocuments(text, {
    version: '1.2',
    schema: 'core',
    prettyErrors: true,
    uniqueKeys: true,
    merge: false,
  });
  // A stray '---' at the end (an empty document) is not a second spec.
  const documents = (Array.isArray(parsed) ? parsed : []).filter(
    (document) =>
      document.errors.length > 0 ||
      !(document.contents === null || (isScalar(document.contents) && document.contents.value === null)),
  );
  if (documents.length === 0) {
    refuse(
      [{ field: rootField, rule: 'required', message: 'the file holds no document: write a workload spec' }],
      fileName,
    );
  }
  if (documents.length > 1) {
    const second = documents[1]?.range[0] ?? 0;
    refuse(
      [
        {
          field: rootField,
          rule: 'single-document',
          message: `the file holds ${documents.length} documents ('---'); put one workload spec per file`,
          ...positionOf(text, second),
        },
      ],
      fileName,
    );
  }
  const document = documents[0];
  if (document === undefined) throw new Error('unreachable: one document expected');
  if (document.errors.length > 0) refuse(document.errors.map(yamlProblem), fileName);
  try {
    return document.toJS({ maxAliasCount: workloadFileLimits.maxAliasCount });
  } catch (error) {
    if (error instanceof ReferenceError && /alias/i.test(error.message)) {
      refuse(
        [
          {
            field: rootField,
            rule: 'alias-limit',
            message: `the file's aliases (*name) expand to more than ${workloadFileLimits.maxAliasCount} copies; write the values out`,
          },
        ],
        fileName,
      );
    }
    throw error;
  }
}

/**
 * Parses a spec file's text into plain data (not yet validated). YAML by default (YAML is a
 * superset of JSON); JSON, with JSON's own errors, when `fileName` ends in `.json`.
 */
export function parseWorkloadFile(text: string, fileName?: string): unknown {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > workloadFileLimits.maxFileBytes) {
    refuse(
      [
        {
          field: rootField,
          rule: 'max-size',
          message: `the file is ${Math.ceil(bytes / 1024)} KiB; a workload spec file may be at most ${workloadFileLimits.maxFileBytes / 1024} KiB`,
        },
      ],
      fileName,
    );
  }
  try {
    return fileName !== undefined && /\.json$/i.test(fileName)
      ? parseJson(text, fileName)
      : parseYaml(text, fileName);
  } catch (error) {
    if (error instanceof RangeError) {
      // A parser ran out of stack on a pathologically nested document.
      refuse([{ field: rootField, rule: 'max-depth', message: 'the file nests too deep to read' }], fileName);
    }
    throw error;
  }
}

/**
 * Resolves the file paths a spec may write relative to the spec file: a worker driver's `module`
 * that is neither absolute nor a URL becomes absolute against `specDir`. Returns a new object (the
 * input is not changed); anything else, including malformed input, is returned as it was, for
 * validation to judge.
 */
export function resolveSpecPaths(input: unknown, specDir: string): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const driver = (input as Record<string, unknown>).driver;
  if (typeof driver !== 'object' || driver === null || Array.isArray(driver)) return input;
  const { type, module } = driver as Record<string, unknown>;
  if (type !== 'worker' || typeof module !== 'string' || module === '') return input;
  if (
    path.posix.isAbsolute(module) ||
    path.win32.isAbsolute(module) ||
    /^[A-Za-z][A-Za-z0-9+.-]+:/.test(module)
  )
    return input;
  return { ...input, driver: { ...driver, module: path.resolve(specDir, module) } };
}

/**
 * Parses and validates a spec file's text. With `fileName`, a relative worker `module` is resolved
 * against the file's directory and problems name the file.
 */
export function loadWorkloadSpec(text: string, fileName?: string): WorkloadSpec {
  const parsed = parseWorkloadFile(text, fileName);
  const input =
    fileName === undefined ? parsed : resolveSpecPaths(parsed, path.dirname(path.resolve(fileName)));
  return validateWorkloadSpec(input, { subject: subjectOf(fileName) });
}
