/**
 * The phi-accrual failure detector (Hayashibara et al., as in Akka and Cassandra) for one
 * monitored member. It keeps a bounded window of heartbeat inter-arrival times and answers
 * `phi(now)`: how unlikely it is, given that history, that the next heartbeat is still on its
 * way after the time elapsed since the last one (phi 1 ≈ 10%, phi 8 ≈ 10⁻⁸).
 *
 * Pure: no timers, no clock of its own. Times are passed in (ms, any monotonic origin).
 *
 * The tail is widened on purpose: the mean gets `acceptableHeartbeatPauseMs` added (a GC pause or
 * a busy event loop is not a failure) and the standard deviation never goes below
 * `minStdDeviationMs` (a perfectly regular history would otherwise make phi jump from 0 to
 * infinity a few ms after the expected arrival).
 */

export interface PhiAccrualOptions {
  /** Inter-arrival times kept (the oldest is dropped); default 100 (20 s at 200 ms heartbeats). */
  readonly maxSampleSize?: number;
  /** Floor of the standard deviation; default 50 ms. */
  readonly minStdDeviationMs?: number;
  /** Added to the mean: a silence this long beyond the usual interval is still normal; default 300 ms. */
  readonly acceptableHeartbeatPauseMs?: number;
  /** Seeds the window before two heartbeats have been seen (Akka's first-heartbeat estimate); default 200 ms. */
  readonly firstHeartbeatEstimateMs?: number;
}

export const phiAccrualDefaults = {
  maxSampleSize: 100,
  minStdDeviationMs: 50,
  acceptableHeartbeatPauseMs: 300,
  firstHeartbeatEstimateMs: 200,
} as const;

/**
 * phi for `elapsedMs` since the last heartbeat, under a normal distribution of `meanMs` and
 * `stdDeviationMs`, through the logistic approximation of its CDF that Akka uses (no erf, and
 * monotonic; it overflows to Infinity far in the tail, which is the right answer).
 */
export function phiOf(elapsedMs: number, meanMs: number, stdDeviationMs: number): number {
  const y = (elapsedMs - meanMs) / stdDeviationMs;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  return elapsedMs > meanMs ? -Math.log10(e / (1 + e)) : -Math.log10(1 - 1 / (1 + e));
}

export class PhiAccrualDetector {
  readonly #intervals: Float64Array;
  readonly #minStdDeviationMs: number;
  readonly #pauseMs: number;
  #head = 0;
  #count = 0;
  #sum = 0;
  #sumOfSquares = 0;
  #lastAt: number | undefined;

  constructor(options: PhiAccrualOptions = {}) {
    const size = options.maxSampleSize ?? phiAccrualDefaults.maxSampleSize;
    const minStd = options.minStdDeviationMs ?? phiAccrualDefaults.minStdDeviationMs;
    const pause = options.acceptableHeartbeatPauseMs ?? phiAccrualDefaults.acceptableHeartbeatPauseMs;
    const first = options.firstHeartbeatEstimateMs ?? phiAccrualDefaults.firstHeartbeatEstimateMs;
    if (!Number.isInteger(size) || size < 2)
      throw new RangeError(`maxSampleSize must be an integer of at least 2, got ${size}`);
    for (const [name, value] of [
      ['minStdDeviationMs', minStd],
      ['firstHeartbeatEstimateMs', first],
    ] as const) {
      if (!(value > 0) || !Number.isFinite(value))
        throw new RangeError(`${name} must be a positive number of ms, got ${value}`);
    }
    if (!(pause >= 0) || !Number.isFinite(pause))
      throw new RangeError(`acceptableHeartbeatPauseMs must be a non-negative number of ms, got ${pause}`);
    this.#intervals = new Float64Array(size);
    this.#minStdDeviationMs = minStd;
    this.#pauseMs = pause;
    // Akka's bootstrap: two samples at estimate ± estimate/4, so the first silence is judged
    // against a plausible interval instead of none.
    this.#add(first - first / 4);
    this.#add(first + first / 4);
  }

  /** When the last heartbeat arrived (undefined before the first). */
  get lastHeartbeatAt(): number | undefined {
    return this.#lastAt;
  }

  get sampleCount(): number {
    return this.#count;
  }

  get meanMs(): number {
    return this.#sum / this.#count;
  }

  get stdDeviationMs(): number {
    const mean = this.meanMs;
    return Math.sqrt(Math.max(0, this.#sumOfSquares / this.#count - mean * mean));
  }

  /** Records a heartbeat at `at`; one arriving before the last (clock skew, reordering) only moves nothing back. */
  heartbeat(at: number): void {
    const last = this.#lastAt;
    if (last !== undefined && at > last) this.#add(at - last);
    if (last === undefined || at > last) this.#lastAt = at;
  }

  /** Suspicion at `now`: 0 before the first heartbeat (nothing is expected yet). */
  phi(now: number): number {
    const last = this.#lastAt;
    if (last === undefined) return 0;
    return phiOf(
      Math.max(0, now - last),
      this.meanMs + this.#pauseMs,
      Math.max(this.stdDeviationMs, this.#minStdDeviationMs),
    );
  }

  /**
   * The silence (ms since the last heartbeat) below which phi stays under 0.31 (the value at the
   * mean): callers that scan many members can skip those without computing phi.
   */
  get quietMs(): number {
    return this.meanMs + this.#pauseMs;
  }

  #add(interval: number): void {
    const size = this.#intervals.length;
    if (this.#count === size) {
      const oldest = this.#intervals[this.#head] as number;
      this.#sum -= oldest;
      this.#sumOfSquares -= oldest * oldest;
    } else {
      this.#count++;
    }
    this.#intervals[this.#head] = interval;
    this.#head = (this.#head + 1) % size;
    this.#sum += interval;
    this.#sumOfSquares += interval * interval;
  }
}
