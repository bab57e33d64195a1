/**
 * Timers owned by one actor (`Behaviors.withTimers`). A timer's message is delivered through the
 * mailbox like any other; starting a timer with a key that is in use replaces it, and once a timer
 * is cancelled (or the actor stops or restarts) its message is never delivered, even if it was
 * already queued.
 */

export interface TimerScheduler<TMsg> {
  startSingleTimer(key: unknown, message: TMsg, delayMs: number): void;
  /** Repeats with `delayMs` between the handling of one tick and the start of the next wait. */
  startTimerWithFixedDelay(key: unknown, message: TMsg, delayMs: number, initialDelayMs?: number): void;
  /** Repeats every `intervalMs` measured from the first tick, catching up after a slow turn. */
  startTimerAtFixedRate(key: unknown, message: TMsg, intervalMs: number, initialDelayMs?: number): void;
  isTimerActive(key: unknown): boolean;
  cancel(key: unknown): void;
  cancelAll(): void;
  /** Keys of active timers. */
  readonly activeKeys: readonly unknown[];
}
