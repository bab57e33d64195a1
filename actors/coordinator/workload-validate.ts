/**
 * The coordinator's front door for workload specs: `validateWorkloadSpec` turns untrusted input
 * (parsed YAML/JSON from the CLI or the admin API) into a `WorkloadSpec` with every default filled
 * in, or throws one InvalidSpecError listing every problem at once, each with its field path and
 * rule. Hand-written rather than zod: the rules' names, field paths, kind-dependent defaults and
 * cross-field checks are the API here, and writing them out keeps them exact.
 *
 * Leniencies for YAML writers: `null` (an empty YAML value) counts as absent; env and label values
 * that YAML reads as numbers or booleans (`PORT: 8080`) become strings; `resources` take quantity
 * strings (`memoryBytes: 256Mi`, `cpuMillicores: 500m` or `"2"` cores); `restartPolicy` may be
 * just the policy's name.
 */
import path from 'node:path';
import { InvalidSpecError, rootField, type SpecProblem, type SpecRule } from './workload-errors.ts';
import {
  type Constraints,
  type DriverSpec,
  type HealthCheck,
  type HealthProbe,
  type ResourceRequest,
  type RestartPolicy,
  type RestartPolicyName,
  restartPolicies,
  type WorkloadKind,
  type WorkloadSpec,
  workloadKinds,
} from './workload-spec.ts';

const mib = 1024 * 1024;

/** Bounds of every field; also what the error messages quote. */
export const workloadSpecLimits = {
  /** About the size of the input as JSON. */
  maxInputBytes: 256 * 1024,
  /** Nesting of objects and arrays (the deepest valid field, `healthCheck.probe.args[i]`, is 4). */
  maxDepth: 10,
  maxNameLength: 63,
  maxReplicas: 1000,
  minCpuMillicores: 1,
  maxCpuMillicores: 1_000_000,
  minMemoryBytes: mib,
  maxMemoryBytes: 1024 * 1024 * mib,
  maxPriority: 1000,
  minInitialBackoffMs: 10,
  maxBackoffMs: 3_600_000,
  minMultiplier: 1,
  maxMultiplier: 10,
  maxRetries: 1000,
  maxCommandLength: 4096,
  maxArgs: 256,
  maxArgLength: 4096,
  maxEnvEntries: 128,
  maxEnvValueLength: 32 * 1024,
  maxPathLength: 4096,
  maxExportLength: 256,
  maxLabels: 32,
  maxLabelLength: 128,
  maxZones: 32,
  maxZoneLength: 64,
  maxWorkloadRefs: 32,
  maxTolerations: 32,
  maxTolerationLength: 128,
  minProbeIntervalMs: 100,
  maxProbeIntervalMs: 3_600_000,
  maxInitialDelayMs: 3_600_000,
  maxFailureThreshold: 1000,
  maxHostLength: 253,
  maxHttpPathLength: 2048,
} as const;

/** What an absent field becomes. */
export const workloadSpecDefaults = {
  namespace: 'default',
  kind: 'service' as WorkloadKind,
  replicas: 1,
  workerExport: 'default',
  resources: { cpuMillicores: 100, memoryBytes: 128 * mib },
  restartPolicy: {
    service: 'always' as RestartPolicyName,
    batch: 'on-failure' as RestartPolicyName,
    initialBackoffMs: 200,
    /** Raised to `initialBackoffMs` when that is larger. */
    maxBackoffMs: 30_000,
    multiplier: 2,
    /** A service retries without limit; a batch task 3 times. */
    batchMaxRetries: 3,
  },
  priority: 0,
  healthCheck: {
    intervalMs: 1000,
    /** Lowered to `intervalMs` when that is smaller. */
    timeoutMs: 1000,
    initialDelayMs: 0,
    failureThreshold: 3,
    host: '127.0.0.1',
    httpPath: '/',
  },
} as const;

const L = workloadSpecLimits;
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;
const jsIdentifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const hostPattern = /^[A-Za-z0-9.:\-[\]%]+$/;
const plainKey = /^[A-Za-z_][A-Za-z0-9_-]*$/;

