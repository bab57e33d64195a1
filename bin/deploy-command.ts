/**
 * `cloudless deploy -f <spec>`: validates the spec file locally (every problem, with its line;
 * exit code 2), submits the validated spec to the workload front door, prints what changed, and
 * unless `--detach` waits until the workload's current revision is up: every replica running and
 * ready (a service) or every task succeeded (a batch job). It prints a line each time the
 * progress changes; on a failed task or at `--wait-timeout` it exits 1 saying which replicas are
 * not there and why (for a pending one, the scheduler's reason from explain).
 */
import { parseArgs } from 'node:util';
import type { ReplicaRecord } from '../actors/coordinator/workload-records.ts';
import type { DeployResult, WorkloadStatus } from '../actors/coordinator/workload-service.ts';
import { AbortError, CloudlessError, InvalidRequestError } from '../runtime/errors.ts';
import type { CliIo } from './cli.ts';
import { commonOptions } from './kv-commands.ts';
import { readSpecFile } from './spec-file.ts';
import { parseDuration } from './token-commands.ts';
import { shortNode, type WorkloadClient, withWorkloads } from './workload-client.ts';

export const deployUsage = `Usage: cloudless deploy -f <spec.yaml|spec.json> [--detach] [--wait-timeout 120s] [client options]

Validates the spec file (every problem at once, with its line; exit code 2), submits it, and
prints 'workload <namespace>/<name> created|updated|scaled|unchanged (revision N)'. Then, unless
--detach, waits until every replica of the current revision is running and ready (service) or
every task has succeeded (batch), printing a line each time the progress changes. Exit code 1
when a task fails, or at --wait-timeout (default 120s; s, m or h) with what is not ready and why.`;

const defaultWaitMs = 120_000;
const pollMs = 500;

/** Resolves after `ms`, or at once when `signal` aborts (no rejection: the caller checks it). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export interface Progress {
  /** `default/web: 2/3 ready (1 starting)`. */
  readonly line: string;
  readonly done: boolean;
  /** Replicas that ended in failure (a failed batch task, a service that may not restart). */
  readonly failed: readonly ReplicaRecord[];
  /** Slots of the current workload that are not done yet (index order), with missing ones as undefined. */
  readonly waiting: readonly { readonly index: number; readonly record: ReplicaRecord | undefined }[];
}

function isDone(status: WorkloadStatus, record: ReplicaRecord): boolean {
  return status.kind === 'batch'
    ? record.state === 'succeeded'
    : record.state === 'running' && record.ready && record.specRevision === status.revision;
}

/** Where a workload stands against its spec (only slots below `desired` count). */
export function progressOf(status: WorkloadStatus): Progress {
  const bySlot = new Map(status.replicas.map((record) => [record.index, record]));
  const counts = new Map<string, number>();
  const waiting: { index: number; record: ReplicaRecord | undefined }[] = [];
  const failed: ReplicaRecord[] = [];
  let done = 0;
  for (let index = 0; index < status.desired; index++) {
    const record = bySlot.get(index);
    if (record !== undefined && isDone(status, record)) {
      done++;
      continue;
    }
    waiting.push({ index, record });
    if (record?.state === 'failed') failed.push(record);
    const what =
      record === undefined
        ? 'pending'
        : status.kind === 'service' && record.specRevision < status.revision && record.state !== 'pending'
          ? `on revision ${record.specRevision}`
          : record.state === 'running' && status.kind === 'service'
            ? 'running, not ready'
            : record.state;
    counts.set(what, (counts.get(what) ?? 0) + 1);
  }
  const goal = status.kind === 'batch' ? 'succeeded' : 'ready';
  const detail = [...counts].map(([what, n]) => `${n} ${what}`).join(', ');
  return {
    line: `${status.workloadId}: ${done}/${status.desired} ${goal}${detail === '' ? '' : ` (${detail})`}`,
    done: waiting.length === 0,
    failed,
    waiting,
  };
}

function describeEnd(record: ReplicaRecord): string {
  const exit =
    record.exitCode === undefined || (record.reason ?? '').includes(String(record.exitCode))
      ? ''
      : ` (exit code ${record.exitCode})`;
  return `${record.reason ?? 'no reason recorded'}${exit}`;
}

/** One line per replica that is not there yet, with its reason; pending ones ask explain. */
async function whyNotReady(
  workloads: WorkloadClient,
  status: WorkloadStatus,
  progress: Progress,
): Promise<string[]> {
  let schedulerReasons = new Map<number, string>();
  if (progress.waiting.some(({ record }) => record === undefined || record.state === 'pending')) {
    try {
      const explained = await workloads.explain(status.workloadId);
      schedulerReasons = new Map(
        explained.replicas.map((replica) => {
          const decision = replica.decision;
          const reason =
            decision.type === 'pending'
              ? decision.reason
              : decision.type === 'preempt'
                ? `waiting for ${decision.evictions.length} lower-priority replica(s) to be evicted from ${shortNode(decision.node)}: ${decision.reason}`
                : `placed on ${shortNode(decision.node)}, not started yet`;
          return [replica.index, reason];
        }),
      );
    } catch (error) {
      schedulerReasons = new Map();
      for (const { index } of progress.waiting)
        schedulerReasons.set(index, `the scheduler could not explain it (${(error as Error).message})`);
    }
  }
  return progress.waiting.map(({ index, record }) => {
    if (record === undefined) return `  replica ${index}: not created yet`;
    const where = record.node === undefined ? '' : ` on ${shortNode(record.node)}`;
    const head = `  replica ${index} (attempt ${record.attempt}): ${record.state}${record.state === 'running' && !record.ready ? ', not ready' : ''}${where}`;
    const reason =
      record.state === 'pending'
        ? (schedulerReasons.get(index) ?? record.reason ?? 'waiting for the scheduler')
        : record.specRevision < status.revision && status.kind === 'service'
          ? `runs revision ${record.specRevision}; the rollout replaces one replica at a time`
          : (record.reason ??
            (record.state === 'running' ? 'its health check has not passed yet' : 'no reason recorded'));
    return `${head}: ${reason}`;
  });
}

