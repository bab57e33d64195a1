/**
 * A ref to an actor that is not on this thread: `tell` hands an envelope to the router.
 */
import type { ActorAddress, ActorRef, AskOptions } from './actor-ref.ts';
import type { Kernel } from './kernel.ts';

export class RemoteActorRef<TMsg> implements ActorRef<TMsg> {
  readonly node: string;
  readonly path: string;
  readonly #kernel: Kernel;
  /**
   * Whether `node` is another node than this thread's, decided once: comparing two node ids (long
   * strings, rarely the same object) on every tell cost more than the rest of a remote route.
   */
  readonly #elsewhere: boolean;

  constructor(kernel: Kernel, address: ActorAddress) {
    this.#kernel = kernel;
    this.node = address.node;
    this.path = address.path;
    this.#elsewhere = address.node !== kernel.nodeId;
  }

  tell(message: TMsg): void {
    if (this.#elsewhere) this.#kernel.routeElsewhere(this, message);
    else this.#kernel.route(this, message);
  }

  ask<TReply>(build: (replyTo: ActorRef<TReply>) => TMsg, options?: AskOptions): Promise<TReply> {
    return this.#kernel.ask(this, build, options);
  }

  toJSON(): ActorAddress {
    return { node: this.node, path: this.path };
  }

  toString(): string {
    return `ActorRef(${this.node}${this.path})`;
  }
}
