/**
 * What the agent does when a replica ends: restart it after a backoff, or give it up as failed
 * or succeeded. Pure: the random source is injected, nothing here reads a clock.
 *
 * Rules:
 * - `never`: never restarted; the replica ends `succeeded` (exit 0) or `failed`.
 * - `on-failure`: restarted only after a failure (non-zero exit, or killed by a signal).
 * - `always`: a service is restarted after a success too (after `initialBackoffMs`, and its
 *   failure count starts again); a batch task that succeeded is done (`always` is not valid for
 *   batch workloads, and a finished task is never rerun).
 * - The n-th consecutive failure waits `min(maxBackoffMs, initialBackoffMs × multiplier^(n−1))`,
 *   scaled by a jitter factor in [0.5, 1) drawn from the injected random source.
 * - More than `maxRetries` consecutive failures: given up as `failed`.
 * - A replica that ran at least `stableAfterMs` (default 60 s) before it failed counts as the
 *   first failure of a new run: its earlier failures are forgotten.
 */
import type { RestartPolicy, WorkloadKind } from '../coordinator/workload-spec.ts';

export interface ReplicaRunOutcome {
  readonly kind: WorkloadKind;
  /** Consecutive failures before this run (0 for a first run or after a success). */
  readonly consecutiveFailures: number;
  /** The exit code; undefined when a signal (or a terminated worker) ended it: a failure. */
  readonly exitCode: number | undefined;
  /** How long this run lasted. */
  readonly ranForMs: number;
}

export interface RestartBackoffOptions {
  /** Uniform in [0, 1), e.g. a seeded generator; the jitter factor is 0.5 + random() / 2. */
  readonly random: () => number;
  /** A run at least this long resets the failure count; default 60 000 ms. */
  readonly stableAfterMs?: number;
}

export type RestartDecision =
  | {
      readonly action: 'restart';
      readonly delayMs: number;
      /** Carry into the next `ReplicaRunOutcome`. */
      readonly consecutiveFailures: number;
    }
  | {
      readonly action: 'give-up';
      readonly state: 'failed' | 'succeeded';
      readonly reason: string;
      readonly consecutiveFailures: number;
    };

export const defaultStableAfterMs = 60_000;

/** The backoff before restart number `failures` (≥ 1), before jitter. */
export function backoffDelayMs(policy: RestartPolicy, failures: number): number {
  const raw = policy.initialBackoffMs * policy.multiplier ** Math.max(0, failures - 1);
  return Math.min(policy.maxBackoffMs, Number.isFinite(raw) ? raw : policy.maxBackoffMs);
}

function jittered(delayMs: number, random: () => number): number {
  const r = random();
  const unit = r >= 0 && r < 1 ? r : 0;
  return Math.round(delayMs * (0.5 + unit / 2));
}

/** Decides what follows one run of a replica; see the file comment for the rules. */
export function decideRestart(
  policy: RestartPolicy,
  outcome: ReplicaRunOutcome,
  options: RestartBackoffOptions,
): RestartDecision {
  const succeeded = outcome.exitCode === 0;
  const stableAfterMs = options.stableAfterMs ?? defaultStableAfterMs;
  const earlier = outcome.ranForMs >= stableAfterMs ? 0 : outcome.consecutiveFailures;
  const failures = succeeded ? 0 : earlier + 1;
  const ended = outcome.exitCode === undefined ? 'was killed' : `exited with code ${outcome.exitCode}`;

  if (succeeded) {
    if (policy.policy === 'always' && outcome.kind === 'service') {
      return {
        action: 'restart',
        delayMs: jittered(policy.initialBackoffMs, options.random),
        consecutiveFailures: 0,
      };
    }
    return {
      action: 'give-up',
      state: 'succeeded',
      reason: `exited with code 0; restart policy ${policy.policy} does not restart a ${outcome.kind} that succeeded`,
      consecutiveFailures: 0,
    };
  }
  if (policy.policy === 'never') {
    return {
      action: 'give-up',
      state: 'failed',
      reason: `${ended}; restart policy never`,
      consecutiveFailures: failures,
    };
  }
  if (policy.maxRetries !== undefined && failures > policy.maxRetries) {
    return {
      action: 'give-up',
      state: 'failed',
      reason: `${ended}; ${failures} failures in a row, more than maxRetries ${policy.maxRetries}`,
      consecutiveFailures: failures,
    };
  }
  return {
    action: 'restart',
    delayMs: jittered(backoffDelayMs(policy, failures), options.random),
    consecutiveFailures: failures,
  };
}
