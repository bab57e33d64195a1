import { threadId as mainThreadId } from 'node:worker_threads';
import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { InvalidRequestError } from '../../runtime/errors.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import { normalizeChildSpec } from '../../supervision/child-spec.ts';
import { type SupervisorCommand, supervisor } from '../../supervision/supervisor.ts';
import { SupervisorClient } from '../../supervision/supervisor-client.ts';
import {
  type CounterEvent,
  type CounterMessage,
  type CounterState,
  counter,
} from '../fixtures/thread-behaviors.ts';
import { collectDeadLetters, spawnProbe } from '../support/test-system.ts';
import { startWorkerTestSystem, thrownBy } from '../support/worker-test-system.ts';

type ParentReport =
  | { readonly type: 'spawned'; readonly child: ActorRef<CounterMessage> }
  | { readonly type: 'Terminated' | 'ChildFailed'; readonly ref: ActorRef<never>; readonly error?: Error };

type ParentCommand = { readonly type: 'stop-child' };

/**
 * A main-thread parent that spawns `child` on the worker dispatcher, watches it, stops it when
 * told, and reports what it hears.
 */
function watchingParent(
  child: Behavior<CounterMessage>,
  reportTo: ActorRef<ParentReport>,
): Behavior<ParentCommand> {
  return Behaviors.setup<ParentCommand>((ctx) => {
    const ref = ctx.spawn(child, { dispatcher: 'worker', name: 'child' });
    ctx.watch(ref as ActorRef<never>);
    reportTo.tell({ type: 'spawned', child: ref });
    return Behaviors.receiveMessage<ParentCommand>(() => {
      ctx.stop(ref as ActorRef<never>);
      return Behaviors.same;
    }).receiveSignal((_ctx, signal) => {
      if (signal.type === 'ChildFailed')
        reportTo.tell({ type: 'ChildFailed', ref: signal.ref, error: signal.error });
      if (signal.type === 'Terminated') reportTo.tell({ type: 'Terminated', ref: signal.ref });
      return Behaviors.same;
    });
  });
}

function count(ref: ActorRef<CounterMessage>): Promise<CounterState> {
  return ref.ask<CounterState>((replyTo) => ({ type: 'get', replyTo }));
}

