/**
 * Starting actor systems with worker-thread dispatchers in specs: every host loads
 * specs/fixtures/thread-behaviors.ts, logs are silent, and a host can be found by the thread id
 * an actor on it reports.
 */
import type { ActorSystem, ActorSystemOptions } from '../../runtime/actor-system.ts';
import type { WorkerHost } from '../../runtime/worker-host.ts';
import type { DispatcherConfig } from '../../runtime/worker-threads.ts';
import { startTestSystem } from './test-system.ts';

export const threadBehaviorsModule = new URL('../fixtures/thread-behaviors.ts', import.meta.url).href;

export function startWorkerTestSystem(
  dispatchers: Record<string, DispatcherConfig> = { worker: { threads: 2 } },
  options: ActorSystemOptions = {},
): Promise<ActorSystem> {
  return startTestSystem({ behaviorModules: [threadBehaviorsModule], dispatchers, ...options });
}

/** Tags of the live hosts of a dispatcher. */
export function hostTags(system: ActorSystem, dispatcher = 'worker'): string[] {
  return (system.workerThreads?.hosts(dispatcher) ?? []).map((host) => host.tag);
}

/** The live host whose worker has this thread id. */
export function hostOfThread(system: ActorSystem, threadId: number, dispatcher = 'worker'): WorkerHost {
  const host = system.workerThreads
    ?.hosts(dispatcher)
    .find((candidate) => candidate.worker.threadId === threadId);
  if (host === undefined)
    throw new Error(`no live host of dispatcher '${dispatcher}' runs thread ${threadId}`);
  return host;
}

/** The error a promise rejects with; fails if it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** The error a call throws; fails if it returns. */
export function thrownBy(call: () => unknown): Error & { code?: string } {
  try {
    call();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected the call to throw, but it returned');
}
