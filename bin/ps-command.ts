/**
 * `cloudless ps [workload]`: the replicas of one workload, or of every workload with a summary
 * line each (kind, revision, desired against running and ready), as the store has them (a
 * linearizable read on the leader). `--json` prints each workload's raw status, one per line.
 */
import { parseArgs } from 'node:util';
import type { ReplicaRecord } from '../actors/coordinator/workload-records.ts';
import type { WorkloadStatus } from '../actors/coordinator/workload-service.ts';
import { InvalidRequestError } from '../runtime/errors.ts';
import type { CliIo } from './cli.ts';
import { commonOptions } from './kv-commands.ts';
import { age, formatTable, shortNode, withWorkloads, workloadIdArgument } from './workload-client.ts';

export const psUsage = `Usage: cloudless ps [<workload>] [--wide] [--json] [client options]

Lists replicas: WORKLOAD, REPLICA (slot index), ATTEMPT, NODE (the last 8 characters of its
PeerId; all of it with --wide), STATE (running replicas that pass their health check are marked
'(ready)'), RESTARTS (by the agent within the attempt; earlier attempts lost to down nodes or
preemption in parentheses), AGE (of the attempt) and REASON; --wide adds LIMITS: whether the
agent enforces the replica's CPU and memory limits, and how (cgroup v2, worker resourceLimits) or
why not. Without a workload, every workload
with a summary line first. <workload> is <name> (namespace default) or <namespace>/<name>.
--json prints each workload's status as the front door returns it, one JSON object per line.`;

const maxReasonChars = 60;

function stateOf(record: ReplicaRecord): string {
  return record.state === 'running' && record.ready ? 'running (ready)' : record.state;
}

function reasonOf(record: ReplicaRecord, status: WorkloadStatus, wide: boolean): string {
  const parts: string[] = [];
  if (record.specRevision < status.revision) parts.push(`revision ${record.specRevision}`);
  if (record.reason !== undefined) parts.push(record.reason);
  if (record.exitCode !== undefined && !(record.reason ?? '').includes(String(record.exitCode)))
    parts.push(`exit code ${record.exitCode}`);
  if (parts.length === 0 && record.state === 'pending')
    parts.push(`'cloudless explain ${status.workloadId}' says why`);
  const text = parts.join('; ') || '-';
  return wide || text.length <= maxReasonChars ? text : `${text.slice(0, maxReasonChars - 1)}…`;
}

export function replicaRows(statuses: readonly WorkloadStatus[], now: number, wide: boolean): string[] {
  const rows = [
    [
      'WORKLOAD',
      'REPLICA',
      'ATTEMPT',
      'NODE',
      'STATE',
      'RESTARTS',
      'AGE',
      ...(wide ? ['LIMITS'] : []),
      'REASON',
    ],
  ];
  for (const status of statuses) {
    for (const record of status.replicas) {
      rows.push([
        status.workloadId,
        String(record.index),
        String(record.attempt),
        shortNode(record.node, wide),
        stateOf(record),
        record.lostCount > 0 ? `${record.restarts} (${record.lostCount} lost)` : String(record.restarts),
        age(record.createdAt, now),
        ...(wide ? [record.limits ?? '-'] : []),
        reasonOf(record, status, wide),
      ]);
    }
  }
  return formatTable(rows);
}

/** `default/web  service  revision 2  desired 3  running 3  ready 2  age 5m`. */
export function summaryRows(statuses: readonly WorkloadStatus[], now: number): string[] {
  const rows = [
    ['WORKLOAD', 'KIND', 'REVISION', 'DESIRED', 'RUNNING', 'READY', 'SUCCEEDED', 'FAILED', 'AGE'],
  ];
  for (const status of statuses) {
    const count = (test: (record: ReplicaRecord) => boolean): string =>
      String(status.replicas.filter(test).length);
    rows.push([
      status.workloadId,
      status.kind,
      String(status.revision),
      String(status.desired),
      count((r) => r.state === 'running'),
      count((r) => r.state === 'running' && r.ready),
      count((r) => r.state === 'succeeded'),
      count((r) => r.state === 'failed'),
      age(status.createdAt, now),
    ]);
  }
  return formatTable(rows);
}

export async function psCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      ...commonOptions,
      wide: { type: 'boolean', short: 'w' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    io.out(psUsage);
    return 0;
  }
  if (positionals.length > 1)
    throw new InvalidRequestError(`ps takes at most one workload, got '${positionals.join(' ')}'`);
  const only = positionals[0] === undefined ? undefined : workloadIdArgument(positionals[0]);
  const wide = values.wide === true;
  return withWorkloads(values, io, async (workloads) => {
    const statuses = await workloads.ps(only);
    if (values.json === true) {
      for (const status of statuses) io.out(JSON.stringify(status));
      return 0;
    }
    const now = Date.now();
    if (only === undefined) {
      if (statuses.length === 0) {
        io.out("no workloads: deploy one with 'cloudless deploy -f <spec.yaml>'");
        return 0;
      }
      for (const line of summaryRows(statuses, now)) io.out(line);
      io.out('');
    }
    for (const line of replicaRows(statuses, now, wide)) io.out(line);
    return 0;
  });
}
