/**
 * The coordinator role of a node: its Raft member and the KV front door, under one OTP
 * supervisor, at paths every node uses so that a member on another node is
 * `system.resolve({ node: peerId, path: raftMemberPath })`:
 *
 *   /user/coordinator        the supervisor (one_for_one; a member that crashes is restarted)
 *   /user/coordinator/raft   the Raft member, its data in `<dataDir>/raft`
 *   /user/coordinator/kv     the front door clients talk to (`kvServicePath`)
 *
 * A node with no Raft state and no `join` bootstraps a one-member group; with `join` it starts
 * as an empty member and asks the front door at that address to add it, again with backoff
 * until it is added or stopped. With `enroll` (a join token, and the node's description) it
 * first redeems the token over the enrollment protocol, which makes it a member the other
 * coordinators admit to the actor protocol, and only then asks to be added to the Raft group;
 * a refused token fails `joined` at once (no retry can fix it). A node that has Raft state already restarts from it (the
 * membership is in its log), and a `join` passed again is answered at once.
 *
 * The mesh must know where members listen before raft messages can reach them: whenever the
 * membership changes, every member this node is not connected to is dialed, in the background,
 * with bounded retries (the mesh's own reconnects take over once a link exists).
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Logger } from 'winston';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { AbortError, CloudlessError, InvalidRequestError } from '../../runtime/errors.ts';
import { supervisor } from '../../supervision/supervisor.ts';
import { SupervisorClient } from '../../supervision/supervisor-client.ts';
import type { MeshTransport } from '../../transport/mesh-transport.ts';
import type { Admission } from '../enrollment/admission.ts';
import { requestJoin } from '../enrollment/enroll-client.ts';
import { TokenRefusedError, UnauthenticatedClientError } from '../enrollment/enrollment-errors.ts';
import type { MemberDescription } from '../enrollment/member-record.ts';
import { type KvServiceMessage, kvService } from './kv-service.ts';
import { type KvServiceReply, type KvServiceRequest, kvServicePath } from './kv-service-protocol.ts';
import { kvServiceLimits } from './kv-service-validate.ts';
import { type RaftMemberMessage, type RaftMemberProps, raftMember } from './raft-member.ts';
import type { Membership, NodeId } from './raft-types.ts';

export const coordinatorPath = '/user/coordinator';
/** Where every coordinator runs its Raft member. */
export const raftMemberPath = `${coordinatorPath}/raft`;

export interface CoordinatorComponents {
  readonly system: ActorSystem;
  /** The node's mesh; its PeerId is the member id, its listen addresses go in the membership. */
  readonly mesh: MeshTransport;
}

export interface CoordinatorInit {
  /** The node's data dir; the member keeps its log in `<dataDir>/raft`. */
  readonly dataDir: string;
  /** A member's multiaddr (ending in /p2p/<PeerId>) to ask for admission. */
  readonly join?: string | undefined;
  /** Passed to the member (tick length, core config, log and store options, snapshots). */
  readonly member?: Partial<
    Omit<
      RaftMemberProps,
      'id' | 'dataDir' | 'initialVoters' | 'addresses' | 'peerRef' | 'members' | 'onMembership'
    >
  >;
  /** Backoff of join attempts and member dials; default 200 ms to 5 s, with jitter. */
  readonly retry?: { readonly minMs?: number; readonly maxMs?: number };
  /** Deadline of one join request (the leader answers once this node is a voter); default 60 s. */
  readonly joinTimeoutMs?: number;
  /** Tries to dial a member after a membership change; default 8. */
  readonly maxDialAttempts?: number;
  /** Called with the membership in effect whenever it changes (after the dials are started). */
  readonly onMembership?: (membership: Membership) => void;
  /**
   * With `join` on a node without Raft state: redeem this token (it must allow the coordinator
   * role) at `join` before asking to be added. Without it the join goes straight to the front
   * door, which a node enforcing admission refuses.
   */
  readonly enroll?: { readonly token: string } & Omit<MemberDescription, 'addresses'>;
  /** Told the Raft group's voters and learners (and the coordinators a join answer named). */
  readonly admission?: Admission;
  readonly random?: () => number;
}

export interface Coordinator {
  readonly member: ActorRef<RaftMemberMessage>;
  readonly kv: ActorRef<KvServiceMessage>;
  /** True when this start created a new one-member group. */
  readonly bootstrapped: boolean;
  /** With `join`: resolves with the membership once the group has added this node. */
  readonly joined: Promise<Membership> | undefined;
  /** The membership this member last applied (undefined before its log is open). */
  membership(): Membership | undefined;
  /** Stops joining and dialing, then the front door and the member. */
  stop(): Promise<void>;
}

