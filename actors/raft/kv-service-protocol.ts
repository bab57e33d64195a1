/**
 * The messages of the KV front door (`kv-service.ts`), the actor every coordinator runs at
 * `kvServicePath` for clients (the CLI, `KvClient`, other subsystems). Requests come from outside
 * the process and are validated before anything reaches the Raft member; every reply is a
 * `KvServiceReply`, with errors as `{ code, message, leaderHint? }` (rebuilt by `errorFromWire`).
 */
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { KvCommand, KvRangeResult, KvResult } from './kv-types.ts';
import type { RaftStatusReply, RaftWatchEvent } from './raft-member.ts';
import type { Membership, NodeId } from './raft-types.ts';

/** Where every coordinator runs its front door: under the coordinator supervisor, as `kv`. */
export const kvServicePath = '/user/coordinator/kv';

export interface KvServiceError {
  readonly code: string;
  readonly message: string;
  /** With NOT_LEADER: the leader's node id, when known. */
  readonly leaderHint?: NodeId | undefined;
}

export type KvServiceReply<TValue> =
  | { readonly ok: true; readonly value: TValue }
  | { readonly ok: false; readonly error: KvServiceError };

/** Optional on every request: how long the front door keeps trying (leader changes, forwarding). */
interface Deadline {
  readonly timeoutMs?: number;
}

/** A write. A retry must reuse its `(clientId, seq)`: the store applies it once. */
export interface KvCommandRequest extends Deadline {
  readonly type: 'command';
  readonly command: KvCommand;
  readonly clientId: string;
  readonly seq: number;
  readonly replyTo: ActorRef<KvServiceReply<KvCommandValue>>;
}

export interface KvCommandValue {
  readonly result: KvResult;
  /** The `(clientId, seq)` had been applied before: this is the first result, not re-applied. */
  readonly duplicate: boolean;
  readonly index: number;
}

/** A read of one key, or of keys starting with `key` (`prefix`), paged by `limit` and `fromKey`. */
export interface KvQueryRequest extends Deadline {
  readonly type: 'query';
  readonly key: string;
  readonly prefix?: boolean;
  readonly limit?: number;
  readonly fromKey?: string;
  /** Default `linearizable` (served by the leader after ReadIndex); `serializable` reads this node. */
  readonly consistency?: 'linearizable' | 'serializable';
  readonly replyTo: ActorRef<KvServiceReply<KvQueryValue>>;
}

export interface KvQueryValue {
  readonly result: KvRangeResult;
  readonly appliedIndex: number;
}

/** Opens a watch on this node's member; events go straight to `subscriber` (see `RaftWatchRequest`). */
export interface KvWatchRequest {
  readonly type: 'watch';
  readonly prefix: string;
  readonly fromRevision?: number;
  readonly prevKv?: boolean;
  readonly subscriber: ActorRef<RaftWatchEvent>;
}

export interface KvCancelWatchRequest {
  readonly type: 'cancel-watch';
  readonly watchId: number;
}

/** This node's member status (its own view: role, term, leader, indexes, membership). */
export interface KvStatusRequest extends Deadline {
  readonly type: 'status';
  readonly replyTo: ActorRef<KvServiceReply<RaftStatusReply>>;
}

/** Adds node `id` (listening on `addresses`) as a learner, promoted to voter once caught up. */
export interface KvJoinRequest extends Deadline {
  readonly type: 'join';
  readonly id: NodeId;
  readonly addresses: readonly string[];
  readonly replyTo: ActorRef<KvServiceReply<Membership>>;
}

export interface KvRemoveMemberRequest extends Deadline {
  readonly type: 'remove-member';
  readonly id: NodeId;
  readonly replyTo: ActorRef<KvServiceReply<Membership>>;
}

export interface KvTransferLeadershipRequest extends Deadline {
  readonly type: 'transfer-leadership';
  /** The voter to hand leadership to; default the most caught-up one. */
  readonly to?: NodeId;
  readonly replyTo: ActorRef<KvServiceReply<{ readonly leaderId: NodeId }>>;
}

export type KvServiceRequest =
  | KvCommandRequest
  | KvQueryRequest
  | KvWatchRequest
  | KvCancelWatchRequest
  | KvStatusRequest
  | KvJoinRequest
  | KvRemoveMemberRequest
  | KvTransferLeadershipRequest;
