/**
 * The joining side of `/cloudless/enroll/1.0.0`: a node redeeming a token (`requestJoin`) and a
 * client presenting the admin credential (`presentCredential`). Each is one stream, one request,
 * one answer, within the protocol's deadline; a refusal comes back as the error class it was
 * (`TokenRefusedError` with its reason, `UnauthenticatedClientError`, `UnavailableError`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import { InvalidRequestError, UnavailableError } from '../../runtime/errors.ts';
import type { MeshNode } from '../../transport/mesh-node.ts';
import {
  type ClientRequest,
  type CoordinatorAddress,
  deadline,
  type EnrollRequest,
  encodeEnrollMessage,
  enrollLimits,
  enrollProtocol,
  type JoinRequest,
  readEnrollMessage,
} from './enroll-protocol.ts';
import { EnrollmentUnavailableError, enrollmentErrorFromWire } from './enrollment-errors.ts';
import { checkPeerId, decodeMemberRecord, type MemberRecord, memberKey } from './member-record.ts';

function target(to: string): PeerId | Multiaddr {
  if (to.startsWith('/')) {
    try {
      return multiaddr(to);
    } catch (error) {
      throw new InvalidRequestError(`'${to.slice(0, 200)}' is not a multiaddr`, { cause: error });
    }
  }
  return peerIdFromString(to);
}

/** Sends one request to `to` (a multiaddr, or a PeerId this node is connected to) and returns the answer's body. */
export async function enrollRequest(
  node: MeshNode,
  to: string,
  request: EnrollRequest,
  options: { signal?: AbortSignal } = {},
): Promise<Record<string, unknown>> {
  const limit = deadline(enrollLimits.deadlineMs, ...(options.signal === undefined ? [] : [options.signal]));
  const { signal } = limit;
  let stream: Awaited<ReturnType<MeshNode['dialProtocol']>>;
  try {
    stream = await node.dialProtocol(target(to), enrollProtocol, { signal });
  } catch (error) {
    limit.clear();
    throw new UnavailableError(
      `cannot open the enrollment protocol at ${to}: ${(error as Error).message}; check the address and that the node runs`,
      { cause: error },
    );
  }
  try {
    const answer = readEnrollMessage(stream, signal);
    stream.send(encodeEnrollMessage(request));
    const reply = (await answer) as {
      ok?: unknown;
      error?: { code?: unknown; message?: unknown; reason?: unknown };
    };
    if (typeof reply !== 'object' || reply === null || typeof reply.ok !== 'boolean')
      throw new UnavailableError(`the enrollment answer from ${to} is not { ok, … }`);
    if (!reply.ok) {
      const error = reply.error ?? {};
      throw enrollmentErrorFromWire({
        code: typeof error.code === 'string' ? error.code : 'UNAVAILABLE',
        message:
          typeof error.message === 'string' ? error.message.slice(0, 2000) : 'refused without a reason',
        ...(typeof error.reason === 'string' ? { reason: error.reason } : {}),
      });
    }
    return reply as Record<string, unknown>;
  } finally {
    await stream.close({ signal }).catch(() => stream.abort(new Error('closing')));
    limit.clear();
  }
}

/** Admits this node's peer as a client of `to` while it stays connected. */
export async function presentCredential(
  node: MeshNode,
  to: string,
  credential: string,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const request: ClientRequest = { type: 'client', credential };
  // A node that has just started or joined may not have read the credential's hash from the
  // store yet, and says so: that passes within moments, so ask again (until `signal` gives up).
  for (let attempt = 0; ; attempt++) {
    try {
      await enrollRequest(node, to, request, options);
      return;
    } catch (error) {
      if (
        !(error instanceof EnrollmentUnavailableError) ||
        options.signal?.aborted === true ||
        attempt >= 50
      ) {
        throw error;
      }
    }
    const delay = Math.min(1000, 50 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2);
    await sleep(delay, undefined, options.signal === undefined ? {} : { signal: options.signal });
  }
}

export interface JoinAnswer {
  readonly member: MemberRecord;
  readonly coordinators: readonly CoordinatorAddress[];
}

/** Redeems a token at the coordinator `to`; resolves with this node's member record and the coordinators. */
export async function requestJoin(
  node: MeshNode,
  to: string,
  request: Omit<JoinRequest, 'type'>,
  options: { signal?: AbortSignal } = {},
): Promise<JoinAnswer> {
  const reply = await enrollRequest(node, to, { type: 'join', ...request }, options);
  const self = node.peerId.toString();
  const member = decodeMemberRecord(JSON.stringify(reply.member ?? null), memberKey(self));
  if (member.id !== self)
    throw new UnavailableError(`the join answer from ${to} describes node ${member.id}, not this node`);
  const list = Array.isArray(reply.coordinators)
    ? reply.coordinators.slice(0, enrollLimits.maxCoordinators)
    : [];
  const coordinators: CoordinatorAddress[] = [];
  for (const entry of list) {
    const { id, addresses } = (entry ?? {}) as { id?: unknown; addresses?: unknown };
    try {
      coordinators.push({
        id: checkPeerId(id, 'coordinator id'),
        addresses: Array.isArray(addresses)
          ? addresses.filter((a): a is string => typeof a === 'string' && a.length <= 1024).slice(0, 16)
          : [],
      });
    } catch {
      // A malformed entry is skipped; the others still serve.
    }
  }
  return { member, coordinators };
}
