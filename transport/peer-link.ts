/**
 * Everything this node says to one peer over `/cloudless/actor/1.0.0`: one long-lived stream it
 * sends on (its own, or the one the peer opened, whichever came first), length-prefixed frames,
 * each a msgpackr batch. Control frames (watch, death, spawn, stop) go before data in every flush,
 * so system messages never wait behind a backlog of user messages.
 *
 * Sending is bounded: at most `maxQueued` envelopes wait for the stream, and the stream's own
 * drain is respected; beyond that a tell becomes a dead letter (`mailbox-full`) and an ask fails
 * at once. A peer that cannot be reached is redialled with exponential backoff and jitter; after
 * `unreachableAfterMs` its queued messages become dead letters (`unreachable`), every watch of its
 * actors ends with `Terminated`, and asks to it fail.
 *
 * The sender rule: a message that arrives from the mesh and is an object with a string field
 * `from` must name, there, the PeerId of the connection it came on (the Noise handshake
 * authenticated it). Any other is dropped as a dead letter (`forged-sender`), counted
 * (`cloudless_transport_forged_senders_total`) and logged: an admitted member cannot speak for
 * another. So `from` means "the node that sent this"; a message that passes on what another node
 * said (a coordinator forwarding a heartbeat) carries its own id in `from` and wraps the original.
 *
 * A node that does not admit the dialer answers its stream with one refusal frame (why, in words)
 * and closes it (`refuseStream`). The dialer then fails its asks to that peer at once with
 * `NotAdmittedError`, drops what it queued for it, and dials again only when something is sent.
 */
import type { Stream } from '@libp2p/interface';
import { UnavailableError } from '../runtime/errors.ts';
import type { ControlMessage } from '../runtime/host-protocol.ts';
import type { Kernel } from '../runtime/kernel.ts';
import type { MessageCodec } from '../runtime/message-codec.ts';
import { RemotePlacements } from '../runtime/placement.ts';
import { RemoteWatches } from '../runtime/remote-watches.ts';
import { FrameDecoder } from './frame-codec.ts';
import type { MeshFaults } from './mesh-faults.ts';
import { checkMsgpackLimits, type MsgpackLimits } from './msgpack-limits.ts';
import { NotAdmittedError } from './transport-errors.ts';

export const actorProtocol = '/cloudless/actor/1.0.0';

/** A link with no flush scheduled for this long is idle: its next send goes out at once. */
const idleFlushMs = 1;

const dataFrame = 0;
const controlFrame = 1;
/** Sent by a node that refuses the stream, alone, before it closes it: `[reason]`. */
const refusalFrame = 2;
/** Longest refusal reason kept from a peer. */
const maxRefusalChars = 500;

/** One frame: 4-byte length (kind + body), kind, body. */
function frameOf(kind: number, body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(5 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length + 1);
  frame[4] = kind;
  frame.set(body, 5);
  return frame;
}

/**
 * Refuses an inbound actor-protocol stream before reading anything from it: one refusal frame
 * saying why (and what to do), then this end closes for writing. Nothing here reads the stream;
 * libp2p's per-connection stream limit bounds what a dialer that keeps its end open can hold.
 */
export function refuseStream(stream: Stream, codec: MessageCodec, reason: string): void {
  const error = new Error(reason);
  try {
    stream.send(frameOf(refusalFrame, codec.encode([reason])));
  } catch {
    stream.abort(error);
    return;
  }
  // Only the write side: resetting at once could reach the dialer before it has read the frame
  // (even before it finished negotiating). The dialer resets the stream once it has read it.
  stream.close().catch(() => stream.abort(error));
}

export interface PeerLinkSettings {
  maxFrameBytes: number;
  limits: MsgpackLimits;
  /** Envelopes waiting for the stream, at most. */
  maxQueued: number;
  /** Envelopes per frame, at most (a frame is also cut below maxFrameBytes). */
  maxBatch: number;
  reconnect: { minMs: number; maxMs: number; jitter: number };
  unreachableAfterMs: number;
  dialTimeoutMs: number;
}

