/**
 * The mesh: this node's libp2p node speaking `/cloudless/actor/1.0.0` to every peer, plugged
 * into the kernel as its router for other nodes. A ref to an actor on another machine then
 * behaves like a local one: tell, ask and death watch, with per-sender ordering (one stream, one
 * batch order per peer), and hard limits on everything that comes in.
 */
import type { Connection, ConnectionGater, PeerId, PrivateKey, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { Counter, Gauge } from 'prom-client';
import type { DeathWatcher } from '../runtime/actor-cell.ts';
import type { ActorAddress, ActorRef } from '../runtime/actor-ref.ts';
import type { ActorSystem } from '../runtime/actor-system.ts';
import { errorFromWire, InvalidRequestError, UnavailableError } from '../runtime/errors.ts';
import type { ControlMessage, SpawnMailbox, StrategyData } from '../runtime/host-protocol.ts';
import type { Kernel } from '../runtime/kernel.ts';
import { MessageCodec } from '../runtime/message-codec.ts';
import { PlacedActorRef, type ProxyHost } from '../runtime/placed-actor-proxy.ts';
import { type ActorHost, hostPlacedActor, placeBehavior } from '../runtime/placement.ts';
import type { RegisteredBehavior } from '../runtime/registered-behavior.ts';
import type { Router } from '../runtime/router.ts';
import type { ThreadSpawner } from '../runtime/worker-threads.ts';
import { MeshFaults, type MeshFaultsInit, partitionReason } from './mesh-faults.ts';
import { createMeshNode, type MeshNode } from './mesh-node.ts';
import type { MsgpackLimits } from './msgpack-limits.ts';
import {
  actorProtocol,
  PeerLink,
  type PeerLinkOwner,
  type PeerLinkSettings,
  refuseStream,
} from './peer-link.ts';

/**
 * Decides which peers may connect at all (consulted by the connection gater, both ways). With
 * enrollment it refuses only removed (blocked) peers: unknown peers must be able to connect to
 * speak the enrollment protocol. The default admits all.
 */
export interface MeshGate {
  admit(peerId: string): boolean | Promise<boolean>;
}

/**
 * Decides which peers may open actor-protocol streams to this node (enrollment: members, Raft
 * members and admitted clients). A refused stream gets one refusal frame saying why and is closed
 * before anything in it is read (the dialer fails its asks at once with `NotAdmittedError`), so no
 * actor is reached. Streams this node opens are not checked: it dials only peers it has a reason
 * to talk to. The default admits all.
 */
export interface ActorProtocolAdmission {
  isAdmitted(peerId: string): boolean;
}

/** An extra protocol this node serves beside the actor protocol (enrollment). */
export type ProtocolHandler = (stream: Stream, connection: Connection) => void | Promise<void>;

export interface MeshTransportInit {
  privateKey: PrivateKey;
  /** Multiaddrs to listen on; default loopback on a free port. */
  listen?: string[];
  gate?: MeshGate;
  /** Who may open actor-protocol streams here; default everyone. */
  admission?: ActorProtocolAdmission;
  /**
   * Runs before every actor-protocol stream this node opens (first contact and each redial), on
   * the same connection: a client presents its admin credential here, so a peer that restarted
   * (and forgot it) admits it again before the stream arrives. A throw fails that dial.
   */
  beforeActorDial?: (peerId: string, signal: AbortSignal) => Promise<void>;
  /** Largest frame accepted or sent; default 4 MiB. */
  maxFrameBytes?: number;
  /** Decoding limits for remote data. */
  limits?: Partial<MsgpackLimits>;
  /** Actor-protocol streams a peer may open at once; default 4. */
  maxInboundStreams?: number;
  /** Envelopes waiting for a peer's stream, at most; default 100,000 per peer. */
  maxQueued?: number;
  /** Envelopes per frame, at most; default 4096. */
  maxBatch?: number;
  reconnect?: Partial<PeerLinkSettings['reconnect']>;
  /** How long a peer may be unreachable before its actors count as terminated; default 10 s. */
  unreachableAfterMs?: number;
  /** Deadline of one dial; default 5 s. */
  dialTimeoutMs?: number;
  /** Source of reconnect jitter; default Math.random. */
  random?: () => number;
  /** What identify tells peers; default `cloudless`. */
  agentVersion?: string;
  /** Links kept before idle, unreachable ones are forgotten; default 10,000. */
  maxIdleLinks?: number;
}

export const defaultLimits: MsgpackLimits = {
  maxDepth: 32,
  maxCollectionLength: 1_000_000,
  maxStringBytes: 4 * 1024 * 1024,
  maxItems: 4_000_000,
};

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
    throw new InvalidRequestError(`mesh option ${name} must be a positive number, got ${String(value)}`);
  }
  return value;
}

