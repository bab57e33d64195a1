/**
 * Actor references: typed, serializable addresses. A ref is `{ node, path }` on the wire and a
 * live handle in memory; the same ref works whether the actor is here, on another thread or on
 * another node.
 */

export interface ActorAddress {
  /** The node that hosts the actor (its PeerId once the mesh is up). */
  readonly node: string;
  /** Slash-separated path from the root, for example `/user/orders/worker-1`. */
  readonly path: string;
}

export interface AskOptions {
  /** Reject with `TimeoutError` when no reply arrives in time; defaults to the system's `askTimeoutMs`. */
  timeoutMs?: number;
  /** Reject with `AbortError` when aborted; the late reply, if any, goes to dead letters. */
  signal?: AbortSignal;
}

export interface ActorRef<TMsg> extends ActorAddress {
  /** Enqueues `message`. Never throws and never blocks: a dead target's messages go to dead letters. */
  tell(message: TMsg): void;
  /**
   * Sends the message `build(replyTo)` and resolves with the first reply sent to `replyTo`.
   * Rejects with `TimeoutError` or `AbortError`.
   */
  ask<TReply>(build: (replyTo: ActorRef<TReply>) => TMsg, options?: AskOptions): Promise<TReply>;
  toJSON(): ActorAddress;
}

export function isActorAddress(value: unknown): value is ActorAddress {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ActorAddress).node === 'string' &&
    typeof (value as ActorAddress).path === 'string'
  );
}

export function formatAddress(address: ActorAddress): string {
  return `cloudless://${address.node}${address.path}`;
}