export interface PeerLinkOwner {
  readonly kernel: Kernel;
  readonly codec: MessageCodec;
  readonly settings: PeerLinkSettings;
  /** Fault injection (test runs only); undefined when off. */
  readonly faults: MeshFaults | undefined;
  dial(peerId: string, signal: AbortSignal): Promise<Stream>;
  onControl(link: PeerLink, message: ControlMessage): void;
  onUnreachable(link: PeerLink, error: Error): void;
  onViolation(link: PeerLink, reason: string): void;
  /** The peer refused this node's stream (it does not admit this node). */
  onRefused(link: PeerLink, error: Error): void;
  /** A message whose `from` names another node than this link's peer (dropped already). */
  onForgedSender(link: PeerLink, path: string, claimed: string): void;
  random(): number;
}

export class PeerLink {
  readonly peerId: string;
  readonly watches: RemoteWatches;
  /** Actors we placed on this peer (`spawn(…, { node })`). */
  readonly placements: RemotePlacements;
  /** Paths of actors this peer placed here (only those it may stop). */
  readonly hosted = new Set<string>();
  /** The local prefix of actors this peer places here: `/host/<its PeerId>`. */
  readonly hostedPrefix: string;
  /** Where actors this node places on the peer live there. */
  readonly #remotePrefix: string;
  readonly #owner: PeerLinkOwner;
  #sendStream: Stream | undefined;
  readonly #streams = new Set<Stream>();
  /**
   * The send queue, in order: full batches (`maxBatch` envelopes each, ready to encode as they
   * are), then the batch being filled. Each is to, traceId, message, to, traceId, message, …
   */
  #batches: unknown[][] = [];
  #data: unknown[] = [];
  /** Envelopes in `#batches` and `#data`. */
  #queued = 0;
  /** Entries (three per envelope) in a full batch. */
  readonly #batchEntries: number;
  #control: ControlMessage[] = [];
  #flushScheduled = false;
  /** When the last flush was scheduled (performance.now()). */
  #lastFlushAt = 0;
  #waitingDrain = false;
  #dialing = false;
  #attempt = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #unreachableTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #traceSeq = 0;
  /** The peer refused the last stream of this link: its loss does not count towards unreachability. */
  #refused = false;
  unreachable = false;

  constructor(owner: PeerLinkOwner, peerId: string) {
    this.#owner = owner;
    this.peerId = peerId;
    this.watches = new RemoteWatches(owner.kernel, (message) => this.control(message));
    this.placements = new RemotePlacements((message) => this.control(message), owner.codec);
    this.hostedPrefix = `/host/${peerId}`;
    this.#remotePrefix = `/host/${owner.kernel.nodeId}`;
    this.#batchEntries = owner.settings.maxBatch * 3;
  }

