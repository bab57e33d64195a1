/**
 * A node's configuration: flags > `CLOUDLESS_*` environment > YAML file > defaults, validated
 * as a whole at start so a bad value fails fast with the setting's name and where it came from.
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
  })
  .strict();

export type NodeConfig = z.infer<typeof nodeConfigSchema>;

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
};

const numeric = new Set<keyof NodeConfig>([
  'mailboxCapacity',
  'askTimeoutMs',
  'workerThreads',
  'unreachableAfterMs',
  'maxFrameBytes',
]);
const lists = new Set<keyof NodeConfig>(['roles', 'behaviorModules', 'computeModules', 'listen']);

/** Turns text from the environment or a flag into the type the schema expects. */
function coerce(key: keyof NodeConfig, value: unknown): unknown {
  if (typeof value !== 'string') return value;
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
    throw new InvalidRequestError(`config file ${file} is not valid YAML: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InvalidRequestError(
      `config file ${file} must hold a mapping of settings, not ${typeof parsed}`,
    );
  }
  return parsed as ConfigLayer;
}

/** Merges layers (later ones win) over the defaults and validates the result. */
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
      return `${issue.path.join('.') || 'config'} (from ${from}): ${issue.message}`;
    });
    throw new InvalidRequestError(`invalid configuration: ${problems.join('; ')}`);
  }
  return { ...result.data, dataDir: path.resolve(result.data.dataDir) };
}