type Input = Record<string, unknown>;

/** Collects every problem found (InvalidSpecError keeps the first `maxReportedProblems`). */
class ProblemList {
  readonly list: SpecProblem[] = [];
  add(field: string, rule: SpecRule, message: string): void {
    this.list.push({ field: field === '' ? rootField : field, rule, message });
  }
}

/** `parent.key`, or `parent["odd key"]` when the key is not a plain name. */
export function fieldPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (plainKey.test(key) && key.length <= 128) return parent === '' ? key : `${parent}.${key}`;
  return `${parent}[${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}]`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  return typeof value;
}

function isMapping(value: unknown): value is Input {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** `null` (an empty YAML value) counts as absent. */
function absent(value: unknown): value is undefined | null {
  return value === undefined || value === null;
}

/**
 * Refuses a document too large or too deep before looking at its fields: the walk is iterative
 * and stops as soon as a bound is passed, so neither a deep nor a huge (or cyclic, or
 * alias-expanded) document costs more than the limits.
 */
function checkBounds(problems: ProblemList, input: unknown): boolean {
  let bytes = 0;
  const stack: { value: unknown; depth: number }[] = [{ value: input, depth: 0 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop() as { value: unknown; depth: number };
    if (typeof value === 'string') bytes += value.length + 2;
    else if (typeof value === 'number') bytes += String(value).length;
    else if (typeof value === 'object' && value !== null) {
      if (depth >= L.maxDepth) {
        problems.add(
          '',
          'max-depth',
          `the spec nests lists and mappings more than ${L.maxDepth} deep; a workload spec needs at most 4 levels`,
        );
        return false;
      }
      bytes += 2;
      if (Array.isArray(value)) {
        for (const item of value) {
          bytes += 1;
          stack.push({ value: item, depth: depth + 1 });
        }
      } else {
        for (const key of Object.keys(value)) {
          bytes += key.length + 4;
          stack.push({ value: (value as Input)[key], depth: depth + 1 });
        }
      }
    } else bytes += 5;
    if (bytes > L.maxInputBytes) {
      problems.add(
        '',
        'max-size',
        `the spec is larger than ${L.maxInputBytes / 1024} KiB as JSON; keep large data out of the spec ` +
          '(ship it with the program, or read it from the object store)',
      );
      return false;
    }
  }
  return true;
}

function mapping(
  problems: ProblemList,
  value: unknown,
  field: string,
  keys: readonly string[],
): Input | undefined {
  if (!isMapping(value)) {
    problems.add(field, 'type', `must be a mapping, got ${describe(value)}`);
    return undefined;
  }
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) {
      problems.add(
        fieldPath(field, key),
        'unknown-field',
        `unknown field (check the spelling); allowed here: ${keys.join(', ')}`,
      );
    }
  }
  return value;
}

interface StringRules {
  readonly max: number;
  readonly required?: boolean;
  readonly nonEmpty?: boolean;
}

function text(problems: ProblemList, value: unknown, field: string, rules: StringRules): string | undefined {
  if (absent(value)) {
    if (rules.required === true) problems.add(field, 'required', 'is required');
    return undefined;
  }
  if (typeof value !== 'string') {
    problems.add(field, 'type', `must be a string, got ${describe(value)}`);
    return undefined;
  }
  if (value.length === 0 && rules.nonEmpty === true) {
    problems.add(field, 'non-empty', 'must not be empty');
    return undefined;
  }
  if (value.length > rules.max) {
    problems.add(field, 'max-length', `must be at most ${rules.max} characters, got ${value.length}`);
    return undefined;
  }
  if (value.includes('\0')) {
    problems.add(field, 'no-nul', 'must not contain a NUL character');
    return undefined;
  }
  return value;
}

function label(problems: ProblemList, value: unknown, field: string, required: boolean): string | undefined {
  const name = text(problems, value, field, { max: L.maxNameLength, required, nonEmpty: true });
  if (name === undefined) return undefined;
  if (!dns1123Label.test(name)) {
    problems.add(
      field,
      'dns-1123-label',
      `${describe(name)} is not a DNS-1123 label: use lowercase letters, digits and '-', ` +
        `starting and ending with a letter or digit, at most ${L.maxNameLength} characters`,
    );
    return undefined;
  }
  return name;
}

