/**
 * Fault injection for the mesh, for test runs only (chaos tests partition real processes on
 * loopback, where network namespaces would need root). Off unless someone calls
 * `MeshTransport.enableFaultInjection()`; while off the transport pays one `undefined` check per
 * envelope sent and per chunk received.
 *
 * A partition from a peer looks to this node like the network between them failed:
 *
 * - every connection to the peer is aborted at once (no goodbye on the wire), and the connection
 *   gater refuses new ones both ways, so dials fail, the link backs off and redials, and after
 *   `unreachableAfterMs` the peer counts as unreachable (watches end with `Terminated`, asks to
 *   it fail, queued envelopes become dead letters), exactly as when the cable is cut;
 * - envelopes sent to the peer meanwhile are dropped at once as dead letters (reason
 *   `partitionDeadLetterReason`), so an ask to it fails at once with `UnavailableError`;
 * - frames still arriving from it (before its connection is gone) are dropped.
 *
 * Healing lets connections through again and redials at once the links waiting to reconnect.
 * Drop probability and delay apply to envelopes this node sends to peers that are not
 * partitioned; the delay keeps each peer's envelopes in the order sent.
 */
import type { ActorAddress } from '../runtime/actor-ref.ts';
import { InvalidRequestError } from '../runtime/errors.ts';
import type { DeadLetterReason, Kernel } from '../runtime/kernel.ts';

/**
 * The dead-letter reason of an envelope dropped by a partition or a random drop. The kernel's
 * reasons are a closed set; until it has one of its own for fault injection, a partition looks
 * like what it models: an unreachable peer.
 */
export const partitionDeadLetterReason: DeadLetterReason = 'unreachable';

/** Why a partitioned link refuses a connection or drops an envelope (logs and errors say so). */
export const partitionReason = 'partitioned by fault injection';

export interface MeshFaultsComponents {
  readonly kernel: Kernel;
  /** Aborts every connection to the peer at once, as a failed network would. */
  disconnect(peerId: string): void;
  /** Sends an envelope past the faults (a delayed one, when its time comes). */
  forward(to: ActorAddress, message: unknown): boolean;
  /** The partition from the peer healed: a link waiting to reconnect redials now. */
  healed(peerId: string): void;
}

export interface MeshFaultsInit {
  /** Source of randomness for drops; default Math.random (pass a seeded one to replay a run). */
  random?: () => number;
  /** Delayed envelopes held at once, at most; beyond that a send is a dead letter. Default 100,000. */
  maxDelayed?: number;
}

/** Faults on envelopes this node sends to peers it is not partitioned from. */
export interface MeshFaultRules {
  /** Chance in [0, 1] that an envelope is dropped (a dead letter); default 0. */
  dropProbability?: number;
  /** Milliseconds in [0, 60,000] every envelope waits before it is sent; default 0. */
  delayMs?: number;
}

export interface MeshFaultStats {
  /** Envelopes to a partitioned peer, dropped. */
  readonly droppedOutgoing: number;
  /** Frames from a partitioned peer, dropped. */
  readonly droppedIncoming: number;
  /** Envelopes dropped by `dropProbability`. */
  readonly droppedRandomly: number;
  /** Envelopes held back by `delayMs`. */
  readonly delayed: number;
  /** Connections the gater refused (dials and accepts). */
  readonly refusedConnections: number;
}

const maxDelayMs = 60_000;

interface DelayLine {
  /** to, message, due (performance.now() ms), to, message, due, … in the order sent. */
  entries: unknown[];
  head: number;
  timer: NodeJS.Timeout | undefined;
}

