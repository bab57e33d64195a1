/**
 * The ref of an actor on this thread. It points straight at the actor's cell, so `tell` is a
 * mailbox push and nothing more; once the cell is dead, messages go to dead letters.
 */

import type { ActorCell } from './actor-cell.ts';
import type { ActorAddress, ActorRef, AskOptions } from './actor-ref.ts';

export class LocalActorRef<TMsg> implements ActorRef<TMsg> {
  readonly node: string;
  readonly path: string;
  readonly cell: ActorCell<TMsg>;

  constructor(cell: ActorCell<TMsg>, node: string, path: string) {
    this.cell = cell;
    this.node = node;
    this.path = path;
  }

  tell(message: TMsg): void {
    this.cell.enqueue(message);
  }

  ask<TReply>(build: (replyTo: ActorRef<TReply>) => TMsg, options?: AskOptions): Promise<TReply> {
    return this.cell.kernel.ask(this, build, options);
  }

  toJSON(): ActorAddress {
    return { node: this.node, path: this.path };
  }

  toString(): string {
    return `ActorRef(${this.path})`;
  }
}
