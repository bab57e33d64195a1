/**
 * The stash behind `Behaviors.withStash`: a bounded buffer owned by one actor. Unstashing puts
 * messages back at the head of the mailbox rather than running them inline, so they are handled
 * in order, one per turn, with supervision applying to each as usual.
 */
import type { Behavior } from './behavior.ts';
import { StashOverflowError } from './errors.ts';
import { RingBuffer } from './ring-buffer.ts';
import type { StashBuffer } from './stash-buffer.ts';

export interface StashOwner<TMsg> {
  readonly self: { readonly path: string };
  prependMessages(messages: readonly TMsg[]): void;
  readonly kernel: { deadLetter(recipient: string, message: unknown, reason: 'stash-dropped'): void };
}

export class Stash<TMsg> implements StashBuffer<TMsg> {
  readonly capacity: number;
  readonly #owner: StashOwner<TMsg>;
  readonly #buffer = new RingBuffer<TMsg>(16);

  constructor(owner: StashOwner<TMsg>, capacity: number) {
    this.#owner = owner;
    this.capacity = capacity;
  }

  get size(): number {
    return this.#buffer.length;
  }

  get isEmpty(): boolean {
    return this.#buffer.length === 0;
  }

  get isFull(): boolean {
    return this.#buffer.length >= this.capacity;
  }

  stash(message: TMsg): void {
    if (this.isFull) throw new StashOverflowError(this.#owner.self.path, this.capacity);
    this.#buffer.push(message);
  }

  unstashAll(behavior: Behavior<TMsg>): Behavior<TMsg> {
    this.#owner.prependMessages(this.#buffer.drain());
    return behavior;
  }

  forEach(visit: (message: TMsg) => void): void {
    const messages = this.#buffer.drain();
    for (const message of messages) this.#buffer.push(message);
    for (const message of messages) visit(message);
  }

  clear(): void {
    for (const message of this.#buffer.drain())
      this.#owner.kernel.deadLetter(this.#owner.self.path, message, 'stash-dropped');
  }
}