function integer(
  problems: ProblemList,
  value: unknown,
  field: string,
  min: number,
  max: number,
  unit = '',
): number | undefined {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    problems.add(field, 'type', `must be a number, got ${describe(value)}`);
    return undefined;
  }
  if (!Number.isInteger(value)) {
    problems.add(field, 'integer', `must be a whole number, got ${value}`);
    return undefined;
  }
  if (value < min || value > max) {
    problems.add(field, 'range', `must be from ${min}${unit} to ${max}${unit}, got ${value}${unit}`);
    return undefined;
  }
  return value;
}

function integerOr(
  problems: ProblemList,
  value: unknown,
  field: string,
  fallback: number,
  min: number,
  max: number,
  unit = '',
): number | undefined {
  return absent(value) ? fallback : integer(problems, value, field, min, max, unit);
}

function oneOf<T extends string>(
  problems: ProblemList,
  value: unknown,
  field: string,
  choices: readonly T[],
  fallback: T | undefined,
): T | undefined {
  if (absent(value)) {
    if (fallback === undefined) problems.add(field, 'required', `is required: one of ${choices.join(', ')}`);
    return fallback;
  }
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
    problems.add(field, 'one-of', `must be one of ${choices.join(', ')}, got ${describe(value)}`);
    return undefined;
  }
  return value as T;
}

function list(
  problems: ProblemList,
  value: unknown,
  field: string,
  maxItems: number,
  item: (value: unknown, field: string) => string | undefined,
): string[] | undefined {
  if (absent(value)) return [];
  if (!Array.isArray(value)) {
    problems.add(field, 'type', `must be a list, got ${describe(value)}`);
    return undefined;
  }
  if (value.length > maxItems) {
    problems.add(field, 'max-items', `must have at most ${maxItems} items, got ${value.length}`);
    return undefined;
  }
  const out: string[] = [];
  let ok = true;
  value.forEach((entry: unknown, index) => {
    const checked = item(entry, fieldPath(field, index));
    if (checked === undefined) ok = false;
    else out.push(checked);
  });
  return ok ? out : undefined;
}

/** A mapping of strings; numbers and booleans (as YAML reads `8080` or `true`) become strings. */
function stringMap(
  problems: ProblemList,
  value: unknown,
  field: string,
  rules: {
    readonly maxEntries: number;
    readonly maxKeyLength: number;
    readonly maxValueLength: number;
    readonly keyPattern?: { readonly pattern: RegExp; readonly rule: SpecRule; readonly hint: string };
  },
): Record<string, string> | undefined {
  if (absent(value)) return {};
  if (!isMapping(value)) {
    problems.add(field, 'type', `must be a mapping of names to strings, got ${describe(value)}`);
    return undefined;
  }
  const keys = Object.keys(value);
  if (keys.length > rules.maxEntries) {
    problems.add(field, 'max-items', `must have at most ${rules.maxEntries} entries, got ${keys.length}`);
    return undefined;
  }
  const entries: [string, string][] = [];
  let ok = true;
  for (const key of keys) {
    const at = fieldPath(field, key);
    if (key.length === 0) {
      problems.add(at, 'non-empty', 'a name must not be empty');
      ok = false;
      continue;
    }
    if (key.length > rules.maxKeyLength) {
      problems.add(
        at,
        'max-length',
        `a name must be at most ${rules.maxKeyLength} characters, got ${key.length}`,
      );
      ok = false;
      continue;
    }
    if (rules.keyPattern !== undefined && !rules.keyPattern.pattern.test(key)) {
      problems.add(at, rules.keyPattern.rule, rules.keyPattern.hint);
      ok = false;
      continue;
    }
    const raw = value[key];
    const converted = typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : raw;
    const checked = text(problems, converted ?? undefined, at, { max: rules.maxValueLength });
    if (checked === undefined) {
      if (absent(converted)) problems.add(at, 'required', 'needs a value (write "" for an empty one)');
      ok = false;
      continue;
    }
    entries.push([key, checked]);
  }
  // fromEntries defines own properties, so a key such as "__proto__" stays a plain key.
  return ok ? Object.fromEntries(entries) : undefined;
}

