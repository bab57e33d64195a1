/**
 * Who this node lets in. The connection gater asks `admit` (everyone but blocked peers may
 * connect, to speak the enrollment protocol); the actor protocol asks `isAdmitted`: this node,
 * members whose record's status is not `left`, Raft voters and learners, coordinators a join
 * answer named, and clients that presented the admin credential (for as long as they stay
 * connected). `block` refuses a peer everywhere and closes its connections at once.
 */
import type { MeshTransport } from '../../transport/mesh-transport.ts';
import type { MemberRecord } from './member-record.ts';

export interface AdmissionConnections {
  closeConnections(peerId: string, reason: string): void;
}

export class Admission {
  readonly self: string;
  readonly #members = new Map<string, MemberRecord['status']>();
  readonly #raft = new Set<string>();
  readonly #seeded = new Set<string>();
  readonly #clients = new Set<string>();
  readonly #blocked = new Set<string>();
  #connections: AdmissionConnections | undefined;
  #credentialHash: string | undefined;
  #membersLoaded = false;

  constructor(init: { self: string }) {
    this.self = init.self;
  }

  /** Lets `block` close connections and ends a client's admission when its last connection closes. */
  attach(mesh: MeshTransport): void {
    this.#connections = mesh;
    mesh.node.addEventListener('peer:disconnect', (event) => this.#clients.delete(event.detail.toString()));
  }

  /** The connection gater's question. */
  admit(peerId: string): boolean {
    return !this.#blocked.has(peerId);
  }

  /** The actor protocol's question. */
  isAdmitted(peerId: string): boolean {
    if (peerId === this.self) return true;
    if (this.#blocked.has(peerId)) return false;
    const status = this.#members.get(peerId);
    if (status !== undefined && status !== 'left') return true;
    return this.#raft.has(peerId) || this.#seeded.has(peerId) || this.#clients.has(peerId);
  }

  isBlocked(peerId: string): boolean {
    return this.#blocked.has(peerId);
  }

  admitClient(peerId: string): void {
    if (!this.#blocked.has(peerId)) this.#clients.add(peerId);
  }

  /** Refuses `peerId` from now on and closes its connections. */
  block(peerId: string): void {
    if (peerId === this.self) return;
    this.#blocked.add(peerId);
    this.#clients.delete(peerId);
    this.#seeded.delete(peerId);
    this.#connections?.closeConnections(peerId, 'the node was removed from the cluster');
  }

  unblock(peerId: string): void {
    this.#blocked.delete(peerId);
  }

  /** A member record changed (undefined: deleted). */
  memberChanged(peerId: string, record: MemberRecord | undefined): void {
    if (record === undefined) this.#members.delete(peerId);
    else this.#members.set(peerId, record.status);
  }

  /** Replaces every member at once (a fresh listing); marks the members as loaded. */
  resetMembers(records: Iterable<MemberRecord>, blocked: Iterable<string>): void {
    this.#members.clear();
    for (const record of records) this.#members.set(record.id, record.status);
    for (const peerId of blocked) this.block(peerId);
    this.#membersLoaded = true;
  }

  get membersLoaded(): boolean {
    return this.#membersLoaded;
  }

  /** The Raft group's voters and learners, whenever the membership changes. */
  setRaftMembers(ids: Iterable<string>): void {
    this.#raft.clear();
    for (const id of ids) this.#raft.add(id);
  }

  /** Coordinators a join answer named: admitted before this node's own view of the members loads. */
  seed(ids: Iterable<string>): void {
    for (const id of ids) if (!this.#blocked.has(id)) this.#seeded.add(id);
  }

  /** The stored hash of the admin credential (from `/cloudless/admin/credential`). */
  get credentialHash(): string | undefined {
    return this.#credentialHash;
  }

  setCredentialHash(hash: string | undefined): void {
    this.#credentialHash = hash;
  }

  /** For `status` and specs: sizes of each set. */
  counts(): { members: number; raft: number; seeded: number; clients: number; blocked: number } {
    return {
      members: this.#members.size,
      raft: this.#raft.size,
      seeded: this.#seeded.size,
      clients: this.#clients.size,
      blocked: this.#blocked.size,
    };
  }
}
