/**
 * `cloudless status`: the Raft group as one coordinator sees it (its role, term, leader, commit
 * and applied index, and the members with their addresses). Another member may know more (a
 * follower cut off from the leader still shows the last leader it heard from).
 */
import { parseArgs } from 'node:util';
import type { RaftStatusReply } from '../actors/raft/raft-member.ts';
import type { CliIo } from './cli.ts';
import { withKvClient } from './kv-commands.ts';

export const statusUsage = `Usage: cloudless status [--json] [--connect <multiaddr>] [--data-dir <dir>] [--config <file>] [--timeout-ms <n>]

Prints the connected coordinator's view of the Raft group: its role, the leader, the term, the
commit and applied indexes, and the voters and learners with their addresses. The coordinator is
--connect, or the node running from --data-dir (default .cloudless), found through its node.json.`;

function describe(status: RaftStatusReply, address: string): string[] {
  const membership = status.membership ?? { voters: [], learners: [], addresses: {} };
  const lines = [
    `node:    ${status.id} (${status.role}) at ${address}`,
    `leader:  ${status.leaderId ?? 'none known (an election may be under way, or a majority is down)'}`,
    `term:    ${status.term}`,
    `indexes: commit ${status.commitIndex}, applied ${status.appliedIndex ?? '?'}, last ${status.lastIndex}, snapshot ${status.snapshotIndex ?? 0}`,
    `voters (${membership.voters.length}):`,
  ];
  const member = (id: string): string => {
    const marks = [id === status.leaderId ? 'leader' : '', id === status.id ? 'this node' : ''].filter(
      Boolean,
    );
    const addresses = (membership.addresses[id] ?? []).join(' ');
    return `  ${id}${marks.length > 0 ? ` [${marks.join(', ')}]` : ''}${addresses === '' ? '' : `  ${addresses}`}`;
  };
  for (const id of membership.voters) lines.push(member(id));
  lines.push(`learners (${membership.learners.length}):`);
  for (const id of membership.learners) lines.push(member(id));
  return lines;
}

export async function statusCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      connect: { type: 'string' },
      'data-dir': { type: 'string' },
      config: { type: 'string' },
      'timeout-ms': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true || positionals[0] === 'help') {
    io.out(statusUsage);
    return 0;
  }
  if (positionals.length > 0) {
    io.err(`cloudless: status takes no arguments, got '${positionals.join(' ')}'\n\n${statusUsage}`);
    return 2;
  }
  return withKvClient(values, io, async (client, signal) => {
    const status = await client.status({ signal });
    if (values.json === true) io.out(JSON.stringify({ address: client.address, ...status }));
    else for (const line of describe(status, client.address)) io.out(line);
    return 0;
  });
}
