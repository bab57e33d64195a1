/**
 * `cloudless explain <workload>`: why each replica is where it is, from the scheduler shard that
 * owns the workload (on the Raft leader). A placed replica shows its best candidate nodes with
 * the score of each criterion and the weighted total; a pending one how many nodes each filter
 * removed, with an example reason, and the scheduler's reason; a preemption the replicas it
 * evicts. A replica with no remembered decision is decided afresh for the answer (nothing
 * changes).
 */
import { parseArgs } from 'node:util';
import type { ExplainReply, ReplicaExplanation } from '../actors/coordinator/scheduler-shard.ts';
import { type FilterReport, filterNames, scoreCriteria } from '../actors/scheduler/scheduler-types.ts';
import type { CliIo } from './cli.ts';
import { commonOptions } from './kv-commands.ts';
import {
  age,
  formatTable,
  positionalArgs,
  shortNode,
  withWorkloads,
  workloadIdArgument,
} from './workload-client.ts';

export const explainUsage = `Usage: cloudless explain <workload> [--wide] [--json] [client options]

Explains the scheduler's decision for each replica of the workload:
  placed    the best candidate nodes with their scores per criterion (locality, reliability,
            cost, utilization; each 0 to 1) and the weighted total, best first
  pending   how many nodes each filter removed, with an example reason, and why nothing fits
  preempt   the node chosen and the lower-priority replicas evicted to make room
Nodes show as the last 8 characters of their PeerId (all of it with --wide). --json prints the
scheduler's answer as it is.`;

function filterLines(filtered: FilterReport, wide: boolean): string[] {
  const rows: string[][] = [];
  for (const name of filterNames) {
    const entry = filtered[name];
    if (entry === undefined || entry.count === 0) continue;
    const example = wide || entry.example.length <= 100 ? entry.example : `${entry.example.slice(0, 99)}…`;
    rows.push([
      `    ${name}`,
      `removed ${entry.count} node${entry.count === 1 ? '' : 's'}`,
      `e.g. ${example}`,
    ]);
  }
  if (rows.length === 0) return ['    filters: no node was filtered out'];
  return ['    filtered out:', ...formatTable([['', '', ''], ...rows]).slice(1)];
}

export function explanationLines(replica: ReplicaExplanation, now: number, wide: boolean): string[] {
  const decision = replica.decision;
  const where = replica.node === undefined ? '' : ` on ${shortNode(replica.node, wide)}`;
  const when =
    replica.decidedAt === undefined
      ? 'decided now for this answer'
      : `decided ${age(replica.decidedAt, now)} ago`;
  const lines = [`replica ${replica.index} (${replica.replicaId}): ${replica.state}${where}; ${when}`];
  switch (decision.type) {
    case 'placed': {
      lines.push(
        `  placed on ${shortNode(decision.node, wide)}: ${decision.feasible} feasible node${decision.feasible === 1 ? '' : 's'}, best first:`,
      );
      const rows = [['NODE', ...scoreCriteria.map((c) => c.toUpperCase()), 'TOTAL']];
      for (const candidate of decision.candidates)
        rows.push([
          shortNode(candidate.node, wide),
          ...scoreCriteria.map((criterion) => candidate.scores[criterion].toFixed(2)),
          candidate.total.toFixed(3),
        ]);
      lines.push(...formatTable(rows).map((line) => `    ${line}`));
      lines.push(...filterLines(decision.filtered, wide));
      break;
    }
    case 'preempt':
      lines.push(`  preempts on ${shortNode(decision.node, wide)}: ${decision.reason}`);
      lines.push(
        ...formatTable([
          ['EVICTS', 'WORKLOAD', 'PRIORITY'],
          ...decision.evictions.map((e) => [e.replicaId, e.workloadId, String(e.priority)]),
        ]).map((line) => `    ${line}`),
      );
      lines.push(...filterLines(decision.filtered, wide));
      break;
    case 'pending':
      lines.push(`  pending: ${decision.reason}`);
      lines.push(`    ${decision.nodes} node${decision.nodes === 1 ? '' : 's'} considered`);
      lines.push(...filterLines(decision.filtered, wide));
      break;
  }
  return lines;
}

export function formatExplain(reply: ExplainReply, now: number, wide: boolean): string[] {
  if (reply.replicas.length === 0)
    return [`${reply.workloadId}: no replicas to explain (scaled to 0, or not reconciled yet)`];
  return [
    `${reply.workloadId}:`,
    ...reply.replicas.flatMap((replica) => explanationLines(replica, now, wide)),
  ];
}

export async function explainCommand(argv: string[], io: CliIo): Promise<number> {
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
    io.out(explainUsage);
    return 0;
  }
  const [name] = positionalArgs('explain', positionals, 1, '<workload>') as [string];
  const workloadId = workloadIdArgument(name);
  return withWorkloads(values, io, async (workloads) => {
    const reply = await workloads.explain(workloadId);
    if (values.json === true) io.out(JSON.stringify(reply));
    else for (const line of formatExplain(reply, Date.now(), values.wide === true)) io.out(line);
    return 0;
  });
}
