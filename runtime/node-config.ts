/**
 * A node's configuration: flags > `CLOUDLESS_*` environment > YAML file > defaults, validated
 * as a whole at start so a bad value fails fast with the setting's name, where it came from and
 * how to fix it. Secret settings (`token`) never appear in clear in a log line or an error:
 * log the configuration through `maskedConfig`.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { InvalidRequestError } from './errors.ts';

export const roles = ['coordinator', 'agent', 'storage'] as const;
export type Role = (typeof roles)[number];

/** A TCP multiaddr with the PeerId: /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>/p2p/<base58 PeerId>. */
const joinPattern = /^\/(ip4|ip6|dns|dns4|dns6)\/[^/\s]+\/tcp\/\d{1,5}\/p2p\/[1-9A-HJ-NP-Za-km-z]{40,128}$/;

/** Kubernetes' label syntax: at most 63 characters, alphanumeric at both ends. */
const labelPattern = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const maxLabelLength = 63;
const maxLabels = 64;
const labelRule = `at most ${maxLabelLength} letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;

/** A join token as `cloudless token create` prints it: `<id>.<secret>`. */
const tokenPattern = /^[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{16,256}$/;

/** `HOST:PORT` with an IPv4 address, a host name or a bracketed IPv6 address. */
const hostPortPattern = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):(\d{1,5})$/;

/** Splits and checks `HOST:PORT` (port 0 picks a free one); throws InvalidRequestError. */
export function parseHostPort(text: string, setting = 'metricsAddr'): { host: string; port: number } {
  const match = typeof text === 'string' && text.length <= 261 ? hostPortPattern.exec(text) : null;
  const port = Number(match?.[3]);
  if (match === null || !(port >= 0 && port <= 65535)) {
    throw new InvalidRequestError(
      `${setting} must be HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:9464 or [::1]:9464; got ${JSON.stringify(String(text).slice(0, 80))}`,
    );
  }
  const host = (match[1] as string).replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

/**
 * Labels come as a YAML mapping or as `k=v,k2=v2` from a flag or the environment; both end as a
 * plain record checked against Kubernetes' label rules.
 */
function parseLabels(value: unknown, ctx: z.RefinementCtx): Record<string, string> {
  let entries: [string, unknown][];
  if (typeof value === 'string') {
    entries = [];
    for (const item of value.split(',')) {
      const text = item.trim();
      if (text === '') continue;
      const eq = text.indexOf('=');
      if (eq < 0) {
        ctx.addIssue({ code: 'custom', message: `'${text.slice(0, 80)}' is not key=value; write k=v,k2=v2` });
        continue;
      }
      entries.push([text.slice(0, eq).trim(), text.slice(eq + 1).trim()]);
    }
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    entries = Object.entries(value);
  } else {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a mapping of key: value in YAML, or k=v,k2=v2 in a flag or the environment',
    });
    return {};
  }
  if (entries.length > maxLabels) {
    ctx.addIssue({ code: 'custom', message: `at most ${maxLabels} labels, got ${entries.length}` });
  }
  const labels: Record<string, string> = {};
  for (const [key, raw] of entries) {
    const shownKey = JSON.stringify(key.slice(0, 80));
    if (key.length > maxLabelLength || !labelPattern.test(key)) {
      ctx.addIssue({ code: 'custom', message: `key ${shownKey}: use ${labelRule}` });
      continue;
    }
    const text = typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : raw;
    if (typeof text !== 'string') {
      ctx.addIssue({ code: 'custom', message: `value of ${shownKey} must be a string` });
      continue;
    }
    if (text.length > maxLabelLength || (text !== '' && !labelPattern.test(text))) {
      ctx.addIssue({ code: 'custom', message: `value of ${shownKey}: use ${labelRule}, or nothing` });
      continue;
    }
    labels[key] = text;
  }
  return labels;
}

const nodeConfigSchema = z
  .object({
    dataDir: z.string().min(1, 'must not be empty'),
    logLevel: z.enum(['debug', 'info', 'warn', 'error', 'silent']),
    nodeId: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'use 1-128 letters, digits, ".", "_" or "-"')
      .optional(),
    roles: z.array(z.enum(roles)).min(1, 'name at least one role'),
    mailboxCapacity: z.number().int().positive(),
    askTimeoutMs: z.number().positive(),
    /** Modules whose defineBehavior exports can run on worker threads. */
    behaviorModules: z.array(z.string().min(1)).max(256),
    /** Worker threads of the 'worker' dispatcher; 0 runs every actor on the main thread. */
    workerThreads: z.number().int().min(0).max(256),
    /** Modules whose defineComputeTask exports run on the compute pool. */
    computeModules: z.array(z.string().min(1)).max(256),
    /** Multiaddrs the mesh listens on. */
    listen: z.array(z.string().regex(/^\//, 'a multiaddr starts with /')).min(1).max(16),
    /** How long a peer may be unreachable before its actors count as terminated. */
    unreachableAfterMs: z.number().int().positive(),
    /**
     * A member of an existing Raft group to ask for admission (coordinators): its multiaddr with
     * the PeerId, so the dial can check whom it reaches.
     */
    join: z
      .string()
      .max(1024, 'must be at most 1024 characters')
      .regex(
        joinPattern,
        "must be a member's TCP multiaddr ending in /p2p/<PeerId>, e.g. /ip4/10.0.0.1/tcp/7000/p2p/12D3KooW…; " +
          "'cloudless peer id' on that node prints its addresses",
      )
      .optional(),
    /** Largest frame the mesh accepts or sends. */
    maxFrameBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(256 * 1024 * 1024),
    /** The join token presented to the cluster on first contact. Secret: see `maskedConfig`. */
    token: z
      .string()
      .max(512, 'must be at most 512 characters')
      .regex(tokenPattern, "must be a join token '<id>.<secret>' as printed by 'cloudless token create'")
      .optional(),
    /** Free-form placement labels of this node (Kubernetes label syntax). */
    labels: z.unknown().transform(parseLabels),
    /** The failure domain this node is in (a rack, a room, a site), with the label syntax. */
    zone: z
      .string()
      .max(maxLabelLength, `use ${labelRule}`)
      .regex(labelPattern, `use ${labelRule}`)
      .optional(),
    /** Where to serve /metrics, /healthz and /readyz (HOST:PORT); none by default. */
    metricsAddr: z
      .string()
      .refine(
        (text) => {
          try {
            parseHostPort(text);
            return true;
          } catch {
            return false;
          }
        },
        { message: 'must be HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:9464' },
      )
      .optional(),
    /** Whether a stop on SIGINT/SIGTERM leaves the cluster (marks this member `left`) first. */
    leaveOnStop: z.boolean({ error: 'use true or false (1/0 or yes/no in a flag or the environment)' }),
  })
  .strict();

export type NodeConfig = z.output<typeof nodeConfigSchema>;

export const defaultNodeConfig: NodeConfig = {
  dataDir: '.cloudless',
  logLevel: 'info',
  roles: [...roles],
  mailboxCapacity: 100_000,
  askTimeoutMs: 5000,
  behaviorModules: [],
  workerThreads: Math.max(1, os.availableParallelism() - 1),
  computeModules: [],
  listen: ['/ip4/127.0.0.1/tcp/0'],
  unreachableAfterMs: 10_000,
  maxFrameBytes: 4 * 1024 * 1024,
  labels: {},
  leaveOnStop: false,
};

/** Settings from one source, before merging; values may still be strings from env or flags. */
export type ConfigLayer = Partial<Record<keyof NodeConfig, unknown>>;

const envNames: Record<keyof NodeConfig, string> = {
  dataDir: 'CLOUDLESS_DATA_DIR',
  logLevel: 'CLOUDLESS_LOG_LEVEL',
  nodeId: 'CLOUDLESS_NODE_ID',
  roles: 'CLOUDLESS_ROLES',
  mailboxCapacity: 'CLOUDLESS_MAILBOX_CAPACITY',
  askTimeoutMs: 'CLOUDLESS_ASK_TIMEOUT_MS',
  behaviorModules: 'CLOUDLESS_BEHAVIOR_MODULES',
  workerThreads: 'CLOUDLESS_WORKER_THREADS',
  computeModules: 'CLOUDLESS_COMPUTE_MODULES',
  listen: 'CLOUDLESS_LISTEN',
  join: 'CLOUDLESS_JOIN',
  unreachableAfterMs: 'CLOUDLESS_UNREACHABLE_AFTER_MS',
  maxFrameBytes: 'CLOUDLESS_MAX_FRAME_BYTES',
  token: 'CLOUDLESS_TOKEN',
  labels: 'CLOUDLESS_LABELS',
  zone: 'CLOUDLESS_ZONE',
  metricsAddr: 'CLOUDLESS_METRICS_ADDR',
  leaveOnStop: 'CLOUDLESS_LEAVE_ON_STOP',
};

/** The flag of each setting that has one (settings without a flag come from env or file). */
const flagNames: Partial<Record<keyof NodeConfig, string>> = {
  dataDir: '--data-dir',
  logLevel: '--log-level',
  nodeId: '--node-id',
  roles: '--roles',
  behaviorModules: '--behavior-modules',
  workerThreads: '--worker-threads',
  computeModules: '--compute-modules',
  listen: '--listen',
  join: '--join',
  token: '--token',
  labels: '--labels',
  zone: '--zone',
  metricsAddr: '--metrics-addr',
  leaveOnStop: '--leave',
};

/** Settings whose values are secret: masked by `maskedConfig`, never echoed in an error. */
export const secretSettings: readonly (keyof NodeConfig)[] = ['token'];

/**
 * The configuration as it may be logged or printed: secrets are replaced by `<redacted>`; a
 * token keeps its id (not secret: audit lines name it) so an operator can tell tokens apart.
 */
export function maskedConfig(config: NodeConfig): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...config };
  for (const key of secretSettings) {
    const value = copy[key];
    if (value === undefined) continue;
    const id = typeof value === 'string' ? /^([A-Za-z0-9_-]{1,64})\./.exec(value)?.[1] : undefined;
    copy[key] = id === undefined ? '<redacted>' : `${id}.<redacted>`;
  }
  return copy;
}

const numeric = new Set<keyof NodeConfig>([
  'mailboxCapacity',
  'askTimeoutMs',
  'workerThreads',
  'unreachableAfterMs',
  'maxFrameBytes',
]);
const lists = new Set<keyof NodeConfig>(['roles', 'behaviorModules', 'computeModules', 'listen']);
const booleans = new Set<keyof NodeConfig>(['leaveOnStop']);

/** Turns text from the environment or a flag into the type the schema expects. */
function coerce(key: keyof NodeConfig, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (booleans.has(key)) {
    const text = value.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(text)) return true;
    if (['false', '0', 'no', ''].includes(text)) return false;
    return value;
  }
  if (lists.has(key)) {
    return value
      .split(',')
      .map((role) => role.trim())
      .filter((role) => role.length > 0);
  }
  if (numeric.has(key)) return value.trim() === '' ? value : Number(value);
  return value;
}

export function configFromEnv(env: NodeJS.ProcessEnv): ConfigLayer {
  const layer: ConfigLayer = {};
  for (const [key, name] of Object.entries(envNames) as [keyof NodeConfig, string][]) {
    const value = env[name];
    if (value !== undefined) layer[key] = coerce(key, value);
  }
  return layer;
}

export async function configFromFile(file: string): Promise<ConfigLayer> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new InvalidRequestError(`cannot read config file ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    // yaml's message quotes the offending line, which may hold the token: give its position only.
    const where = (error as { linePos?: { line: number; col: number }[] }).linePos?.[0];
    const code = (error as { code?: unknown }).code;
    throw new InvalidRequestError(
      `config file ${file} is not valid YAML${where === undefined ? '' : ` at line ${where.line}, column ${where.col}`}` +
        `${typeof code === 'string' ? ` (${code})` : ''}; fix the file or drop --config`,
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InvalidRequestError(
      `config file ${file} must hold a mapping of settings, not ${typeof parsed}`,
    );
  }
  return parsed as ConfigLayer;
}

