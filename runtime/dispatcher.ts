/**
 * The dispatcher runs actors on this thread. Ready actors wait in one FIFO run queue; each gets
 * at most `throughput` messages per turn and then goes to the back, so one busy actor cannot
 * starve the rest. A drain runs as a microtask (low latency for tell and ask) but yields to the
 * event loop with `setImmediate` once it has run for `sliceMs`, so I/O and timers keep flowing.
 */
import { RingBuffer } from './ring-buffer.ts';

export interface Schedulable {
  /** Set by the dispatcher while the actor is in the run queue. */
  scheduled: boolean;
  /** Runs up to `budget` messages; returns true when more work is ready. */
  run(budget: number): boolean;
}

export interface DispatcherInit {
  throughput: number;
  sliceMs: number;
  /** A turn threw past the actor's own supervision (a kernel fault): reported, and the drain goes on. */
  onFault?: (error: unknown) => void;
}

export class Dispatcher {
  readonly #queue = new RingBuffer<Schedulable>(1024);
  readonly #throughput: number;
  readonly #sliceMs: number;
  readonly #onFault: (error: unknown) => void;
  #drainPending = false;

  constructor(init: DispatcherInit) {
    if (!Number.isInteger(init.throughput) || init.throughput < 1) {
      throw new RangeError(`throughput must be a positive integer, got ${init.throughput}`);
    }
    this.#throughput = init.throughput;
    this.#sliceMs = init.sliceMs;
    this.#onFault =
      init.onFault ??
      ((error) =>
        queueMicrotask(() => {
          throw error;
        }));
  }

  /** Actors waiting for a turn. */
  get readyCount(): number {
    return this.#queue.length;
  }

  schedule(actor: Schedulable): void {
    actor.scheduled = true;
    this.#queue.push(actor);
    if (!this.#drainPending) {
      this.#drainPending = true;
      queueMicrotask(this.#drain);
    }
  }

  readonly #drain = (): void => {
    const queue = this.#queue;
    const budget = this.#throughput;
    const started = performance.now();
    let turns = 0;
    for (let actor = queue.shift(); actor !== undefined; actor = queue.shift()) {
      actor.scheduled = false;
      let more: boolean;
      try {
        more = actor.run(budget);
      } catch (error) {
        // Never let one turn stop the dispatcher for every other actor.
        more = false;
        this.#onFault(error);
      }
      if (more && !actor.scheduled) {
        actor.scheduled = true;
        queue.push(actor);
      }
      if ((++turns & 63) === 0 && performance.now() - started > this.#sliceMs) {
        if (queue.length > 0) {
          setImmediate(this.#drain);
          return;
        }
      }
    }
    this.#drainPending = false;
  };
}