/**
 * Polls `ps` until the workload is up, a replica fails, the deadline passes or Ctrl-C; prints a
 * line per change. Transient errors (no leader during an election) are retried until the deadline.
 */
export async function waitUntilReady(
  workloads: WorkloadClient,
  workloadId: string,
  io: CliIo,
  init: { timeoutMs: number; progressTo?: (line: string) => void },
): Promise<number> {
  const report = init.progressTo ?? io.out;
  const started = performance.now();
  let lastLine = '';
  let lastError = '';
  let status: WorkloadStatus | undefined;
  let progress: Progress | undefined;
  for (;;) {
    try {
      [status] = await workloads.ps(workloadId);
      if (status === undefined) throw new CloudlessError('NOT_FOUND', `there is no workload ${workloadId}`);
      progress = progressOf(status);
      if (progress.line !== lastLine) report(progress.line);
      lastLine = progress.line;
      lastError = '';
      if (progress.failed.length > 0) {
        const noun = status.kind === 'batch' ? 'task' : 'replica';
        for (const record of progress.failed)
          io.err(`cloudless: ${noun} ${record.index} of ${workloadId} failed: ${describeEnd(record)}`);
        return 1;
      }
      if (progress.done) {
        report(
          status.kind === 'batch'
            ? `${workloadId}: all ${status.desired} task(s) succeeded`
            : `${workloadId}: all ${status.desired} replica(s) of revision ${status.revision} running and ready`,
        );
        return 0;
      }
    } catch (error) {
      if (workloads.interrupt.aborted) break;
      // A workload that is gone, or a request refused, will not get better by waiting.
      if (
        !(error instanceof CloudlessError) ||
        !['UNAVAILABLE', 'TIMEOUT', 'NOT_LEADER'].includes(error.code)
      )
        throw error;
      if (error.message !== lastError) io.err(`cloudless: ${error.message} (retrying)`);
      lastError = error.message;
    }
    if (performance.now() - started >= init.timeoutMs) {
      const seconds = Math.round(init.timeoutMs / 1000);
      if (status === undefined || progress === undefined) {
        io.err(`cloudless: ${workloadId}: no status within ${seconds}s: ${lastError}`);
        return 1;
      }
      io.err(
        `cloudless: ${workloadId} is not ready after ${seconds}s (${progress.line.slice(workloadId.length + 2)}):`,
      );
      for (const line of await whyNotReady(workloads, status, progress)) io.err(line);
      return 1;
    }
    await pause(pollMs, workloads.interrupt);
    if (workloads.interrupt.aborted) break;
  }
  io.err(`cloudless: stopped waiting; ${workloadId} stays deployed ('cloudless ps ${workloadId}' shows it)`);
  return 1;
}

export function describeDeploy(result: DeployResult): string {
  return `workload ${result.workloadId} ${result.outcome} (revision ${result.revision})`;
}

export async function deployCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      ...commonOptions,
      file: { type: 'string', short: 'f' },
      detach: { type: 'boolean', short: 'd' },
      'wait-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    io.out(deployUsage);
    return 0;
  }
  if (positionals.length > 0)
    throw new InvalidRequestError(
      `deploy takes the spec as -f <file>, got '${positionals.join(' ')}': e.g. cloudless deploy -f examples/web.yaml`,
    );
  if (values.file === undefined)
    throw new InvalidRequestError(
      'deploy needs -f <spec.yaml|spec.json>: e.g. cloudless deploy -f examples/web.yaml',
    );
  const waitMs =
    values['wait-timeout'] === undefined
      ? defaultWaitMs
      : parseDuration(values['wait-timeout'], '--wait-timeout');
  // Validated here first: a bad file never reaches the cluster, and every problem names its line.
  const spec = await readSpecFile(values.file);
  return withWorkloads(values, io, async (workloads) => {
    const result = await workloads.deploy(spec);
    io.out(values.json === true ? JSON.stringify(result) : describeDeploy(result));
    if (values.detach === true) return 0;
    try {
      return await waitUntilReady(workloads, result.workloadId, io, {
        timeoutMs: waitMs,
        // With --json, stdout holds only the JSON answer.
        progressTo: values.json === true ? io.err : io.out,
      });
    } catch (error) {
      if (error instanceof AbortError) return 1;
      throw error;
    }
  });
}
