import { CloudlessError } from '../../runtime/errors.ts';

/** Why a driver could not start a replica at all; specs and the agent match on this. */
export type ReplicaStartFailure =
  | 'command-not-found'
  | 'permission-denied'
  | 'spawn-failed'
  | 'module-not-found'
  | 'export-not-found'
  | 'invalid-launch'
  | 'aborted';

/**
 * A driver could not start a replica (no such command or module, no permission, bad launch).
 * It travels as CHILD_START_FAILED, the code for a child that failed to start; `failure` tells
 * the conditions apart.
 */
export class ReplicaStartError extends CloudlessError {
  readonly failure: ReplicaStartFailure;
  constructor(failure: ReplicaStartFailure, message: string, options?: { cause?: unknown }) {
    super('CHILD_START_FAILED', message, options);
    this.failure = failure;
  }
}
