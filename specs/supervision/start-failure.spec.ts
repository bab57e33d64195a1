import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { ChildStartError, MaxRestartIntensityError } from '../../runtime/errors.ts';
import type { ChildSpec, SupervisorFlags } from '../../supervision/child-spec.ts';
import { type SupervisorCommand, supervisor } from '../../supervision/supervisor.ts';
import { SupervisorClient } from '../../supervision/supervisor-client.ts';
import { type Probe, settle, spawnProbe, startTestSystem } from '../support/test-system.ts';
import {
  eventually,
  LifecycleRecorder,
  type ParentEvent,
  WorkerFailure,
  watchingParent,
} from './lifecycle-recorder.ts';

describe('supervisor start failures', () => {
  let system: ActorSystem;
  let rec: LifecycleRecorder;

  beforeEach(async () => {
    system = await startTestSystem();
    rec = new LifecycleRecorder();
  });

  afterEach(async () => {
    await system.stop();
  });

  function underWatchingParent(
    children: ChildSpec<unknown>[],
    flags?: SupervisorFlags,
  ): { events: Probe<ParentEvent>; client: SupervisorClient } {
    const events = spawnProbe<ParentEvent>(system, 'events');
    let ref: ActorRef<SupervisorCommand> | undefined;
    system.spawn(
      watchingParent(supervisor({ flags, children }), 'sup', events.ref, (spawned) => {
        ref = spawned;
      }),
      { name: 'parent' },
    );
    return { events, client: new SupervisorClient(ref as ActorRef<SupervisorCommand>) };
  }

  async function childFailed(events: Probe<ParentEvent>): Promise<Error> {
    const event = await events.next();
    if (event.type !== 'ChildFailed') expect.fail(`expected ChildFailed, got ${event.type}`);
    return event.error;
  }

  describe("during the supervisor's own start", () => {
    it('fails the supervisor with ChildStartError, which a watching parent sees as ChildFailed', async () => {
      const { events } = underWatchingParent([
        { id: 'a', start: () => rec.worker('a') },
        { id: 'bad', start: () => rec.worker('bad', { failStart: true }) },
      ]);
      const error = await childFailed(events);
      expect(error).to.be.instanceOf(ChildStartError);
      expect((error as ChildStartError).code).to.equal('CHILD_START_FAILED');
      expect(error.cause).to.be.instanceOf(WorkerFailure);
      expect((error.cause as WorkerFailure).id).to.equal('bad');
    });

    it('stops the children started before the failing one in reverse order and never starts the rest', async () => {
      const { events } = underWatchingParent([
        { id: 'a', start: () => rec.worker('a') },
        { id: 'b', start: () => rec.worker('b') },
        { id: 'bad', start: () => rec.worker('bad', { failStart: true }) },
        { id: 'd', start: () => rec.worker('d') },
      ]);
      await childFailed(events);
      expect(rec.events).to.deep.equal(['start:a', 'start:b', 'start:bad', 'stop:b', 'stop:a']);
      expect(rec.starts('d')).to.equal(0);
      expect(rec.starts('bad')).to.equal(1);
    });

    it('fails the same way when a start function throws instead of returning a behavior', async () => {
      const { events } = underWatchingParent([
        { id: 'a', start: () => rec.worker('a') },
        {
          id: 'bad',
          start: () => {
            throw new WorkerFailure('bad', 'setup');
          },
        },
      ]);
      const error = await childFailed(events);
      expect((error as ChildStartError).code).to.equal('CHILD_START_FAILED');
      expect(error.cause).to.be.instanceOf(WorkerFailure);
      expect(rec.events).to.deep.equal(['start:a', 'stop:a']);
    });

    it('makes a parent supervisor fail its own start when a child supervisor fails to start', async () => {
      const { events } = underWatchingParent([
        { id: 'w', start: () => rec.worker('w') },
        {
          id: 'inner',
          type: 'supervisor',
          start: () =>
            supervisor({
              children: [
                { id: 'x', start: () => rec.worker('x') },
                { id: 'bad', start: () => rec.worker('bad', { failStart: true }) },
              ],
            }),
        },
      ]);
      const error = await childFailed(events);
      expect(error).to.be.instanceOf(ChildStartError);
      expect(error.cause).to.be.instanceOf(ChildStartError);
      expect(rec.events).to.deep.equal(['start:w', 'start:x', 'start:bad', 'stop:x', 'stop:w']);
    });
  });

  describe('during a restart', () => {
    it('restarts again a child that failed to start, counting each attempt, so one that always fails escalates', async () => {
      const { events } = underWatchingParent(
        [
          { id: 'a', start: () => rec.worker('a') },
          { id: 'b', start: () => rec.worker('b', { failStart: rec.starts('b') >= 1 }) },
        ],
        { intensity: 3, period: 5 },
      );
      rec.ref('b').tell('fail');
      const error = await childFailed(events);
      expect(error).to.be.instanceOf(MaxRestartIntensityError);
      // The last reason is the failed start, not the original failure.
      expect((error.cause as WorkerFailure).during).to.equal('setup');
      // The first start, then one attempt per allowed restart; the fourth restart escalates.
      expect(rec.starts('b')).to.equal(4);
      expect(rec.only('stop')).to.deep.equal(['b', 'a']);
    });

    it('brings back a child that fails to start once when it is restarted, within intensity', async () => {
      const { events, client } = underWatchingParent(
        [
          { id: 'a', start: () => rec.worker('a') },
          { id: 'b', start: () => rec.worker('b', { failStart: [2] }) },
        ],
        { intensity: 3, period: 5 },
      );
      rec.ref('b').tell('fail');
      await eventually(() => rec.starts('b') === 3, 'b to be tried again');
      await settle(20);
      expect(events.received).to.deep.equal([]);
      expect((await client.whichChildren()).map((c) => [c.id, c.status])).to.deep.equal([
        ['a', 'running'],
        ['b', 'running'],
      ]);
      expect(rec.starts('a')).to.equal(1);
    });

    it('tries a child supervisor again only once its failed incarnation has stopped the children it started', async () => {
      system.spawn(
        supervisor({
          flags: { intensity: 3, period: 5 },
          children: [
            {
              id: 'inner',
              type: 'supervisor',
              start: () =>
                supervisor({
                  flags: { intensity: 0 },
                  children: [
                    { id: 'x', start: () => rec.worker('x') },
                    { id: 'y', start: () => rec.worker('y', { failStart: [2] }) },
                  ],
                }),
            },
          ],
        }),
        { name: 'outer' },
      );
      rec.clear();
      rec.ref('x').tell('fail');
      await eventually(() => rec.starts('y') === 3, 'inner to be tried again');
      await settle(20);
      expect(rec.events).to.deep.equal([
        'stop:x', // x fails; inner (intensity 0) escalates
        'stop:y',
        'start:x', // outer restarts inner; y fails to start, so inner fails to start
        'start:y',
        'stop:x',
        'start:x', // outer tries again
        'start:y',
      ]);
    });

    it('one_for_all: restarts the whole group again when a child fails to start during its restart', async () => {
      const { events, client } = underWatchingParent(
        [
          { id: 'a', start: () => rec.worker('a') },
          { id: 'b', start: () => rec.worker('b', { failStart: [2] }) },
          { id: 'c', start: () => rec.worker('c') },
        ],
        { strategy: 'one_for_all', intensity: 3, period: 5 },
      );
      rec.clear();
      rec.ref('a').tell('fail');
      await eventually(() => rec.starts('c') === 2, 'the group to be up again');
      await settle(20);
      expect(rec.events).to.deep.equal([
        'stop:a',
        'stop:c',
        'stop:b',
        'start:a',
        'start:b', // fails in its setup
        'stop:a',
        'start:a',
        'start:b',
        'start:c',
      ]);
      expect(events.received).to.deep.equal([]);
      expect((await client.countChildren()).active).to.equal(3);
    });

    it('rest_for_one: tries again from the child that failed to start', async () => {
      const { events, client } = underWatchingParent(
        [
          { id: 'a', start: () => rec.worker('a') },
          { id: 'b', start: () => rec.worker('b') },
          { id: 'c', start: () => rec.worker('c', { failStart: [2] }) },
        ],
        { strategy: 'rest_for_one', intensity: 3, period: 5 },
      );
      rec.clear();
      rec.ref('b').tell('fail');
      await eventually(() => rec.starts('c') === 3, 'c to be tried again');
      await settle(20);
      expect(rec.events).to.deep.equal(['stop:b', 'stop:c', 'start:b', 'start:c', 'start:c']);
      expect(events.received).to.deep.equal([]);
      expect((await client.countChildren()).active).to.equal(3);
    });
  });
});
