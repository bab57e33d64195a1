import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import type { Membership } from '../membership/start-membership.ts';
import { type AgentMessage, type AgentProps, agentActor } from './agent-actor.ts';

export interface NodeAgent {
  readonly ref: ActorRef<AgentMessage>;
  /** Stops every replica (SIGTERM, SIGKILL after the grace period). */
  stop(): Promise<void>;
}

/**
 * Starts the node agent at `/user/agent`; it learns the leader from this node's membership view
 * (the same leader its heartbeats go to).
 */
export function startAgent(
  components: { readonly system: ActorSystem; readonly membership: Membership },
  init: Omit<AgentProps, 'leader'>,
): NodeAgent {
  const { system, membership } = components;
  const ref = system.spawn(
    agentActor({
      ...init,
      leader: async () => {
        const view = await membership.members(2000);
        return { leaderId: view.leaderId, term: view.term };
      },
    }),
    { name: 'agent' },
  );
  let stopped = false;
  return {
    ref,
    async stop() {
      if (stopped) return;
      stopped = true;
      const graceMs = init.stopGraceMs ?? 5000;
      await ref
        .ask((replyTo) => ({ type: 'stop', replyTo }), { timeoutMs: graceMs + 5000 })
        .catch(() => undefined);
      // The actor itself stops with the actor system.
    },
  };
}
