/**
 * Waits with deadlines for specs: every wait either ends or fails with a `TimeoutError` naming
 * what did not happen, and clears its timer either way.
 */
import { TimeoutError } from '../../runtime/errors.ts';

/** `promise`, or a `TimeoutError` saying `what` did not happen within `timeoutMs`. */
export async function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: not within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined. */
export async function until<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  what: string,
  intervalMs = 10,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() >= deadline) throw new TimeoutError(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The rejection of `promise` (fails when it resolves), within `timeoutMs`. */
export async function rejectionOf(
  promise: Promise<unknown>,
  timeoutMs: number,
  what: string,
): Promise<Error> {
  return withDeadline(
    promise.then(
      (value) => {
        throw new Error(`${what}: expected a rejection, got ${JSON.stringify(value)}`);
      },
      (error: Error) => error,
    ),
    timeoutMs,
    what,
  );
}
