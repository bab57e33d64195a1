/**
 * A client of the replicated KV store: a small actor system and mesh node of its own, with a
 * fresh in-memory Ed25519 key (an ephemeral identity, never written anywhere), linked to one
 * coordinator and talking to its front door (`kvServicePath`). One link and one resolved ref
 * serve every call; a call costs one ask.
 *
 * Writes carry `(clientId, seq)`. Concurrent writes each take a lane (`<clientId>/<n>`, its own
 * increasing seq) so that no write can be overtaken by a later one of the same id, which the
 * store would have to refuse as stale; a write retried after UNAVAILABLE reuses its lane and seq,
 * so it is applied at most once. Every call has a deadline (`timeoutMs`, default the client's)
 * and takes a `signal`; errors come back as the runtime's classes (`NotLeaderError`,
 * `UnavailableError`, `TimeoutError`, `InvalidRequestError`, …) by their code.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import {
  AbortError,
  errorFromWire,
  InvalidRequestError,
  NotLeaderError,
  TimeoutError,
  UnavailableError,
} from '../../runtime/errors.ts';
import type { LogLevel } from '../../runtime/logging.ts';
import { MeshTransport } from '../../transport/mesh-transport.ts';
import { NotAdmittedError } from '../../transport/transport-errors.ts';
import { checkCredential, howToGetCredential } from '../enrollment/admin-credential.ts';
import { presentCredential } from '../enrollment/enroll-client.ts';
import { UnauthenticatedClientError } from '../enrollment/enrollment-errors.ts';
import type {
  KvCommandValue,
  KvQueryValue,
  KvServiceError,
  KvServiceReply,
  KvServiceRequest,
} from './kv-service-protocol.ts';
import { kvServicePath } from './kv-service-protocol.ts';
import type {
  KeyValue,
  KvCommand,
  KvCompare,
  KvDeleteResponse,
  KvEvent,
  KvOpResponse,
  KvRangeResult,
  KvTxnOp,
} from './kv-types.ts';
import type { RaftStatusReply, RaftWatchEvent } from './raft-member.ts';
import type { Membership, NodeId } from './raft-types.ts';

export interface KvClientInit {
  /** A coordinator's multiaddr, e.g. /ip4/127.0.0.1/tcp/7000/p2p/12D3KooW… (the /p2p/ part is checked when given). */
  readonly address: string;
  /** Deadline of each call unless the call gives its own; also of the dial. Default 10 s. */
  readonly timeoutMs?: number;
  /** Aborts the dial. */
  readonly signal?: AbortSignal;
  /** Writes in flight at once, at most (each holds a lane); default 1024. */
  readonly maxConcurrentWrites?: number;
  /** The client's own log level; default silent. */
  readonly logLevel?: LogLevel;
  /**
   * The admin credential (the content of the bootstrap node's `<data-dir>/admin.credential`),
   * presented over the enrollment protocol before every actor-protocol dial. Nodes started by
   * `cloudless start` admit no client without it.
   */
  readonly credential?: string;
}

export interface KvCallOptions {
  readonly signal?: AbortSignal;
  /** This call's deadline; default the client's `timeoutMs`. */
  readonly timeoutMs?: number;
}

export type KvConsistency = 'linearizable' | 'serializable';

export interface KvWatchOptions extends KvCallOptions {
  /** First revision to deliver (history is replayed from there); default: changes after now. */
  readonly fromRevision?: number;
  readonly prevKv?: boolean;
  /** Events in revision order, history first. A throw ends the watch with that error. */
  readonly onEvents: (events: readonly KvEvent[]) => void;
  /** Called once when the watch ends: with the error, or with none after `cancel()` or `close()`. */
  readonly onEnd?: (error?: Error) => void;
}

export interface KvWatch {
  readonly watchId: number;
  /** The store's revision when the watch started; live events come after it. */
  readonly revision: number;
  cancel(): void;
}

interface Lane {
  readonly clientId: string;
  seq: number;
}

type SubscriberMessage = RaftWatchEvent | { readonly type: 'kv-client:cancel' };

/** Margin left to the front door so its own answer (UNAVAILABLE) arrives before our ask times out. */
const replyMarginMs = 250;

function rebuild(error: KvServiceError): Error {
  if (error.code === 'NOT_LEADER') return new NotLeaderError(error.message, error.leaderHint);
  return errorFromWire(error);
}

