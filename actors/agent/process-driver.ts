/**
 * Runs a process replica as a real OS process in its own process group, with stdout and stderr
 * in rotated log files and, where cgroup v2 is delegated to the agent, CPU and memory limits.
 *
 * - The command is resolved on the agent's PATH first, so a missing or non-executable command
 *   rejects `start` with a `ReplicaStartError` naming it.
 * - Environment: PATH, HOME and LANG from the agent, then the spec's env, then the launch env
 *   (CLOUDLESS_*); nothing else of the agent's environment leaks in.
 * - Working directory: the spec's `workingDir`, else the replica's directory (both created).
 * - Stop: SIGTERM to the whole group, SIGKILL to the group once `graceMs` has passed. When the
 *   main process ends (stopped or not), what is left of its group gets the rest of the grace
 *   (on stop) and is then killed with SIGKILL: a replica is its main process, nothing outlives it.
 * - Limits: when `CgroupManager.detect()` allows it, the replica gets its own cgroup. The child
 *   is spawned as `/bin/sh -c 'read <&3; exec "$0" "$@"' <command> <args…>`: the shell waits on
 *   fd 3 until the agent has written its pid to `cgroup.procs`, then execs the command, so the
 *   command never runs a single instruction outside its cgroup (only the few-KiB shell does, and
 *   blocked in read). Without cgroups the command is spawned directly and `limits` says why they
 *   are not enforced.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidRequestError } from '../../runtime/errors.ts';
import type { ProcessDriverSpec } from '../coordinator/workload-spec.ts';
import { CgroupManager, type ReplicaCgroup } from './cgroup.ts';
import type { Driver, LimitsReport, ReplicaExit, ReplicaHandle, ReplicaLaunch } from './driver.ts';
import { LogWriter } from './log-files.ts';
import { groupAlive, signalGroup, waitGroupGone } from './process-group.ts';
import { ReplicaStartError } from './replica-start-error.ts';

export interface ProcessDriverComponents {
  /** Creates the replicas' cgroups; default: a `CgroupManager` on this machine's cgroup tree. */
  readonly cgroups?: CgroupManager;
  /** The agent's environment, for PATH lookup and the base env; default `process.env`. */
  readonly agentEnv?: Readonly<Record<string, string | undefined>>;
}

export interface ProcessDriverInit {
  /** Variables copied from the agent's environment; default PATH, HOME, LANG. */
  readonly baseEnvNames?: readonly string[];
  /** Per log file; default 10 MiB. */
  readonly logMaxBytes?: number;
  /** Rotated log files kept per stream; default 3. */
  readonly logKeepRotated?: number;
  /** Bound on waiting for a SIGKILLed group to die and the pipes to close; default 2000 ms. */
  readonly cleanupTimeoutMs?: number;
}

const gateScript = 'read -r _ <&3 || exit 125; exec 3<&-; exec "$0" "$@"';

function isProcessSpec(spec: ReplicaLaunch['driver']): spec is ProcessDriverSpec {
  return spec.type === 'process';
}

/** The absolute path of `command`: as given when absolute, else the first executable on PATH. */
export async function resolveCommand(command: string, searchPath: string): Promise<string> {
  if (command === '') throw new ReplicaStartError('invalid-launch', 'process replica has an empty command');
  const candidates = command.includes('/')
    ? [command]
    : searchPath
        .split(path.delimiter)
        .filter((dir) => dir !== '')
        .map((dir) => path.join(dir, command));
  if (command.includes('/') && !path.isAbsolute(command)) {
    throw new ReplicaStartError(
      'invalid-launch',
      `command ${command} is a relative path; give an absolute path or a name on the agent's PATH`,
    );
  }
  let deniedAt: string | undefined;
  for (const candidate of candidates) {
    try {
      const info = await stat(candidate);
      if (!info.isFile()) continue;
    } catch {
      continue;
    }
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      deniedAt ??= candidate;
    }
  }
  if (deniedAt !== undefined) {
    throw new ReplicaStartError(
      'permission-denied',
      `command ${command} (${deniedAt}) is not executable by the agent (EACCES); chmod +x it`,
    );
  }
  throw new ReplicaStartError(
    'command-not-found',
    command.includes('/')
      ? `command ${command} does not exist (ENOENT)`
      : `command ${command} was not found on the agent's PATH (ENOENT); install it or give an absolute path`,
  );
}

function describeExit(
  code: number | null,
  signal: NodeJS.Signals | null,
  why: { stopGraceMs: number | undefined; killedAfterGrace: boolean; oom: boolean },
): string {
  if (signal !== null) {
    if (why.oom) return `killed by ${signal} (memory limit)`;
    if (why.killedAfterGrace) return `killed by ${signal} (did not stop within ${why.stopGraceMs} ms)`;
    if (why.stopGraceMs !== undefined) return `killed by ${signal} (stopped)`;
    return `killed by ${signal}`;
  }
  const stopped = why.stopGraceMs !== undefined ? ' (stopped)' : '';
  return `exited with code ${code}${stopped}`;
}

