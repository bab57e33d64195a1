import { CloudlessError } from '../../runtime/errors.ts';

/**
 * The Raft core reached a state its invariants forbid (an illegal role transition, truncating a
 * committed entry, a message routed to the wrong member). This is a bug in the core or in the
 * shell feeding it, never a network condition: the member should crash and be restarted from
 * its persisted state by its supervisor.
 */
export class RaftInvariantError extends CloudlessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_REQUEST', `raft invariant violated: ${message}`, options);
  }
}