const memoryUnits: Readonly<Record<string, number>> = {
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};
const quantityPattern = /^([0-9]{1,16})(?:\.([0-9]{1,9}))?\s?([A-Za-z]{0,2})$/;

/** `memoryBytes`: a whole number of bytes, or a quantity string (`512Mi`, `1Gi`, `500M`), rounded up. */
function memoryBytes(problems: ProblemList, value: unknown, field: string): number | undefined {
  if (absent(value)) return workloadSpecDefaults.resources.memoryBytes;
  let bytes = value;
  if (typeof value === 'string') {
    const match = quantityPattern.exec(value.trim());
    const unit = match === null ? undefined : memoryUnits[match[3] as string];
    if (match === null || unit === undefined) {
      problems.add(
        field,
        'quantity',
        `${describe(value)} is not a memory quantity: write bytes or a number with Ki, Mi, Gi, Ti (powers of 1024) ` +
          'or k, M, G, T (powers of 1000), e.g. 256Mi or 1Gi',
      );
      return undefined;
    }
    const exact = Number(`${match[1]}.${match[2] ?? '0'}`) * unit;
    const rounded = Math.round(exact);
    bytes = Math.abs(exact - rounded) < 1e-6 ? rounded : Math.ceil(exact);
  }
  return integer(problems, bytes, field, L.minMemoryBytes, L.maxMemoryBytes, ' bytes');
}

/** `cpuMillicores`: a number of millicores, or a string of millicores (`500m`) or cores (`2`, `0.5`). */
function cpuMillicores(problems: ProblemList, value: unknown, field: string): number | undefined {
  if (absent(value)) return workloadSpecDefaults.resources.cpuMillicores;
  let millicores = value;
  if (typeof value === 'string') {
    const match = quantityPattern.exec(value.trim());
    const suffix = match?.[3];
    if (match === null || (suffix !== '' && suffix !== 'm')) {
      problems.add(
        field,
        'quantity',
        `${describe(value)} is not a CPU quantity: write millicores as a number (500) or '500m', or cores as '2' or '0.5'`,
      );
      return undefined;
    }
    const whole = Number(match[1]);
    const fraction = match[2] ?? '';
    if (suffix === 'm') millicores = fraction === '' ? whole : Number(`${whole}.${fraction}`);
    else if (/^[0-9]{0,3}0*$/.test(fraction))
      millicores = whole * 1000 + Number(fraction.slice(0, 3).padEnd(3, '0'));
    else millicores = Number(`${whole}.${fraction}`) * 1000;
  }
  return integer(problems, millicores, field, L.minCpuMillicores, L.maxCpuMillicores, ' millicores');
}

function resources(problems: ProblemList, value: unknown): ResourceRequest | undefined {
  if (absent(value)) return { ...workloadSpecDefaults.resources };
  const input = mapping(problems, value, 'resources', ['cpuMillicores', 'memoryBytes']);
  if (input === undefined) return undefined;
  const cpu = cpuMillicores(problems, input.cpuMillicores, 'resources.cpuMillicores');
  const memory = memoryBytes(problems, input.memoryBytes, 'resources.memoryBytes');
  return cpu === undefined || memory === undefined ? undefined : { cpuMillicores: cpu, memoryBytes: memory };
}

function env(problems: ProblemList, value: unknown, field: string): Record<string, string> | undefined {
  return stringMap(problems, value, field, {
    maxEntries: L.maxEnvEntries,
    maxKeyLength: 1024,
    maxValueLength: L.maxEnvValueLength,
    keyPattern: {
      pattern: envName,
      rule: 'env-name',
      hint: 'an environment variable name is letters, digits and _, not starting with a digit',
    },
  });
}

function args(problems: ProblemList, value: unknown, field: string): string[] | undefined {
  return list(problems, value, field, L.maxArgs, (item, at) =>
    text(problems, item, at, { max: L.maxArgLength }),
  );
}

