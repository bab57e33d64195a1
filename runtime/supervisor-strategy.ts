/**
 * Per-actor supervision for simple cases (Akka Typed's `Behaviors.supervise(b).onFailure(s)`).
 * Trees of actors with OTP restart semantics live in `supervision/`; these strategies decide
 * what happens to one actor when its own message handler throws.
 */

export class ResumeStrategy {
  readonly kind = 'resume';
}

export class StopStrategy {
  readonly kind = 'stop';
}

export class RestartStrategy {
  readonly kind = 'restart';
  /** Restarts allowed within `withinMs` before the actor stops instead; -1 for no limit. */
  readonly maxRestarts: number;
  readonly withinMs: number;

  constructor(maxRestarts = -1, withinMs = 0) {
    this.maxRestarts = maxRestarts;
    this.withinMs = withinMs;
  }

  /** Stop (and so fail towards the parent) after `maxRestarts` restarts within `withinMs`. */
  withLimit(maxRestarts: number, withinMs: number): RestartStrategy {
    if (!Number.isInteger(maxRestarts) || maxRestarts < 0) {
      throw new RangeError(`withLimit: maxRestarts must be a non-negative integer, got ${maxRestarts}`);
    }
    if (!(withinMs > 0)) throw new RangeError(`withLimit: withinMs must be positive, got ${withinMs}`);
    return new RestartStrategy(maxRestarts, withinMs);
  }
}

export class BackoffStrategy {
  readonly kind = 'backoff';
  readonly minMs: number;
  readonly maxMs: number;
  /** Fraction of the delay added at random (0.2 adds up to 20%), so restarts of many actors spread out. */
  readonly jitter: number;
  /** After this long without a failure the next delay starts again from `minMs`. */
  readonly resetAfterMs: number;
  /** Restarts before the actor stops instead; -1 for no limit. */
  readonly maxRestarts: number;

  constructor(minMs: number, maxMs: number, jitter: number, resetAfterMs?: number, maxRestarts = -1) {
    if (!(minMs > 0) || !(maxMs >= minMs)) {
      throw new RangeError(`restartWithBackoff needs 0 < minMs <= maxMs, got minMs=${minMs} maxMs=${maxMs}`);
    }
    if (!(jitter >= 0)) throw new RangeError(`restartWithBackoff: jitter must be >= 0, got ${jitter}`);
    this.minMs = minMs;
    this.maxMs = maxMs;
    this.jitter = jitter;
    this.resetAfterMs = resetAfterMs ?? maxMs * 2;
    this.maxRestarts = maxRestarts;
  }

  withResetAfter(ms: number): BackoffStrategy {
    return new BackoffStrategy(this.minMs, this.maxMs, this.jitter, ms, this.maxRestarts);
  }

  withMaxRestarts(maxRestarts: number): BackoffStrategy {
    return new BackoffStrategy(this.minMs, this.maxMs, this.jitter, this.resetAfterMs, maxRestarts);
  }

  /** Delay before restart number `attempt` (0-based), given a random number in [0, 1). */
  delayFor(attempt: number, random: number): number {
    const base = Math.min(this.maxMs, this.minMs * 2 ** Math.min(attempt, 30));
    return Math.min(this.maxMs, base * (1 + this.jitter * random));
  }
}

export type SupervisorStrategy = ResumeStrategy | StopStrategy | RestartStrategy | BackoffStrategy;

export const SupervisorStrategy = {
  /** Keep the current behavior and state; drop the message that failed. */
  resume: new ResumeStrategy() as SupervisorStrategy,
  /** Stop the actor (the default when no strategy applies). */
  stop: new StopStrategy() as SupervisorStrategy,
  /** Restart from the initial behavior; call `.withLimit(n, ms)` to bound it. */
  restart: new RestartStrategy(),
  restartWithBackoff(minMs: number, maxMs: number, jitter = 0.2): BackoffStrategy {
    return new BackoffStrategy(minMs, maxMs, jitter);
  },
} as const;
