/**
 * The timer scheduler behind `Behaviors.withTimers`. Each timer has a generation; a tick whose
 * generation is no longer current (cancelled, replaced, or from before a restart) is discarded
 * when it reaches the head of the mailbox, which is what makes "cancelled means never delivered"
 * hold even for ticks already queued.
 */
import type { Clock, TimerHandle } from './clock.ts';
import { TimerTick } from './internal-messages.ts';
import type { TimerScheduler } from './timer-scheduler.ts';

type Mode = 'single' | 'fixed-delay' | 'fixed-rate';

interface ActiveTimer<TMsg> {
  readonly message: TMsg;
  readonly mode: Mode;
  readonly intervalMs: number;
  readonly generation: number;
  handle: TimerHandle | undefined;
  /** For fixed-rate timers: when the last tick was due. */
  dueAt: number;
}

export interface TimerOwner {
  enqueueInternal(message: TimerTick): void;
}

function checkDelay(name: string, ms: number): void {
  if (!(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0)) {
    throw new RangeError(`${name} must be a finite number of milliseconds >= 0, got ${String(ms)}`);
  }
}

export class Timers<TMsg> implements TimerScheduler<TMsg> {
  readonly #owner: TimerOwner;
  readonly #clock: Clock;
  readonly #timers = new Map<unknown, ActiveTimer<TMsg>>();
  #generation = 0;

  constructor(owner: TimerOwner, clock: Clock) {
    this.#owner = owner;
    this.#clock = clock;
  }

  startSingleTimer(key: unknown, message: TMsg, delayMs: number): void {
    checkDelay('delayMs', delayMs);
    this.#start(key, message, 'single', 0, delayMs);
  }

  startTimerWithFixedDelay(key: unknown, message: TMsg, delayMs: number, initialDelayMs = delayMs): void {
    checkDelay('delayMs', delayMs);
    checkDelay('initialDelayMs', initialDelayMs);
    if (delayMs === 0) throw new RangeError('a repeating timer needs delayMs > 0');
    this.#start(key, message, 'fixed-delay', delayMs, initialDelayMs);
  }

  startTimerAtFixedRate(key: unknown, message: TMsg, intervalMs: number, initialDelayMs = intervalMs): void {
    checkDelay('intervalMs', intervalMs);
    checkDelay('initialDelayMs', initialDelayMs);
    if (intervalMs === 0) throw new RangeError('a repeating timer needs intervalMs > 0');
    this.#start(key, message, 'fixed-rate', intervalMs, initialDelayMs);
  }

  isTimerActive(key: unknown): boolean {
    return this.#timers.has(key);
  }

  get activeKeys(): readonly unknown[] {
    return [...this.#timers.keys()];
  }

  cancel(key: unknown): void {
    const timer = this.#timers.get(key);
    if (timer === undefined) return;
    if (timer.handle !== undefined) this.#clock.clearTimeout(timer.handle);
    this.#timers.delete(key);
  }

  cancelAll(): void {
    for (const timer of this.#timers.values()) {
      if (timer.handle !== undefined) this.#clock.clearTimeout(timer.handle);
    }
    this.#timers.clear();
  }

  /** Called when a tick reaches the head of the mailbox: the message to deliver, if still current. */
  take(tick: TimerTick): { message: TMsg } | undefined {
    const timer = this.#timers.get(tick.key);
    if (timer === undefined || timer.generation !== tick.generation) return undefined;
    if (timer.mode === 'single') {
      this.#timers.delete(tick.key);
    } else if (timer.mode === 'fixed-delay') {
      this.#arm(tick.key, timer, timer.intervalMs);
    }
    return { message: timer.message };
  }

  #start(key: unknown, message: TMsg, mode: Mode, intervalMs: number, delayMs: number): void {
    this.cancel(key);
    const timer: ActiveTimer<TMsg> = {
      message,
      mode,
      intervalMs,
      generation: ++this.#generation,
      handle: undefined,
      dueAt: this.#clock.now() + delayMs,
    };
    this.#timers.set(key, timer);
    this.#arm(key, timer, delayMs);
  }

  #arm(key: unknown, timer: ActiveTimer<TMsg>, delayMs: number): void {
    timer.handle = this.#clock.setTimeout(() => {
      timer.handle = undefined;
      if (this.#timers.get(key) !== timer) return;
      this.#owner.enqueueInternal(new TimerTick(key, timer.generation));
      if (timer.mode === 'fixed-rate') {
        timer.dueAt += timer.intervalMs;
        this.#arm(key, timer, Math.max(0, timer.dueAt - this.#clock.now()));
      }
    }, delayMs);
  }
}
