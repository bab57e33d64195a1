import { RaftInvariantError } from './raft-errors.ts';
import type { NodeId, RaftRole } from './raft-types.ts';

/**
 * The role transitions a member may make. A leader only ever steps down to follower; a member
 * becomes leader only from candidate; every role may restart an election or follow a newer term.
 */
export const roleTransitions: Readonly<Record<RaftRole, readonly RaftRole[]>> = {
  follower: ['follower', 'pre-candidate', 'candidate'],
  'pre-candidate': ['follower', 'pre-candidate', 'candidate'],
  candidate: ['follower', 'pre-candidate', 'candidate', 'leader'],
  leader: ['follower'],
};

/** Throws a `RaftInvariantError` if `from → to` is not a legal role transition. */
export function assertRoleTransition(id: NodeId, term: number, from: RaftRole, to: RaftRole): void {
  if (!roleTransitions[from].includes(to)) {
    throw new RaftInvariantError(`member ${id} cannot go from ${from} to ${to} in term ${term}`);
  }
}
