/**
 * The node agent every agent-role node runs at `/user/agent` (docs/workloads.md). It runs the
 * replica attempts the leader assigns to this node and reports what happens to them:
 *
 * - `assignments` are accepted only from the leader this node knows (from its membership actor)
 *   with a term not older than the last one accepted; anything else is refused and logged. A set
 *   is whole: attempts not in it are stopped (SIGTERM, then SIGKILL after the grace period), so
 *   after a partition heals the first set stops whatever the cluster replaced meanwhile;
 * - each attempt runs with its driver (`process` or `worker`) in `<data-dir>/replicas/<id>/`, with
 *   its output captured in rotated files there; its restart policy applies here, with backoff;
 * - readiness comes from the health check when there is one, else from running;
 * - state changes go to the leader's workload front door; unacknowledged ones are sent again every
 *   `reportEveryMs`, so a report made while cut off arrives after the partition heals;
 * - cut off from every coordinator, it keeps its replicas running.
 *
 * A restarted agent cannot supervise the process groups its previous incarnation started (it has
 * no handle on them), so it kills those it finds recorded (`<dir>/pid`) before taking assignments:
 * the cluster has marked them lost or will replace them.
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { CloudlessError } from '../../runtime/errors.ts';
import {
  type AssignedReplica,
  type Assignments,
  agentLimits,
  type ReadLogsRequest,
  type ReplicaStatusAck,
  type ReplicaStatusReport,
  type ReplicaStatusUpdate,
  type ReportedState,
} from './agent-protocol.ts';
import type { Driver, ReplicaExit, ReplicaHandle } from './driver.ts';
import { HealthMonitor } from './health-check.ts';
import { readLogs } from './log-files.ts';
import { ProcessDriver } from './process-driver.ts';
import { signalGroup } from './process-group.ts';
import { decideRestart } from './restart-backoff.ts';
import { WorkerDriver } from './worker-driver.ts';

/** Where an agent sends its status reports (the leader's workload front door). */
export const workloadFrontDoorPath = '/user/workloads';

export interface LeaderView {
  readonly leaderId: string | undefined;
  readonly term: number;
}

export interface AgentProps {
  readonly dataDir: string;
  /** Who leads now, as this node knows it (its membership actor's view). */
  readonly leader: () => Promise<LeaderView>;
  readonly drivers?: { readonly process?: Driver; readonly worker?: Driver };
  /** Between SIGTERM and SIGKILL when an attempt is stopped; default 5000 ms. */
  readonly stopGraceMs?: number;
  readonly reportEveryMs?: number;
  readonly leaderRefreshMs?: number;
  /** Finished attempts' directories kept for `logs`; default 50. */
  readonly keepFinished?: number;
  readonly random?: () => number;
}

type Phase = 'launching' | 'running' | 'backoff' | 'stopping' | 'succeeded' | 'failed';

interface Run {
  readonly assigned: AssignedReplica;
  readonly dir: string;
  phase: Phase;
  /** Bumped per launch, so events of an earlier launch are ignored. */
  generation: number;
  handle: ReplicaHandle | undefined;
  health: HealthMonitor | undefined;
  ready: boolean;
  restarts: number;
  consecutiveFailures: number;
  startedAt: number;
  exitCode: number | undefined;
  reason: string | undefined;
  limits: string | undefined;
  /** Stopped because it left the assignment: forget it once it has exited. */
  unassigned: boolean;
}

export type AgentMessage =
  | Assignments
  | ReadLogsRequest
  | ReplicaStatusAck
  | { readonly type: 'agent:leader'; readonly view: LeaderView | undefined }
  | { readonly type: 'agent:refresh' }
  | { readonly type: 'agent:report' }
  | { readonly type: 'agent:ready-to-run' }
  | {
      readonly type: 'agent:launched';
      readonly replicaId: string;
      readonly generation: number;
      readonly handle: ReplicaHandle | undefined;
      readonly error: string | undefined;
    }
  | {
      readonly type: 'agent:exited';
      readonly replicaId: string;
      readonly generation: number;
      readonly exit: ReplicaExit;
    }
  | { readonly type: 'agent:restart'; readonly replicaId: string; readonly generation: number }
  | {
      readonly type: 'agent:health';
      readonly replicaId: string;
      readonly generation: number;
      readonly ready: boolean;
    }
  | { readonly type: 'agent:noop' }
  /** Stops every replica (grace period, then SIGKILL) and answers once they have all exited. */
  | {
      readonly type: 'stop';
      readonly replyTo: ActorRef<{ readonly type: 'stopped'; readonly replicas: number }>;
    };

