import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { SimulatedClock } from '../../runtime/clock.ts';
import { MaxRestartIntensityError } from '../../runtime/errors.ts';
import type { ChildSpec, RestartStrategyName, SupervisorFlags } from '../../supervision/child-spec.ts';
import { type SupervisorCommand, supervisor } from '../../supervision/supervisor.ts';
import { SupervisorClient } from '../../supervision/supervisor-client.ts';
import { type Probe, settle, spawnProbe, startTestSystem } from '../support/test-system.ts';
import {
  eventually,
  LifecycleRecorder,
  type ParentEvent,
  WorkerFailure,
  watchingParent,
  withDeadline,
} from './lifecycle-recorder.ts';

describe('supervisor restart intensity', () => {
  let clock: SimulatedClock;
  let system: ActorSystem;
  let rec: LifecycleRecorder;

  beforeEach(async () => {
    clock = new SimulatedClock({ startMs: 1_000_000 });
    system = await startTestSystem({ clock });
    rec = new LifecycleRecorder();
  });

  afterEach(async () => {
    await system.stop();
  });

  /** Spawns `sup` under a plain parent that watches it; returns the parent's event probe and a client. */
  function underWatchingParent(sup: ReturnType<typeof supervisor>): {
    events: Probe<ParentEvent>;
    client: SupervisorClient;
  } {
    const events = spawnProbe<ParentEvent>(system, 'events');
    let ref: ActorRef<SupervisorCommand> | undefined;
    system.spawn(
      watchingParent(sup, 'sup', events.ref, (spawned) => {
        ref = spawned;
      }),
      { name: 'parent' },
    );
    return { events, client: new SupervisorClient(ref as ActorRef<SupervisorCommand>) };
  }

  function workers(...ids: string[]): ChildSpec<unknown>[] {
    return ids.map((id) => ({ id, start: () => rec.worker(id) }));
  }

  async function failAndAwaitRestart(id: string): Promise<void> {
    const before = rec.starts(id);
    rec.ref(id).tell('fail');
    await eventually(() => rec.starts(id) === before + 1, `${id} to restart`);
  }

  it('stops the supervisor once restarts exceed intensity within period, stopping the children in reverse order', async () => {
    const flags: SupervisorFlags = { strategy: 'one_for_one', intensity: 2, period: 5 };
    const { events } = underWatchingParent(supervisor({ flags, children: workers('a', 'b', 'c', 'd') }));
    await failAndAwaitRestart('b');
    clock.advance(1000);
    await failAndAwaitRestart('b');
    clock.advance(1000);
    rec.clear();
    rec.ref('a').tell('fail');

    const event = await events.next();
    expect(event.type).to.equal('ChildFailed');
    expect(event.path).to.equal('/user/parent/sup');
    // a stops itself by failing; the supervisor then stops the rest in reverse spec order.
    expect(rec.events).to.deep.equal(['stop:a', 'stop:d', 'stop:c', 'stop:b']);
    expect(rec.starts('a')).to.equal(1);
  });

  it('escalates to a plain watching parent as ChildFailed with MaxRestartIntensityError caused by the last failure', async () => {
    const { events } = underWatchingParent(
      supervisor({ flags: { intensity: 1, period: 5 }, children: workers('a') }),
    );
    await failAndAwaitRestart('a');
    rec.ref('a').tell('fail');
    const event = await events.next();
    if (event.type !== 'ChildFailed') expect.fail(`expected ChildFailed, got ${event.type}`);
    expect(event.error).to.be.instanceOf(MaxRestartIntensityError);
    expect((event.error as MaxRestartIntensityError).code).to.equal('MAX_RESTART_INTENSITY');
    expect(event.error.cause).to.be.instanceOf(WorkerFailure);
    expect((event.error.cause as WorkerFailure).id).to.equal('a');
    expect(rec.starts('a')).to.equal(2);
  });

  it('escalates on the first restart when intensity is 0', async () => {
    const { events } = underWatchingParent(
      supervisor({ flags: { intensity: 0, period: 5 }, children: workers('a', 'b') }),
    );
    rec.ref('b').tell('fail');
    const event = await events.next();
    expect(event.type === 'ChildFailed' && event.error.constructor).to.equal(MaxRestartIntensityError);
    expect(rec.starts('b')).to.equal(1);
    expect(rec.only('stop')).to.deep.equal(['b', 'a']);
  });

  it('does not escalate restarts spread wider than period', async () => {
    const { events, client } = underWatchingParent(
      supervisor({ flags: { intensity: 1, period: 5 }, children: workers('a', 'b') }),
    );
    for (let i = 0; i < 6; i++) {
      await failAndAwaitRestart(i % 2 === 0 ? 'a' : 'b');
      clock.advance(5_001);
    }
    await settle(20);
    expect(events.received).to.deep.equal([]);
    expect(rec.starts('a') + rec.starts('b')).to.equal(8);
    expect((await withDeadline(client.countChildren())).active).to.equal(2);
  });

  it('escalates restarts that fall within period even when each failure is seconds apart', async () => {
    const { events } = underWatchingParent(
      supervisor({ flags: { intensity: 1, period: 5 }, children: workers('a', 'b') }),
    );
    await failAndAwaitRestart('a');
    clock.advance(4_000);
    rec.ref('b').tell('fail');
    const event = await events.next();
    expect(event.type).to.equal('ChildFailed');
    expect(rec.starts('b')).to.equal(1);
  });

  it('forgets restarts older than period: the window slides', async () => {
    const { events, client } = underWatchingParent(
      supervisor({ flags: { intensity: 2, period: 5 }, children: workers('a') }),
    );
    await failAndAwaitRestart('a'); // t = 0
    clock.advance(3_000);
    await failAndAwaitRestart('a'); // t = 3 s: two restarts in the window
    clock.advance(3_000);
    await failAndAwaitRestart('a'); // t = 6 s: the first one has left the window
    await settle(20);
    expect(events.received).to.deep.equal([]);
    expect((await withDeadline(client.whichChildren()))[0]?.status).to.equal('running');
    clock.advance(1_000);
    rec.ref('a').tell('fail'); // t = 7 s: restarts at 3, 6 and 7 s exceed 2 within 5 s
    expect((await events.next()).type).to.equal('ChildFailed');
  });

  it('counts a one_for_all restart of every child as one restart', async () => {
    const { events } = underWatchingParent(
      supervisor({
        flags: { strategy: 'one_for_all', intensity: 1, period: 5 },
        children: workers('a', 'b', 'c'),
      }),
    );
    await failAndAwaitRestart('b');
    await eventually(() => rec.starts('c') === 2, 'c to restart');
    await settle(20);
    expect(events.received).to.deep.equal([]);
    expect([rec.starts('a'), rec.starts('b'), rec.starts('c')]).to.deep.equal([2, 2, 2]);
  });

  describe('escalation to a parent supervisor', () => {
    function nested(outerStrategy: RestartStrategyName, outerIntensity: number) {
      return supervisor({
        flags: { strategy: outerStrategy, intensity: outerIntensity, period: 5 },
        children: [
          { id: 'w', start: () => rec.worker('w') },
          {
            id: 'inner',
            type: 'supervisor',
            start: () =>
              supervisor({
                flags: { strategy: 'one_for_one', intensity: 0, period: 5 },
                children: workers('x', 'y'),
              }),
          },
        ],
      });
    }

    it('is restarted by a one_for_one parent supervisor, which leaves its other children running', async () => {
      const outer = system.spawn(nested('one_for_one', 3), { name: 'outer' });
      rec.clear();
      rec.ref('x').tell('fail');
      await eventually(() => rec.starts('y') === 2, 'inner to be restarted');
      await settle();
      expect(rec.events).to.deep.equal(['stop:x', 'stop:y', 'start:x', 'start:y']);
      expect(rec.starts('w')).to.equal(1);
      const children = await withDeadline(new SupervisorClient(outer).whichChildren());
      expect(children.map((c) => [c.id, c.status, c.type])).to.deep.equal([
        ['w', 'running', 'worker'],
        ['inner', 'running', 'supervisor'],
      ]);
    });

    it('is restarted by a one_for_all parent supervisor together with its siblings', async () => {
      system.spawn(nested('one_for_all', 3), { name: 'outer' });
      rec.clear();
      rec.ref('x').tell('fail');
      await eventually(() => rec.starts('y') === 2, 'inner to be restarted');
      await settle();
      expect(rec.events).to.deep.equal(['stop:x', 'stop:y', 'stop:w', 'start:w', 'start:x', 'start:y']);
    });

    it('escalates further when the parent supervisor exceeds its own intensity', async () => {
      const { events } = underWatchingParent(nested('one_for_one', 0));
      rec.ref('x').tell('fail');
      const event = await events.next();
      if (event.type !== 'ChildFailed') expect.fail(`expected ChildFailed, got ${event.type}`);
      expect(event.path).to.equal('/user/parent/sup');
      expect(event.error).to.be.instanceOf(MaxRestartIntensityError);
      // The outer supervisor's reason is the inner supervisor's failure.
      expect(event.error.cause).to.be.instanceOf(MaxRestartIntensityError);
      expect(rec.only('stop')).to.deep.equal(['x', 'y', 'w']);
      expect([rec.starts('w'), rec.starts('x'), rec.starts('y')]).to.deep.equal([1, 1, 1]);
    });
  });
});