/** Spawns process replicas; see the file comment for what it guarantees. */
export class ProcessDriver implements Driver {
  readonly type = 'process' as const;
  readonly #cgroups: CgroupManager;
  readonly #agentEnv: Readonly<Record<string, string | undefined>>;
  readonly #init: ProcessDriverInit;

  constructor(components: ProcessDriverComponents = {}, init: ProcessDriverInit = {}) {
    this.#cgroups = components.cgroups ?? new CgroupManager();
    this.#agentEnv = components.agentEnv ?? process.env;
    this.#init = init;
  }

  async start(launch: ReplicaLaunch, options: { signal?: AbortSignal } = {}): Promise<ReplicaHandle> {
    const spec = launch.driver;
    if (!isProcessSpec(spec)) {
      throw new ReplicaStartError('invalid-launch', `ProcessDriver cannot run a ${spec.type} replica`);
    }
    const checkAborted = (): void => {
      if (options.signal?.aborted) {
        throw new ReplicaStartError('aborted', `start of replica ${launch.replicaId} was aborted`);
      }
    };
    checkAborted();
    const executable = await resolveCommand(spec.command, this.#agentEnv.PATH ?? '');
    const cwd = spec.workingDir ?? launch.dir;
    if (!path.isAbsolute(cwd)) {
      throw new ReplicaStartError('invalid-launch', `working directory ${cwd} is not absolute`);
    }
    await mkdir(launch.dir, { recursive: true });
    await mkdir(cwd, { recursive: true });
    const env: Record<string, string> = {};
    for (const name of this.#init.baseEnvNames ?? ['PATH', 'HOME', 'LANG']) {
      const value = this.#agentEnv[name];
      if (value !== undefined) env[name] = value;
    }
    Object.assign(env, spec.env, launch.env);

    const logInit = {
      dir: launch.dir,
      maxBytes: this.#init.logMaxBytes,
      keepRotated: this.#init.logKeepRotated,
    };
    const stdoutLog = new LogWriter({ ...logInit, stream: 'stdout' });
    const stderrLog = new LogWriter({ ...logInit, stream: 'stderr' });
    const logErrors: Error[] = [];
    for (const writer of [stdoutLog, stderrLog]) writer.on('error', (error) => logErrors.push(error));
    try {
      await Promise.all([stdoutLog.opened, stderrLog.opened]);
      checkAborted();
    } catch (error) {
      await Promise.all([stdoutLog.close(), stderrLog.close()]).catch(() => {});
      throw error;
    }

    let cgroup: ReplicaCgroup | undefined;
    let limits: LimitsReport;
    try {
      cgroup = await this.#cgroups.create(launch.replicaId, launch.resources);
      limits = { enforced: true, detail: `cgroup v2 ${cgroup.path}` };
    } catch (error) {
      limits = {
        enforced: false,
        detail: `cgroup v2 not writable: ${error instanceof Error ? error.message : String(error)}`,
      };
    }

    let child: ChildProcess;
    try {
      child =
        cgroup === undefined
          ? spawn(executable, [...spec.args], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
          : spawn('/bin/sh', ['-c', gateScript, executable, ...spec.args], {
              cwd,
              env,
              detached: true,
              stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
            });
    } catch (error) {
      await cleanupFailedStart(cgroup, stdoutLog, stderrLog);
      throw new ReplicaStartError(
        'spawn-failed',
        `cannot spawn ${spec.command}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    const pid = child.pid;
    if (pid === undefined) {
      const error = await new Promise<Error>((resolve) => child.once('error', resolve));
      await cleanupFailedStart(cgroup, stdoutLog, stderrLog);
      const code = (error as NodeJS.ErrnoException).code;
      throw new ReplicaStartError(
        code === 'ENOENT' ? 'command-not-found' : code === 'EACCES' ? 'permission-denied' : 'spawn-failed',
        `cannot spawn ${spec.command} (${executable}): ${error.message}`,
        { cause: error },
      );
    }
    (child.stdout as Readable).pipe(stdoutLog, { end: false });
    (child.stderr as Readable).pipe(stderrLog, { end: false });

    if (cgroup !== undefined) {
      const gate = child.stdio[3] as NodeJS.WritableStream & { destroy(): void };
      try {
        await cgroup.addProcess(pid);
      } catch (error) {
        limits = {
          enforced: false,
          detail: `cgroup v2 not writable: cannot move pid ${pid} into ${cgroup.path} (${(error as Error).message})`,
        };
        await cgroup.remove().catch(() => {});
        cgroup = undefined;
      }
      // Opens the gate: the shell execs the command, now inside its cgroup (or without one).
      gate.end('go\n');
    }

    return new ProcessReplica({
      pid,
      child,
      limits,
      cgroup,
      logs: [stdoutLog, stderrLog],
      logErrors,
      cleanupTimeoutMs: this.#init.cleanupTimeoutMs ?? 2000,
    });
  }
}

async function cleanupFailedStart(cgroup: ReplicaCgroup | undefined, ...logs: LogWriter[]): Promise<void> {
  await Promise.all(logs.map((log) => log.close().catch(() => {})));
  await cgroup?.remove().catch(() => {});
}

interface ProcessReplicaInit {
  readonly pid: number;
  readonly child: ChildProcess;
  readonly limits: LimitsReport;
  readonly cgroup: ReplicaCgroup | undefined;
  readonly logs: readonly LogWriter[];
  readonly logErrors: Error[];
  readonly cleanupTimeoutMs: number;
}

class ProcessReplica implements ReplicaHandle {
  readonly pid: number;
  readonly limits: LimitsReport;
  readonly exited: Promise<ReplicaExit>;
  readonly #init: ProcessReplicaInit;
  #stopDeadline: number | undefined;
  #stopGraceMs: number | undefined;
  #killedAfterGrace = false;
  #killTimer: NodeJS.Timeout | undefined;

  constructor(init: ProcessReplicaInit) {
    this.pid = init.pid;
    this.limits = init.limits;
    this.#init = init;
    const closed = new Promise<void>((resolve) => init.child.once('close', () => resolve()));
    this.exited = new Promise<ReplicaExit>((resolve) => {
      init.child.once('exit', (code, signal) => {
        this.#finish(code, signal, closed).then(resolve, (error: unknown) =>
          resolve({
            code: code ?? undefined,
            signal: signal ?? undefined,
            reason: `${describeExit(code, signal, this.#why(false))}; cleanup failed: ${(error as Error).message}`,
          }),
        );
      });
    });
  }

  #why(oom: boolean): { stopGraceMs: number | undefined; killedAfterGrace: boolean; oom: boolean } {
    return { stopGraceMs: this.#stopGraceMs, killedAfterGrace: this.#killedAfterGrace, oom };
  }

  async #finish(
    code: number | null,
    signal: NodeJS.Signals | null,
    closed: Promise<void>,
  ): Promise<ReplicaExit> {
    const { pid, child, cgroup, logs, logErrors, cleanupTimeoutMs } = this.#init;
    // On stop, the rest of the group gets what is left of the grace; then nothing survives.
    const deadline = this.#stopDeadline;
    if (deadline !== undefined && deadline > Date.now() && (await groupAlive(pid))) {
      await waitGroupGone(pid, deadline - Date.now());
    }
    signalGroup(pid, 'SIGKILL');
    clearTimeout(this.#killTimer);
    const problems: string[] = [];
    if (!(await waitGroupGone(pid, cleanupTimeoutMs))) {
      problems.push(`process group ${pid} still has live processes after SIGKILL`);
    }
    // A process that left the group (setsid) may hold the pipes open: stop reading after a bound.
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      closed.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), cleanupTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      child.stdout?.destroy();
      child.stderr?.destroy();
      problems.push('stdout/stderr stayed open after the process group ended (a process left the group?)');
    }
    for (const log of logs) {
      await log.close().catch((error: unknown) => logErrors.push(error as Error));
    }
    let oom = false;
    if (cgroup !== undefined) {
      oom = await cgroup.oomKilled();
      await cgroup.remove().catch((error: unknown) => problems.push((error as Error).message));
    }
    if (logErrors.length > 0) problems.push(`logs incomplete: ${logErrors[0]?.message}`);
    const reason = describeExit(code, signal, this.#why(oom));
    return {
      code: code ?? undefined,
      signal: signal ?? undefined,
      reason: problems.length === 0 ? reason : `${reason}; ${problems.join('; ')}`,
    };
  }

  stop(graceMs: number): Promise<ReplicaExit> {
    if (this.#stopDeadline === undefined) {
      if (!Number.isFinite(graceMs) || graceMs < 0) {
        return Promise.reject(new InvalidRequestError(`stop grace must be ≥ 0 ms, got ${graceMs}`));
      }
      this.#stopGraceMs = graceMs;
      this.#stopDeadline = Date.now() + graceMs;
      if (this.#init.child.exitCode === null && this.#init.child.signalCode === null) {
        signalGroup(this.pid, 'SIGTERM');
        this.#killTimer = setTimeout(() => {
          const child = this.#init.child;
          if (child.exitCode === null && child.signalCode === null) this.#killedAfterGrace = true;
          signalGroup(this.pid, 'SIGKILL');
        }, graceMs);
        void this.exited.then(() => clearTimeout(this.#killTimer));
      }
    }
    return this.exited;
  }
}
