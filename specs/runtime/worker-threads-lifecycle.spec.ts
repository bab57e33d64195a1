import type { Worker } from 'node:worker_threads';
import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { InvalidRequestError, UnavailableError } from '../../runtime/errors.ts';
import type { DispatcherConfig } from '../../runtime/worker-threads.ts';
import {
  type CounterEvent,
  type CounterMessage,
  type CounterState,
  counter,
} from '../fixtures/thread-behaviors.ts';
import { mochaHooks } from '../support/leak-hooks.ts';
import { spawnProbe, startTestSystem } from '../support/test-system.ts';
import { rejectionOf, startWorkerTestSystem } from '../support/worker-test-system.ts';

/** Every worker thread created from now on, and which of them have exited. */
function trackWorkers(): { created: Worker[]; exited: Set<Worker>; stop(): void } {
  const created: Worker[] = [];
  const exited = new Set<Worker>();
  const onWorker = (worker: Worker): void => {
    created.push(worker);
    worker.once('exit', () => exited.add(worker));
  };
  process.on('worker', onWorker);
  return { created, exited, stop: () => process.off('worker', onWorker) };
}

function resourceCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) out[kind] = (out[kind] ?? 0) + 1;
  return out;
}

const mainOnlyModule = new URL('../fixtures/thread-behaviors-main-only.ts', import.meta.url).href;

describe('worker-thread dispatcher: start and stop', () => {
  it('stops the actors on every thread in supervision order, then the threads, leaving no worker running', async () => {
    const workers = trackWorkers();
    try {
      const system = await startWorkerTestSystem();
      expect(workers.created).to.have.length(2);
      // Spawned first under /user, so stopped last: it hears every worker actor's PostStop.
      const events = spawnProbe<CounterEvent>(system);
      const timeline: string[] = [];
      system.on('actor:stop', ({ ref }) => timeline.push(`stop ${ref.path}`));
      for (const worker of workers.created) worker.once('exit', () => timeline.push('thread exit'));
      system.spawn(
        Behaviors.setup<never>((ctx) => {
          ctx.spawn(counter.with({ reportTo: events.ref }), { dispatcher: 'worker', name: 'a' });
          ctx.spawn(counter.with({ reportTo: events.ref }), { dispatcher: 'worker', name: 'b' });
          ctx.spawn(Behaviors.ignore<never>(), { name: 'local' });
          return Behaviors.ignore<never>();
        }),
        { name: 'tree' },
      );
      const started = await events.waitFor(2);
      expect(new Set(started.map((event) => event.threadId)).size, 'a and b run on different hosts').to.equal(
        2,
      );
      const hosts = [...(system.workerThreads?.hosts('worker') ?? [])];
      await system.stop();
      const stopped = events.received.filter((event) => event.type === 'stopped').map((event) => event.path);
      expect(stopped, 'children stop in reverse order of spawn').to.deep.equal([
        '/user/tree/b',
        '/user/tree/a',
      ]);
      const order = timeline.filter(
        (entry) => entry.startsWith('stop /user/tree') || entry === 'thread exit',
      );
      expect(order).to.deep.equal([
        'stop /user/tree/local',
        'stop /user/tree/b',
        'stop /user/tree/a',
        'stop /user/tree',
        'thread exit',
        'thread exit',
      ]);
      expect(workers.exited.size).to.equal(workers.created.length);
      for (const host of hosts) expect(host.alive).to.equal(false);
      expect(system.workerThreads?.hosts('worker')).to.deep.equal([]);
    } finally {
      workers.stop();
    }
  });

  it('stops a replacement thread that is still starting when the system stops', async () => {
    const workers = trackWorkers();
    try {
      const system = await startWorkerTestSystem();
      const ref: ActorRef<CounterMessage> = system.spawn(counter.with({}), { dispatcher: 'worker' });
      const at = await ref.ask<CounterState>((replyTo) => ({ type: 'get', replyTo }));
      const host = system.workerThreads?.hosts('worker').find((h) => h.worker.threadId === at.threadId);
      const exited = new Promise((resolve) => host?.worker.once('exit', resolve));
      void host?.worker.terminate();
      await exited;
      expect(workers.created, 'the dead thread was replaced').to.have.length(3);
      await system.stop();
      expect(workers.exited.size).to.equal(3);
    } finally {
      workers.stop();
    }
  });

  it('counts threads started before a spec as the leak hook baseline, and fails a spec that leaves one running', async () => {
    // After a turn, so mocha has armed this spec's timeout timer (as the leak hook does).
    await new Promise((resolve) => setImmediate(resolve));
    const atStart = resourceCounts();
    const passed = { currentTest: { state: 'passed' } } as unknown as Mocha.Context;
    // As if started in a before hook: the hook's snapshot is taken with its thread running.
    const early = await startWorkerTestSystem({ worker: { threads: 1 } });
    try {
      await mochaHooks.beforeEach();
      await mochaHooks.afterEach.call(passed);
      const late = await startWorkerTestSystem({ worker: { threads: 1 } });
      let leak: unknown;
      try {
        await mochaHooks.afterEach.call(passed);
      } catch (error) {
        leak = error;
      } finally {
        await late.stop();
      }
      expect(leak, 'a thread started inside the spec and left running is a leak').to.be.instanceOf(Error);
      await mochaHooks.afterEach.call(passed);
    } finally {
      await early.stop();
    }
    expect(resourceCounts()).to.deep.equal(atStart);
  });

  it('rejects a bad dispatcher config before it starts any thread', async () => {
    const workers = trackWorkers();
    try {
      const bad: Record<string, DispatcherConfig>[] = [
        { fine: { threads: 1 }, none: { threads: 0 } },
        { fine: { threads: 1 }, tiny: { threads: 1, resourceLimits: { maxOldGenerationSizeMb: -1 } } },
        { main: { threads: 1 } },
      ];
      for (const dispatchers of bad) {
        const error = await rejectionOf(startWorkerTestSystem(dispatchers));
        expect(error).to.be.instanceOf(InvalidRequestError);
        expect(error.code).to.equal('INVALID_REQUEST');
      }
      expect(workers.created).to.have.length(0);
    } finally {
      workers.stop();
    }
  });

  it('fails to start with UnavailableError when a host cannot load the behavior modules, leaving no thread', async () => {
    const workers = trackWorkers();
    try {
      const error = await rejectionOf(
        startTestSystem({ behaviorModules: [mainOnlyModule], dispatchers: { worker: { threads: 2 } } }),
      );
      expect(error).to.be.instanceOf(UnavailableError);
      expect(error.code).to.equal('UNAVAILABLE');
      expect(workers.created).to.have.length(2);
      expect(workers.exited.size).to.equal(2);
    } finally {
      workers.stop();
    }
  });
});