/**
 * The libp2p side of a client (a `KvClient`, a CLI command): listens nowhere, and before its
 * first actor-protocol stream to a node presents the admin credential, which gets this
 * throwaway identity admitted as a client.
 */
export async function startClientMesh(
  system: ActorSystem,
  init: {
    readonly privateKey: PrivateKey;
    readonly timeoutMs: number;
    readonly credential?: string | undefined;
  },
): Promise<MeshTransport> {
  const { credential } = init;
  let started: MeshTransport | undefined;
  started = await MeshTransport.start(system, {
    privateKey: init.privateKey,
    listen: [],
    dialTimeoutMs: init.timeoutMs,
    ...(credential === undefined
      ? {}
      : {
          beforeActorDial: async (peerId: string, signal: AbortSignal) => {
            if (started !== undefined) await presentCredential(started.node, peerId, credential, { signal });
          },
        }),
  });
  return started;
}

export class KvClient {
  /** Base of this client's ids; lanes are `<clientId>/<n>`. */
  readonly clientId: string;
  /** The PeerId of the coordinator this client talks to. */
  readonly nodeId: NodeId;
  readonly address: string;
  readonly #system: ActorSystem;
  readonly #mesh: MeshTransport;
  readonly #front: ActorRef<KvServiceRequest>;
  readonly #timeoutMs: number;
  readonly #maxLanes: number;
  readonly #lanes: Lane[] = [];
  readonly #freeLanes: Lane[] = [];
  readonly #watches = new Set<ActorRef<SubscriberMessage>>();
  #closed = false;
  readonly #credentialGiven: boolean;

  private constructor(system: ActorSystem, mesh: MeshTransport, nodeId: NodeId, init: KvClientInit) {
    this.#system = system;
    this.#mesh = mesh;
    this.nodeId = nodeId;
    this.address = init.address;
    this.clientId = `kvc-${randomUUID()}`;
    this.#timeoutMs = init.timeoutMs ?? 10_000;
    this.#maxLanes = init.maxConcurrentWrites ?? 1024;
    this.#credentialGiven = init.credential !== undefined;
    this.#front = system.resolve<KvServiceRequest>({ node: nodeId, path: kvServicePath });
  }

