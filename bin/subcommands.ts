import type { CliIo } from './cli.ts';

export type Subcommand = (argv: string[], io: CliIo) => Promise<number>;

/**
 * Runs `cloudless <group> <command> …`: the command named by `argv[0]` with the rest, the usage
 * for none or `help`, and exit code 2 with the usage for an unknown one.
 */
export function runSubcommand(
  group: string,
  commands: Readonly<Record<string, Subcommand>>,
  usage: string,
  argv: string[],
  io: CliIo,
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    io.out(usage);
    return Promise.resolve(0);
  }
  const run = Object.hasOwn(commands, command) ? commands[command] : undefined;
  if (run === undefined) {
    io.err(`cloudless: unknown ${group} command '${command}'\n\n${usage}`);
    return Promise.resolve(2);
  }
  return run(rest, io);
}
