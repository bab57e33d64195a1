/**
 * The CLI's side of the workload front door (`/user/workloads`, actors/coordinator/workload-service.ts):
 * `withWorkloads` connects a `KvClient` as the other client commands do (`--connect` or the node
 * running from `--data-dir`, the admin credential) and hands the commands a `WorkloadClient`
 * (actors/coordinator/workload-client.ts) bound to the command's deadline and Ctrl-C.
 */

import { WorkloadClient } from '../actors/coordinator/workload-client.ts';
import { checkWorkloadId } from '../actors/coordinator/workload-service.ts';
import { CloudlessError, InvalidRequestError } from '../runtime/errors.ts';
import type { CliIo } from './cli.ts';
import { type CommonValues, defaultTimeoutMs, wholeNumber, withKvClient } from './kv-commands.ts';

/** Connects (Ctrl-C aborts), runs `body` with a `WorkloadClient`, and always closes the client. */
export function withWorkloads<T>(
  values: CommonValues,
  io: CliIo,
  body: (workloads: WorkloadClient) => Promise<T>,
): Promise<T> {
  const timeoutMs = wholeNumber('--timeout-ms', values['timeout-ms'], defaultTimeoutMs, 1, 3_600_000);
  return withKvClient(values, io, (kv, interrupt) =>
    body(WorkloadClient.over(kv, { timeoutMs, signal: interrupt })),
  );
}

/** `web` or `default/web` → `default/web`; exit code 2 for anything else. */
export function workloadIdArgument(text: string): string {
  return checkWorkloadId(text);
}

/** Exactly `count` positionals, or a usage error naming the command's shape. */
export function positionalArgs(
  command: string,
  given: readonly string[],
  count: number,
  shape: string,
): string[] {
  if (given.length !== count)
    throw new InvalidRequestError(
      `${command} takes ${shape}, got ${given.length} argument(s): e.g. cloudless ${command} ${shape}`,
    );
  return [...given];
}

/**
 * The exit code of a workload command's error: 2 for bad input (flags, spec files, refused specs,
 * names), 1 for everything that failed while running (not found, unavailable, denied by policy…).
 */
export function workloadExitCode(error: unknown): number {
  if (error instanceof CloudlessError) return error.code === 'INVALID_REQUEST' ? 2 : 1;
  return (error as { code?: unknown }).code?.toString().startsWith('ERR_PARSE_ARGS') === true ? 2 : 1;
}

/** Runs a workload command: its errors print as `cloudless: <message>` with `workloadExitCode`. */
export async function runWorkloadCommand(
  run: (argv: string[], io: CliIo) => Promise<number>,
  argv: string[],
  io: CliIo,
): Promise<number> {
  try {
    return await run(argv, io);
  } catch (error) {
    io.err(`cloudless: ${error instanceof Error ? error.message : String(error)}`);
    return workloadExitCode(error);
  }
}

/** `12D3KooW…` → its last 8 characters (the full id with `wide`). */
export function shortNode(node: string | undefined, wide = false): string {
  if (node === undefined) return '-';
  return wide || node.length <= 8 ? node : node.slice(-8);
}

/** `4s`, `3m`, `2h`, `5d` since `ms`. */
export function age(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/** Rows as columns padded to the widest cell (the first row is the header). */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const header = rows[0];
  if (header === undefined) return [];
  const widths = header.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}

export { WorkloadClient };
