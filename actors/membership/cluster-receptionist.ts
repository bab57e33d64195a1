/**
 * The cluster receptionist: actors register under a `ServiceKey` and every node finds them by key.
 *
 * Registrations are Raft keys `/cloudless/services/<PeerId>/<key id>/<actor path>` (key id and
 * path URI-encoded), each holding `{ node, path, key }`. Every node's membership actor watches
 * `/cloudless/services/` next to `/cloudless/members/`, keeps the entries in a `ServiceRegistry`,
 * and answers `find` from memory, leaving out entries whose node is not a live member (no record,
 * or status down or left): the answer follows the member records without any rewrite of the
 * entries.
 *
 * Why keys of their own and not a field of the member record: a registration changes as actors
 * start and stop, and the record is the failure detector's compare-and-set target; folding one
 * into the other would make every registration race the detector's writes. And why the PeerId
 * first: a restarted node drops all its stale registrations with one prefix delete
 * (`/cloudless/services/<PeerId>/`) before it registers again.
 */
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { UnavailableError } from '../../runtime/errors.ts';
import type { ServiceKey } from '../../runtime/service-key.ts';
import type { MemberStatus } from './member-record.ts';

export const servicesPrefix = '/cloudless/services/';

export interface ServiceEntry {
  readonly node: string;
  readonly path: string;
  readonly key: string;
}

export function serviceNodePrefix(node: string): string {
  return `${servicesPrefix}${node}/`;
}

export function serviceEntryKey(entry: ServiceEntry): string {
  return `${serviceNodePrefix(entry.node)}${encodeURIComponent(entry.key)}/${encodeURIComponent(entry.path)}`;
}

/** Decodes a stored entry; undefined for anything malformed (a bad entry is skipped, never half-used). */
export function decodeServiceEntry(storeKey: string, value: string): ServiceEntry | undefined {
  if (!storeKey.startsWith(servicesPrefix) || value.length > 4096) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  const entry = parsed as Partial<ServiceEntry> | null;
  if (
    entry === null ||
    typeof entry !== 'object' ||
    typeof entry.node !== 'string' ||
    typeof entry.path !== 'string' ||
    typeof entry.key !== 'string' ||
    !entry.path.startsWith('/user/') ||
    serviceEntryKey(entry as ServiceEntry) !== storeKey
  )
    return undefined;
  return { node: entry.node, path: entry.path, key: entry.key };
}

/** The registrations one node knows, by store key. */
export class ServiceRegistry {
  readonly #byStoreKey = new Map<string, ServiceEntry>();

  get size(): number {
    return this.#byStoreKey.size;
  }

  put(storeKey: string, value: string): void {
    const entry = decodeServiceEntry(storeKey, value);
    if (entry === undefined) this.#byStoreKey.delete(storeKey);
    else this.#byStoreKey.set(storeKey, entry);
  }

  delete(storeKey: string): void {
    this.#byStoreKey.delete(storeKey);
  }

  clear(): void {
    this.#byStoreKey.clear();
  }

  /** Entries under `key` on nodes whose status is alive or suspect (a suspect may be only slow). */
  find(key: string, statusOf: (node: string) => MemberStatus | undefined): ServiceEntry[] {
    const out: ServiceEntry[] = [];
    for (const entry of this.#byStoreKey.values()) {
      if (entry.key !== key) continue;
      const status = statusOf(entry.node);
      if (status === 'alive' || status === 'suspect') out.push(entry);
    }
    return out.sort((a, b) =>
      a.node === b.node ? a.path.localeCompare(b.path) : a.node.localeCompare(b.node),
    );
  }
}

export interface ServicesListing {
  readonly type: 'services';
  readonly key: string;
  readonly services: readonly ServiceEntry[];
}

/** The messages the membership actor takes for the receptionist. */
export type ClusterReceptionistMessage =
  | {
      readonly type: 'register';
      readonly key: string;
      readonly service: ActorRef<never>;
      readonly replyTo?: ActorRef<{
        readonly type: 'registered';
        readonly key: string;
        readonly ok: boolean;
      }>;
    }
  | { readonly type: 'find'; readonly key: string; readonly replyTo: ActorRef<ServicesListing> };

/** Where the membership actor runs on every node (kept here so this file has no cycle with it). */
export const membershipActorPath = '/user/membership';

/**
 * Registers `service` (an actor of this node) under `key` for the whole cluster; resolves once
 * the registration is committed. It lasts until the actor stops or the node restarts.
 */
export async function registerService<TMsg>(
  system: ActorSystem,
  key: ServiceKey<TMsg>,
  service: ActorRef<TMsg>,
  options: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {},
): Promise<void> {
  const membership = system.resolve<ClusterReceptionistMessage>({
    node: system.nodeId,
    path: membershipActorPath,
  });
  const reply = await membership.ask<{ type: 'registered'; key: string; ok: boolean }>(
    (replyTo) => ({ type: 'register', key: key.id, service: service as ActorRef<never>, replyTo }),
    {
      timeoutMs: options.timeoutMs ?? 10_000,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    },
  );
  if (!reply.ok) {
    throw new UnavailableError(
      `registering ${service.path} under ${key.id} did not commit; check that a majority of coordinators is up, then retry`,
    );
  }
}

/** The actors registered under `key` on live members, as this node's membership view knows them. */
export async function findServices<TMsg>(
  system: ActorSystem,
  key: ServiceKey<TMsg>,
  options: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {},
): Promise<ActorRef<TMsg>[]> {
  const membership = system.resolve<ClusterReceptionistMessage>({
    node: system.nodeId,
    path: membershipActorPath,
  });
  const listing = await membership.ask<ServicesListing>(
    (replyTo) => ({ type: 'find', key: key.id, replyTo }),
    {
      timeoutMs: options.timeoutMs ?? 5000,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    },
  );
  return listing.services.map((entry) => system.resolve<TMsg>({ node: entry.node, path: entry.path }));
}