  /** Dials `address` and returns a client bound to that coordinator. */
  static async connect(init: KvClientInit): Promise<KvClient> {
    if (typeof init.address !== 'string' || !init.address.startsWith('/') || init.address.length > 1024) {
      throw new InvalidRequestError(
        `KvClient needs a coordinator's multiaddr, e.g. /ip4/127.0.0.1/tcp/7000/p2p/<PeerId>; got ${JSON.stringify(init.address)}`,
      );
    }
    const timeoutMs = init.timeoutMs ?? 10_000;
    const credential =
      init.credential === undefined ? undefined : checkCredential(init.credential, 'KvClient credential');
    const privateKey = await generateKeyPair('Ed25519');
    const system = await ActorSystem.start({
      nodeId: peerIdFromPrivateKey(privateKey).toString(),
      logLevel: init.logLevel ?? 'silent',
      dispatchers: {},
    });
    let mesh: MeshTransport | undefined;
    // An explicit timer, cleared once connected: AbortSignal.timeout would stay armed for timeoutMs.
    const expired = new AbortController();
    const timer = setTimeout(
      () => expired.abort(new TimeoutError(`no connection within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      mesh = await startClientMesh(system, { privateKey, timeoutMs, credential });
      const signals = [expired.signal, ...(init.signal === undefined ? [] : [init.signal])];
      const nodeId = await mesh.connect(init.address, { signal: AbortSignal.any(signals) });
      return new KvClient(system, mesh, nodeId, init);
    } catch (error) {
      await system.stop();
      await mesh?.stop();
      if (error instanceof InvalidRequestError) throw error;
      const refused = (error as { cause?: unknown }).cause;
      if (refused instanceof UnauthenticatedClientError) throw refused;
      const hint =
        credential === undefined
          ? `; if the node admits only members and clients, ${howToGetCredential}`
          : '';
      throw new UnavailableError(
        `cannot reach the coordinator at ${init.address} within ${timeoutMs} ms: ${(error as Error).message}${hint}`,
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  async get(
    key: string,
    options: KvCallOptions & { readonly consistency?: KvConsistency } = {},
  ): Promise<KeyValue | undefined> {
    const value = await this.#query(
      { key, ...(options.consistency === undefined ? {} : { consistency: options.consistency }) },
      options,
    );
    return value.result.kvs[0];
  }

  /** Keys starting with `prefix` in key order, one page: pass `nextKey` as `fromKey` for the next. */
  async range(
    prefix: string,
    options: KvCallOptions & {
      readonly limit?: number;
      readonly fromKey?: string;
      readonly consistency?: KvConsistency;
    } = {},
  ): Promise<KvRangeResult> {
    const value = await this.#query(
      {
        key: prefix,
        prefix: true,
        ...(options.limit === undefined ? {} : { limit: options.limit }),
        ...(options.fromKey === undefined ? {} : { fromKey: options.fromKey }),
        ...(options.consistency === undefined ? {} : { consistency: options.consistency }),
      },
      options,
    );
    return value.result;
  }

  async put(
    key: string,
    value: string,
    options: KvCallOptions & { readonly prevKv?: boolean } = {},
  ): Promise<{ readonly revision: number; readonly prevKv?: KeyValue }> {
    const command: KvCommand = {
      type: 'put',
      key,
      value,
      ...(options.prevKv === true ? { prevKv: true } : {}),
    };
    const { result } = await this.command(command, options);
    if (result.type !== 'put')
      throw new UnavailableError(`put '${key}' was answered with a ${result.type} result`);
    return { revision: result.revision, ...(result.prevKv === undefined ? {} : { prevKv: result.prevKv }) };
  }

  async delete(
    key: string,
    options: KvCallOptions & { readonly prefix?: boolean; readonly prevKv?: boolean } = {},
  ): Promise<{
    readonly revision: number;
    readonly deleted: number;
    readonly prevKvs?: readonly KeyValue[];
  }> {
    const command: KvCommand = {
      type: 'delete',
      key,
      ...(options.prefix === true ? { prefix: true } : {}),
      ...(options.prevKv === true ? { prevKv: true } : {}),
    };
    const { result } = await this.command(command, options);
    if (result.type !== 'delete')
      throw new UnavailableError(`delete '${key}' was answered with a ${result.type} result`);
    const { revision, deleted, prevKvs } = result as KvDeleteResponse & { revision: number };
    return { revision, deleted, ...(prevKvs === undefined ? {} : { prevKvs }) };
  }

  async txn(
    txn: {
      readonly compare: readonly KvCompare[];
      readonly success: readonly KvTxnOp[];
      readonly failure: readonly KvTxnOp[];
    },
    options: KvCallOptions = {},
  ): Promise<{
    readonly revision: number;
    readonly succeeded: boolean;
    readonly responses: readonly KvOpResponse[];
  }> {
    const { result } = await this.command({ type: 'txn', ...txn }, options);
    if (result.type !== 'txn') throw new UnavailableError(`txn was answered with a ${result.type} result`);
    return { revision: result.revision, succeeded: result.succeeded, responses: result.responses };
  }

  /** Any write; `put`, `delete` and `txn` are shorthands. Applied at most once, even when retried. */
  async command(command: KvCommand, options: KvCallOptions = {}): Promise<KvCommandValue> {
    const deadline = this.#deadline(options);
    const lane = this.#acquireLane();
    const seq = ++lane.seq;
    // A write whose outcome is unknown may still apply later; its lane moves on to a new seq, so
    // that late apply can only be refused as stale, never overtake a newer write.
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.#call<KvCommandValue>(
            (replyTo, timeoutMs) => ({
              type: 'command',
              command,
              clientId: lane.clientId,
              seq,
              timeoutMs,
              replyTo,
            }),
            deadline,
            options.signal,
          );
        } catch (error) {
          // The front door gave up (no leader for a while, node stopping): try again while time
          // is left, with the same (clientId, seq) so that a first try that did apply is not repeated.
          const left = deadline - performance.now();
          if (!(error instanceof UnavailableError) || left < 2 * replyMarginMs) throw error;
          const backoff = 100 * 2 ** Math.min(attempt, 5) * (0.5 + Math.random() / 2);
          await this.#pause(Math.min(left - replyMarginMs, backoff), options.signal);
        }
      }
    } finally {
      this.#releaseLane(lane);
    }
  }

  /** Opens a watch; resolves once it has started (the history, if any, has been handed to `onEvents`). */
  async watch(prefix: string, options: KvWatchOptions): Promise<KvWatch> {
    this.#checkOpen();
    const deadline = this.#deadline(options);
    const front = this.#front;
    const watches = this.#watches;
    let started: ((watch: KvWatch) => void) | undefined;
    let failed: ((error: Error) => void) | undefined;
    const ready = new Promise<KvWatch>((resolve, reject) => {
      started = resolve;
      failed = reject;
    });
    let ended = false;
    const end = (error?: Error): void => {
      if (ended) return;
      ended = true;
      if (failed !== undefined && error !== undefined) failed(error);
      failed = undefined;
      started = undefined;
      options.onEnd?.(error);
    };
    let watchId: number | undefined;
    const subscriber = this.#system.spawn(
      Behaviors.setup<SubscriberMessage>((ctx) => {
        // The coordinator's node going away ends the watch: its member can no longer send.
        ctx.watch(front as ActorRef<never>);
        return Behaviors.receive<SubscriberMessage>((_ctx, message) => {
          switch (message.type) {
            case 'watch-started': {
              watchId = message.watchId;
              try {
                if (message.history.length > 0) options.onEvents(message.history);
              } catch (error) {
                front.tell({ type: 'cancel-watch', watchId: message.watchId });
                end(error as Error);
                return Behaviors.stopped;
              }
              const handle: KvWatch = {
                watchId: message.watchId,
                revision: message.revision,
                cancel: () => subscriber.tell({ type: 'kv-client:cancel' }),
              };
              started?.(handle);
              started = undefined;
              failed = undefined;
              return Behaviors.same;
            }
            case 'watch-events':
              try {
                options.onEvents(message.events);
              } catch (error) {
                front.tell({ type: 'cancel-watch', watchId: message.watchId });
                end(error as Error);
                return Behaviors.stopped;
              }
              return Behaviors.same;
            case 'watch-ended':
              end(rebuild(message.error));
              return Behaviors.stopped;
            case 'kv-client:cancel':
              if (watchId !== undefined) front.tell({ type: 'cancel-watch', watchId });
              end();
              return Behaviors.stopped;
          }
        }).receiveSignal((_ctx, signal) => {
          if (signal.type === 'Terminated') {
            end(
              new UnavailableError(
                `the coordinator at ${this.address} went away; watch again from the last revision seen + 1`,
              ),
            );
            return Behaviors.stopped;
          }
          if (signal.type === 'PostStop') {
            watches.delete(subscriber);
            end();
          }
          return Behaviors.same;
        });
      }),
    );
    watches.add(subscriber);
    front.tell({
      type: 'watch',
      prefix,
      ...(options.fromRevision === undefined ? {} : { fromRevision: options.fromRevision }),
      ...(options.prevKv === undefined ? {} : { prevKv: options.prevKv }),
      subscriber,
    });
    const timer = new AbortController();
    const waits = [timer.signal, ...(options.signal === undefined ? [] : [options.signal])];
    const expired = sleep(Math.max(0, deadline - performance.now()), undefined, {
      signal: AbortSignal.any(waits),
    }).then(
      () => {
        throw new TimeoutError(
          `watch '${prefix}' did not start within ${options.timeoutMs ?? this.#timeoutMs} ms at ${this.address}; ` +
            'check that the node is a running coordinator',
        );
      },
      (error: unknown) => {
        if (timer.signal.aborted) return undefined as never;
        throw new AbortError(`watch '${prefix}' aborted`, { cause: error });
      },
    );
    try {
      return await Promise.race([ready, expired]);
    } catch (error) {
      subscriber.tell({ type: 'kv-client:cancel' });
      throw error;
    } finally {
      timer.abort();
    }
  }

  /** The connected coordinator's view: role, term, leader, commit and applied index, members. */
  status(options: KvCallOptions = {}): Promise<RaftStatusReply> {
    return this.#call<RaftStatusReply>(
      (replyTo, timeoutMs) => ({ type: 'status', timeoutMs, replyTo }),
      this.#deadline(options),
      options.signal,
    );
  }

