/**
 * A watcher actor for the mesh specs: it watches one ref and resolves `signal` with the first
 * `Terminated` or `ChildFailed` it gets, noting when it arrived; then it stops itself.
 */
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import type { ChildFailed, Terminated } from '../../runtime/signals.ts';

export interface WatchOutcome {
  readonly signal: Terminated | ChildFailed;
  /** performance.now() when the watcher handled the signal. */
  readonly at: number;
}

export interface Watcher {
  readonly ref: ActorRef<never>;
  readonly outcome: Promise<WatchOutcome>;
}

/** Spawns a watcher of `target`; `onSignal` runs inside the watcher, as the signal is handled. */
export function spawnWatcher(
  system: ActorSystem,
  target: ActorRef<never>,
  onSignal?: (signal: Terminated | ChildFailed) => void,
): Watcher {
  let resolve!: (outcome: WatchOutcome) => void;
  const outcome = new Promise<WatchOutcome>((done) => {
    resolve = done;
  });
  const ref = system.spawn(
    Behaviors.setup<never>((ctx) => {
      ctx.watch(target);
      return Behaviors.receive<never>(() => Behaviors.same).receiveSignal((_ctx, signal) => {
        if (signal.type !== 'Terminated' && signal.type !== 'ChildFailed') return Behaviors.same;
        onSignal?.(signal);
        resolve({ signal, at: performance.now() });
        return Behaviors.stopped;
      });
    }),
  );
  return { ref, outcome };
}
