import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import type { RestartType } from '../../supervision/child-spec.ts';
import { type SupervisorCommand, supervisor } from '../../supervision/supervisor.ts';
import { SupervisorClient } from '../../supervision/supervisor-client.ts';
import { type Probe, settle, spawnProbe, startTestSystem } from '../support/test-system.ts';
import { eventually, LifecycleRecorder, type ParentEvent, watchingParent } from './lifecycle-recorder.ts';

describe('supervisor restart types', () => {
  let system: ActorSystem;
  let rec: LifecycleRecorder;

  beforeEach(async () => {
    system = await startTestSystem();
    rec = new LifecycleRecorder();
  });

  afterEach(async () => {
    await system.stop();
  });

  /** A one_for_one supervisor with intensity 0 under a watching parent: any restart escalates. */
  function strictSupervisor(restart: RestartType): { client: SupervisorClient; events: Probe<ParentEvent> } {
    const events = spawnProbe<ParentEvent>(system, 'events');
    let ref: ActorRef<SupervisorCommand> | undefined;
    system.spawn(
      watchingParent(
        supervisor({
          flags: { strategy: 'one_for_one', intensity: 0, period: 5 },
          children: [
            { id: 'a', start: () => rec.worker('a') },
            { id: 'b', start: () => rec.worker('b'), restart },
          ],
        }),
        'sup',
        events.ref,
        (spawned) => {
          ref = spawned;
        },
      ),
      { name: 'parent' },
    );
    return { client: new SupervisorClient(ref as ActorRef<SupervisorCommand>), events };
  }

  it('restarts a permanent child after a normal exit, and that restart counts toward intensity', async () => {
    const { events } = strictSupervisor('permanent');
    rec.ref('b').tell('exit');
    const event = await events.next();
    expect(event.type).to.equal('ChildFailed');
    expect(event.type === 'ChildFailed' && (event.error as { code?: string }).code).to.equal(
      'MAX_RESTART_INTENSITY',
    );
    expect(rec.starts('b')).to.equal(1);
  });

  it('does not restart a transient child after a normal exit, so no restart is counted', async () => {
    const { client, events } = strictSupervisor('transient');
    rec.ref('b').tell('exit');
    await eventually(() => rec.events.includes('stop:b'), 'b to stop');
    await settle(20);
    expect(events.received).to.deep.equal([]);
    expect(rec.starts('b')).to.equal(1);
    const b = (await client.whichChildren()).find((c) => c.id === 'b');
    expect(b).to.deep.include({ status: 'undefined', ref: undefined });
  });

  it('restarts a transient child after a failure', async () => {
    const sup = system.spawn(
      supervisor({ children: [{ id: 'b', start: () => rec.worker('b'), restart: 'transient' }] }),
      { name: 'sup' },
    );
    rec.ref('b').tell('fail');
    await eventually(() => rec.starts('b') === 2, 'b to restart');
    expect((await new SupervisorClient(sup).whichChildren())[0]?.status).to.equal('running');
  });

  it('keeps the spec of a transient child that exited normally, so restartChild brings it back', async () => {
    const sup = system.spawn(
      supervisor({ children: [{ id: 'b', start: () => rec.worker('b'), restart: 'transient' }] }),
      { name: 'sup' },
    );
    const client = new SupervisorClient(sup);
    rec.ref('b').tell('exit');
    await eventually(() => rec.events.includes('stop:b'), 'b to stop');
    await settle();
    expect(await client.countChildren()).to.deep.include({ specs: 1, active: 0 });
    await client.restartChild('b');
    expect(rec.starts('b')).to.equal(2);
    expect(await client.countChildren()).to.deep.include({ specs: 1, active: 1 });
  });

  for (const exit of ['fail', 'exit'] as const) {
    it(`never restarts a temporary child (${exit === 'fail' ? 'after a failure' : 'after a normal exit'}) and removes its spec`, async () => {
      const { client, events } = strictSupervisor('temporary');
      expect(await client.countChildren()).to.deep.equal({ specs: 2, active: 2, supervisors: 0, workers: 2 });
      rec.ref('b').tell(exit);
      await eventually(() => rec.events.includes('stop:b'), 'b to stop');
      await settle(20);
      expect(events.received).to.deep.equal([]);
      expect(rec.starts('b')).to.equal(1);
      expect((await client.whichChildren()).map((c) => c.id)).to.deep.equal(['a']);
      expect(await client.countChildren()).to.deep.equal({ specs: 1, active: 1, supervisors: 0, workers: 1 });
    });
  }

  it('removes a temporary child added with startChild once it exits', async () => {
    const sup = system.spawn(supervisor({ children: [{ id: 'a', start: () => rec.worker('a') }] }), {
      name: 'sup',
    });
    const client = new SupervisorClient(sup);
    await client.startChild({ id: 't', start: () => rec.worker('t'), restart: 'temporary' });
    expect((await client.whichChildren()).map((c) => c.id)).to.deep.equal(['a', 't']);
    rec.ref('t').tell('fail');
    await eventually(() => rec.events.includes('stop:t'), 't to stop');
    await settle();
    expect((await client.whichChildren()).map((c) => c.id)).to.deep.equal(['a']);
    expect(rec.starts('t')).to.equal(1);
  });
});