  /** Asks the group to add node `id` (a learner, then a voter once caught up). */
  join(id: NodeId, addresses: readonly string[], options: KvCallOptions = {}): Promise<Membership> {
    return this.#call<Membership>(
      (replyTo, timeoutMs) => ({ type: 'join', id, addresses, timeoutMs, replyTo }),
      this.#deadline(options),
      options.signal,
    );
  }

  removeMember(id: NodeId, options: KvCallOptions = {}): Promise<Membership> {
    return this.#call<Membership>(
      (replyTo, timeoutMs) => ({ type: 'remove-member', id, timeoutMs, replyTo }),
      this.#deadline(options),
      options.signal,
    );
  }

  /** Hands leadership to `to` (default: the most caught-up voter); resolves with the new leader. */
  async transferLeadership(to?: NodeId, options: KvCallOptions = {}): Promise<NodeId> {
    const value = await this.#call<{ leaderId: NodeId }>(
      (replyTo, timeoutMs) => ({
        type: 'transfer-leadership',
        ...(to === undefined ? {} : { to }),
        timeoutMs,
        replyTo,
      }),
      this.#deadline(options),
      options.signal,
    );
    return value.leaderId;
  }

  /**
   * Another service on the coordinator this client is connected to (e.g. the workload front door
   * at `/user/workloads`), reached over the same connection and credential.
   */
  serviceRef<TMsg>(path: string): ActorRef<TMsg> {
    this.#checkOpen();
    return this.#system.resolve<TMsg>({ node: this.nodeId, path });
  }

  /** Ends every watch (their `onEnd` runs), then stops the client's actor system and mesh node. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const subscriber of this.#watches) subscriber.tell({ type: 'kv-client:cancel' });
    await this.#system.stop();
    await this.#mesh.stop();
  }

  #query(
    query: {
      readonly key: string;
      readonly prefix?: boolean;
      readonly limit?: number;
      readonly fromKey?: string;
      readonly consistency?: KvConsistency;
    },
    options: KvCallOptions,
  ): Promise<KvQueryValue> {
    return this.#call<KvQueryValue>(
      (replyTo, timeoutMs) => ({ type: 'query', ...query, timeoutMs, replyTo }),
      this.#deadline(options),
      options.signal,
    );
  }

  #deadline(options: KvCallOptions): number {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new InvalidRequestError(
        `timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`,
      );
    }
    return performance.now() + timeoutMs;
  }

  /** One ask of the front door; a `{ ok: false }` reply is thrown as its error class. */
  async #call<TValue>(
    build: (replyTo: ActorRef<KvServiceReply<TValue>>, timeoutMs: number) => KvServiceRequest,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<TValue> {
    this.#checkOpen();
    const left = Math.max(1, Math.round(deadline - performance.now()));
    // The front door must answer (UNAVAILABLE with the reason) before this ask gives up.
    const serverTimeoutMs = Math.max(1, Math.min(120_000, left - replyMarginMs));
    let reply: KvServiceReply<TValue>;
    try {
      reply = await this.#front.ask<KvServiceReply<TValue>>((replyTo) => build(replyTo, serverTimeoutMs), {
        timeoutMs: left,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (error) {
      // The node refused our stream at once: say what to do rather than time out.
      if (error instanceof NotAdmittedError) {
        throw new UnauthenticatedClientError(
          `the node at ${this.address} does not admit this client: ${
            this.#credentialGiven
              ? 'it did not accept the admin credential presented; check it is the bootstrap node’s'
              : `no admin credential was presented; ${howToGetCredential}`
          }`,
          { cause: error },
        );
      }
      if (error instanceof TimeoutError) {
        throw new TimeoutError(
          `no answer from the coordinator at ${this.address} within ${left} ms; check that the node runs ` +
            'with --roles coordinator and is reachable (a write may or may not have been applied)',
          { cause: error },
        );
      }
      throw error;
    }
    if (!reply.ok) throw rebuild(reply.error);
    return reply.value;
  }

  #checkOpen(): void {
    if (this.#closed)
      throw new UnavailableError(`this KvClient (to ${this.address}) is closed; connect a new one`);
  }

  #acquireLane(): Lane {
    this.#checkOpen();
    const free = this.#freeLanes.pop();
    if (free !== undefined) return free;
    if (this.#lanes.length >= this.#maxLanes) {
      throw new UnavailableError(
        `${this.#maxLanes} writes are in flight on this KvClient (maxConcurrentWrites); wait for some to finish`,
      );
    }
    const lane: Lane = { clientId: `${this.clientId}/${this.#lanes.length}`, seq: 0 };
    this.#lanes.push(lane);
    return lane;
  }

  #releaseLane(lane: Lane): void {
    this.#freeLanes.push(lane);
  }

  async #pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await sleep(Math.max(0, ms), undefined, signal === undefined ? {} : { signal });
    } catch (error) {
      throw new AbortError('KvClient call aborted', { cause: error });
    }
  }
}
