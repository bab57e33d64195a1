/**
 * `startMembership`: what `cloudless start` calls, for every role, once the mesh (and, on a
 * coordinator, the Raft member) is up. It spawns the membership actor at `/user/membership`.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { InvalidRequestError, UnavailableError } from '../../runtime/errors.ts';
import type { MeshTransport } from '../../transport/mesh-transport.ts';
import type { Coordinator } from '../raft/coordinator.ts';
import { type KvServiceRequest, kvServicePath } from '../raft/kv-service-protocol.ts';
import type { MemberRecord, MemberRole } from './member-record.ts';
import {
  type MembershipMessage,
  type MembershipProps,
  type MembersReply,
  membershipActor,
} from './membership-actor.ts';

export interface MembershipComponents {
  readonly system: ActorSystem;
  readonly mesh: MeshTransport;
  /** The node's coordinator role, when it runs one: the view and detection use its member. */
  readonly coordinator?: Coordinator | undefined;
}

export interface MembershipInit {
  readonly roles: readonly MemberRole[];
  readonly dataDir: string;
  /** Non-coordinators: coordinator multiaddrs (ending in /p2p/<PeerId>) to reach the store through, tried in turn. */
  readonly coordinators?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
  readonly zone?: string;
  readonly heartbeatMs?: number;
  readonly tickMs?: number;
  readonly ensureOwnRecord?: boolean;
  readonly detector?: MembershipProps['detector'];
  readonly onChange?: MembershipProps['onChange'];
}

export interface Membership {
  readonly ref: ActorRef<MembershipMessage>;
  /** This node's current view. */
  members(timeoutMs?: number): Promise<MembersReply>;
  /** Marks this node `left` (graceful leave) and stops its heartbeats. */
  leave(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startMembership(
  components: MembershipComponents,
  init: MembershipInit,
): Promise<Membership> {
  const { system, mesh, coordinator } = components;
  const coordinators = init.coordinators ?? [];
  if (coordinator === undefined && coordinators.length === 0) {
    throw new InvalidRequestError(
      `node ${mesh.peerId} runs no coordinator and knows none: pass --join <coordinator multiaddr> so that membership can reach the store`,
    );
  }
  /** The configured coordinators, then every voter address a status has named (bounded). */
  const known = [...coordinators];
  const learnCoordinators = (addresses: readonly string[]): void => {
    for (const address of addresses) {
      if (!known.includes(address) && known.length < 64) known.push(address);
    }
  };
  const frontDoor = async (attempt: number): Promise<ActorRef<KvServiceRequest>> => {
    if (coordinator !== undefined)
      return system.resolve<KvServiceRequest>({ node: mesh.peerId, path: kvServicePath });
    const address = known[attempt % known.length] as string;
    const peer = await mesh.connect(address, { signal: AbortSignal.timeout(mesh.settings.dialTimeoutMs) });
    return system.resolve<KvServiceRequest>({ node: peer, path: kvServicePath });
  };
  const connect = async (id: string, addresses: readonly string[]): Promise<void> => {
    if (mesh.node.getConnections(peerIdFromString(id)).length > 0) return;
    let problem: unknown;
    for (const address of addresses.slice(0, 8)) {
      try {
        await mesh.connect(address.includes('/p2p/') ? address : `${address}/p2p/${id}`, {
          signal: AbortSignal.timeout(mesh.settings.dialTimeoutMs),
        });
        return;
      } catch (error) {
        problem = error;
      }
    }
    throw new UnavailableError(`cannot reach leader ${id} at ${addresses.join(', ') || 'no known address'}`, {
      cause: problem,
    });
  };
  const ref = system.spawn(
    membershipActor({
      roles: init.roles,
      dataDir: init.dataDir,
      coordinator: coordinator !== undefined,
      frontDoor,
      connect,
      learnCoordinators,
      addresses: mesh.multiaddrs,
      ...(init.labels === undefined ? {} : { labels: init.labels }),
      ...(init.zone === undefined ? {} : { zone: init.zone }),
      ...(init.heartbeatMs === undefined ? {} : { heartbeatMs: init.heartbeatMs }),
      ...(init.tickMs === undefined ? {} : { tickMs: init.tickMs }),
      ...(init.ensureOwnRecord === undefined ? {} : { ensureOwnRecord: init.ensureOwnRecord }),
      ...(init.detector === undefined ? {} : { detector: init.detector }),
      ...(init.onChange === undefined ? {} : { onChange: init.onChange }),
    }),
    { name: 'membership' },
  );
  let stopped = false;
  return {
    ref,
    members: (timeoutMs = 5000) =>
      ref.ask<MembersReply>((replyTo) => ({ type: 'members', replyTo }), { timeoutMs }),
    async leave(timeoutMs = 12_000) {
      const reply = await ref.ask<{ type: 'left'; ok: boolean; error?: string }>(
        (replyTo) => ({ type: 'leave', replyTo }),
        { timeoutMs },
      );
      if (!reply.ok) {
        throw new UnavailableError(reply.error ?? 'leave did not commit');
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await ref.ask((replyTo) => ({ type: 'stop', replyTo }), { timeoutMs: 5000 }).catch(() => undefined);
    },
  };
}

export type { MemberRecord };
