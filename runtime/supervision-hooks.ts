/**
 * The two things an OTP-style supervisor needs from the kernel beyond `ActorContext`: whether a
 * child it just spawned failed in its setup (OTP's failed start), and a say in the order its
 * children are stopped (reverse order of the child specs, not of spawning).
 */
import type { ActorCell } from './actor-cell.ts';
import type { ActorContext } from './actor-context.ts';
import type { ActorRef } from './actor-ref.ts';
import { LocalActorRef } from './local-actor-ref.ts';

/** The error that is stopping a local actor, if it failed; undefined while it runs or stopped normally. */
export function failureOf(ref: ActorRef<never>): Error | undefined {
  return ref instanceof LocalActorRef ? (ref.cell as ActorCell<unknown>).failure : undefined;
}

/** When `ctx`'s actor stops, the children `order()` returns are stopped first, in that order. */
export function setChildStopOrder(ctx: ActorContext<never>, order: () => readonly ActorRef<never>[]): void {
  (ctx as unknown as ActorCell<unknown>).childStopOrder = order;
}
