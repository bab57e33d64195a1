/**
 * Root hooks: every spec must leave no timer, immediate or handle behind. The resources alive
 * before a spec are compared with those alive after it (once the event loop has had a turn to
 * close what was closed); anything extra fails the spec that left it.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Resource kinds that belong to the test process itself, not to the code under test. */
const ambient = new Set(['TTYWrap', 'PipeWrap', 'FSReqCallback', 'FSReqPromise', 'SignalWrap']);

function counts(): Map<string, number> {
  const out = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) {
    if (ambient.has(kind)) continue;
    out.set(kind, (out.get(kind) ?? 0) + 1);
  }
  return out;
}

let before = new Map<string, number>();

export const mochaHooks = {
  // Both hooks are async on purpose: mocha arms a timeout timer for an async hook, so the
  // snapshot taken here and the one taken in afterEach each contain exactly one hook timer.
  // Counting after a turn means mocha has armed that timer by then.
  async beforeEach(): Promise<void> {
    await nextTurn();
    before = counts();
  },
  async afterEach(this: Mocha.Context): Promise<void> {
    if (this.currentTest?.state === 'failed') return;
    let leaked: string[] = [];
    // A closed handle may take a few turns to leave the list.
    for (let attempt = 0; attempt < 20; attempt++) {
      await nextTurn();
      leaked = [];
      for (const [kind, count] of counts()) {
        const extra = count - (before.get(kind) ?? 0);
        if (extra > 0) leaked.push(`${extra} × ${kind}`);
      }
      if (leaked.length === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error(
      `spec left resources running: ${leaked.join(', ')}; stop the system or close what it opened`,
    );
  },
};