function isAbsolutePath(value: string): boolean {
  return path.posix.isAbsolute(value) || path.win32.isAbsolute(value);
}

function isFileUrl(value: string): boolean {
  if (!value.startsWith('file:')) return false;
  try {
    return new URL(value).protocol === 'file:';
  } catch {
    return false;
  }
}

function driver(problems: ProblemList, value: unknown): DriverSpec | undefined {
  if (absent(value)) {
    problems.add(
      'driver',
      'required',
      'is required: { type: process, command, … } or { type: worker, module, … }',
    );
    return undefined;
  }
  if (!isMapping(value)) {
    problems.add('driver', 'type', `must be a mapping, got ${describe(value)}`);
    return undefined;
  }
  const type = oneOf(problems, value.type, 'driver.type', ['process', 'worker'] as const, undefined);
  if (type === 'process') {
    const input = mapping(problems, value, 'driver', ['type', 'command', 'args', 'env', 'workingDir']);
    if (input === undefined) return undefined;
    const command = text(problems, input.command, 'driver.command', {
      max: L.maxCommandLength,
      required: true,
      nonEmpty: true,
    });
    const argv = args(problems, input.args, 'driver.args');
    const environment = env(problems, input.env, 'driver.env');
    let workingDir = text(problems, input.workingDir, 'driver.workingDir', {
      max: L.maxPathLength,
      nonEmpty: true,
    });
    if (workingDir !== undefined && !isAbsolutePath(workingDir)) {
      problems.add(
        'driver.workingDir',
        'absolute-path',
        `must be an absolute path on the agent's machine, got ${describe(workingDir)}`,
      );
      workingDir = undefined;
    }
    if (command === undefined || argv === undefined || environment === undefined) return undefined;
    if (!absent(input.workingDir) && workingDir === undefined) return undefined;
    return workingDir === undefined
      ? { type, command, args: argv, env: environment }
      : { type, command, args: argv, env: environment, workingDir };
  }
  if (type === 'worker') {
    const input = mapping(problems, value, 'driver', ['type', 'module', 'export', 'env']);
    if (input === undefined) return undefined;
    let module = text(problems, input.module, 'driver.module', {
      max: L.maxPathLength,
      required: true,
      nonEmpty: true,
    });
    if (module !== undefined && !isAbsolutePath(module) && !isFileUrl(module)) {
      problems.add(
        'driver.module',
        'module-path',
        `must be an absolute path or a file: URL of a module on the agent's machine, got ${describe(module)} ` +
          '(the CLI resolves a relative path against the spec file)',
      );
      module = undefined;
    }
    let exportName = absent(input.export)
      ? workloadSpecDefaults.workerExport
      : text(problems, input.export, 'driver.export', { max: L.maxExportLength, nonEmpty: true });
    if (exportName !== undefined && !jsIdentifier.test(exportName)) {
      problems.add(
        'driver.export',
        'js-identifier',
        `must be a JavaScript identifier, got ${describe(exportName)}`,
      );
      exportName = undefined;
    }
    const environment = env(problems, input.env, 'driver.env');
    if (module === undefined || exportName === undefined || environment === undefined) return undefined;
    return { type, module, export: exportName, env: environment };
  }
  return undefined;
}

