/**
 * The workload commands, top-level in `cloudless`: deploy (deploy-command.ts), ps
 * (ps-command.ts), scale, rm, logs (logs-command.ts) and explain (explain-command.ts). Each
 * talks to the workload front door `/user/workloads` of the coordinator it connects to (which
 * relays to the leader) through a `WorkloadClient` (workload-client.ts), with the client options
 * the kv, nodes and token commands take.
 *
 * Exit codes: 0 done, 1 failed while running (no such workload, no leader, denied by policy, a
 * task failed, not ready in time), 2 bad input (flags, names, spec files, a refused spec).
 */
import { parseArgs } from 'node:util';
import { InvalidRequestError } from '../runtime/errors.ts';
import type { CliIo } from './cli.ts';
import { deployCommand, describeDeploy } from './deploy-command.ts';
import { explainCommand } from './explain-command.ts';
import { commonOptions, nodeFileName } from './kv-commands.ts';
import { logsCommand } from './logs-command.ts';
import { psCommand } from './ps-command.ts';
import { positionalArgs, runWorkloadCommand, withWorkloads, workloadIdArgument } from './workload-client.ts';

/** For the top-level usage in cli.ts. */
export const workloadCommandsUsage = `  deploy     deploy -f <spec.yaml|json> [--detach] [--wait-timeout 120s]: create or update a
             workload, then wait until it is ready (service) or done (batch)
  ps         ps [workload] [--wide] [--json]: replicas with node, state, restarts, age, reason
  scale      scale <workload> <N>: set the replica count
  rm         rm <workload>: remove a workload and stop its replicas
  logs       logs <workload> [--replica i] [--stderr] [-f] [--tail N]: a replica's output
  explain    explain <workload>: the scheduler's decision per replica (scores, filters, reasons)`;

export const workloadClientOptions = `Client options (deploy, ps, scale, rm, logs, explain, and kv, status, nodes, token):
  --connect <multiaddr>   the coordinator to talk to (default: the node running from --data-dir,
                          found through its ${nodeFileName})
  --data-dir <dir>        [CLOUDLESS_DATA_DIR, default .cloudless]   --config <file>
  --timeout-ms <n>        deadline of the connection and of each request (default 10000)
  --credential <file>     the admin credential [CLOUDLESS_CREDENTIAL; default <data-dir>/admin.credential]
  --json                  JSON on stdout

A <workload> is <name> (in namespace default) or <namespace>/<name>. Workload commands exit 0
when done, 1 when something failed while running (no such workload, no leader, denied by
policy, a task failed, not ready in time), 2 for bad input (flags, names, an invalid spec).`;

export const scaleUsage = `Usage: cloudless scale <workload> <N> [client options]

Sets the workload's replica count (0 to 1000) without changing its revision; new replicas are
placed by the scheduler, replicas past N are stopped.`;

export const rmUsage = `Usage: cloudless rm <workload> [client options]

Removes the workload and its replica records; the agents stop its replicas.`;

async function scaleCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: { ...commonOptions, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    io.out(scaleUsage);
    return 0;
  }
  const [name, count] = positionalArgs('scale', positionals, 2, '<workload> <N>') as [string, string];
  const workloadId = workloadIdArgument(name);
  if (!/^\d{1,4}$/.test(count) || Number(count) > 1000)
    throw new InvalidRequestError(`the replica count must be a whole number from 0 to 1000, got '${count}'`);
  return withWorkloads(values, io, async (workloads) => {
    const result = await workloads.scale(workloadId, Number(count));
    io.out(
      values.json === true
        ? JSON.stringify({ ...result, replicas: Number(count) })
        : `${describeDeploy(result)}: ${count} replica${count === '1' ? '' : 's'}`,
    );
    return 0;
  });
}

async function rmCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: { ...commonOptions, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    io.out(rmUsage);
    return 0;
  }
  const [name] = positionalArgs('rm', positionals, 1, '<workload>') as [string];
  const workloadId = workloadIdArgument(name);
  return withWorkloads(values, io, async (workloads) => {
    const { removed } = await workloads.remove(workloadId);
    io.out(values.json === true ? JSON.stringify({ workloadId, removed }) : `workload ${workloadId} removed`);
    return 0;
  });
}

const commands: Readonly<Record<string, (argv: string[], io: CliIo) => Promise<number>>> = {
  deploy: deployCommand,
  ps: psCommand,
  scale: scaleCommand,
  rm: rmCommand,
  logs: logsCommand,
  explain: explainCommand,
};

/** Runs `cloudless <command> …` for a workload command (deploy, ps, scale, rm, logs, explain). */
export function workloadCommand(command: string, argv: string[], io: CliIo): Promise<number> {
  const run = commands[command];
  if (run === undefined) {
    io.err(`cloudless: '${command}' is not a workload command`);
    return Promise.resolve(2);
  }
  return runWorkloadCommand(run, argv, io);
}
