/**
 * The error classes every layer shares. One subclass per condition, each with a stable `code`
 * that specs and remote peers match on; messages are for people and may change.
 */

export type ErrorCode =
  | 'NOT_FOUND'
  | 'INVALID_REQUEST'
  | 'POLICY_VIOLATION'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'ABORTED'
  | 'ACTOR_FAILED'
  | 'DEATH_PACT'
  | 'STASH_OVERFLOW'
  | 'INVALID_BEHAVIOR'
  | 'MAX_RESTART_INTENSITY'
  | 'CHILD_START_FAILED'
  | 'WORKER_DIED'
  | 'NOT_LEADER'
  | 'DATA_CORRUPT';

export class CloudlessError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /** The wire form: errors cross threads and nodes as `{ code, message }`. */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export class NotFoundError extends CloudlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NOT_FOUND', message, options);
  }
}

export class InvalidRequestError extends CloudlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_REQUEST', message, options);
  }
}

/** An admission policy refused the request (a workload create, update, scale or delete). */
export class PolicyViolationError extends CloudlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('POLICY_VIOLATION', message, options);
  }
}

export class UnavailableError extends CloudlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
  }
}

export class TimeoutError extends CloudlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TIMEOUT', message, options);
  }
}

export class AbortError extends CloudlessError {
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super('ABORTED', message, options);
  }
}

/** A behavior broke the kernel's contract (returned a promise, returned a non-behavior). */
export class InvalidBehaviorError extends CloudlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_BEHAVIOR', message, options);
  }
}

/** Raised in a watcher that did not handle the `Terminated` signal of an actor it watched. */
export class DeathPactError extends CloudlessError {
  constructor(path: string) {
    super(
      'DEATH_PACT',
      `watched actor ${path} terminated and the watcher did not handle the Terminated signal; ` +
        'handle it in receiveSignal or unwatch the actor first',
    );
  }
}

export class StashOverflowError extends CloudlessError {
  constructor(path: string, capacity: number) {
    super(
      'STASH_OVERFLOW',
      `stash of ${path} is full (capacity ${capacity}); unstash before stashing more or raise the capacity`,
    );
  }
}

/** An OTP supervisor restarted children more than `intensity` times within `period` seconds. */
export class MaxRestartIntensityError extends CloudlessError {
  constructor(path: string, intensity: number, period: number, options?: { cause?: unknown }) {
    super(
      'MAX_RESTART_INTENSITY',
      `supervisor ${path} reached its restart intensity (${intensity} restarts in ${period}s) and shut down`,
      options,
    );
  }
}

export class ChildStartError extends CloudlessError {
  constructor(supervisor: string, childId: string, options?: { cause?: unknown }) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(
      'CHILD_START_FAILED',
      `supervisor ${supervisor} could not start child '${childId}'${reason}`,
      options,
    );
  }
}

/** A write reached a member that is not the leader; `leaderHint` names the one it knows, if any. */
export class NotLeaderError extends CloudlessError {
  readonly leaderHint: string | undefined;
  constructor(message: string, leaderHint?: string, options?: { cause?: unknown }) {
    super('NOT_LEADER', message, options);
    this.leaderHint = leaderHint;
  }
}

/** Persisted data failed its checksum or format check: never used, never silently dropped. */
export class DataCorruptError extends CloudlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DATA_CORRUPT', message, options);
  }
}

/** The worker thread hosting an actor died (uncaught error, exit, out of memory). */
export class WorkerThreadDiedError extends CloudlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WORKER_DIED', message, options);
  }
}

/** Classes whose constructor composes the message are rebuilt with the message that crossed. */
function withMessage<TError extends Error>(error: TError, message: string): TError {
  error.message = message;
  return error;
}

const byCode: Record<ErrorCode, (message: string) => CloudlessError> = {
  NOT_FOUND: (m) => new NotFoundError(m),
  INVALID_REQUEST: (m) => new InvalidRequestError(m),
  POLICY_VIOLATION: (m) => new PolicyViolationError(m),
  UNAVAILABLE: (m) => new UnavailableError(m),
  TIMEOUT: (m) => new TimeoutError(m),
  ABORTED: (m) => new AbortError(m),
  ACTOR_FAILED: (m) => new CloudlessError('ACTOR_FAILED', m),
  DEATH_PACT: (m) => withMessage(new DeathPactError(''), m),
  STASH_OVERFLOW: (m) => withMessage(new StashOverflowError('', 0), m),
  INVALID_BEHAVIOR: (m) => new InvalidBehaviorError(m),
  MAX_RESTART_INTENSITY: (m) => withMessage(new MaxRestartIntensityError('', 0, 0), m),
  CHILD_START_FAILED: (m) => withMessage(new ChildStartError('', ''), m),
  WORKER_DIED: (m) => new WorkerThreadDiedError(m),
  NOT_LEADER: (m) => new NotLeaderError(m),
  DATA_CORRUPT: (m) => new DataCorruptError(m),
};

/** Rebuilds an error that crossed a thread or the wire as the same class, by its code. */
export function errorFromWire(wire: { code?: unknown; message?: unknown }): Error {
  const message = typeof wire.message === 'string' ? wire.message : 'remote error without a message';
  const build =
    typeof wire.code === 'string' && Object.hasOwn(byCode, wire.code)
      ? byCode[wire.code as ErrorCode]
      : undefined;
  if (build !== undefined) return build(message);
  const error = new Error(message);
  // A plain error keeps its class name (TypeError, RangeError, …) for logs and name-based filters.
  if (typeof (wire as { name?: unknown }).name === 'string') error.name = (wire as { name: string }).name;
  return error;
}

export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