function restartPolicy(problems: ProblemList, value: unknown, kind: WorkloadKind): RestartPolicy | undefined {
  const D = workloadSpecDefaults.restartPolicy;
  const input: Input | undefined =
    typeof value === 'string'
      ? { policy: value }
      : absent(value)
        ? {}
        : mapping(problems, value, 'restartPolicy', [
            'policy',
            'initialBackoffMs',
            'maxBackoffMs',
            'multiplier',
            'maxRetries',
          ]);
  if (input === undefined) return undefined;
  const field = typeof value === 'string' ? 'restartPolicy' : 'restartPolicy.policy';
  let policy = oneOf(problems, input.policy, field, restartPolicies, kind === 'batch' ? D.batch : D.service);
  if (kind === 'batch' && policy === 'always') {
    problems.add(
      field,
      'batch-always',
      "a batch task that succeeded must not be started again: use 'on-failure' (the default for batch) or 'never'",
    );
    policy = undefined;
  }
  const initialBackoffMs = integerOr(
    problems,
    input.initialBackoffMs,
    'restartPolicy.initialBackoffMs',
    D.initialBackoffMs,
    L.minInitialBackoffMs,
    L.maxBackoffMs,
    ' ms',
  );
  let maxBackoffMs = integerOr(
    problems,
    input.maxBackoffMs,
    'restartPolicy.maxBackoffMs',
    Math.max(D.maxBackoffMs, initialBackoffMs ?? 0),
    L.minInitialBackoffMs,
    L.maxBackoffMs,
    ' ms',
  );
  if (maxBackoffMs !== undefined && initialBackoffMs !== undefined && maxBackoffMs < initialBackoffMs) {
    problems.add(
      'restartPolicy.maxBackoffMs',
      'at-least-initial',
      `must be at least initialBackoffMs (${initialBackoffMs} ms), got ${maxBackoffMs} ms`,
    );
    maxBackoffMs = undefined;
  }
  let multiplier: number | undefined = D.multiplier;
  if (!absent(input.multiplier)) {
    if (typeof input.multiplier !== 'number' || !Number.isFinite(input.multiplier)) {
      problems.add('restartPolicy.multiplier', 'type', `must be a number, got ${describe(input.multiplier)}`);
      multiplier = undefined;
    } else if (input.multiplier < L.minMultiplier || input.multiplier > L.maxMultiplier) {
      problems.add(
        'restartPolicy.multiplier',
        'range',
        `must be from ${L.minMultiplier} to ${L.maxMultiplier}, got ${input.multiplier}`,
      );
      multiplier = undefined;
    } else multiplier = input.multiplier;
  }
  const maxRetries = absent(input.maxRetries)
    ? kind === 'batch'
      ? D.batchMaxRetries
      : undefined
    : integer(problems, input.maxRetries, 'restartPolicy.maxRetries', 0, L.maxRetries);
  if (!absent(input.maxRetries) && maxRetries === undefined) return undefined;
  if (
    policy === undefined ||
    initialBackoffMs === undefined ||
    maxBackoffMs === undefined ||
    multiplier === undefined
  )
    return undefined;
  const out = { policy, initialBackoffMs, maxBackoffMs, multiplier };
  return maxRetries === undefined ? out : { ...out, maxRetries };
}

function constraints(problems: ProblemList, value: unknown): Constraints | undefined {
  const input = absent(value)
    ? {}
    : mapping(problems, value, 'constraints', [
        'nodeLabels',
        'zones',
        'spreadAcrossZones',
        'affinity',
        'antiAffinity',
        'tolerations',
        'preferredZones',
      ]);
  if (input === undefined) return undefined;
  const nodeLabels = stringMap(problems, input.nodeLabels, 'constraints.nodeLabels', {
    maxEntries: L.maxLabels,
    maxKeyLength: L.maxLabelLength,
    maxValueLength: L.maxLabelLength,
  });
  const zone = (item: unknown, at: string) =>
    text(problems, item, at, { max: L.maxZoneLength, required: true, nonEmpty: true });
  const zones = list(problems, input.zones, 'constraints.zones', L.maxZones, zone);
  const preferredZones = list(problems, input.preferredZones, 'constraints.preferredZones', L.maxZones, zone);
  let spreadAcrossZones: boolean | undefined = false;
  if (!absent(input.spreadAcrossZones)) {
    if (typeof input.spreadAcrossZones === 'boolean') spreadAcrossZones = input.spreadAcrossZones;
    else {
      problems.add(
        'constraints.spreadAcrossZones',
        'type',
        `must be true or false, got ${describe(input.spreadAcrossZones)}`,
      );
      spreadAcrossZones = undefined;
    }
  }
  const workload = (item: unknown, at: string) => label(problems, item, at, true);
  const affinity = list(problems, input.affinity, 'constraints.affinity', L.maxWorkloadRefs, workload);
  const antiAffinity = list(
    problems,
    input.antiAffinity,
    'constraints.antiAffinity',
    L.maxWorkloadRefs,
    workload,
  );
  const tolerations = list(
    problems,
    input.tolerations,
    'constraints.tolerations',
    L.maxTolerations,
    (item, at) => text(problems, item, at, { max: L.maxTolerationLength, required: true, nonEmpty: true }),
  );
  if (
    nodeLabels === undefined ||
    zones === undefined ||
    spreadAcrossZones === undefined ||
    affinity === undefined ||
    antiAffinity === undefined ||
    tolerations === undefined ||
    preferredZones === undefined
  )
    return undefined;
  return { nodeLabels, zones, spreadAcrossZones, affinity, antiAffinity, tolerations, preferredZones };
}