/** Whether the member has a log or hard state from an earlier start. */
async function hasRaftState(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

function backoffMs(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 16));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** Keeps this node connected to every member of the group it hears of. */
class MemberDialer {
  readonly #mesh: MeshTransport;
  readonly #log: Logger;
  readonly #dialing = new Set<NodeId>();
  readonly #stopped = new AbortController();
  readonly #retry: { minMs: number; maxMs: number; attempts: number; random: () => number };

  constructor(
    mesh: MeshTransport,
    log: Logger,
    retry: { minMs: number; maxMs: number; attempts: number; random: () => number },
  ) {
    this.#mesh = mesh;
    this.#log = log;
    this.#retry = retry;
  }

  /** Never waits: dials run in the background, one per member at a time. */
  update(membership: Membership): void {
    if (this.#stopped.signal.aborted) return;
    for (const id of [...membership.voters, ...membership.learners]) {
      if (id === this.#mesh.peerId || this.#dialing.has(id) || this.#connected(id)) continue;
      const addresses = membership.addresses[id] ?? [];
      if (addresses.length === 0) continue;
      this.#dialing.add(id);
      void this.#dial(id, addresses).finally(() => this.#dialing.delete(id));
    }
  }

  stop(): void {
    this.#stopped.abort(new AbortError('coordinator stopped'));
  }

  #connected(id: NodeId): boolean {
    try {
      return this.#mesh.node.getConnections(peerIdFromString(id)).length > 0;
    } catch {
      return false;
    }
  }

  async #dial(id: NodeId, addresses: readonly string[]): Promise<void> {
    const signal = this.#stopped.signal;
    for (let attempt = 0; attempt < this.#retry.attempts; attempt++) {
      for (const address of addresses.slice(0, kvServiceLimits.maxAddresses)) {
        if (signal.aborted || this.#connected(id)) return;
        const target = address.includes('/p2p/') ? address : `${address}/p2p/${id}`;
        try {
          await this.#mesh.connect(target, {
            signal: AbortSignal.any([signal, AbortSignal.timeout(this.#mesh.settings.dialTimeoutMs)]),
          });
          this.#log.debug('raft member dialed', { member: id, address: target });
          return;
        } catch (error) {
          if (signal.aborted) return;
          this.#log.debug('raft member dial failed', {
            member: id,
            address: target,
            error: (error as Error).message,
          });
        }
      }
      const delay = backoffMs(attempt, this.#retry.minMs, this.#retry.maxMs, this.#retry.random);
      try {
        await sleep(delay, undefined, { signal });
      } catch {
        return;
      }
    }
    this.#log.warn(
      `cannot reach raft member ${id} at ${addresses.join(', ')} after ${this.#retry.attempts} tries; ` +
        'it is dialed again on the next membership change; check that the node runs and its addresses are reachable',
    );
  }
}

