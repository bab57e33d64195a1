/**
 * Health probes for replicas: `runProbe` runs one probe with a deadline, `HealthMonitor` runs it
 * periodically and reports ready / not-ready transitions. A shell around real timers, sockets
 * and processes; the agent turns the transitions into replica state.
 *
 * - exec: the command in its own process group; exit 0 is healthy; at the deadline the group is
 *   killed (SIGKILL) and the probe fails.
 * - tcp: a connection to host:port is accepted.
 * - http: GET http://host:port/path answers 2xx or 3xx (redirects are not followed).
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { HealthCheck, HealthProbe } from '../coordinator/workload-spec.ts';
import { signalGroup } from './process-group.ts';

export interface ProbeResult {
  readonly healthy: boolean;
  /** In words: "exit code 0", "connection refused", "HTTP 503", "timed out after 1000 ms". */
  readonly detail: string;
}

export interface RunProbeOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** For exec probes; default: PATH, HOME, LANG of the agent. */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

function minimalEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'LANG']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** Runs `probe` once; never rejects: a probe that cannot run is unhealthy, with the reason. */
export function runProbe(probe: HealthProbe, options: RunProbeOptions): Promise<ProbeResult> {
  if (options.signal?.aborted) return Promise.resolve({ healthy: false, detail: 'aborted' });
  switch (probe.type) {
    case 'exec':
      return execProbe(probe.command, probe.args, options);
    case 'tcp':
      return tcpProbe(probe.host, probe.port, options);
    case 'http':
      return httpProbe(probe.host, probe.port, probe.path, options);
  }
}

/** Settles a probe once: clears its deadline, drops its abort listener, runs its cleanup. */
function probeSettler(
  options: RunProbeOptions,
  cleanup: () => void,
  resolve: (result: ProbeResult) => void,
): (result: ProbeResult) => void {
  let settled = false;
  const onAbort = (): void => finish({ healthy: false, detail: 'aborted' });
  const timer = setTimeout(
    () => finish({ healthy: false, detail: `timed out after ${options.timeoutMs} ms` }),
    options.timeoutMs,
  );
  options.signal?.addEventListener('abort', onAbort, { once: true });
  function finish(result: ProbeResult): void {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    cleanup();
    resolve(result);
  }
  return finish;
}

function execProbe(command: string, args: readonly string[], options: RunProbeOptions): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const child = spawn(command, [...args], {
      detached: true,
      stdio: 'ignore',
      env: { ...(options.env ?? minimalEnv()) },
      cwd: options.cwd,
    });
    const running = (): boolean => child.exitCode === null && child.signalCode === null;
    let verdict: ProbeResult | undefined;
    // A deadline or abort kills the group and records the verdict; the probe still answers only
    // once the child is gone, so nothing it started outlives it.
    const settle = probeSettler(
      options,
      () => {
        if (child.pid !== undefined && running()) signalGroup(child.pid, 'SIGKILL');
      },
      (result) => {
        verdict = result;
      },
    );
    const done = (result: ProbeResult): void => {
      settle(result);
      resolve(verdict ?? result);
    };
    child.once('error', (error) =>
      done({ healthy: false, detail: `cannot run ${command}: ${error.message}` }),
    );
    child.once('exit', (code, signal) => {
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
      done(
        code === 0
          ? { healthy: true, detail: 'exit code 0' }
          : { healthy: false, detail: signal !== null ? `killed by ${signal}` : `exit code ${code}` },
      );
    });
  });
}

function tcpProbe(host: string, port: number, options: RunProbeOptions): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const finish = probeSettler(options, () => socket.destroy(), resolve);
    socket.once('connect', () => finish({ healthy: true, detail: `connected to ${host}:${port}` }));
    socket.once('error', (error) => finish({ healthy: false, detail: `${host}:${port}: ${error.message}` }));
  });
}

function httpProbe(host: string, port: number, path: string, options: RunProbeOptions): Promise<ProbeResult> {
  return new Promise((resolve) => {
    // agent: false: a fresh connection, closed afterwards (no keep-alive socket left behind).
    const request = http.get({
      host,
      port,
      path,
      agent: false,
      headers: { 'user-agent': 'cloudless-health' },
    });
    const finish = probeSettler(options, () => request.destroy(), resolve);
    request.once('response', (response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      finish({ healthy: status >= 200 && status < 400, detail: `HTTP ${status}` });
    });
    request.once('error', (error) => finish({ healthy: false, detail: `GET ${path}: ${error.message}` }));
  });
}

export interface HealthTransition {
  readonly ready: boolean;
  readonly result: ProbeResult;
}

export interface HealthMonitorInit {
  readonly check: HealthCheck;
  /** Called on every change of readiness (the first success makes a replica ready). */
  readonly onTransition: (transition: HealthTransition) => void;
  /** For exec probes. */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

/**
 * Probes a replica every `intervalMs` after `initialDelayMs` (the next probe is scheduled when
 * the previous one ends, so probes never overlap). Not ready at first; ready after a success;
 * not ready again after `failureThreshold` consecutive failures. `stop()` cancels the timer and
 * any probe in flight.
 */
export class HealthMonitor {
  readonly #init: HealthMonitorInit;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #controller = new AbortController();
  #ready = false;
  #failures = 0;
  #stopped = false;
  #started = false;
  #last: ProbeResult | undefined;

  constructor(init: HealthMonitorInit) {
    this.#init = init;
  }

  get ready(): boolean {
    return this.#ready;
  }

  get lastResult(): ProbeResult | undefined {
    return this.#last;
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#schedule(this.#init.check.initialDelayMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#controller.abort();
    await this.#inFlight;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#inFlight = this.#probe();
    }, delayMs);
  }

  async #probe(): Promise<void> {
    const { check, env, cwd } = this.#init;
    const result = await runProbe(check.probe, {
      timeoutMs: check.timeoutMs,
      signal: this.#controller.signal,
      env,
      cwd,
    });
    if (this.#stopped) return;
    this.#last = result;
    if (result.healthy) {
      this.#failures = 0;
      if (!this.#ready) {
        this.#ready = true;
        this.#init.onTransition({ ready: true, result });
      }
    } else {
      this.#failures++;
      if (this.#ready && this.#failures >= check.failureThreshold) {
        this.#ready = false;
        this.#init.onTransition({ ready: false, result });
      }
    }
    this.#schedule(check.intervalMs);
  }
}