/** Where a setting came from, precisely enough to find it: the flag, the variable or the file. */
function describeSource(source: string, key: string): string {
  const setting = key as keyof NodeConfig;
  if (source === 'flags') return `flag ${flagNames[setting] ?? key}`;
  if (source === 'environment') return `environment ${envNames[setting] ?? key}`;
  if (source === 'defaults') return 'defaults';
  return `file ${source}`;
}

/** Where to change a setting, for the fix part of an error. */
function whereToSet(key: string): string {
  const setting = key as keyof NodeConfig;
  const places = [flagNames[setting], envNames[setting], `'${key}' in the --config YAML file`].filter(
    (place): place is string => place !== undefined,
  );
  return places.join(', ');
}

/**
 * Merges layers (later ones win) over the defaults and validates the result. A layer's `source`
 * is 'flags', 'environment' or the YAML file's path; errors name the flag, variable or file.
 */
export function resolveNodeConfig(layers: { source: string; values: ConfigLayer }[]): NodeConfig {
  const merged: Record<string, unknown> = { ...defaultNodeConfig };
  const origin: Record<string, string> = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer.values)) {
      if (value === undefined) continue;
      merged[key] = coerce(key as keyof NodeConfig, value);
      origin[key] = layer.source;
    }
  }
  const result = nodeConfigSchema.safeParse(merged);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const from = origin[key] ?? 'defaults';
      if (issue.code === 'unrecognized_keys') {
        return `unknown setting(s) ${issue.keys.join(', ')} (known: ${Object.keys(envNames).join(', ')})`;
      }
      const setting = issue.path.map(String).join('.') || 'config';
      return `${setting} (from ${describeSource(from, key)}): ${issue.message}; set it with ${whereToSet(key)}`;
    });
    throw new InvalidRequestError(`invalid configuration: ${problems.join('; ')}`);
  }
  return { ...result.data, dataDir: path.resolve(result.data.dataDir) };
}
