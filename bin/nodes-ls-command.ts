/**
 * `cloudless nodes ls [--json]`: the member records (`/cloudless/members/`) as the connected
 * coordinator's store has them (a linearizable read), with the Raft leader and term. Also
 * `memberSummary`, the one-line count by status for `cloudless status`.
 */
import { parseArgs } from 'node:util';
import {
  decodeMemberRecord,
  type MemberRecord,
  memberStatuses,
  membersPrefix,
} from '../actors/membership/member-record.ts';
import type { KvClient } from '../actors/raft/kv-client.ts';
import type { CliIo } from './cli.ts';
import { commonOptions, withKvClient } from './kv-commands.ts';

export const nodesLsUsage = `Usage: cloudless nodes ls [--json] [--connect <multiaddr>] [--data-dir <dir>] [--config <file>] [--timeout-ms <n>] [--credential <file>]

Lists the cluster's members: id, roles, status (alive, suspect, down, left), zone, CPU, memory
and disk, and since when the status holds; with the Raft leader and term.`;

/** Every member record, page by page; a record that fails validation is reported, not hidden. */
export async function listMembers(
  client: KvClient,
  signal: AbortSignal,
): Promise<{ members: MemberRecord[]; invalid: { key: string; error: string }[] }> {
  const members: MemberRecord[] = [];
  const invalid: { key: string; error: string }[] = [];
  let fromKey: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const result = await client.range(membersPrefix, {
      signal,
      limit: 1000,
      ...(fromKey === undefined ? {} : { fromKey }),
    });
    for (const kv of result.kvs) {
      try {
        members.push(decodeMemberRecord(kv.value, kv.key.slice(membersPrefix.length)));
      } catch (error) {
        invalid.push({ key: kv.key, error: (error as Error).message });
      }
    }
    if (!result.more || result.nextKey === undefined) break;
    fromKey = result.nextKey;
  }
  return { members, invalid };
}

/** `members: 5 (alive 4, suspect 0, down 1, left 0)` for `cloudless status`. */
export function memberSummary(members: readonly Pick<MemberRecord, 'status'>[]): string {
  const counts = memberStatuses.map(
    (status) => `${status} ${members.filter((m) => m.status === status).length}`,
  );
  return `members: ${members.length} (${counts.join(', ')})`;
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)}G`;
}

function ago(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

export function formatMembers(members: readonly MemberRecord[], now: number): string[] {
  const rows = [['ID', 'ROLES', 'STATUS', 'ZONE', 'CPU', 'MEM', 'DISK', 'SINCE']];
  for (const m of members) {
    const r = m.resources;
    rows.push([
      m.id.length > 16 ? `${m.id.slice(0, 6)}…${m.id.slice(-6)}` : m.id,
      m.roles.join(','),
      m.status,
      m.zone ?? '-',
      r === undefined ? '-' : `${r.cpuLoad1m.toFixed(2)}/${r.cpuCores}`,
      r === undefined ? '-' : `${gib(r.memoryBytes - r.memoryFreeBytes)}/${gib(r.memoryBytes)}`,
      r === undefined ? '-' : `${gib(r.diskBytes - r.diskFreeBytes)}/${gib(r.diskBytes)}`,
      ago(m.statusSince, now),
    ]);
  }
  const widths = (rows[0] as string[]).map((_, i) =>
    Math.max(...rows.map((row) => (row[i] as string).length)),
  );
  return rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd(),
  );
}

export async function nodesLsCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      ...commonOptions,
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true || positionals[0] === 'help') {
    io.out(nodesLsUsage);
    return 0;
  }
  if (positionals.length > 0) {
    io.err(`cloudless: nodes ls takes no arguments, got '${positionals.join(' ')}'\n\n${nodesLsUsage}`);
    return 2;
  }
  return withKvClient(values, io, async (client, signal) => {
    const status = await client.status({ signal });
    const { members, invalid } = await listMembers(client, signal);
    if (values.json === true) {
      io.out(JSON.stringify({ leader: status.leaderId ?? null, term: status.term, members, invalid }));
    } else {
      io.out(`leader: ${status.leaderId ?? 'none known'}  term: ${status.term}  ${memberSummary(members)}`);
      for (const line of formatMembers(members, Date.now())) io.out(line);
      for (const bad of invalid) io.err(`cloudless: ${bad.key}: ${bad.error}`);
    }
    return invalid.length > 0 ? 1 : 0;
  });
}
