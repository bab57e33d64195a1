/**
 * Test children for the supervisor specs: workers that record every start (setup) and stop
 * (PostStop) in one shared log, so a spec can tell which children got a new incarnation and in
 * which order things happened; and a plain parent actor that watches the supervisor it spawns.
 */
import type { ActorContext } from '../../runtime/actor-context.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import type { SimulatedClock } from '../../runtime/clock.ts';
import type { Signal } from '../../runtime/signals.ts';
import type { SupervisorCommand } from '../../supervision/supervisor.ts';

/** What a test worker understands: fail (throw from its handler) or exit normally (Behaviors.stopped). */
export type WorkerMessage = 'fail' | 'exit';

/** What a test worker throws, so a spec can tell its failure from any other error. */
export class WorkerFailure extends Error {
  readonly id: string;
  readonly during: 'setup' | 'message';
  constructor(id: string, during: 'setup' | 'message') {
    super(`worker ${id} fails in its ${during === 'setup' ? 'setup' : 'message handler'}`);
    this.name = 'WorkerFailure';
    this.id = id;
    this.during = during;
  }
}

export interface WorkerOptions {
  /** Throw from setup on these start numbers (1-based, per id); `true` throws on every start. */
  failStart?: boolean | readonly number[];
  /** Returned from the PostStop handler (a promise delays termination). */
  postStop?: () => PromiseLike<unknown> | undefined;
}

export class LifecycleRecorder {
  /** `start:<id>` and `stop:<id>` entries in the order they happened. */
  readonly events: string[] = [];
  readonly #starts = new Map<string, number>();
  readonly #refs = new Map<string, ActorRef<WorkerMessage>>();

  /** How many times the child with this id ran its setup (including failed starts). */
  starts(id: string): number {
    return this.#starts.get(id) ?? 0;
  }

  /** The ref of the latest incarnation of `id` that got past its setup. */
  ref(id: string): ActorRef<WorkerMessage> {
    const ref = this.#refs.get(id);
    if (ref === undefined) throw new Error(`worker '${id}' never started`);
    return ref;
  }

  /** Entries of one kind (`start` or `stop`), as ids, in order. */
  only(kind: 'start' | 'stop'): string[] {
    const prefix = `${kind}:`;
    return this.events.filter((e) => e.startsWith(prefix)).map((e) => e.slice(prefix.length));
  }

  clear(): void {
    this.events.length = 0;
  }

  /** A worker behavior for child `id`; use it as `start` (it is re-run on every restart). */
  worker(id: string, options: WorkerOptions = {}): Behavior<WorkerMessage> {
    return Behaviors.setup<WorkerMessage>((ctx) => {
      const count = this.starts(id) + 1;
      this.#starts.set(id, count);
      this.events.push(`start:${id}`);
      const failStart = options.failStart;
      if (failStart === true || (Array.isArray(failStart) && failStart.includes(count))) {
        throw new WorkerFailure(id, 'setup');
      }
      this.#refs.set(id, ctx.self);
      return Behaviors.receive<WorkerMessage>((_ctx, message) => {
        if (message === 'fail') throw new WorkerFailure(id, 'message');
        if (message === 'exit') return Behaviors.stopped;
        return Behaviors.same;
      }).receiveSignal((_ctx, signal) => {
        if (signal.type !== 'PostStop') return Behaviors.same;
        this.events.push(`stop:${id}`);
        return options.postStop?.() ?? Behaviors.same;
      });
    });
  }
}

export type ParentEvent =
  | { readonly type: 'Terminated'; readonly path: string }
  | { readonly type: 'ChildFailed'; readonly path: string; readonly error: Error };

/**
 * A plain (non-supervisor) parent: spawns `child` as `name`, watches it, and tells `events` how it
 * ended. `spawned` receives the child's ref as soon as it is spawned. It handles no messages.
 */
export function watchingParent(
  child: Behavior<SupervisorCommand>,
  name: string,
  events: ActorRef<ParentEvent>,
  spawned: (ref: ActorRef<SupervisorCommand>) => void,
): Behavior<never> {
  return Behaviors.setup<never>((ctx: ActorContext<never>) => {
    const ref = ctx.spawn(child, { name, shutdown: 'infinity' });
    spawned(ref);
    ctx.watch(ref as ActorRef<never>);
    return Behaviors.receiveSignal<never>((_ctx, signal: Signal) => {
      if (signal.type === 'ChildFailed') {
        events.tell({ type: 'ChildFailed', path: signal.ref.path, error: signal.error });
      } else if (signal.type === 'Terminated') {
        events.tell({ type: 'Terminated', path: signal.ref.path });
      }
      return Behaviors.same;
    });
  });
}

/** Waits (event-loop turns, not time) until `ready()` holds; throws if it never does. */
export async function eventually(ready: () => boolean, what: string, turns = 500): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (ready()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (!ready()) throw new Error(`condition not reached: ${what}`);
}

/**
 * Settles with `promise`, or rejects after `ms` of real time: asks under a simulated clock never
 * time out on their own, and a spec should fail fast rather than hang.
 */
export async function withDeadline<TValue>(promise: Promise<TValue>, ms = 2000): Promise<TValue> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Tracks whether a promise has settled yet, for specs that step a simulated clock. */
export function track<TValue>(promise: Promise<TValue>): {
  readonly done: boolean;
  readonly promise: Promise<TValue>;
} {
  const state = { done: false, promise };
  promise.then(
    () => {
      state.done = true;
    },
    () => {
      state.done = true;
    },
  );
  return state;
}

/**
 * Stops a system that runs on a simulated clock, moving the clock on (a second per step) so
 * children whose PostStop never finishes are killed when their shutdown expires.
 */
export async function stopAdvancing(system: ActorSystem, clock: SimulatedClock, steps = 120): Promise<void> {
  const stopping = track(system.stop());
  for (let i = 0; i < steps && !stopping.done; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    clock.advance(1000);
  }
  await withDeadline(stopping.promise);
}
