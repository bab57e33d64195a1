/**
 * Enrollment on one node, for `cloudless start`: the admission set (create it before the mesh, to
 * pass as its gate and actor-protocol admission), the enrollment protocol, the admission feed,
 * and on the bootstrap coordinator the admin credential and its own member record. A node that
 * is not a coordinator and has `join` + `token` redeems the token at `join` first (coordinators
 * do it inside `startCoordinator`, before asking to join the Raft group).
 *
 *   const admission = new Admission({ self: nodeId });
 *   const mesh = await MeshTransport.start(system, { …, gate: admission, admission });
 *   const coordinator = await startCoordinator({ system, mesh }, { …, admission, enroll });
 *   const enrollment = await startEnrollment({ system, mesh, admission, coordinator }, { … });
 *   …
 *   await enrollment.stop(); // before coordinator.stop()
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { AbortError, InvalidRequestError } from '../../runtime/errors.ts';
import type { Role } from '../../runtime/node-config.ts';
import type { MeshTransport } from '../../transport/mesh-transport.ts';
import type { Coordinator } from '../raft/coordinator.ts';
import { type KvServiceRequest, kvServicePath } from '../raft/kv-service-protocol.ts';
import { ensureAdminCredential } from './admin-credential.ts';
import type { Admission } from './admission.ts';
import { type AdmissionFeedMessage, admissionFeed } from './admission-feed.ts';
import { requestJoin } from './enroll-client.ts';
import type { CoordinatorAddress } from './enroll-protocol.ts';
import { TokenRefusedError, UnauthenticatedClientError } from './enrollment-errors.ts';
import { EnrollmentServer } from './enrollment-server.ts';
import { frontDoorPort, type KvPort } from './kv-port.ts';
import { encodeMemberRecord, type MemberRecord, memberKey, type Resources } from './member-record.ts';
import { TokenStore } from './token-store.ts';

export interface NodeEnrollmentComponents {
  readonly system: ActorSystem;
  readonly mesh: MeshTransport;
  readonly admission: Admission;
  /** The node's coordinator role, when it has one. */
  readonly coordinator?: Coordinator | undefined;
}

export interface NodeEnrollmentInit {
  readonly dataDir: string;
  readonly roles: readonly Role[];
  readonly join?: string | undefined;
  readonly token?: string | undefined;
  readonly labels?: Readonly<Record<string, string>>;
  readonly zone?: string | undefined;
  readonly resources?: Resources | undefined;
  readonly retry?: { readonly minMs?: number; readonly maxMs?: number };
}

export interface NodeEnrollment {
  /** Resolves once this node is a member (at once for coordinators and restarts). */
  readonly enrolled: Promise<void>;
  /** With the bootstrap coordinator: resolves with the credential file once its hash is stored. */
  readonly credential: Promise<{ file: string; created: boolean }> | undefined;
  stop(): Promise<void>;
}

/** Retries `attempt` with backoff while it fails with anything but a refusal, until `signal`. */
async function withRetry<T>(
  what: string,
  attempt: () => Promise<T>,
  signal: AbortSignal,
  log: { warn(message: string): void },
  retry: { minMs: number; maxMs: number },
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (signal.aborted) throw new AbortError(`${what} stopped`, { cause: error });
      if (error instanceof TokenRefusedError || error instanceof UnauthenticatedClientError) throw error;
      log.warn(`${what} failed (attempt ${n + 1}), retrying: ${(error as Error).message}`);
    }
    const ceiling = Math.min(retry.maxMs, retry.minMs * 2 ** Math.min(n, 16));
    try {
      await sleep(ceiling / 2 + (Math.random() * ceiling) / 2, undefined, { signal });
    } catch (error) {
      throw new AbortError(`${what} stopped`, { cause: error });
    }
  }
}

export function coordinatorsOf(coordinator: Coordinator | undefined): CoordinatorAddress[] {
  const membership = coordinator?.membership();
  if (membership === undefined) return [];
  return [...membership.voters, ...membership.learners].map((id) => ({
    id,
    addresses: membership.addresses[id] ?? [],
  }));
}

