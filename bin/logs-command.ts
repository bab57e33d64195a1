/**
 * `cloudless logs <workload>`: a replica's captured stdout (or stderr), read through the front
 * door from the agent that runs it, page by page from the start or the last `--tail` bytes. With
 * `-f` it then polls every 500 ms from where it stopped until Ctrl-C, which ends it cleanly (exit
 * code 0). When the replica gets a new attempt (rescheduled elsewhere) it says so and follows the
 * new one from its start. Output that was rotated away before it was read is noted on stderr.
 */
import { parseArgs } from 'node:util';
import type { LogsResult } from '../actors/coordinator/workload-service.ts';
import { CloudlessError, InvalidRequestError } from '../runtime/errors.ts';
import type { CliIo } from './cli.ts';
import { pause } from './deploy-command.ts';
import { commonOptions, wholeNumber } from './kv-commands.ts';
import { positionalArgs, withWorkloads, workloadIdArgument } from './workload-client.ts';

export const logsUsage = `Usage: cloudless logs <workload> [--replica i] [--stderr] [-f|--follow] [--tail N] [client options]

Prints what a replica wrote to stdout (--stderr: to stderr), as its agent captured it.
  --replica <i>   the replica's slot index (default 0; 'cloudless ps' lists them)
  --tail <N>      only the last N bytes
  -f, --follow    keep printing new output (polled every 500 ms) until Ctrl-C
A note on stderr says when older output had been rotated away before it could be read.`;

const pageBytes = 256 * 1024;
const followEveryMs = 500;
/** Pages read in one go before giving the follow loop (and Ctrl-C) a turn. */
const maxPagesPerRead = 64;

/** Prints whole lines through `io.out`; a partial line waits for its end (or `flush`). */
class LineWriter {
  #partial = '';
  readonly #out: (line: string) => void;

  constructor(out: (line: string) => void) {
    this.#out = out;
  }

  write(data: string): void {
    const lines = (this.#partial + data).split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) this.#out(line);
  }

  flush(): void {
    if (this.#partial !== '') this.#out(this.#partial);
    this.#partial = '';
  }
}

export async function logsCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      ...commonOptions,
      replica: { type: 'string', short: 'r' },
      stderr: { type: 'boolean' },
      follow: { type: 'boolean', short: 'f' },
      tail: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    io.out(logsUsage);
    return 0;
  }
  const [name] = positionalArgs('logs', positionals, 1, '<workload>') as [string];
  const workloadId = workloadIdArgument(name);
  const index = wholeNumber('--replica', values.replica, 0, 0, 1000);
  const tail = values.tail === undefined ? undefined : wholeNumber('--tail', values.tail, 0, 1, 2 ** 40);
  const stream = values.stderr === true ? 'stderr' : 'stdout';
  const follow = values.follow === true;
  if (values.json === true)
    throw new InvalidRequestError('logs prints the output as it is; --json is not supported');
  return withWorkloads(values, io, async (workloads) => {
    const writer = new LineWriter(io.out);
    const interrupt = workloads.interrupt;
    let replicaId: string | undefined;
    let offset = tail === undefined ? 0 : -tail;
    let lastError = '';

    /** Reads from `offset` until caught up (or `maxPagesPerRead` pages). */
    async function readAvailable(): Promise<void> {
      for (let page = 0; page < maxPagesPerRead; page++) {
        const chunk: LogsResult = await workloads.logs({
          workloadId,
          index,
          stream,
          fromOffset: offset,
          maxBytes: pageBytes,
        });
        if (replicaId !== undefined && chunk.replicaId !== replicaId) {
          // A new attempt has its own output, from offset 0.
          writer.flush();
          io.err(`cloudless: ${replicaId} was replaced by ${chunk.replicaId}; following the new attempt`);
          replicaId = chunk.replicaId;
          offset = 0;
          continue;
        }
        replicaId = chunk.replicaId;
        if (chunk.truncated)
          io.err(
            `cloudless: older output of ${chunk.replicaId} was rotated away; printing from byte ${chunk.nextOffset - Buffer.byteLength(chunk.data)}`,
          );
        writer.write(chunk.data);
        const advanced = chunk.nextOffset !== offset;
        offset = chunk.nextOffset;
        if (chunk.data === '' || !advanced) return;
      }
    }

    if (!follow) {
      await readAvailable();
      writer.flush();
      return 0;
    }
    while (!interrupt.aborted) {
      try {
        await readAvailable();
        lastError = '';
      } catch (error) {
        if (interrupt.aborted) break;
        // While following, a replica between nodes or a leader election is waited out.
        if (
          !(error instanceof CloudlessError) ||
          !['UNAVAILABLE', 'TIMEOUT', 'NOT_LEADER'].includes(error.code)
        )
          throw error;
        if (error.message !== lastError) io.err(`cloudless: ${error.message} (retrying)`);
        lastError = error.message;
      }
      await pause(followEveryMs, interrupt);
    }
    writer.flush();
    return 0;
  });
}
