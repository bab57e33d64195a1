/**
 * `cloudless token create|ls|revoke`: join tokens in the Raft store (actors/enrollment/). The
 * token text is printed once, by `create`; only its hash is stored, and `ls` never shows it.
 */
import { parseArgs } from 'node:util';
import { checkRoles, checkTokenId, describeToken } from '../actors/enrollment/token.ts';
import { TokenStore } from '../actors/enrollment/token-store.ts';
import { InvalidRequestError } from '../runtime/errors.ts';
import type { CliIo } from './cli.ts';
import { commonOptions, withKvClient } from './kv-commands.ts';

export const tokenUsage = `Usage: cloudless token <command> [options]

Commands:
  create --roles R[,R] --ttl DURATION [--uses N]   print a new join token (shown once)
  ls                                               list tokens (never their secrets)
  revoke <id>                                      refuse a token from now on

Options:
  --connect <multiaddr>  --data-dir <dir>  --config <file>  --timeout-ms <n>  --json
  --credential <file>    the admin credential (default <data-dir>/admin.credential, or CLOUDLESS_CREDENTIAL)

DURATION is a number with s, m, h or d (e.g. 30m, 1h, 7d). A node joins with
'cloudless start --join <coordinator multiaddr> --token <token>'.`;

export function parseDuration(text: string | undefined, flag: string): number {
  const match = /^(\d{1,9})(s|m|h|d)$/.exec(text ?? '');
  if (match === null)
    throw new InvalidRequestError(
      `${flag} must be a number followed by s, m, h or d (e.g. 1h), got '${text ?? ''}'`,
    );
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

export async function tokenCommand(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'create': {
      const { values, positionals } = parseArgs({
        args: rest,
        strict: true,
        allowPositionals: true,
        options: {
          ...commonOptions,
          roles: { type: 'string' },
          ttl: { type: 'string' },
          uses: { type: 'string' },
        },
      });
      if (positionals.length > 0)
        throw new InvalidRequestError(`token create takes no arguments\n\n${tokenUsage}`);
      if (values.roles === undefined)
        throw new InvalidRequestError('token create needs --roles, e.g. --roles agent,storage');
      const roles = checkRoles(values.roles, '--roles');
      const ttlMs = parseDuration(values.ttl, '--ttl');
      const uses = values.uses === undefined ? 1 : Number(values.uses);
      if (values.uses !== undefined && !/^\d{1,7}$/.test(values.uses))
        throw new InvalidRequestError(`--uses must be a whole number, got '${values.uses}'`);
      return withKvClient(values, io, async (client) => {
        const { token, record } = await new TokenStore({ kv: client }).create({
          roles,
          ttlMs,
          maxUses: uses,
        });
        if (values.json === true) io.out(JSON.stringify({ token, ...describeToken(record, Date.now()) }));
        else {
          io.out(token);
          io.err(
            `cloudless: token ${record.id} for roles ${roles.join(',')}, ${uses} use(s), expires ${new Date(record.expiresAt).toISOString()}; it is shown only now`,
          );
        }
        return 0;
      });
    }
    case 'ls': {
      const { values } = parseArgs({
        args: rest,
        strict: true,
        allowPositionals: false,
        options: commonOptions,
      });
      return withKvClient(values, io, async (client) => {
        const now = Date.now();
        for (const record of await new TokenStore({ kv: client }).list()) {
          const shown = describeToken(record, now);
          io.out(
            values.json === true
              ? JSON.stringify(shown)
              : `${shown.id}  ${shown.state.padEnd(8)} roles=${shown.roles.join(',')} uses=${shown.uses}/${shown.maxUses} expires=${new Date(shown.expiresAt).toISOString()}`,
          );
        }
        return 0;
      });
    }
    case 'revoke': {
      const { values, positionals } = parseArgs({
        args: rest,
        strict: true,
        allowPositionals: true,
        options: commonOptions,
      });
      if (positionals.length !== 1)
        throw new InvalidRequestError('token revoke takes one token id (from cloudless token ls)');
      const id = checkTokenId(positionals[0]);
      return withKvClient(values, io, async (client) => {
        const record = await new TokenStore({ kv: client }).revoke(id);
        io.out(values.json === true ? JSON.stringify(describeToken(record, Date.now())) : `revoked ${id}`);
        return 0;
      });
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out(tokenUsage);
      return 0;
    default:
      io.err(`cloudless: unknown token command '${command}'\n\n${tokenUsage}`);
      return 2;
  }
}