describe('worker-thread dispatcher: supervision', () => {
  let system: ActorSystem;

  before(async () => {
    system = await startWorkerTestSystem({ worker: { threads: 2 }, single: { threads: 1 } });
  });

  after(async () => {
    await system?.stop();
  });

  it('tells a watching main-thread parent ChildFailed when its worker child fails under the default strategy', async () => {
    const events = spawnProbe<CounterEvent>(system);
    const reports = spawnProbe<ParentReport>(system);
    system.spawn(watchingParent(counter.with({ reportTo: events.ref }), reports.ref));
    const spawned = await reports.next();
    const started = await events.next();
    expect(started.threadId).to.not.equal(mainThreadId);
    const child = spawned.type === 'spawned' ? spawned.child : undefined;
    child?.tell({ type: 'crash' });
    const report = await reports.next();
    expect(report.type).to.equal('ChildFailed');
    expect(report.type !== 'spawned' && report.ref).to.equal(child);
    expect(report.type !== 'spawned' && report.error).to.be.instanceOf(Error);
    expect((await events.next()).type, 'the failed actor stopped on its thread').to.equal('stopped');
  });

  it('stops a worker child when its main-thread parent calls ctx.stop, and only then reports Terminated', async () => {
    const events = spawnProbe<CounterEvent>(system);
    const reports = spawnProbe<ParentReport>(system);
    const owner = system.spawn(watchingParent(counter.with({ reportTo: events.ref }), reports.ref));
    const spawned = await reports.next();
    const child = spawned.type === 'spawned' ? spawned.child : undefined;
    expect((await events.next()).type).to.equal('started');
    owner.tell({ type: 'stop-child' });
    const stopped = await events.next();
    expect(stopped).to.include({ type: 'stopped', path: child?.path });
    const report = await reports.next();
    expect(report).to.include({ type: 'Terminated', ref: child });
    const letters = collectDeadLetters(system);
    child?.tell({ type: 'inc' });
    expect(letters.map((letter) => [letter.recipient, letter.reason])).to.deep.equal([
      [child?.path, 'actor-dead'],
    ]);
  });

  it('restarts a worker actor under Behaviors.supervise(...).onFailure(restart) on its own thread, keeping the messages queued behind the failure', async () => {
    const events = spawnProbe<CounterEvent>(system);
    const mainRestarts: string[] = [];
    const onRestart = ({ ref }: { ref: ActorRef<never> }): void => {
      mainRestarts.push(ref.path);
    };
    system.on('actor:restart', onRestart);
    try {
      const ref = system.spawn(
        Behaviors.supervise(counter.with({ reportTo: events.ref })).onFailure(SupervisorStrategy.restart),
        { dispatcher: 'worker' },
      );
      const first = await events.next();
      // One batch: the failure and the messages behind it are all in the mailbox when it fails.
      ref.tell({ type: 'inc' });
      ref.tell({ type: 'inc' });
      ref.tell({ type: 'crash' });
      for (let i = 0; i < 3; i++) ref.tell({ type: 'inc' });
      const state = await count(ref);
      expect(
        state.count,
        'the restarted incarnation counted the three incs queued behind the crash',
      ).to.equal(3);
      const second = await events.next();
      expect(second).to.deep.equal({ type: 'started', threadId: first.threadId, path: ref.path });
      expect(mainRestarts, 'the proxy on the main thread did not restart').to.deep.equal([]);
    } finally {
      system.off('actor:restart', onRestart);
    }
  });

  it('applies the error class of a supervise clause on the worker thread', async () => {
    const events = spawnProbe<CounterEvent>(system);
    const reports = spawnProbe<ParentReport>(system);
    // RangeError is what the counter throws: restarted.
    const matching = system.spawn(
      Behaviors.supervise(counter.with({ reportTo: events.ref })).onFailure(
        SupervisorStrategy.restart,
        RangeError,
      ),
      { dispatcher: 'worker' },
    );
    await events.next();
    matching.tell({ type: 'crash' });
    expect((await events.next()).type).to.equal('started');
    expect((await count(matching)).count).to.equal(0);
    // TypeError is not: the default strategy stops it and the parent sees ChildFailed.
    system.spawn(
      watchingParent(
        Behaviors.supervise(counter.with({})).onFailure(SupervisorStrategy.restart, TypeError),
        reports.ref,
      ),
    );
    const spawned = await reports.next();
    if (spawned.type === 'spawned') spawned.child.tell({ type: 'crash' });
    expect((await reports.next()).type).to.equal('ChildFailed');
  });

  it('restarts a worker child of an OTP supervisor whose child spec names the dispatcher', async () => {
    const events = spawnProbe<CounterEvent>(system);
    const sup = system.spawn(
      supervisor({
        flags: { strategy: 'one_for_one', intensity: 3, period: 5 },
        children: [
          { id: 'on-worker', start: counter.with({ reportTo: events.ref }), dispatcher: 'worker' },
          {
            id: 'from-function',
            start: () => counter.with({ reportTo: events.ref }),
            dispatcher: 'worker',
          },
        ],
      }) as Behavior<SupervisorCommand>,
      { name: 'otp' },
    );
    const client = new SupervisorClient(sup);
    const started = [await events.next(), await events.next()];
    // Each starts on its own host, so their reports may arrive in either order.
    expect(started.map((event) => event.path)).to.have.members([
      '/user/otp/on-worker',
      '/user/otp/from-function',
    ]);
    for (const event of started) expect(event.threadId).to.not.equal(mainThreadId);
    const children = await client.whichChildren();
    expect(children.map((child) => child.status)).to.deep.equal(['running', 'running']);
    const first = system.resolve<CounterMessage>({ node: system.nodeId, path: '/user/otp/on-worker' });
    first.tell({ type: 'inc' });
    first.tell({ type: 'crash' });
    expect(await events.next()).to.include({ type: 'stopped', path: '/user/otp/on-worker' });
    expect(await events.next()).to.include({ type: 'started', path: '/user/otp/on-worker' });
    const restarted = system.resolve<CounterMessage>({ node: system.nodeId, path: '/user/otp/on-worker' });
    expect((await count(restarted)).count, 'a fresh incarnation').to.equal(0);
    expect((await client.whichChildren()).map((child) => child.status)).to.deep.equal(['running', 'running']);
  });

  it('restarts a brutally killed worker child under its name at once, and the old incarnation ending does not stop the new one', async () => {
    const events = spawnProbe<CounterEvent>(system);
    const sup = system.spawn(
      supervisor({
        // Intensity 0: any restart the supervisor makes by itself would shut it down.
        flags: { intensity: 0, period: 5 },
        children: [
          {
            id: 'x',
            start: counter.with({ reportTo: events.ref }),
            dispatcher: 'single',
            shutdown: 'brutal_kill',
          },
        ],
      }),
      { name: 'otp-kill' },
    );
    const client = new SupervisorClient(sup);
    const first = await events.next();
    await client.terminateChild('x');
    const again = (await client.restartChild('x')) as unknown as ActorRef<CounterMessage>;
    // Its one host tells of the old incarnation's end before the new one's start.
    const second = await events.next();
    expect(second).to.include({ type: 'started', path: '/user/otp-kill/x', threadId: first.threadId });
    again.tell({ type: 'inc' });
    expect((await count(again)).count).to.equal(1);
    expect((await client.whichChildren()).map((child) => child.status)).to.deep.equal(['running']);
  });

  it('validates the dispatcher of a child spec', () => {
    const error = thrownBy(() =>
      normalizeChildSpec({ id: 'bad', start: counter.with({}), dispatcher: 'no spaces' as string }),
    );
    expect(error).to.be.instanceOf(InvalidRequestError);
    expect(
      normalizeChildSpec({ id: 'here', start: counter.with({}), dispatcher: 'main' }).dispatcher,
    ).to.equal(undefined);
  });

  it('fails the start of an OTP supervisor whose worker child names an unknown dispatcher', async () => {
    const reports = spawnProbe<{ type: string; code?: string }>(system);
    system.spawn(
      Behaviors.setup<never>((ctx) => {
        const sup = ctx.spawn(
          supervisor({ children: [{ id: 'lost', start: counter.with({}), dispatcher: 'gpu' }] }),
          { name: 'doomed' },
        );
        ctx.watch(sup as ActorRef<never>);
        return Behaviors.receiveSignal<never>((_ctx, signal) => {
          if (signal.type === 'ChildFailed') {
            const cause = signal.error.cause as { code?: string } | undefined;
            reports.ref.tell({ type: signal.type, code: cause?.code });
          }
          return Behaviors.same;
        });
      }),
    );
    expect(await reports.next()).to.deep.equal({ type: 'ChildFailed', code: 'INVALID_REQUEST' });
  });
});