/** The gate, and fault injection's partitions once it is enabled (`faults()` is looked up per connection). */
function gaterFor(gate: MeshGate | undefined, faults: () => MeshFaults | undefined): ConnectionGater {
  const partitioned = (peer: PeerId): boolean => faults()?.refusesConnection(peer.toString()) === true;
  const deny = async (peer: PeerId): Promise<boolean> =>
    partitioned(peer) || (gate !== undefined && !(await gate.admit(peer.toString())));
  return {
    denyDialPeer: deny,
    denyInboundEncryptedConnection: deny,
    denyOutboundEncryptedConnection: deny,
    // A partition that began while the connection was being upgraded.
    denyInboundUpgradedConnection: partitioned,
    denyOutboundUpgradedConnection: partitioned,
  };
}

/** Least time between two warnings about forged senders. */
const forgedLogEveryMs = 10_000;

/** Most actors one peer may place on this node at once. */
const maxHostedPerPeer = 10_000;

export class MeshTransport implements Router, PeerLinkOwner, ProxyHost {
  readonly kernel: Kernel;
  readonly codec: MessageCodec;
  readonly settings: PeerLinkSettings;
  readonly node: MeshNode;
  readonly #system: ActorSystem;
  readonly #links = new Map<string, PeerLink>();
  /**
   * The node id and link of the last delivery: refs keep their node string, so a run of sends to
   * one peer matches it by identity, without the Map's full comparison of a 52-character key.
   * Cleared whenever a link leaves `#links`.
   */
  #lastNode: string | undefined = undefined;
  #lastLink: PeerLink | undefined = undefined;
  /** Proxies of actors placed on each peer. */
  readonly #proxies = new Map<PeerLink, Set<PlacedActorRef<unknown>>>();
  readonly #random: () => number;
  readonly #maxIdleLinks: number;
  readonly #violations: Counter<string>;
  readonly #refused: Counter<string>;
  readonly #forged: Counter<string>;
  /** When a forged sender was last logged, and how many went unlogged since (rate-limited warning). */
  #forgedLoggedAt = Number.NEGATIVE_INFINITY;
  #forgedUnlogged = 0;
  #admission: ActorProtocolAdmission | undefined = undefined;
  #beforeActorDial: ((peerId: string, signal: AbortSignal) => Promise<void>) | undefined = undefined;
  readonly #protocols = new Set<string>();
  /** Fault injection, for test runs only; undefined (and free) unless `enableFaultInjection` was called. */
  #faults: MeshFaults | undefined = undefined;
  #stopped = false;

