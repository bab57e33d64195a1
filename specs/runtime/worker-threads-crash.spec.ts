import type { Worker } from 'node:worker_threads';
import { threadId as mainThreadId } from 'node:worker_threads';
import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { WorkerThreadDiedError } from '../../runtime/errors.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import { supervisor } from '../../supervision/supervisor.ts';
import { SupervisorClient } from '../../supervision/supervisor-client.ts';
import {
  type CounterEvent,
  type CounterMessage,
  type CounterState,
  counter,
  parent,
  type RelayMessage,
  type Whereabouts,
} from '../fixtures/thread-behaviors.ts';
import { collectFailures, spawnProbe } from '../support/test-system.ts';
import { hostOfThread, hostTags, rejectionOf, startWorkerTestSystem } from '../support/worker-test-system.ts';

type Watched = {
  readonly type: 'Terminated' | 'ChildFailed';
  readonly ref: ActorRef<never>;
  readonly error?: Error;
};

function count(ref: ActorRef<CounterMessage>): Promise<CounterState> {
  return ref.ask<CounterState>((replyTo) => ({ type: 'get', replyTo }));
}

/** An ask the actor never answers: it stays in flight until the actor's thread dies. */
function hold(ref: ActorRef<CounterMessage>): Promise<unknown> {
  return ref.ask<unknown>((replyTo) => ({ type: 'hold', replyTo }), { timeoutMs: 15_000 });
}

/** Resolves with the exit code (unlike events.once, an 'error' before the exit does not reject). */
function exitOf(worker: Worker): Promise<number> {
  return new Promise((resolve) => worker.once('exit', resolve));
}

/** Resolves with how long the promise took to reject, and its error. */
async function timedRejection(
  promise: Promise<unknown>,
  since: number,
): Promise<{ ms: number; code?: string }> {
  const error = await rejectionOf(promise);
  expect(error).to.be.instanceOf(WorkerThreadDiedError);
  return { ms: performance.now() - since, code: error.code };
}

/** A main-thread actor that watches `target` and reports Terminated or ChildFailed. */
function watchingActor(target: ActorRef<never>, reportTo: ActorRef<Watched>): Behavior<never> {
  return Behaviors.setup<never>((ctx) => {
    ctx.watch(target);
    return Behaviors.receiveSignal<never>((_ctx, signal) => {
      if (signal.type === 'Terminated') reportTo.tell({ type: 'Terminated', ref: signal.ref });
      if (signal.type === 'ChildFailed')
        reportTo.tell({ type: 'ChildFailed', ref: signal.ref, error: signal.error });
      return Behaviors.same;
    });
  });
}