function probe(problems: ProblemList, value: unknown): HealthProbe | undefined {
  const field = 'healthCheck.probe';
  if (absent(value)) {
    problems.add(field, 'required', 'is required: { type: exec | tcp | http, … }');
    return undefined;
  }
  if (!isMapping(value)) {
    problems.add(field, 'type', `must be a mapping, got ${describe(value)}`);
    return undefined;
  }
  const type = oneOf(problems, value.type, `${field}.type`, ['exec', 'tcp', 'http'] as const, undefined);
  if (type === 'exec') {
    const input = mapping(problems, value, field, ['type', 'command', 'args']);
    if (input === undefined) return undefined;
    const command = text(problems, input.command, `${field}.command`, {
      max: L.maxCommandLength,
      required: true,
      nonEmpty: true,
    });
    const argv = args(problems, input.args, `${field}.args`);
    return command === undefined || argv === undefined ? undefined : { type, command, args: argv };
  }
  if (type === 'tcp' || type === 'http') {
    const input = mapping(
      problems,
      value,
      field,
      type === 'tcp' ? ['type', 'port', 'host'] : ['type', 'port', 'host', 'path'],
    );
    if (input === undefined) return undefined;
    let port: number | undefined;
    if (absent(input.port))
      problems.add(`${field}.port`, 'required', 'is required: the port the replica listens on');
    else port = integer(problems, input.port, `${field}.port`, 1, 65535);
    let host = absent(input.host)
      ? workloadSpecDefaults.healthCheck.host
      : text(problems, input.host, `${field}.host`, { max: L.maxHostLength, nonEmpty: true });
    if (host !== undefined && !hostPattern.test(host)) {
      problems.add(`${field}.host`, 'host', `must be a host name or an IP address, got ${describe(host)}`);
      host = undefined;
    }
    if (port === undefined || host === undefined) return undefined;
    if (type === 'tcp') return { type, port, host };
    let httpPath = absent(input.path)
      ? workloadSpecDefaults.healthCheck.httpPath
      : text(problems, input.path, `${field}.path`, { max: L.maxHttpPathLength, nonEmpty: true });
    if (httpPath !== undefined && !httpPath.startsWith('/')) {
      problems.add(`${field}.path`, 'http-path', `must start with '/', got ${describe(httpPath)}`);
      httpPath = undefined;
    }
    return httpPath === undefined ? undefined : { type, port, host, path: httpPath };
  }
  return undefined;
}