/** Starts the coordinator role on a node whose mesh is up; see the module comment. */
export async function startCoordinator(
  components: CoordinatorComponents,
  init: CoordinatorInit,
): Promise<Coordinator> {
  const { system, mesh } = components;
  const id = mesh.peerId;
  const raftDir = path.join(init.dataDir, 'raft');
  const hasState = await hasRaftState(raftDir);
  const bootstrap = !hasState && init.join === undefined;
  if (!hasState && init.join !== undefined && init.enroll === undefined && init.admission !== undefined) {
    // The group admits only enrolled members: without a token the join would be refused at the
    // actor protocol and retried forever.
    throw new InvalidRequestError(
      `joining ${init.join} for the first time needs a join token: pass --token (or CLOUDLESS_TOKEN); ` +
        "create one on the cluster with 'cloudless token create --roles coordinator --ttl 1h'",
    );
  }
  const random = init.random ?? Math.random;
  const minMs = init.retry?.minMs ?? 200;
  const maxMs = init.retry?.maxMs ?? 5000;
  const log = system.log.child({ component: 'coordinator' });
  const dialer = new MemberDialer(mesh, log, {
    minMs,
    maxMs,
    attempts: init.maxDialAttempts ?? 8,
    random,
  });
  const addresses = mesh.multiaddrs.slice(0, kvServiceLimits.maxAddresses);
  const peerRef = (peer: NodeId): ActorRef<RaftMemberMessage> =>
    system.resolve<RaftMemberMessage>({ node: peer, path: raftMemberPath });
  const memberRef = peerRef(id);
  let lastMembership: Membership | undefined;
  // One behavior for every incarnation: the member serialises a restart's open after the
  // previous incarnation's close through state kept in this closure.
  const memberBehavior = raftMember({
    ...init.member,
    id,
    dataDir: raftDir,
    initialVoters: bootstrap ? [id] : [],
    addresses,
    peerRef,
    onMembership: (membership) => {
      lastMembership = membership;
      init.admission?.setRaftMembers([...membership.voters, ...membership.learners]);
      dialer.update(membership);
      init.onMembership?.(membership);
    },
  });
  const sup = system.spawn(
    supervisor({
      flags: { strategy: 'one_for_one', intensity: 5, period: 30 },
      children: [
        { id: 'raft', start: memberBehavior, restart: 'permanent', shutdown: 10_000 },
        { id: 'kv', start: () => kvService({ member: memberRef, peerRef }), restart: 'permanent' },
      ],
    }),
    { name: 'coordinator' },
  );
  const kvRef = system.resolve<KvServiceMessage>({ node: id, path: kvServicePath });

  const stopJoining = new AbortController();
  const join = init.join;
  const joined =
    join === undefined
      ? undefined
      : joinGroup(components, {
          join,
          addresses,
          enroll: hasState ? undefined : init.enroll,
          admission: init.admission,
          timeoutMs: init.joinTimeoutMs ?? 60_000,
          signal: stopJoining.signal,
          log,
          backoff: (attempt) => backoffMs(attempt, minMs, maxMs, random),
        });
  // Whoever awaits `joined` sees the outcome; a join stopped by `stop()` is not a failure to log.
  joined?.catch(() => undefined);
  log.info('coordinator started', {
    member: raftMemberPath,
    kv: kvServicePath,
    bootstrap,
    hasState,
    join,
  });
  return {
    member: memberRef,
    kv: kvRef,
    bootstrapped: bootstrap,
    joined,
    membership: () => lastMembership,
    async stop() {
      stopJoining.abort(new AbortError('coordinator stopped'));
      dialer.stop();
      const client = new SupervisorClient(sup);
      // The front door first, so no request reaches a member that is closing its log.
      for (const child of ['kv', 'raft']) {
        await client.terminateChild(child).catch((error: unknown) => {
          log.warn('coordinator child did not stop cleanly', { child, error: (error as Error).message });
        });
      }
    },
  };
}

/** Asks the member at `join` to add this node, with backoff, until it answers yes or `signal` aborts. */
async function joinGroup(
  { system, mesh }: CoordinatorComponents,
  options: {
    join: string;
    addresses: readonly string[];
    enroll: CoordinatorInit['enroll'];
    admission: Admission | undefined;
    timeoutMs: number;
    signal: AbortSignal;
    log: Logger;
    backoff: (attempt: number) => number;
  },
): Promise<Membership> {
  const { join, signal, log } = options;
  let enrolled = options.enroll === undefined;
  for (let attempt = 0; ; attempt++) {
    let problem: string;
    try {
      if (!enrolled && options.enroll !== undefined) {
        const { token, ...description } = options.enroll;
        const answer = await requestJoin(
          mesh.node,
          join,
          { token, ...description, addresses: options.addresses },
          { signal },
        );
        options.admission?.seed(answer.coordinators.map((c) => c.id));
        enrolled = true;
        log.info('enrolled with a join token', { via: join, tokenId: answer.member.tokenId });
      }
      const peer = await mesh.connect(join, {
        signal: AbortSignal.any([signal, AbortSignal.timeout(mesh.settings.dialTimeoutMs)]),
      });
      const front = system.resolve<KvServiceRequest>({ node: peer, path: kvServicePath });
      const reply = await front.ask<KvServiceReply<Membership>>(
        (replyTo) => ({
          type: 'join',
          id: mesh.peerId,
          addresses: options.addresses,
          timeoutMs: options.timeoutMs,
          replyTo,
        }),
        { timeoutMs: options.timeoutMs + 5000, signal },
      );
      if (reply.ok) {
        log.info('joined the raft group', { via: join, voters: reply.value.voters.length });
        return reply.value;
      }
      problem = `${reply.error.code}: ${reply.error.message}`;
    } catch (error) {
      if (signal.aborted) throw new AbortError(`joining via ${join} stopped`, { cause: error });
      // A refused token stays refused: retrying would only repeat the refusal.
      if (error instanceof TokenRefusedError || error instanceof UnauthenticatedClientError) {
        log.error(`join via ${join} refused: ${error.message}`, { reason: error.reason });
        throw error;
      }
      problem = error instanceof CloudlessError ? error.message : String(error);
    }
    log.warn(`join via ${join} failed (attempt ${attempt + 1}), retrying: ${problem}`);
    try {
      await sleep(options.backoff(attempt), undefined, { signal });
    } catch (error) {
      throw new AbortError(`joining via ${join} stopped`, { cause: error });
    }
  }
}