describe('worker-thread dispatcher: a worker thread dies', () => {
  let system: ActorSystem;

  // One system for the file: every spec kills a host, and the next finds it replaced.
  before(async () => {
    system = await startWorkerTestSystem({
      worker: { threads: 2 },
      small: { threads: 1, resourceLimits: { maxOldGenerationSizeMb: 32 } },
    });
  });

  after(async () => {
    await system?.stop();
  });

  /** Spawns a supervised counter on `dispatcher` and waits for it to say where it started. */
  async function supervisedCounter(
    dispatcher = 'worker',
  ): Promise<{ ref: ActorRef<CounterMessage>; first: CounterEvent; next: () => Promise<CounterEvent> }> {
    const events = spawnProbe<CounterEvent>(system);
    const ref = system.spawn(
      Behaviors.supervise(counter.with({ reportTo: events.ref })).onFailure(SupervisorStrategy.restart),
      { dispatcher },
    );
    const first = await events.next();
    expect(first.type).to.equal('started');
    return { ref, first, next: () => events.next(5000) };
  }

  it('restarts a supervised actor on a live host after process.exit in its thread, fails its asks in flight and replaces the thread', async () => {
    const victim = await supervisedCounter();
    const survivor = system.spawn(counter.with({}), { dispatcher: 'worker' });
    survivor.tell({ type: 'inc' });
    survivor.tell({ type: 'inc' });
    const survivorAt = await count(survivor);
    expect(survivorAt.threadId, 'round-robin put the survivor on the other host').to.not.equal(
      victim.first.threadId,
    );
    const host = hostOfThread(system, victim.first.threadId);
    const tagsBefore = hostTags(system);
    const inFlight = [hold(victim.ref), hold(victim.ref)];
    const exited = exitOf(host.worker);
    const since = performance.now();
    victim.ref.tell({ type: 'exit', code: 3 });
    expect(await exited).to.equal(3);
    for (const ask of inFlight) {
      const { ms, code } = await timedRejection(ask, since);
      expect(code).to.equal('WORKER_DIED');
      expect(ms, 'the ask failed when the thread died, not at its timeout').to.be.below(5000);
    }
    const restarted = await victim.next();
    expect(restarted.type).to.equal('started');
    expect(restarted.path).to.equal(victim.ref.path);
    expect(restarted.threadId).to.not.equal(victim.first.threadId);
    const tagsAfter = hostTags(system);
    expect(tagsAfter).to.have.length(2);
    expect(tagsAfter).to.not.include(host.tag);
    expect(tagsAfter.filter((tag) => !tagsBefore.includes(tag))).to.have.length(1);
    expect(host.alive).to.equal(false);
    victim.ref.tell({ type: 'inc' });
    expect((await count(victim.ref)).count, 'the restarted incarnation works').to.equal(1);
    expect((await count(survivor)).count, 'the actor on the other host kept its state').to.equal(2);
  });

  it('fails every actor of a thread that dies of an uncaught error: parents see ChildFailed with WORKER_DIED, watchers of its children see Terminated', async () => {
    const reports = spawnProbe<Watched>(system);
    const failures = collectFailures(system);
    let child: ActorRef<CounterMessage> | undefined;
    const owner = system.spawn(
      Behaviors.setup<never>((ctx) => {
        child = ctx.spawn(counter.with({}), { dispatcher: 'worker', name: 'doomed' });
        return watchingActor(child as ActorRef<never>, reports.ref);
      }),
      { name: 'owner-of-doomed' },
    );
    expect(owner.path).to.equal('/user/owner-of-doomed');
    const doomed = child as ActorRef<CounterMessage>;
    const at = await count(doomed);
    // Round-robin: the next actor but one lands on the same host.
    system.spawn(counter.with({}), { dispatcher: 'worker' });
    const grandparent = system.spawn(parent.with({}), { dispatcher: 'worker' });
    const grandparentAt = await grandparent.ask<Whereabouts>((replyTo) => ({ type: 'where', replyTo }));
    expect(grandparentAt.threadId).to.equal(at.threadId);
    const grandchild = await grandparent.ask<ActorRef<RelayMessage>>((replyTo) => ({
      type: 'child',
      replyTo,
    }));
    const grandchildReports = spawnProbe<Watched>(system);
    system.spawn(watchingActor(grandchild as ActorRef<never>, grandchildReports.ref));
    const host = hostOfThread(system, at.threadId);
    const ignoring = system.spawn(Behaviors.ignore<unknown>());
    const inFlight = [
      hold(doomed),
      // The relay forwards and never answers this ask.
      grandchild.ask<unknown>(() => ({ type: 'forward', to: ignoring, message: 'no answer' }), {
        timeoutMs: 15_000,
      }),
    ];
    const exited = exitOf(host.worker);
    const since = performance.now();
    doomed.tell({ type: 'throw-later' });
    await exited;
    const failed = await reports.next();
    expect(failed.type).to.equal('ChildFailed');
    expect(failed.ref).to.equal(doomed);
    expect(failed.error).to.be.instanceOf(WorkerThreadDiedError);
    expect((failed.error as WorkerThreadDiedError).code).to.equal('WORKER_DIED');
    expect(await grandchildReports.next()).to.include({ type: 'Terminated', ref: grandchild });
    for (const ask of inFlight) expect((await timedRejection(ask, since)).code).to.equal('WORKER_DIED');
    expect(failures.map((failure) => failure.path)).to.include.members([doomed.path, grandparent.path]);
    expect(hostTags(system)).to.have.length(2).and.not.include(host.tag);
    // The unsupervised grandparent stopped with its thread; the main thread goes on.
    const survivor = system.spawn(counter.with({}), { dispatcher: 'worker' });
    survivor.tell({ type: 'inc' });
    expect((await count(survivor)).count).to.equal(1);
  });

  it('restarts a supervised actor whose thread ran out of memory under resourceLimits', async () => {
    const failures = collectFailures(system);
    const victim = await supervisedCounter('small');
    const host = hostOfThread(system, victim.first.threadId, 'small');
    const inFlight = hold(victim.ref);
    const exited = exitOf(host.worker);
    const since = performance.now();
    victim.ref.tell({ type: 'oom' });
    await exited;
    expect((await timedRejection(inFlight, since)).code).to.equal('WORKER_DIED');
    const failure = failures.find((candidate) => candidate.path === victim.ref.path);
    expect((failure?.error as WorkerThreadDiedError | undefined)?.code).to.equal('WORKER_DIED');
    expect((failure?.error.cause as { code?: string } | undefined)?.code).to.equal(
      'ERR_WORKER_OUT_OF_MEMORY',
    );
    const restarted = await victim.next();
    expect(restarted.type).to.equal('started');
    expect(restarted.threadId).to.not.equal(victim.first.threadId);
    const [replacement] = system.workerThreads?.hosts('small') ?? [];
    expect(replacement?.tag).to.not.equal(host.tag);
    expect(replacement?.worker.threadId).to.equal(restarted.threadId);
    victim.ref.tell({ type: 'inc' });
    expect((await count(victim.ref)).count).to.equal(1);
  });

  it('survives host.worker.terminate() mid-flight: asks fail, later tells reach the restarted actor', async () => {
    const victim = await supervisedCounter();
    const host = hostOfThread(system, victim.first.threadId);
    const inFlight = Array.from({ length: 5 }, () => hold(victim.ref));
    for (let i = 0; i < 10_000; i++) victim.ref.tell({ type: 'inc' });
    let toldAfterExit = 0;
    host.worker.once('exit', () => {
      // Runs right after the dispatcher heard of the exit, before the proxy restarts.
      for (; toldAfterExit < 3; toldAfterExit++) victim.ref.tell({ type: 'inc' });
    });
    const since = performance.now();
    void host.worker.terminate();
    for (const ask of inFlight) expect((await timedRejection(ask, since)).code).to.equal('WORKER_DIED');
    const restarted = await victim.next();
    expect(restarted.threadId).to.not.equal(victim.first.threadId);
    expect(toldAfterExit).to.equal(3);
    expect((await count(victim.ref)).count, 'the tells sent after the death waited for the restart').to.equal(
      3,
    );
    expect(hostTags(system)).to.have.length(2).and.not.include(host.tag);
  });

  it('lets an OTP supervisor restart its worker child when the child thread is terminated', async () => {
    const events = spawnProbe<CounterEvent>(system);
    const sup = system.spawn(
      supervisor({
        flags: { intensity: 2, period: 5 },
        children: [{ id: 'counter', start: counter.with({ reportTo: events.ref }), dispatcher: 'worker' }],
      }),
      { name: 'otp-crash' },
    );
    const first = await events.next();
    expect(first.threadId).to.not.equal(mainThreadId);
    const host = hostOfThread(system, first.threadId);
    await host.worker.terminate();
    const restarted = await events.next();
    expect(restarted).to.include({ type: 'started', path: '/user/otp-crash/counter' });
    expect(restarted.threadId).to.not.equal(first.threadId);
    const children = await new SupervisorClient(sup).whichChildren();
    expect(children.map((child) => child.status)).to.deep.equal(['running']);
  });

  it('ends with every dispatcher back at its thread count', () => {
    expect(hostTags(system, 'worker')).to.have.length(2);
    expect(hostTags(system, 'small')).to.have.length(1);
    for (const host of [
      ...(system.workerThreads?.hosts('worker') ?? []),
      ...(system.workerThreads?.hosts('small') ?? []),
    ]) {
      expect(host.worker.threadId).to.be.above(0);
    }
  });
});
