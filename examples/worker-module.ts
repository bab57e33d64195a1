/**
 * The module of examples/worker.yaml: the worker driver calls its default export with a context
 * and ends the replica when the returned promise settles (rejecting counts as a failure). It must
 * return promptly once `signal` is aborted: that is how the agent stops it.
 */

export interface WorkerContext {
  readonly env: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
  log(message: string): void;
}

export default async function ticker(context: WorkerContext): Promise<void> {
  const tickMs = Math.max(10, Number(context.env.TICK_MS ?? 1000));
  let ticks = 0;
  context.log(`ticker started, one tick every ${tickMs} ms`);
  while (!context.signal.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, tickMs);
      context.signal.addEventListener('abort', done, { once: true });
      function done(): void {
        clearTimeout(timer);
        context.signal.removeEventListener('abort', done);
        resolve();
      }
    });
    if (!context.signal.aborted) context.log(`tick ${++ticks}`);
  }
  context.log(`ticker stopped after ${ticks} ticks`);
}