export class MeshFaults {
  readonly #components: MeshFaultsComponents;
  #random: () => number;
  readonly #maxDelayed: number;
  readonly #partitioned = new Set<string>();
  readonly #delayLines = new Map<string, DelayLine>();
  #dropProbability = 0;
  #delayMs = 0;
  #delayedNow = 0;
  #stopped = false;
  readonly #stats = {
    droppedOutgoing: 0,
    droppedIncoming: 0,
    droppedRandomly: 0,
    delayed: 0,
    refusedConnections: 0,
  };

  constructor(components: MeshFaultsComponents, init: MeshFaultsInit = {}) {
    this.#components = components;
    this.#random = init.random ?? Math.random;
    const maxDelayed = init.maxDelayed ?? 100_000;
    if (!(Number.isInteger(maxDelayed) && maxDelayed > 0)) {
      throw new InvalidRequestError(`maxDelayed must be a positive integer, got ${String(maxDelayed)}`);
    }
    this.#maxDelayed = maxDelayed;
  }

  /** Peers this node is partitioned from. */
  get partitioned(): ReadonlySet<string> {
    return this.#partitioned;
  }

  get rules(): Required<MeshFaultRules> {
    return { dropProbability: this.#dropProbability, delayMs: this.#delayMs };
  }

  get stats(): MeshFaultStats {
    return { ...this.#stats };
  }

  /** Whether this node is partitioned from `peerId`. */
  blocks(peerId: string): boolean {
    return this.#partitioned.has(peerId);
  }

  /**
   * Partitions this node from `peers` (in addition to those it already is partitioned from):
   * their connections are aborted now and refused until `heal`.
   */
  partition(peers: Iterable<string>): void {
    const added: string[] = [];
    for (const peerId of peers) {
      if (this.#partitioned.has(peerId)) continue;
      this.#partitioned.add(peerId);
      added.push(peerId);
    }
    if (added.length === 0) return;
    this.#components.kernel.logger.warn(`fault injection: partitioned from ${added.length} peer(s)`, {
      peers: added,
    });
    for (const peerId of added) this.#components.disconnect(peerId);
  }

  /** Heals the partition from `peers`, or from every peer when none are given. */
  heal(peers?: Iterable<string>): void {
    const healed = peers === undefined ? [...this.#partitioned] : [...peers];
    const removed = healed.filter((peerId) => this.#partitioned.delete(peerId));
    if (removed.length === 0) return;
    this.#components.kernel.logger.warn(
      `fault injection: healed the partition from ${removed.length} peer(s)`,
      {
        peers: removed,
      },
    );
    for (const peerId of removed) this.#components.healed(peerId);
  }

  /** Sets the drop probability and delay for every peer (an omitted rule goes back to 0). */
  configure(rules: MeshFaultRules): void {
    const dropProbability = rules.dropProbability ?? 0;
    const delayMs = rules.delayMs ?? 0;
    if (!(typeof dropProbability === 'number' && dropProbability >= 0 && dropProbability <= 1)) {
      throw new InvalidRequestError(
        `dropProbability must be a number in [0, 1], got ${String(dropProbability)}`,
      );
    }
    if (!(typeof delayMs === 'number' && delayMs >= 0 && delayMs <= maxDelayMs)) {
      throw new InvalidRequestError(`delayMs must be a number in [0, ${maxDelayMs}], got ${String(delayMs)}`);
    }
    this.#dropProbability = dropProbability;
    this.#delayMs = delayMs;
    this.#components.kernel.logger.warn('fault injection: rules set', { dropProbability, delayMs });
  }

  /** Draws drops from `random` from now on (a seeded source replays the same drops). */
  useRandom(random: () => number): void {
    this.#random = random;
  }

  /** Heals every partition and turns drops and delays off. */
  clear(): void {
    this.heal();
    if (this.#dropProbability !== 0 || this.#delayMs !== 0) this.configure({});
  }

  /**
   * An envelope on its way out: undefined lets it through now; otherwise it was dropped (false,
   * published as a dead letter) or held back to be sent later (true).
   */
  intercept(to: ActorAddress, message: unknown): boolean | undefined {
    const kernel = this.#components.kernel;
    if (this.#partitioned.has(to.node)) {
      this.#stats.droppedOutgoing++;
      kernel.deadLetter(to.path, message, partitionDeadLetterReason);
      return false;
    }
    if (this.#dropProbability > 0 && this.#random() < this.#dropProbability) {
      this.#stats.droppedRandomly++;
      kernel.deadLetter(to.path, message, partitionDeadLetterReason);
      return false;
    }
    const line = this.#delayLines.get(to.node);
    // Envelopes still held for the peer go first, even after the delay was lowered or turned off.
    if (this.#delayMs === 0 && line === undefined) return undefined;
    if (this.#stopped) return undefined;
    if (this.#delayedNow >= this.#maxDelayed) {
      kernel.deadLetter(to.path, message, 'mailbox-full');
      return false;
    }
    this.#hold(to, message, line);
    return true;
  }

  /** Frames arriving from `peerId`: true when they must be dropped (a partition). */
  dropsIncoming(peerId: string, frames: number): boolean {
    if (!this.#partitioned.has(peerId)) return false;
    this.#stats.droppedIncoming += frames;
    return true;
  }

  /** The gater's question: refuse a connection with `peerId`? */
  refusesConnection(peerId: string): boolean {
    if (!this.#partitioned.has(peerId)) return false;
    this.#stats.refusedConnections++;
    return true;
  }

  /** Releases nothing more: envelopes still held become dead letters (`no-route`). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    const kernel = this.#components.kernel;
    for (const line of this.#delayLines.values()) {
      clearTimeout(line.timer);
      for (let i = line.head; i < line.entries.length; i += 3) {
        kernel.deadLetter((line.entries[i] as ActorAddress).path, line.entries[i + 1], 'no-route');
      }
    }
    this.#delayLines.clear();
    this.#delayedNow = 0;
  }

  #hold(to: ActorAddress, message: unknown, existing: DelayLine | undefined): void {
    let line = existing;
    if (line === undefined) {
      line = { entries: [], head: 0, timer: undefined };
      this.#delayLines.set(to.node, line);
    }
    const now = performance.now();
    const last = line.entries.length > line.head ? (line.entries[line.entries.length - 1] as number) : 0;
    line.entries.push(to, message, Math.max(now + this.#delayMs, last));
    this.#delayedNow++;
    this.#stats.delayed++;
    if (line.timer === undefined) this.#arm(to.node, line);
  }

  #arm(node: string, line: DelayLine): void {
    const due = line.entries[line.head + 2] as number;
    line.timer = setTimeout(() => this.#release(node, line), Math.max(0, due - performance.now()));
  }

  /** Sends, in order, every envelope of the line whose time has come. */
  #release(node: string, line: DelayLine): void {
    line.timer = undefined;
    const now = performance.now();
    while (line.head < line.entries.length && (line.entries[line.head + 2] as number) <= now + 1) {
      const to = line.entries[line.head] as ActorAddress;
      const message = line.entries[line.head + 1];
      line.entries[line.head] = undefined;
      line.entries[line.head + 1] = undefined;
      line.head += 3;
      this.#delayedNow--;
      if (this.#partitioned.has(to.node)) {
        this.#stats.droppedOutgoing++;
        this.#components.kernel.deadLetter(to.path, message, partitionDeadLetterReason);
      } else {
        this.#components.forward(to, message);
      }
    }
    if (line.head >= line.entries.length) {
      this.#delayLines.delete(node);
      return;
    }
    if (line.head > 3 * 1024) {
      line.entries = line.entries.slice(line.head);
      line.head = 0;
    }
    this.#arm(node, line);
  }
}