/** Starts enrollment on a node whose mesh (and coordinator role, if any) is up; see the module comment. */
export async function startEnrollment(
  components: NodeEnrollmentComponents,
  init: NodeEnrollmentInit,
): Promise<NodeEnrollment> {
  const { system, mesh, admission, coordinator } = components;
  const log = system.log.child({ component: 'enrollment' });
  const stopping = new AbortController();
  const retry = { minMs: init.retry?.minMs ?? 200, maxMs: init.retry?.maxMs ?? 5000 };
  admission.attach(mesh);
  const isCoordinator = coordinator !== undefined;
  if (!isCoordinator && init.join === undefined)
    throw new InvalidRequestError(
      'a node without the coordinator role needs --join <a coordinator multiaddr> (and --token on its first start)',
    );
  let port: KvPort | undefined;
  if (coordinator !== undefined) port = frontDoorPort(coordinator.kv as ActorRef<never>);
  const server = new EnrollmentServer({
    mesh,
    admission,
    tokens: port === undefined ? undefined : new TokenStore({ kv: port }),
    coordinators: () => coordinatorsOf(coordinator),
    log,
  });
  await server.start();

  let feed: ActorRef<AdmissionFeedMessage> | undefined;
  const startFeed = (front: ActorRef<KvServiceRequest>): void => {
    if (stopping.signal.aborted) return;
    feed = system.spawn(admissionFeed({ admission, front, retry }), { name: 'admission-feed' });
  };

  let credential: NodeEnrollment['credential'];
  let enrolled: Promise<void>;
  if (coordinator !== undefined) {
    startFeed(coordinator.kv as ActorRef<never>);
    enrolled =
      coordinator.joined === undefined ? Promise.resolve() : coordinator.joined.then(() => undefined);
    if (coordinator.bootstrapped) {
      const kv = port as KvPort;
      credential = withRetry(
        'storing the admin credential',
        async () => {
          const stored = await ensureAdminCredential({ kv }, { dataDir: init.dataDir });
          await createOwnRecord(kv, mesh, init);
          return stored;
        },
        stopping.signal,
        log,
        retry,
      );
      credential.catch(() => undefined);
    }
  } else {
    const join = init.join as string;
    enrolled = withRetry(
      `enrolling via ${join}`,
      async () => {
        let coordinators: readonly CoordinatorAddress[];
        if (init.token !== undefined) {
          const answer = await requestJoin(
            mesh.node,
            join,
            {
              token: init.token,
              roles: init.roles,
              addresses: mesh.multiaddrs.slice(0, 16),
              labels: init.labels ?? {},
              zone: init.zone,
              resources: init.resources,
            },
            { signal: stopping.signal },
          );
          coordinators = answer.coordinators;
          log.info('enrolled with a join token', { via: join, tokenId: answer.member.tokenId });
        } else {
          coordinators = [];
        }
        admission.seed(coordinators.map((c) => c.id));
        // The coordinator it enrolled with serves its view of the members.
        const peer = await mesh.connect(join, { signal: stopping.signal });
        startFeed(system.resolve<KvServiceRequest>({ node: peer, path: kvServicePath }));
      },
      stopping.signal,
      log,
      retry,
    );
  }
  enrolled.catch(() => undefined);
  return {
    enrolled,
    credential,
    async stop() {
      stopping.abort(new AbortError('enrollment stopped'));
      feed?.tell({ type: 'feed:stop' });
      await server.stop();
    },
  };
}

/** The bootstrap node's own record: it joined with no token. */
async function createOwnRecord(kv: KvPort, mesh: MeshTransport, init: NodeEnrollmentInit): Promise<void> {
  const now = Date.now();
  const record: MemberRecord = {
    id: mesh.peerId,
    roles: [...init.roles],
    addresses: mesh.multiaddrs.slice(0, 16),
    labels: init.labels ?? {},
    zone: init.zone,
    status: 'alive',
    resources: init.resources,
    joinedAt: now,
    statusSince: now,
    tokenId: undefined,
  };
  const key = memberKey(mesh.peerId);
  await kv.txn({
    compare: [{ key, target: 'version', op: '=', value: 0 }],
    success: [{ type: 'put', key, value: encodeMemberRecord(record) }],
    failure: [],
  });
}