  private constructor(
    system: ActorSystem,
    node: MeshNode,
    settings: PeerLinkSettings,
    random: () => number,
    maxIdleLinks: number,
  ) {
    this.#maxIdleLinks = maxIdleLinks;
    this.#system = system;
    this.kernel = system.internals;
    this.codec = new MessageCodec(this.kernel);
    this.node = node;
    this.settings = settings;
    this.#random = random;
    this.#violations = new Counter({
      name: 'cloudless_transport_protocol_violations_total',
      help: 'Streams reset because a peer sent garbage, an oversized frame or data past the decode limits',
      registers: [system.metrics],
    });
    this.#refused = new Counter({
      name: 'cloudless_transport_streams_refused_total',
      help: 'Actor-protocol streams reset because their peer is not admitted (not a member, not an admitted client)',
      registers: [system.metrics],
    });
    this.#forged = new Counter({
      name: 'cloudless_transport_forged_senders_total',
      help: 'Messages dropped because their `from` named another node than the peer they came from',
      registers: [system.metrics],
    });
    const links = this.#links;
    new Gauge({
      name: 'cloudless_transport_send_queue_messages',
      help: 'Envelopes waiting for a peer stream, over all peers',
      registers: [system.metrics],
      collect() {
        let total = 0;
        for (const link of links.values()) total += link.queued;
        this.set(total);
      },
    });
    new Gauge({
      name: 'cloudless_transport_peers',
      help: 'Peers this node has a link to',
      registers: [system.metrics],
      collect() {
        this.set(links.size);
      },
    });
  }

  /**
   * Starts the libp2p node and attaches it to `system`, whose node id must be this identity's
   * PeerId (so refs name the node other peers dial).
   */
  static async start(system: ActorSystem, init: MeshTransportInit): Promise<MeshTransport> {
    const reconnect = {
      minMs: positive('reconnect.minMs', init.reconnect?.minMs, 100),
      maxMs: positive('reconnect.maxMs', init.reconnect?.maxMs, 5000),
      jitter: init.reconnect?.jitter ?? 0.2,
    };
    const settings: PeerLinkSettings = {
      maxFrameBytes: positive('maxFrameBytes', init.maxFrameBytes, 4 * 1024 * 1024),
      limits: { ...defaultLimits, ...init.limits },
      maxQueued: positive('maxQueued', init.maxQueued, 100_000),
      maxBatch: positive('maxBatch', init.maxBatch, 4096),
      reconnect,
      unreachableAfterMs: positive('unreachableAfterMs', init.unreachableAfterMs, 10_000),
      dialTimeoutMs: positive('dialTimeoutMs', init.dialTimeoutMs, 5000),
    };
    const maxInboundStreams = positive('maxInboundStreams', init.maxInboundStreams, 4);
    let started: MeshTransport | undefined;
    const node = await createMeshNode({
      privateKey: init.privateKey,
      listen: init.listen,
      gater: gaterFor(init.gate, () => started?.faults),
      agentVersion: init.agentVersion ?? 'cloudless',
    });
    if (node.peerId.toString() !== system.nodeId) {
      await node.stop();
      throw new InvalidRequestError(
        `the actor system's nodeId (${system.nodeId}) must be the mesh identity's PeerId (${node.peerId}); ` +
          'start the system with nodeId set to the PeerId',
      );
    }
    const transport = new MeshTransport(
      system,
      node,
      settings,
      init.random ?? Math.random,
      positive('maxIdleLinks', init.maxIdleLinks, 10_000),
    );
    started = transport;
    transport.#admission = init.admission;
    transport.#beforeActorDial = init.beforeActorDial;
    await node.handle(
      actorProtocol,
      (stream: Stream, connection: Connection) => transport.#accept(stream, connection, maxInboundStreams),
      // One more than the limit, so the stream past it reaches #accept, which logs the refusal;
      // libp2p silently resets any beyond that.
      { maxInboundStreams: maxInboundStreams + 1 },
    );
    node.addEventListener('peer:disconnect', (event) =>
      transport.#links.get(event.detail.toString())?.disconnected(),
    );
    system.attachMesh({ router: transport, spawner: transport.#spawner() });
    return transport;
  }

  /** Peers this node keeps a link to (the `cloudless_transport_peers` gauge). */
  get linkCount(): number {
    return this.#links.size;
  }

  get peerId(): string {
    return this.node.peerId.toString();
  }

  /** Addresses other peers can dial, each ending in this node's /p2p/PeerId. */
  get multiaddrs(): string[] {
    return this.node.getMultiaddrs().map(String);
  }

  /**
   * Turns fault injection on (for test runs: see mesh-faults.ts) and returns it; the same
   * instance when it is on already. It stays on until the mesh stops.
   */
  enableFaultInjection(init: MeshFaultsInit = {}): MeshFaults {
    if (this.#faults !== undefined) return this.#faults;
    if (this.#stopped) throw new UnavailableError('the mesh is stopped; cannot enable fault injection');
    this.#faults = new MeshFaults(
      {
        kernel: this.kernel,
        disconnect: (peerId) => {
          const error = new UnavailableError(`connection to ${peerId} cut: ${partitionReason}`);
          for (const connection of this.node.getConnections()) {
            if (connection.remotePeer.toString() === peerId) connection.abort(error);
          }
        },
        forward: (to, message) => this.#forward(to, message),
        healed: (peerId) => this.#links.get(peerId)?.redialNow(),
      },
      init,
    );
    return this.#faults;
  }

  /** Fault injection when it is on (test runs only), else undefined. */
  get faults(): MeshFaults | undefined {
    return this.#faults;
  }

  /** Connects to a peer by address (first contact); resolves with its PeerId. */
  async connect(address: string, options: { signal?: AbortSignal } = {}): Promise<string> {
    let target: ReturnType<typeof multiaddr>;
    try {
      target = multiaddr(address);
    } catch (error) {
      throw new InvalidRequestError(`'${address}' is not a multiaddr: ${(error as Error).message}`, {
        cause: error,
      });
    }
    try {
      const signal = options.signal ?? AbortSignal.timeout(this.settings.dialTimeoutMs);
      const connection = await this.node.dial(target, { signal });
      const peerId = connection.remotePeer.toString();
      // Resolve only once the actor protocol works: a peer whose gate refuses us accepts the
      // dial and drops the connection right after, and a link to a peer declared unreachable
      // becomes reachable again only when it has a stream.
      await this.#link(peerId).open(signal);
      return peerId;
    } catch (error) {
      // libp2p rejects a stream the peer closed during negotiation with the close event itself.
      const why =
        error instanceof Error
          ? error.message
          : 'the peer closed the actor-protocol stream at once (its gate may refuse this node)';
      throw new UnavailableError(
        `cannot connect to ${address}: ${why}; check the address, that the node runs and that it admits this node`,
        { cause: error },
      );
    }
  }

  /**
   * Serves `protocol` with `handler` until the mesh stops (enrollment registers
   * `/cloudless/enroll/1.0.0` here). The handler owns each stream: it must close or abort it and
   * bound its own reads; libp2p resets streams past `maxInboundStreams` per connection.
   */
  async handle(
    protocol: string,
    handler: ProtocolHandler,
    options: { maxInboundStreams?: number } = {},
  ): Promise<void> {
    if (this.#stopped) throw new UnavailableError(`the mesh is stopped; cannot serve ${protocol}`);
    if (protocol === actorProtocol || this.#protocols.has(protocol))
      throw new InvalidRequestError(`${protocol} is served already`);
    this.#protocols.add(protocol);
    await this.node.handle(protocol, handler, { maxInboundStreams: options.maxInboundStreams ?? 4 });
  }

  /** Sets who may open actor-protocol streams (replacing `init.admission`); undefined admits all. */
  setAdmission(admission: ActorProtocolAdmission | undefined): void {
    this.#admission = admission;
  }

  /**
   * Closes every connection to `peerId` at once and forgets its link (a removed member: what was
   * queued for it becomes dead letters, no redial is pending). A later send makes a new link,
   * which dials only if the gate lets it.
   */
  closeConnections(peerId: string, reason: string): void {
    const error = new UnavailableError(`connection to ${peerId} closed: ${reason}`);
    const link = this.#links.get(peerId);
    if (link !== undefined) {
      this.#forgetLast();
      this.#links.delete(peerId);
      this.#proxies.delete(link);
      void link.close();
    }
    for (const connection of this.node.getConnections()) {
      if (connection.remotePeer.toString() === peerId) connection.abort(error);
    }
  }

  /** An inbound actor-protocol stream: refused (with a warning) past the peer's stream limit. */
  #accept(stream: Stream, connection: Connection, maxInboundStreams: number): void {
    const peerId = connection.remotePeer.toString();
    // Checked before a link exists, so an unknown peer costs no link, queue or decoder.
    if (this.#admission !== undefined && !this.#admission.isAdmitted(peerId)) {
      this.#refused.inc();
      this.kernel.logger.debug(`actor-protocol stream from ${peerId} refused: the peer is not admitted`);
      refuseStream(
        stream,
        this.codec,
        'this node admits only members and admitted clients; enroll with a join token, or present ' +
          'the admin credential (a client: pass --credential with the bootstrap node’s <data-dir>/admin.credential)',
      );
      return;
    }
    const link = this.#link(peerId);
    let open = 0;
    for (const other of connection.streams) {
      if (other.protocol === actorProtocol && other.direction === 'inbound' && other.status === 'open')
        open++;
    }
    if (open > maxInboundStreams) {
      this.onViolation(link, `more than ${maxInboundStreams} actor-protocol streams at once`);
      stream.abort(
        new Error(`protocol violation: more than ${maxInboundStreams} actor-protocol streams at once`),
      );
      return;
    }
    link.attach(stream);
  }

  #link(peerId: string): PeerLink {
    let link = this.#links.get(peerId);
    if (link === undefined) {
      if (this.#links.size >= this.#maxIdleLinks) this.#forgetIdleUnreachable();
      link = new PeerLink(this, peerId);
      this.#links.set(peerId, link);
    }
    return link;
  }

  /**
   * Refs can name any PeerId, so links to peers that never answered could pile up. An unreachable
   * link with nothing queued, watched or hosted only remembers that the peer is unreachable (so
   * messages to it fail at once); past `maxIdleLinks` links, those are forgotten.
   */
  #forgetIdleUnreachable(): void {
    for (const [peerId, link] of this.#links) {
      if (!link.unreachable || link.queued > 0 || link.hosted.size > 0 || link.watches.active) continue;
      this.#forgetLast();
      this.#links.delete(peerId);
      this.#proxies.delete(link);
      void link.close();
    }
  }

  #forgetLast(): void {
    this.#lastNode = undefined;
    this.#lastLink = undefined;
  }

  // ---------------------------------------------------------------- Router

  deliver(to: ActorAddress, message: unknown): boolean {
    if (this.#stopped) {
      this.kernel.deadLetter(to.path, message, 'no-route');
      return false;
    }
    if (this.#faults !== undefined) {
      const verdict = this.#faults.intercept(to, message);
      if (verdict !== undefined) return verdict;
    }
    const node = to.node;
    let link = this.#lastLink;
    if (node !== this.#lastNode || link === undefined) {
      // Links are keyed by canonical PeerId strings, so a hit needs no parsing: parsing a PeerId
      // (base58 and multihash decoding) per envelope cost more than everything else on the send path.
      link = this.#links.get(node);
      if (link === undefined) {
        try {
          link = this.#link(peerIdFromString(node).toString());
        } catch {
          this.kernel.deadLetter(to.path, message, 'no-route');
          return false;
        }
      }
      this.#lastNode = node;
      this.#lastLink = link;
    }
    return link.send(to.path, message);
  }

  /** An envelope fault injection held back, sent now (past the faults). */
  #forward(to: ActorAddress, message: unknown): boolean {
    if (this.#stopped) {
      this.kernel.deadLetter(to.path, message, 'no-route');
      return false;
    }
    let link: PeerLink;
    try {
      link = this.#links.get(to.node) ?? this.#link(peerIdFromString(to.node).toString());
    } catch {
      this.kernel.deadLetter(to.path, message, 'no-route');
      return false;
    }
    return link.send(to.path, message);
  }

  watch(target: ActorAddress, watcher: DeathWatcher): void {
    if (this.#stopped) {
      watcher.deathNotice(target as ActorRef<never>, new UnavailableError('the mesh is stopped'), false);
      return;
    }
    this.#link(target.node).watches.request(target as ActorRef<never>, watcher);
  }

  unwatch(target: ActorAddress, watcher: DeathWatcher): void {
    this.#links.get(target.node)?.watches.cancel(target, watcher);
  }

  // ---------------------------------------------------------------- PeerLinkOwner

  async dial(peerId: string, signal: AbortSignal): Promise<Stream> {
    if (this.#beforeActorDial !== undefined) await this.#beforeActorDial(peerId, signal);
    return this.node.dialProtocol(peerIdFromString(peerId), actorProtocol, { signal });
  }

  random(): number {
    return this.#random();
  }

  onControl(link: PeerLink, message: ControlMessage): void {
    switch (message.t) {
      case 'watch':
        if (typeof message.id === 'number' && typeof message.path === 'string')
          link.watches.serve(message.id, message.path);
        return;
      case 'unwatch':
        if (typeof message.id === 'number') link.watches.stopServing(message.id);
        return;
      case 'death':
        if (typeof message.id === 'number') link.watches.onDeath(message.id, message.error);
        return;
      case 'spawn':
        this.#hostFor(link, message);
        return;
      case 'stop':
      case 'kill': {
        const local = link.hostedPrefix + String(message.path);
        // A peer may stop only what it placed here.
        if (!link.hosted.has(local)) return;
        const cell = this.kernel.registry.get(local);
        if (message.t === 'stop') cell?.requestStop();
        else cell?.kill();
        return;
      }
      case 'terminated': {
        link.placements.terminated(message.path, message.id);
        const cell = this.kernel.registry.get(message.path);
        if (cell === undefined || !(cell.self instanceof PlacedActorRef)) return;
        if (cell.self.host !== link || cell.self.incarnation !== message.id) return;
        cell.terminateAs(message.error === undefined ? undefined : errorFromWire(message.error));
        return;
      }
      default:
        this.onViolation(link, `unexpected control message '${String(message.t).slice(0, 40)}'`);
    }
  }

  /** Runs an actor `link`'s peer places here, under `/host/<its PeerId>`. */
  #hostFor(link: PeerLink, message: Extract<ControlMessage, { t: 'spawn' }>): void {
    const original = String(message.path);
    const local = link.hostedPrefix + original;
    if (link.hosted.size >= maxHostedPerPeer) {
      link.control({
        t: 'terminated',
        id: message.id,
        path: original,
        error: {
          code: 'UNAVAILABLE',
          message: `node ${this.peerId} hosts ${maxHostedPerPeer} actors for you already`,
        },
      });
      return;
    }
    link.hosted.add(local);
    hostPlacedActor({
      system: this.#system,
      kernel: this.kernel,
      registry: this.#system.behaviors,
      codec: this.codec,
      message: { ...message, path: local },
      parentNode: link.peerId,
      report: (reply) => {
        if (reply.t !== 'terminated') return;
        link.hosted.delete(local);
        link.control({ ...reply, path: original });
      },
    });
  }

  // ---------------------------------------------------------------- ProxyHost (spawn on a node)

  pickHost(node: string): ActorHost {
    let link: PeerLink;
    try {
      link = this.#link(peerIdFromString(node).toString());
    } catch (error) {
      throw new InvalidRequestError(`'${node}' is not a PeerId`, { cause: error });
    }
    if (!link.alive) throw new UnavailableError(`node ${node} is unreachable; cannot place an actor there`);
    return link;
  }

  track(ref: PlacedActorRef<unknown>, host: ActorHost): void {
    if (!(host instanceof PeerLink)) return;
    let set = this.#proxies.get(host);
    if (set === undefined) {
      set = new Set();
      this.#proxies.set(host, set);
    }
    set.add(ref);
  }

  untrack(ref: PlacedActorRef<unknown>, host: ActorHost): void {
    if (host instanceof PeerLink) this.#proxies.get(host)?.delete(ref);
  }

  spawnOn(
    host: ActorHost,
    path: string,
    remote: RegisteredBehavior<unknown>,
    strategies: readonly StrategyData[],
    parent: string,
    mailbox: SpawnMailbox | undefined,
  ): number {
    return (host as PeerLink).placements.spawn(path, remote, strategies, parent, mailbox);
  }

  onUnreachable(link: PeerLink, error: Error): void {
    // A client (a CLI command) that went away is no news: only a peer still admitted is worth a warning.
    if (this.#admission !== undefined && !this.#admission.isAdmitted(link.peerId))
      this.kernel.logger.debug(error.message);
    else this.kernel.logger.warn(error.message);
    for (const ask of [...this.kernel.pendingAsks]) {
      if (ask.targetNode === link.peerId) ask.fail(error);
    }
    // Actors we placed there fail (their supervisors decide); actors it placed here are orphans: stop them.
    const proxies = [...(this.#proxies.get(link) ?? [])];
    this.#proxies.delete(link);
    for (const ref of proxies) {
      ref.route = undefined;
      ref.cell.failAs(error);
    }
    for (const path of [...link.hosted]) this.kernel.registry.get(path)?.requestStop();
  }

  onRefused(link: PeerLink, error: Error): void {
    this.kernel.logger.warn(error.message);
    for (const ask of [...this.kernel.pendingAsks]) {
      if (ask.targetNode === link.peerId) ask.fail(error);
    }
  }

  onForgedSender(link: PeerLink, path: string, claimed: string): void {
    this.#forged.inc();
    // At most one warning every 10 s: a peer forging every message must not flood the log.
    const now = performance.now();
    if (now - this.#forgedLoggedAt < forgedLogEveryMs) {
      this.#forgedUnlogged++;
      return;
    }
    const more = this.#forgedUnlogged;
    this.#forgedLoggedAt = now;
    this.#forgedUnlogged = 0;
    this.kernel.logger.warn(
      `peer ${link.peerId} sent ${path} a message claiming to be from ${claimed.slice(0, 80)}; dropped` +
        (more > 0 ? ` (and ${more} more forged messages since the last warning)` : ''),
    );
  }

  onViolation(link: PeerLink, reason: string): void {
    this.#violations.inc();
    this.kernel.logger.warn(`peer ${link.peerId} broke the actor protocol (${reason}); its stream was reset`);
  }

  #spawner(): ThreadSpawner {
    return {
      dispatcherNames: [],
      prepare: (behavior, node, mailbox) =>
        placeBehavior({
          behavior,
          where: `node ${node}`,
          key: node,
          registry: this.#system.behaviors,
          host: this,
          mailbox,
        }),
    };
  }

  /** Closes every link and stops the libp2p node; actors stay (the system stops them). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#faults?.stop();
    this.#system.attachMesh(undefined);
    await Promise.all([...this.#links.values()].map((link) => link.close()));
    for (const protocol of this.#protocols) await this.node.unhandle(protocol);
    await this.node.stop();
  }
}
