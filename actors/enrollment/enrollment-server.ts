/**
 * Serves `/cloudless/enroll/1.0.0` on a node (see enroll-protocol.ts). `join` is answered only by
 * coordinators: the token is redeemed through Raft (forwarded to the leader by this node's front
 * door), the joiner is admitted here at once (before the admission feed hears of the record),
 * and the answer names the coordinators to talk to. `client` admits the connection's peer to the
 * actor protocol while it stays connected, if it presents the admin credential.
 *
 * Every outcome writes an audit line: `enroll:admitted` or `enroll:refused` with the token id
 * (never the secret), the PeerId and the reason.
 */
import type { Connection, Stream } from '@libp2p/interface';
import type { Logger } from 'winston';
import { CloudlessError, UnavailableError } from '../../runtime/errors.ts';
import type { MeshTransport } from '../../transport/mesh-transport.ts';
import { credentialMatches } from './admin-credential.ts';
import type { Admission } from './admission.ts';
import {
  type CoordinatorAddress,
  deadline,
  type EnrollReply,
  type EnrollWireError,
  encodeEnrollMessage,
  enrollLimits,
  enrollProtocol,
  readEnrollMessage,
  validateEnrollRequest,
} from './enroll-protocol.ts';
import { TokenRefusedError, UnauthenticatedClientError } from './enrollment-errors.ts';
import type { TokenStore } from './token-store.ts';

export interface EnrollmentServerComponents {
  readonly mesh: MeshTransport;
  readonly admission: Admission;
  /** Present on coordinators only: they redeem tokens. */
  readonly tokens?: TokenStore | undefined;
  /** The coordinators a joiner should talk to (the Raft group's voters and learners). */
  readonly coordinators: () => readonly CoordinatorAddress[];
  readonly log: Logger;
}

function wireError(error: unknown): EnrollWireError {
  if (error instanceof TokenRefusedError)
    return { code: error.code, message: error.message, reason: error.reason };
  if (error instanceof UnauthenticatedClientError)
    return { code: error.code, message: error.message, reason: error.reason };
  if (error instanceof CloudlessError) return { code: error.code, message: error.message };
  return { code: 'INTERNAL', message: 'the enrollment request failed on this node; see its log' };
}

/** A token id may be logged; it is read from the token text only when it has the right shape. */
function tokenIdOf(token: unknown): string | undefined {
  if (typeof token !== 'string') return undefined;
  const id = token.slice(0, token.indexOf('.'));
  return /^[0-9a-f]{16}$/.test(id) ? id : undefined;
}

export class EnrollmentServer {
  readonly #components: EnrollmentServerComponents;
  readonly #stopped = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();

  constructor(components: EnrollmentServerComponents) {
    this.#components = components;
  }

  async start(): Promise<void> {
    await this.#components.mesh.handle(
      enrollProtocol,
      (stream, connection) => {
        const served = this.#serve(stream, connection);
        this.#inFlight.add(served);
        void served.finally(() => this.#inFlight.delete(served));
      },
      { maxInboundStreams: 2 },
    );
  }

  /** Aborts requests being served and waits for them (the mesh unregisters the protocol when it stops). */
  async stop(): Promise<void> {
    this.#stopped.abort(new UnavailableError('this node is stopping'));
    await Promise.allSettled([...this.#inFlight]);
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const peerId = connection.remotePeer.toString();
    const { log } = this.#components;
    const limit = deadline(enrollLimits.deadlineMs, this.#stopped.signal);
    const { signal } = limit;
    let reply: EnrollReply;
    if (this.#inFlight.size >= enrollLimits.maxConcurrent) {
      log.warn('enroll:refused', { peer: peerId, reason: 'busy' });
      reply = {
        ok: false,
        error: {
          code: 'UNAVAILABLE',
          message: `this node serves ${enrollLimits.maxConcurrent} enrollments at once; retry with backoff`,
        },
      };
    } else {
      reply = await this.#answer(stream, peerId, signal);
    }
    try {
      stream.send(encodeEnrollMessage(reply));
      await stream.close({ signal });
    } catch (error) {
      stream.abort(error as Error);
    } finally {
      limit.clear();
    }
  }

  async #answer(stream: Stream, peerId: string, signal: AbortSignal): Promise<EnrollReply> {
    const { admission, log, tokens } = this.#components;
    let raw: unknown;
    try {
      raw = await readEnrollMessage(stream, signal);
    } catch (error) {
      log.warn('enroll:refused', { peer: peerId, reason: 'bad-message', error: (error as Error).message });
      return { ok: false, error: wireError(error) };
    }
    const tokenId = tokenIdOf((raw as { token?: unknown } | null)?.token);
    try {
      const request = validateEnrollRequest(raw);
      if (request.type === 'client') {
        const hash = admission.credentialHash;
        if (hash === undefined)
          throw new UnavailableError(
            "this node has not loaded the admin credential's hash yet; retry in a moment",
          );
        if (!credentialMatches(request.credential, { hash, createdAt: 0 }))
          throw new UnauthenticatedClientError(
            "the admin credential does not match this cluster's; use the bootstrap node's <data-dir>/admin.credential",
          );
        if (admission.isBlocked(peerId))
          throw new UnauthenticatedClientError(`peer ${peerId} was removed from the cluster`);
        admission.admitClient(peerId);
        log.info('enroll:admitted', { peer: peerId, as: 'client' });
        return { ok: true };
      }
      if (tokens === undefined)
        throw new UnavailableError(
          'this node is not a coordinator and cannot redeem tokens; --join a coordinator',
        );
      if (admission.isBlocked(peerId))
        throw new TokenRefusedError(
          'blocked',
          `node ${peerId} was removed from the cluster ('cloudless nodes rm'); it cannot join again with this identity`,
        );
      const { member } = await tokens.redeem({ token: request.token, peerId, member: request });
      admission.memberChanged(peerId, member);
      log.info('enroll:admitted', { peer: peerId, tokenId: member.tokenId, roles: member.roles });
      return {
        ok: true,
        member,
        coordinators: this.#components.coordinators().slice(0, enrollLimits.maxCoordinators),
      };
    } catch (error) {
      const wire = wireError(error);
      log.warn('enroll:refused', {
        peer: peerId,
        ...(tokenId === undefined ? {} : { tokenId }),
        reason: wire.reason ?? wire.code,
        error: wire.message,
      });
      if (wire.code === 'INTERNAL')
        log.error('enrollment failed', { peer: peerId, error: (error as Error).message });
      return { ok: false, error: wire };
    }
  }
}
