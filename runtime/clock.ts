/**
 * Time enters the kernel only through a `Clock`, so timers, ask deadlines, restart windows and
 * every protocol above can run under a simulated clock that a spec advances by hand.
 */

export interface TimerHandle {
  readonly id: number;
}

export interface Clock {
  /** Milliseconds on a monotonic scale; only differences are meaningful. */
  now(): number;
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

interface RealTimerHandle extends TimerHandle {
  timeout: NodeJS.Timeout | undefined;
}

/** Node runs a timeout longer than this after 1 ms instead; longer waits are chained. */
const MAX_NODE_TIMEOUT_MS = 2 ** 31 - 1;

/** The process's monotonic clock and Node timers. */
export class RealClock implements Clock {
  #nextId = 1;

  now(): number {
    return performance.now();
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const handle: RealTimerHandle = { id: this.#nextId++, timeout: undefined };
    const arm = (remainingMs: number): void => {
      handle.timeout =
        remainingMs > MAX_NODE_TIMEOUT_MS
          ? setTimeout(() => arm(remainingMs - MAX_NODE_TIMEOUT_MS), MAX_NODE_TIMEOUT_MS)
          : setTimeout(callback, remainingMs);
    };
    arm(delayMs);
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    clearTimeout((handle as RealTimerHandle).timeout);
  }
}

interface SimulatedTimer extends TimerHandle {
  readonly due: number;
  readonly seq: number;
  callback: (() => void) | undefined;
}

/**
 * A clock that moves only when told. `advance(ms)` fires every timer that falls due in order of
 * due time (ties in order of creation), including timers those callbacks set within the window.
 */
export class SimulatedClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: SimulatedTimer[] = [];

  constructor(init: { startMs?: number } = {}) {
    this.#now = init.startMs ?? 0;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const seq = this.#seq++;
    const timer: SimulatedTimer = { id: seq, due: this.#now + Math.max(0, delayMs), seq, callback };
    this.#timers.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    const timer = handle as SimulatedTimer;
    timer.callback = undefined;
    const index = this.#timers.indexOf(timer);
    if (index >= 0) this.#timers.splice(index, 1);
  }

  /** Timers not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`advance() takes a non-negative number of ms, got ${ms}`);
    const target = this.#now + ms;
    for (;;) {
      const next = this.#earliest();
      if (next === undefined || next.due > target) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
      this.#now = Math.max(this.#now, next.due);
      const callback = next.callback;
      next.callback = undefined;
      callback?.();
    }
    this.#now = target;
  }

  #earliest(): SimulatedTimer | undefined {
    let best: SimulatedTimer | undefined;
    for (const timer of this.#timers) {
      if (best === undefined || timer.due < best.due || (timer.due === best.due && timer.seq < best.seq)) {
        best = timer;
      }
    }
    return best;
  }
}
