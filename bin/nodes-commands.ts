/**
 * `cloudless nodes …`. `rm` (enrollment) deletes a member's record and writes
 * `/cloudless/blocked/<PeerId>` in one transaction; every node's admission feed sees the block,
 * refuses the peer at the connection gater and closes its connections. `ls` is the membership
 * part's (nodes-ls-command.ts).
 */
import { parseArgs } from 'node:util';
import { blockedKey, checkPeerId, memberKey } from '../actors/enrollment/member-record.ts';
import { InvalidRequestError } from '../runtime/errors.ts';
import type { CliIo } from './cli.ts';
import { commonOptions, withKvClient } from './kv-commands.ts';
import { nodesLsCommand } from './nodes-ls-command.ts';
import { runSubcommand } from './subcommands.ts';

export const nodesUsage = `Usage: cloudless nodes <command> [options]

Commands:
  ls               list the members (id, roles, status, zone, resources, since)
  rm <PeerId>      remove a member: delete its record, block its PeerId on every node, close its connections

Options:
  --connect <multiaddr>  --data-dir <dir>  --config <file>  --timeout-ms <n>  --json
  --credential <file>    the admin credential (default <data-dir>/admin.credential, or CLOUDLESS_CREDENTIAL)`;

async function nodesRm(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: commonOptions,
  });
  if (positionals.length !== 1)
    throw new InvalidRequestError('nodes rm takes one PeerId (from cloudless nodes ls)');
  const peerId = checkPeerId(positionals[0], 'nodes rm');
  return withKvClient(values, io, async (client) => {
    if (peerId === client.nodeId)
      throw new InvalidRequestError(
        `${peerId} is the node this command is connected to; connect to another coordinator`,
      );
    const result = await client.txn({
      compare: [],
      success: [
        { type: 'delete', key: memberKey(peerId), prevKv: true },
        { type: 'put', key: blockedKey(peerId), value: JSON.stringify({ at: Date.now() }) },
      ],
      failure: [],
    });
    const deleted = result.responses[0]?.type === 'delete' ? result.responses[0].deleted : 0;
    io.out(
      values.json === true
        ? JSON.stringify({ peerId, removed: deleted > 0, blocked: true, revision: result.revision })
        : `removed ${peerId}${deleted > 0 ? '' : ' (it had no member record)'}; blocked on every node`,
    );
    return 0;
  });
}

export function nodesCommand(argv: string[], io: CliIo): Promise<number> {
  return runSubcommand('nodes', { ls: nodesLsCommand, rm: nodesRm }, nodesUsage, argv, io);
}