/** A directory name for a replica attempt id (`ns/name/3#2` → `ns_name_3_2`). */
export function replicaDirName(replicaId: string): string {
  return replicaId.replace(/[^a-zA-Z0-9-]/g, '_');
}

const replicaIdPattern = /^[a-z0-9-]{1,63}\/[a-z0-9-]{1,63}\/\d{1,6}#\d{1,9}$/;

function validAssignment(value: unknown): value is AssignedReplica {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Partial<AssignedReplica>;
  return (
    typeof r.replicaId === 'string' &&
    replicaIdPattern.test(r.replicaId) &&
    (r.kind === 'service' || r.kind === 'batch') &&
    typeof r.driver === 'object' &&
    r.driver !== null &&
    (r.driver.type === 'process' || r.driver.type === 'worker') &&
    typeof r.resources === 'object' &&
    typeof r.restartPolicy === 'object'
  );
}

/** Kills process groups a previous incarnation of the agent left running. */
async function killOrphans(replicasDir: string): Promise<number> {
  let killed = 0;
  const entries = await readdir(replicasDir).catch(() => [] as string[]);
  for (const entry of entries) {
    const pidFile = path.join(replicasDir, entry, 'pid');
    const text = await readFile(pidFile, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const pid = Number(text.trim());
    if (Number.isSafeInteger(pid) && pid > 1 && signalGroup(pid, 'SIGKILL')) killed++;
    await rm(pidFile, { force: true });
  }
  return killed;
}

export function agentActor(props: AgentProps): Behavior<AgentMessage> {
  const stopGraceMs = props.stopGraceMs ?? 5000;
  const reportEveryMs = props.reportEveryMs ?? 1000;
  const keepFinished = props.keepFinished ?? 50;
  const random = props.random ?? Math.random;
  const replicasDir = path.join(props.dataDir, 'replicas');
  const drivers: Record<'process' | 'worker', Driver> = {
    process: props.drivers?.process ?? new ProcessDriver(),
    worker: props.drivers?.worker ?? new WorkerDriver(),
  };

  return Behaviors.setup((ctx) =>
    Behaviors.withTimers<AgentMessage>((timers) => {
      const runs = new Map<string, Run>();
      /** Latest unacknowledged update per attempt, with a version so a late ack of an older one does not clear it. */
      const unreported = new Map<string, { update: ReplicaStatusUpdate; version: number }>();
      const sentVersion = new Map<string, number>();
      let version = 0;
      let leader: LeaderView = { leaderId: undefined, term: 0 };
      let acceptedTerm = 0;
      let refreshing = false;
      let ready = false;
      let held: Assignments | undefined;
      const finishedOrder: string[] = [];

      function report(run: Run, state: ReportedState): void {
        const update: ReplicaStatusUpdate = {
          replicaId: run.assigned.replicaId,
          state,
          ready: run.ready,
          restarts: run.restarts,
          ...(run.exitCode === undefined ? {} : { exitCode: run.exitCode }),
          ...(run.reason === undefined ? {} : { reason: run.reason.slice(0, 2000) }),
          ...(run.limits === undefined ? {} : { limits: run.limits.slice(0, 500) }),
        };
        unreported.set(run.assigned.replicaId, { update, version: ++version });
        timers.startSingleTimer('report-soon', { type: 'agent:report' }, 0);
      }

      function sendReports(): void {
        if (unreported.size === 0 || leader.leaderId === undefined) return;
        const updates: ReplicaStatusUpdate[] = [];
        for (const [replicaId, entry] of unreported) {
          if (updates.length >= agentLimits.maxUpdatesPerReport) break;
          updates.push(entry.update);
          sentVersion.set(replicaId, entry.version);
        }
        const message: ReplicaStatusReport = {
          type: 'replica-status',
          from: ctx.system.nodeId,
          updates,
          replyTo: ctx.self as ActorRef<ReplicaStatusAck>,
        };
        ctx.system
          .resolve<ReplicaStatusReport>({ node: leader.leaderId, path: workloadFrontDoorPath })
          .tell(message);
      }

      function launch(run: Run): void {
        const generation = ++run.generation;
        run.phase = 'launching';
        run.ready = false;
        run.startedAt = performance.now();
        const { assigned } = run;
        const work = (async () => {
          await mkdir(run.dir, { recursive: true });
          const handle = await drivers[assigned.driver.type].start({
            replicaId: assigned.replicaId,
            driver: assigned.driver,
            resources: assigned.resources,
            dir: run.dir,
            env: {
              CLOUDLESS_WORKLOAD: assigned.workloadId,
              CLOUDLESS_REPLICA: String(assigned.index),
              CLOUDLESS_REPLICA_ID: assigned.replicaId,
              CLOUDLESS_NODE: ctx.system.nodeId,
            },
          });
          if (assigned.driver.type === 'process')
            await writeFile(path.join(run.dir, 'pid'), `${handle.pid}\n`);
          return handle;
        })();
        ctx.pipeToSelf(work, (outcome) => ({
          type: 'agent:launched',
          replicaId: assigned.replicaId,
          generation,
          handle: outcome.ok ? outcome.value : undefined,
          error: outcome.ok ? undefined : outcome.error.message,
        }));
      }

      function afterExit(run: Run, exit: ReplicaExit): void {
        void run.health?.stop();
        run.health = undefined;
        run.handle = undefined;
        run.ready = false;
        run.exitCode = exit.code;
        run.reason = exit.reason;
        rm(path.join(run.dir, 'pid'), { force: true }).catch((error: unknown) =>
          ctx.log.warn('pid file not removed', {
            replica: run.assigned.replicaId,
            error: (error as Error).message,
          }),
        );
        if (run.phase === 'stopping') {
          finish(run);
          return;
        }
        const decision = decideRestart(
          run.assigned.restartPolicy,
          {
            kind: run.assigned.kind,
            consecutiveFailures: run.consecutiveFailures,
            exitCode: exit.code,
            ranForMs: performance.now() - run.startedAt,
          },
          { random },
        );
        run.consecutiveFailures = decision.consecutiveFailures;
        if (decision.action === 'restart') {
          run.phase = 'backoff';
          run.restarts++;
          ctx.log.info('replica restarting', {
            replica: run.assigned.replicaId,
            reason: exit.reason,
            delayMs: decision.delayMs,
          });
          report(run, 'starting');
          timers.startSingleTimer(
            `restart:${run.assigned.replicaId}`,
            { type: 'agent:restart', replicaId: run.assigned.replicaId, generation: run.generation },
            decision.delayMs,
          );
          return;
        }
        run.phase = decision.state;
        run.reason = decision.reason;
        ctx.log.info(`replica ${decision.state}`, {
          replica: run.assigned.replicaId,
          reason: decision.reason,
        });
        report(run, decision.state);
      }

      /** The attempt is over here: forget it (its directory stays, for logs, up to `keepFinished`). */
      function finish(run: Run): void {
        runs.delete(run.assigned.replicaId);
        unreported.delete(run.assigned.replicaId);
        sentVersion.delete(run.assigned.replicaId);
        finishedOrder.push(run.dir);
        while (finishedOrder.length > keepFinished) {
          const old = finishedOrder.shift() as string;
          rm(old, { recursive: true, force: true }).catch((error: unknown) =>
            ctx.log.warn('finished replica directory not removed', {
              dir: old,
              error: (error as Error).message,
            }),
          );
        }
      }

      function stopRun(run: Run): void {
        run.unassigned = true;
        timers.cancel(`restart:${run.assigned.replicaId}`);
        if (run.phase === 'running' && run.handle !== undefined) {
          run.phase = 'stopping';
          ctx.log.info('stopping replica: no longer assigned here', { replica: run.assigned.replicaId });
          void run.health?.stop();
          void run.handle.stop(stopGraceMs);
          return;
        }
        if (run.phase === 'launching') {
          run.phase = 'stopping';
          return;
        }
        if (run.phase !== 'stopping') finish(run);
      }

      function applyAssignments(message: Assignments): void {
        acceptedTerm = Math.max(acceptedTerm, message.term);
        const wanted = new Map<string, AssignedReplica>();
        for (const assigned of message.replicas)
          if (validAssignment(assigned)) wanted.set(assigned.replicaId, assigned);
        for (const run of [...runs.values()]) if (!wanted.has(run.assigned.replicaId)) stopRun(run);
        for (const [replicaId, assigned] of wanted) {
          if (runs.has(replicaId)) continue;
          const run: Run = {
            assigned,
            dir: path.join(replicasDir, replicaDirName(replicaId)),
            phase: 'launching',
            generation: 0,
            handle: undefined,
            health: undefined,
            ready: false,
            restarts: 0,
            consecutiveFailures: 0,
            startedAt: 0,
            exitCode: undefined,
            reason: undefined,
            limits: undefined,
            unassigned: false,
          };
          runs.set(replicaId, run);
          ctx.log.info('starting replica', { replica: replicaId });
          launch(run);
          report(run, 'starting');
        }
      }

      function checkAssignments(message: Assignments): void {
        if (
          typeof message.from !== 'string' ||
          !Array.isArray(message.replicas) ||
          !Number.isSafeInteger(message.term)
        ) {
          ctx.log.warn('assignments refused: malformed');
          return;
        }
        if (message.replicas.length > agentLimits.maxAssignedReplicas) {
          ctx.log.warn('assignments refused: too many replicas', { count: message.replicas.length });
          return;
        }
        if (message.from === leader.leaderId && message.term >= Math.max(acceptedTerm, leader.term)) {
          if (ready) applyAssignments(message);
          else held = message;
          return;
        }
        if (message.term > leader.term) {
          // Possibly a new leader this node has not heard of yet: check again before refusing.
          held = message;
          refresh();
          return;
        }
        ctx.log.warn('assignments refused: not from the current leader', {
          from: message.from,
          term: message.term,
          leader: leader.leaderId,
          leaderTerm: leader.term,
        });
      }

      function refresh(): void {
        if (refreshing) return;
        refreshing = true;
        ctx.pipeToSelf(props.leader(), (outcome) => ({
          type: 'agent:leader',
          view: outcome.ok ? outcome.value : undefined,
        }));
      }

      ctx.pipeToSelf(
        mkdir(replicasDir, { recursive: true }).then(() => killOrphans(replicasDir)),
        (outcome) => {
          if (outcome.ok && outcome.value > 0)
            ctx.log.warn('killed replicas left by an earlier run of this agent', { count: outcome.value });
          if (!outcome.ok) ctx.log.error('agent data dir not usable', { error: outcome.error.message });
          return { type: 'agent:ready-to-run' };
        },
      );
      timers.startTimerWithFixedDelay('refresh', { type: 'agent:refresh' }, props.leaderRefreshMs ?? 500, 0);
      timers.startTimerWithFixedDelay('report', { type: 'agent:report' }, reportEveryMs);

      return Behaviors.receive<AgentMessage>((_c, message) => {
        switch (message.type) {
          case 'assignments':
            checkAssignments(message);
            return Behaviors.same;
          case 'agent:ready-to-run':
            ready = true;
            if (held !== undefined && held.from === leader.leaderId) {
              const pending = held;
              held = undefined;
              applyAssignments(pending);
            }
            return Behaviors.same;
          case 'agent:refresh':
            refresh();
            return Behaviors.same;
          case 'agent:leader': {
            refreshing = false;
            if (message.view !== undefined) leader = message.view;
            const pending = held;
            if (pending !== undefined && ready) {
              held = undefined;
              if (pending.from === leader.leaderId && pending.term >= Math.max(acceptedTerm, leader.term))
                applyAssignments(pending);
              else
                ctx.log.warn('assignments refused: not from the current leader', {
                  from: pending.from,
                  term: pending.term,
                  leader: leader.leaderId,
                });
            }
            return Behaviors.same;
          }
          case 'agent:report':
            sendReports();
            return Behaviors.same;
          case 'replica-status-ack':
            if (!Array.isArray(message.settled)) return Behaviors.same;
            for (const replicaId of message.settled) {
              const entry = unreported.get(replicaId);
              if (entry !== undefined && entry.version <= (sentVersion.get(replicaId) ?? 0)) {
                unreported.delete(replicaId);
                sentVersion.delete(replicaId);
              }
            }
            return Behaviors.same;
          case 'agent:launched': {
            const run = runs.get(message.replicaId);
            if (run === undefined || run.generation !== message.generation) {
              void message.handle?.stop(0);
              return Behaviors.same;
            }
            if (message.handle === undefined) {
              afterExit(run, {
                code: undefined,
                signal: undefined,
                reason: `could not start: ${message.error ?? 'unknown'}`,
              });
              return Behaviors.same;
            }
            const handle = message.handle;
            run.handle = handle;
            run.limits = handle.limits.enforced
              ? `enforced: ${handle.limits.detail}`
              : `not enforced: ${handle.limits.detail}`;
            const generation = run.generation;
            ctx.pipeToSelf(handle.exited, (outcome) => ({
              type: 'agent:exited',
              replicaId: run.assigned.replicaId,
              generation,
              exit: outcome.ok
                ? outcome.value
                : { code: undefined, signal: undefined, reason: outcome.error.message },
            }));
            if (run.phase === 'stopping') {
              void handle.stop(stopGraceMs);
              return Behaviors.same;
            }
            run.phase = 'running';
            const check = run.assigned.healthCheck;
            if (check === undefined) run.ready = true;
            else {
              const replicaId = run.assigned.replicaId;
              const self = ctx.self;
              run.health = new HealthMonitor({
                check,
                cwd: run.dir,
                onTransition: (transition) =>
                  self.tell({ type: 'agent:health', replicaId, generation, ready: transition.ready }),
              });
              run.health.start();
            }
            report(run, 'running');
            return Behaviors.same;
          }
          case 'agent:exited': {
            const run = runs.get(message.replicaId);
            if (run === undefined || run.generation !== message.generation) return Behaviors.same;
            afterExit(run, message.exit);
            return Behaviors.same;
          }
          case 'agent:restart': {
            const run = runs.get(message.replicaId);
            if (run === undefined || run.generation !== message.generation || run.phase !== 'backoff')
              return Behaviors.same;
            launch(run);
            return Behaviors.same;
          }
          case 'agent:health': {
            const run = runs.get(message.replicaId);
            if (run === undefined || run.generation !== message.generation || run.phase !== 'running')
              return Behaviors.same;
            run.ready = message.ready;
            report(run, 'running');
            return Behaviors.same;
          }
          case 'read-logs': {
            const { replicaId, stream, fromOffset, maxBytes, replyTo } = message;
            if (typeof replyTo?.tell !== 'function') {
              ctx.log.warn('read-logs refused: no replyTo');
              return Behaviors.same;
            }
            if (
              typeof replicaId !== 'string' ||
              !replicaIdPattern.test(replicaId) ||
              (stream !== 'stdout' && stream !== 'stderr') ||
              !Number.isSafeInteger(fromOffset) ||
              !Number.isSafeInteger(maxBytes) ||
              maxBytes < 1
            ) {
              replyTo.tell({
                ok: false,
                error: {
                  code: 'INVALID_REQUEST',
                  message:
                    'read-logs needs a replica id, stdout or stderr, an integer fromOffset and a positive maxBytes',
                },
              });
              return Behaviors.same;
            }
            const dir = path.join(replicasDir, replicaDirName(replicaId));
            const work = stat(dir).then(() =>
              readLogs(dir, { stream, fromOffset, maxBytes: Math.min(maxBytes, agentLimits.maxLogBytes) }),
            );
            work.then(
              (chunk) =>
                replyTo.tell({
                  ok: true,
                  data: chunk.data,
                  nextOffset: chunk.nextOffset,
                  truncated: chunk.truncated,
                }),
              (error: unknown) =>
                replyTo.tell({
                  ok: false,
                  error: {
                    code: error instanceof CloudlessError ? error.code : 'NOT_FOUND',
                    message:
                      (error as NodeJS.ErrnoException).code === 'ENOENT'
                        ? `this node has no logs of ${replicaId}`
                        : (error as Error).message,
                  },
                }),
            );
            return Behaviors.same;
          }
          case 'agent:noop':
            return Behaviors.same;
          case 'stop': {
            const handles = [...runs.values()].flatMap((run) => {
              void run.health?.stop();
              timers.cancel(`restart:${run.assigned.replicaId}`);
              run.phase = 'stopping';
              return run.handle === undefined ? [] : [run.handle.stop(stopGraceMs)];
            });
            const replyTo = message.replyTo;
            void Promise.allSettled(handles).then(() =>
              replyTo.tell({ type: 'stopped', replicas: handles.length }),
            );
            return Behaviors.same;
          }
        }
      }).receiveSignal((_c, signal) => {
        if (signal.type === 'PostStop' || signal.type === 'PreRestart') {
          for (const run of runs.values()) {
            void run.health?.stop();
            void run.handle?.stop(Math.min(stopGraceMs, 2000));
          }
        }
        return Behaviors.same;
      });
    }),
  );
}
