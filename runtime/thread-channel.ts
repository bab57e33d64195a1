/**
 * One direction of messaging between two threads. Envelopes are buffered and sent as one
 * encoded batch per microtask turn (at most `maxBatch` envelopes a batch), so a burst of tells
 * costs one `postMessage`, and batches keep the order of sends: per-sender ordering holds.
 *
 * The channel is bounded: the receiver acknowledges what it has taken into mailboxes, and when
 * `maxInFlight` envelopes are unacknowledged further ones become dead letters (`mailbox-full`)
 * instead of piling up in the port's queue. Control messages (spawn, stop, watch) flush the
 * pending batch first so they never overtake envelopes sent before them.
 */

import type { ControlMessage } from './host-protocol.ts';
import type { MessageCodec } from './message-codec.ts';

export interface PostTarget {
  postMessage(value: unknown): void;
}

export interface ThreadChannelInit {
  maxBatch?: number;
  maxInFlight?: number;
}

export class ThreadChannel {
  readonly #target: PostTarget;
  readonly #codec: MessageCodec;
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  readonly #onOverflow: (path: string, message: unknown) => void;
  /** path, message, path, message, … */
  #pending: unknown[] = [];
  #scheduled = false;
  #inFlight = 0;
  #closed = false;
  /** Acknowledgements owed to the other side, sent once per turn. */
  #ackOwed = 0;
  #ackScheduled = false;

  constructor(
    target: PostTarget,
    codec: MessageCodec,
    onOverflow: (path: string, message: unknown) => void,
    init: ThreadChannelInit = {},
  ) {
    this.#target = target;
    this.#codec = codec;
    this.#onOverflow = onOverflow;
    this.#maxBatch = init.maxBatch ?? 4096;
    this.#maxInFlight = init.maxInFlight ?? 1_000_000;
  }

  get inFlight(): number {
    return this.#inFlight + this.#pending.length / 2;
  }

  /** False when the envelope was refused (and handed to the overflow callback). */
  send(path: string, message: unknown): boolean {
    if (this.#closed || this.#inFlight + this.#pending.length / 2 >= this.#maxInFlight) {
      this.#onOverflow(path, message);
      return false;
    }
    const pending = this.#pending;
    pending.push(path, message);
    if (pending.length >= this.#maxBatch * 2) {
      this.flush();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flushScheduled);
    }
    return true;
  }

  control(message: ControlMessage): void {
    if (this.#closed) return;
    this.flush();
    this.#target.postMessage(message);
  }

  flush(): void {
    const pending = this.#pending;
    if (pending.length === 0 || this.#closed) return;
    this.#pending = [];
    const count = pending.length / 2;
    let data: Uint8Array;
    try {
      data = this.#codec.encode(pending);
    } catch {
      // One message that cannot be encoded must not take the batch down with it.
      this.#sendOneByOne(pending);
      return;
    }
    this.#inFlight += count;
    this.#target.postMessage({ t: 'batch', data, n: count } satisfies ControlMessage);
  }

  #sendOneByOne(pending: unknown[]): void {
    for (let i = 0; i < pending.length; i += 2) {
      const path = pending[i] as string;
      let data: Uint8Array;
      try {
        data = this.#codec.encode([path, pending[i + 1]]);
      } catch {
        this.#onOverflow(path, pending[i + 1]);
        continue;
      }
      this.#inFlight++;
      this.#target.postMessage({ t: 'batch', data, n: 1 } satisfies ControlMessage);
    }
  }

  /** The other side took `count` envelopes into mailboxes. */
  acknowledged(count: number): void {
    this.#inFlight = Math.max(0, this.#inFlight - count);
  }

  /** We took `count` envelopes; tell the other side once this turn is over. */
  owe(count: number): void {
    this.#ackOwed += count;
    if (!this.#ackScheduled) {
      this.#ackScheduled = true;
      queueMicrotask(this.#sendAck);
    }
  }

  decode(data: Uint8Array): unknown[] {
    return this.#codec.decode(data) as unknown[];
  }

  /** Stops sending; what is pending is flushed first. */
  close(): void {
    this.flush();
    this.#closed = true;
  }

  /** The other side is gone: pending envelopes are returned (to become dead letters). */
  abandon(): unknown[] {
    this.#closed = true;
    const pending = this.#pending;
    this.#pending = [];
    return pending;
  }

  readonly #flushScheduled = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  readonly #sendAck = (): void => {
    this.#ackScheduled = false;
    const owed = this.#ackOwed;
    this.#ackOwed = 0;
    if (owed > 0 && !this.#closed) this.#target.postMessage({ t: 'ack', n: owed } satisfies ControlMessage);
  };
}