  /**
   * The channel a proxy uses to reach the actor it placed on this peer: the actor lives there
   * under `/host/<this node>` + the proxy's path, so placed actors never collide with the peer's own.
   */
  readonly placedChannel = {
    send: (path: string, message: unknown): boolean => this.send(this.#remotePrefix + path, message),
  };

  /** Asks the actor placed on this peer to stop; resolves once it terminated (or the peer is gone). */
  stopRemote(path: string, id: number, brutal: boolean): Promise<void> {
    return this.placements.stop(path, id, brutal, this.alive);
  }

  get alive(): boolean {
    return !this.#closed && !this.unreachable;
  }

  /** Queued envelopes (for the send-buffer metric). */
  get queued(): number {
    return this.#queued;
  }

  get channel(): { send(path: string, message: unknown): boolean } {
    return this.placedChannel;
  }

  send(path: string, message: unknown): boolean {
    if (this.#closed) {
      this.#owner.kernel.deadLetter(path, message, 'no-route');
      return false;
    }
    const stream = this.#sendStream;
    if (stream === undefined && this.unreachable) {
      this.#owner.kernel.deadLetter(path, message, 'unreachable');
      this.#ensureConnected();
      return false;
    }
    if (this.#queued >= this.#owner.settings.maxQueued) {
      this.#owner.kernel.deadLetter(path, message, 'mailbox-full');
      return false;
    }
    // Batches are cut here, as they fill, so a flush encodes each as it is (no slicing).
    const data = this.#data;
    data.push(path, ++this.#traceSeq, message);
    this.#queued++;
    if (data.length >= this.#batchEntries) {
      this.#batches.push(data);
      this.#data = [];
    }
    if (stream === undefined) this.#ensureConnected();
    if (!this.#flushScheduled) this.#scheduleFlush();
    return true;
  }

  /** Empties the send queue; returns what it held, in order (to, traceId, message, …). */
  #takeQueued(): unknown[] {
    const queued = this.#batches.length === 0 ? this.#data : [...this.#batches.flat(), ...this.#data];
    this.#batches = [];
    this.#data = [];
    this.#queued = 0;
    return queued;
  }

  control(message: ControlMessage): void {
    if (this.#closed) return;
    this.#control.push(message);
    this.#ensureConnected();
    this.#scheduleFlush();
  }

  /** Opens a stream to the peer unless the link has one (`MeshTransport.connect` waits for it). */
  async open(signal: AbortSignal): Promise<void> {
    if (this.#sendStream !== undefined) return;
    this.attach(await this.#owner.dial(this.peerId, signal));
  }

  /** A stream to this peer (inbound, or the one we dialled): read from it; send on it if we have none. */
  attach(stream: Stream): void {
    if (this.#closed) {
      stream.abort(new UnavailableError('this node is stopping'));
      return;
    }
    this.#streams.add(stream);
    this.#refused = false;
    const decoder = new FrameDecoder({ maxFrameBytes: this.#owner.settings.maxFrameBytes });
    stream.addEventListener('message', (event) => {
      let frames: Uint8Array[];
      try {
        const data = event.data;
        frames = decoder.push(data instanceof Uint8Array ? data : data.subarray());
      } catch (error) {
        this.#violation(stream, (error as Error).message);
        return;
      }
      // Fault injection (test runs only): frames from a peer this node is partitioned from are lost.
      if (this.#owner.faults?.dropsIncoming(this.peerId, frames.length)) return;
      for (const frame of frames) {
        if (!this.#handleFrame(stream, frame)) return;
      }
    });
    stream.addEventListener('close', () => this.#detach(stream));
    if (this.#sendStream === undefined) {
      this.#sendStream = stream;
      this.#connected();
    }
  }

  #connected(): void {
    this.#attempt = 0;
    this.unreachable = false;
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    if (this.#unreachableTimer !== undefined) clearTimeout(this.#unreachableTimer);
    this.#reconnectTimer = undefined;
    this.#unreachableTimer = undefined;
    this.#scheduleFlush();
  }

  #detach(stream: Stream): void {
    this.#streams.delete(stream);
    if (this.#sendStream !== stream) return;
    this.#sendStream = undefined;
    this.#waitingDrain = false;
    for (const other of this.#streams) {
      if (other.status === 'open') {
        this.#sendStream = other;
        this.#scheduleFlush();
        return;
      }
    }
    if (this.#closed || this.#refused) return;
    // Lost the connection: start the clock on unreachability and redial while anything depends on it.
    this.#armUnreachable();
    if (this.#needsConnection()) this.#ensureConnected();
  }

  /**
   * A healed fault-injection partition: a link waiting to reconnect, or one that gave the peer up
   * as unreachable, dials now rather than at its next backoff or its next send.
   */
  redialNow(): void {
    if (this.#reconnectTimer === undefined && !this.unreachable) return;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#attempt = 0;
    this.#ensureConnected();
  }

  /** The peer's connection closed (libp2p peer:disconnect). */
  disconnected(): void {
    if (this.#sendStream === undefined && !this.#closed) this.#armUnreachable();
  }

  #needsConnection(): boolean {
    if (this.#queued > 0 || this.#control.length > 0 || this.watches.active) return true;
    for (const ask of this.#owner.kernel.pendingAsks) if (ask.targetNode === this.peerId) return true;
    return false;
  }

  #ensureConnected(): void {
    if (this.#closed || this.#sendStream !== undefined || this.#dialing || this.#reconnectTimer !== undefined)
      return;
    this.#dialing = true;
    const settings = this.#owner.settings;
    // An explicit deadline, cleared when the dial settles (AbortSignal.timeout would stay armed).
    const deadline = new AbortController();
    const timer = setTimeout(
      () =>
        deadline.abort(new UnavailableError(`dial to ${this.peerId} took over ${settings.dialTimeoutMs} ms`)),
      settings.dialTimeoutMs,
    );
    this.#owner.dial(this.peerId, deadline.signal).then(
      (stream) => {
        clearTimeout(timer);
        this.#dialing = false;
        this.attach(stream);
      },
      (error: unknown) => {
        clearTimeout(timer);
        this.#dialing = false;
        if (this.#closed) return;
        this.#owner.kernel.logger.debug(`dial to ${this.peerId} failed: ${(error as Error)?.message}`);
        this.#armUnreachable();
        if (!this.#needsConnection()) return;
        const { minMs, maxMs, jitter } = settings.reconnect;
        const base = Math.min(maxMs, minMs * 2 ** Math.min(this.#attempt++, 20));
        const delay = base * (1 + jitter * this.#owner.random());
        this.#reconnectTimer = setTimeout(() => {
          this.#reconnectTimer = undefined;
          this.#ensureConnected();
        }, delay);
      },
    );
  }

  #armUnreachable(): void {
    if (this.#unreachableTimer !== undefined || this.unreachable || this.#closed) return;
    this.#unreachableTimer = setTimeout(() => {
      this.#unreachableTimer = undefined;
      if (this.#sendStream !== undefined) return;
      this.#markUnreachable();
    }, this.#owner.settings.unreachableAfterMs);
  }

  #markUnreachable(): void {
    this.unreachable = true;
    const error = new UnavailableError(
      `node ${this.peerId} has been unreachable for ${this.#owner.settings.unreachableAfterMs} ms; ` +
        'check that it runs and that its address is reachable',
    );
    const data = this.#takeQueued();
    this.#control = [];
    for (let i = 0; i < data.length; i += 3)
      this.#owner.kernel.deadLetter(data[i] as string, data[i + 2], 'unreachable');
    this.watches.endAll(error);
    this.placements.releaseAll();
    this.#owner.onUnreachable(this, error);
    // Stop redialling until something needs the peer again.
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    const now = performance.now();
    const idle = now - this.#lastFlushAt > idleFlushMs;
    this.#lastFlushAt = now;
    // A link that has been quiet sends at once, after the microtasks queued so far (the actor work
    // of this moment): a lone ask or reply does not wait for the loop's check phase. A busy link
    // flushes in the check phase, after every I/O callback of this loop turn and the actor work it
    // caused (actors run in microtasks): what a busy node sends to a peer in one turn goes out as
    // one frame and one socket write. A write to a socket is a syscall costing tens of
    // microseconds here, the largest cost of a Raft write across nodes when flushed per microtask.
    const run = (): void => {
      this.#flushScheduled = false;
      this.#flush();
    };
    if (idle) queueMicrotask(run);
    else setImmediate(run);
  }

  #flush(): void {
    const stream = this.#sendStream;
    if (stream === undefined) {
      // Lost its stream since the flush was scheduled: what is queued needs a new one.
      if (this.#queued > 0 || this.#control.length > 0) this.#ensureConnected();
      return;
    }
    if (this.#waitingDrain || this.#closed) return;
    const codec = this.#owner.codec;
    if (this.#control.length > 0) {
      const control = this.#control;
      this.#control = [];
      if (!this.#write(stream, controlFrame, codec.encodeTransient(control))) return;
    }
    for (;;) {
      let batch = this.#batches.shift();
      if (batch === undefined) {
        if (this.#data.length === 0) return;
        batch = this.#data;
        this.#data = [];
      }
      this.#queued -= batch.length / 3;
      const bytes = this.#encodeBatch(batch);
      if (bytes === undefined) continue;
      if (!this.#write(stream, dataFrame, bytes)) return;
    }
  }

  /** Encodes a batch, halving it until it fits a frame; a single message that cannot fit is a dead letter. */
  /**
   * Encodes a batch as one data frame. A path equal to the one before it in the batch goes as null
   * (the receiver keeps the previous recipient), as Akka's Artery compresses actor refs: a run of
   * messages to one actor costs its path once per frame, not once per message.
   */
  #encodeBatch(batch: unknown[]): Uint8Array | undefined {
    const limit = this.#owner.settings.maxFrameBytes - 1;
    for (let i = batch.length - 3; i > 0; i -= 3) if (batch[i] === batch[i - 3]) batch[i] = null;
    let bytes: Uint8Array | undefined;
    let why = '';
    try {
      // Transient: #write copies it into the frame before anything else is encoded.
      bytes = this.#owner.codec.encodeTransient(batch);
      if (bytes.length > limit) why = `is larger than the frame limit of ${limit} bytes`;
    } catch (error) {
      why = `cannot be encoded: ${(error as Error).message}`;
    }
    if (why === '') return bytes;
    // Put the paths back: the halves are encoded (or dead-lettered) on their own.
    for (let i = 3; i < batch.length; i += 3) if (batch[i] === null) batch[i] = batch[i - 3];
    return this.#splitOrDrop(batch, why);
  }

  #splitOrDrop(batch: unknown[], why: string): Uint8Array | undefined {
    if (batch.length <= 3) {
      this.#owner.kernel.logger.warn(`message to ${this.peerId}${String(batch[0])} ${why}; dropped`);
      this.#owner.kernel.deadLetter(batch[0] as string, batch[2], 'mailbox-full');
      return undefined;
    }
    const half = Math.ceil(batch.length / 6) * 3;
    // Put the second half back at the head of the queue, in order, and send the first half now.
    const rest = batch.slice(half);
    this.#batches.unshift(rest);
    this.#queued += rest.length / 3;
    return this.#encodeBatch(batch.slice(0, half));
  }

  /** Writes one frame; false when the stream asked us to wait for its drain. */
  #write(stream: Stream, kind: number, body: Uint8Array): boolean {
    // One allocation per frame: header, kind, body (a frame carries a whole batch).
    const frame = frameOf(kind, body);
    let accepted: boolean;
    try {
      accepted = stream.send(frame);
    } catch (error) {
      this.#owner.kernel.logger.warn(`send to ${this.peerId} failed: ${(error as Error).message}`);
      this.#detach(stream);
      return false;
    }
    if (accepted) return true;
    this.#waitingDrain = true;
    stream.onDrain().then(
      () => {
        this.#waitingDrain = false;
        this.#flush();
      },
      () => {
        this.#waitingDrain = false;
      },
    );
    return false;
  }

  /** Handles one frame; false when the stream was reset for a protocol violation. */
  #handleFrame(stream: Stream, frame: Uint8Array): boolean {
    if (frame.length === 0) return this.#violation(stream, 'empty frame');
    const kind = frame[0];
    const body = frame.subarray(1);
    let value: unknown;
    try {
      checkMsgpackLimits(body, this.#owner.settings.limits);
      value = this.#owner.codec.decode(body);
    } catch (error) {
      return this.#violation(stream, (error as Error).message);
    }
    if (!Array.isArray(value)) return this.#violation(stream, 'a frame must hold an array');
    if (kind === dataFrame) {
      if (value.length % 3 !== 0)
        return this.#violation(stream, 'a data frame holds (to, traceId, message) triples');
      const kernel = this.#owner.kernel;
      const node = kernel.nodeId;
      const sender = this.peerId;
      // A batch mostly goes to few actors: the sender writes a recipient's path once per run of
      // envelopes for it and null for the rest of the run (see #encodeBatch), so a path is checked
      // and looked up once per run.
      let path: string | undefined;
      let lastRef: { tell(message: unknown): void } | undefined;
      for (let i = 0; i < value.length; i += 3) {
        const candidate = value[i];
        if (candidate !== null || path === undefined) {
          if (
            typeof candidate !== 'string' ||
            candidate.length === 0 ||
            candidate.length > 1024 ||
            candidate[0] !== '/'
          ) {
            return this.#violation(
              stream,
              `invalid recipient path ${JSON.stringify(candidate)?.slice(0, 80)}`,
            );
          }
          path = candidate;
          lastRef = kernel.registry.get(path)?.self;
        }
        const message = value[i + 2];
        // The sender rule (see the top of this file): one property read per object message.
        if (typeof message === 'object' && message !== null) {
          const from = (message as { from?: unknown }).from;
          if (typeof from === 'string' && from !== sender) {
            kernel.deadLetter(path, message, 'forged-sender');
            this.#owner.onForgedSender(this, path, from);
            continue;
          }
        }
        if (lastRef !== undefined) lastRef.tell(message);
        else kernel.route({ node, path }, message);
      }
      return true;
    }
    if (kind === controlFrame) {
      for (const message of value) {
        if (
          typeof message !== 'object' ||
          message === null ||
          typeof (message as { t?: unknown }).t !== 'string'
        ) {
          return this.#violation(stream, 'invalid control message');
        }
        this.#owner.onControl(this, message as ControlMessage);
      }
      return true;
    }
    if (kind === refusalFrame) {
      this.#refusedBy(stream, String(value[0]).slice(0, maxRefusalChars));
      return false;
    }
    return this.#violation(stream, `unknown frame kind ${kind}`);
  }

  /**
   * The peer refused this node's stream: asks to it fail now with the peer's reason, queued
   * messages become dead letters (`no-route`), watches of its actors end, and the link dials
   * again only when something is sent to the peer (which may have admitted this node meanwhile).
   */
  #refusedBy(stream: Stream, reason: string): void {
    const error = new NotAdmittedError(
      `node ${this.peerId} refused this node's actor-protocol stream: ${reason || 'no reason given'}`,
    );
    this.#refused = true;
    const data = this.#takeQueued();
    this.#control = [];
    for (let i = 0; i < data.length; i += 3)
      this.#owner.kernel.deadLetter(data[i] as string, data[i + 2], 'no-route');
    this.watches.endAll(error);
    this.#owner.onRefused(this, error);
    stream.abort(error);
    this.#detach(stream);
  }

  #violation(stream: Stream, reason: string): false {
    this.#owner.onViolation(this, reason);
    stream.abort(new Error(`protocol violation: ${reason}`));
    this.#detach(stream);
    return false;
  }

  /** Stops the link: pending envelopes become dead letters, streams close. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    if (this.#unreachableTimer !== undefined) clearTimeout(this.#unreachableTimer);
    const data = this.#takeQueued();
    for (let i = 0; i < data.length; i += 3)
      this.#owner.kernel.deadLetter(data[i] as string, data[i + 2], 'no-route');
    if (this.#streams.size === 0) return;
    // An explicit deadline, cleared once closed (AbortSignal.timeout would stay armed for 2 s).
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error('closing took over 2 s')), 2000);
    try {
      await Promise.all(
        [...this.#streams].map((stream) =>
          stream.close({ signal: deadline.signal }).catch(() => stream.abort(new Error('closing'))),
        ),
      );
    } finally {
      clearTimeout(timer);
    }
  }
}