function healthCheck(problems: ProblemList, value: unknown): HealthCheck | undefined {
  const D = workloadSpecDefaults.healthCheck;
  const input = mapping(problems, value, 'healthCheck', [
    'probe',
    'intervalMs',
    'timeoutMs',
    'initialDelayMs',
    'failureThreshold',
  ]);
  if (input === undefined) return undefined;
  const checkedProbe = probe(problems, input.probe);
  const min = L.minProbeIntervalMs;
  const max = L.maxProbeIntervalMs;
  const intervalMs = integerOr(
    problems,
    input.intervalMs,
    'healthCheck.intervalMs',
    D.intervalMs,
    min,
    max,
    ' ms',
  );
  let timeoutMs = integerOr(
    problems,
    input.timeoutMs,
    'healthCheck.timeoutMs',
    Math.min(D.timeoutMs, intervalMs ?? D.timeoutMs),
    min,
    max,
    ' ms',
  );
  if (timeoutMs !== undefined && intervalMs !== undefined && timeoutMs > intervalMs) {
    problems.add(
      'healthCheck.timeoutMs',
      'at-most-interval',
      `must be at most intervalMs (${intervalMs} ms), got ${timeoutMs} ms`,
    );
    timeoutMs = undefined;
  }
  const initialDelayMs = integerOr(
    problems,
    input.initialDelayMs,
    'healthCheck.initialDelayMs',
    D.initialDelayMs,
    0,
    L.maxInitialDelayMs,
    ' ms',
  );
  const failureThreshold = integerOr(
    problems,
    input.failureThreshold,
    'healthCheck.failureThreshold',
    D.failureThreshold,
    1,
    L.maxFailureThreshold,
  );
  if (
    checkedProbe === undefined ||
    intervalMs === undefined ||
    timeoutMs === undefined ||
    initialDelayMs === undefined ||
    failureThreshold === undefined
  )
    return undefined;
  return { probe: checkedProbe, intervalMs, timeoutMs, initialDelayMs, failureThreshold };
}

const topLevelFields = [
  'name',
  'namespace',
  'kind',
  'replicas',
  'driver',
  'resources',
  'restartPolicy',
  'constraints',
  'priority',
  'healthCheck',
] as const;

function subjectOf(input: unknown): string | undefined {
  if (!isMapping(input)) return undefined;
  const { name, namespace } = input;
  const ok = (value: unknown): value is string =>
    typeof value === 'string' && value.length <= L.maxNameLength && dns1123Label.test(value);
  if (!ok(name)) return undefined;
  return `'${ok(namespace) ? namespace : workloadSpecDefaults.namespace}/${name}'`;
}

/**
 * Checks untrusted input (parsed YAML or JSON) and returns the spec with every default filled in.
 * Throws InvalidSpecError listing every problem found, each with its field path and rule.
 */
export function validateWorkloadSpec(input: unknown, options?: { subject?: string }): WorkloadSpec {
  const problems = new ProblemList();
  const fail = (): never => {
    throw new InvalidSpecError(problems.list, { subject: options?.subject ?? subjectOf(input) });
  };
  if (!checkBounds(problems, input)) fail();
  const top = mapping(problems, input, '', topLevelFields);
  if (top === undefined) fail();
  const spec = top as Input;
  const name = label(problems, spec.name, 'name', true);
  const namespace = absent(spec.namespace)
    ? workloadSpecDefaults.namespace
    : label(problems, spec.namespace, 'namespace', true);
  const kind = oneOf(problems, spec.kind, 'kind', workloadKinds, workloadSpecDefaults.kind);
  const replicas = integerOr(
    problems,
    spec.replicas,
    'replicas',
    workloadSpecDefaults.replicas,
    0,
    L.maxReplicas,
  );
  const checkedDriver = driver(problems, spec.driver);
  const checkedResources = resources(problems, spec.resources);
  // An unknown kind is reported once; the restart policy is still checked, with service defaults.
  const checkedRestart = restartPolicy(problems, spec.restartPolicy, kind ?? 'service');
  const checkedConstraints = constraints(problems, spec.constraints);
  const priority = integerOr(
    problems,
    spec.priority,
    'priority',
    workloadSpecDefaults.priority,
    0,
    L.maxPriority,
  );
  const checkedHealth = absent(spec.healthCheck) ? undefined : healthCheck(problems, spec.healthCheck);
  if (problems.list.length > 0) fail();
  const out: WorkloadSpec = {
    name: name as string,
    namespace: namespace as string,
    kind: kind as WorkloadKind,
    replicas: replicas as number,
    driver: checkedDriver as DriverSpec,
    resources: checkedResources as ResourceRequest,
    restartPolicy: checkedRestart as RestartPolicy,
    constraints: checkedConstraints as Constraints,
    priority: priority as number,
  };
  return checkedHealth === undefined ? out : { ...out, healthCheck: checkedHealth };
}
