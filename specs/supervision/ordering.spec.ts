import { expect } from 'chai';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import type { ChildSpec } from '../../supervision/child-spec.ts';
import { supervisor } from '../../supervision/supervisor.ts';
import { SupervisorClient } from '../../supervision/supervisor-client.ts';
import { settle, startTestSystem } from '../support/test-system.ts';
import { eventually, LifecycleRecorder } from './lifecycle-recorder.ts';

describe('supervisor start and stop order', () => {
  let system: ActorSystem;
  let rec: LifecycleRecorder;

  beforeEach(async () => {
    system = await startTestSystem();
    rec = new LifecycleRecorder();
  });

  afterEach(async () => {
    await system.stop();
  });

  function workers(...ids: string[]): ChildSpec<unknown>[] {
    return ids.map((id) => ({ id, start: () => rec.worker(id) }));
  }

  it('starts the children in spec order', () => {
    system.spawn(supervisor({ children: workers('d', 'a', 'c', 'b') }), { name: 'sup' });
    expect(rec.only('start')).to.deep.equal(['d', 'a', 'c', 'b']);
  });

  it('stops the children in reverse spec order when the supervisor stops', async () => {
    system.spawn(supervisor({ children: workers('d', 'a', 'c', 'b') }), { name: 'sup' });
    await system.stop();
    expect(rec.only('stop')).to.deep.equal(['b', 'c', 'a', 'd']);
  });

  it('stops a restarted child in its spec position, not in the order children were last spawned', async () => {
    system.spawn(supervisor({ flags: { intensity: 5 }, children: workers('a', 'b', 'c') }), { name: 'sup' });
    rec.ref('a').tell('fail');
    await eventually(() => rec.starts('a') === 2, 'a to restart');
    rec.ref('b').tell('exit');
    await eventually(() => rec.starts('b') === 2, 'b to restart');
    rec.clear();
    await system.stop();
    expect(rec.only('stop')).to.deep.equal(['c', 'b', 'a']);
  });

  it('stops a child brought back with restartChild in its spec position', async () => {
    const client = new SupervisorClient(
      system.spawn(supervisor({ children: workers('a', 'b', 'c') }), { name: 'sup' }),
    );
    await client.terminateChild('a');
    await client.restartChild('a');
    rec.clear();
    await system.stop();
    expect(rec.only('stop')).to.deep.equal(['c', 'b', 'a']);
  });

  it('stops children added with startChild before the ones it started with, latest first', async () => {
    const client = new SupervisorClient(
      system.spawn(supervisor({ children: workers('a', 'b') }), { name: 'sup' }),
    );
    await client.startChild({ id: 'c', start: () => rec.worker('c') });
    await client.startChild({ id: 'd', start: () => rec.worker('d') });
    expect((await client.whichChildren()).map((c) => c.id)).to.deep.equal(['a', 'b', 'c', 'd']);
    rec.clear();
    await system.stop();
    expect(rec.only('stop')).to.deep.equal(['d', 'c', 'b', 'a']);
  });

  it("stops a nested supervisor's children (in their reverse order) before the nested supervisor's earlier siblings", async () => {
    system.spawn(
      supervisor({
        children: [
          { id: 'a', start: () => rec.worker('a') },
          {
            id: 'inner',
            type: 'supervisor',
            start: () => supervisor({ children: workers('x', 'y') }),
          },
          { id: 'c', start: () => rec.worker('c') },
        ],
      }),
      { name: 'sup' },
    );
    expect(rec.only('start')).to.deep.equal(['a', 'x', 'y', 'c']);
    await system.stop();
    expect(rec.only('stop')).to.deep.equal(['c', 'y', 'x', 'a']);
  });

  it('finishes stopping one child before it asks the next to stop', async () => {
    let finishB: (() => void) | undefined;
    system.spawn(
      supervisor({
        children: [
          { id: 'a', start: () => rec.worker('a') },
          {
            id: 'b',
            start: () =>
              rec.worker('b', {
                postStop: () =>
                  new Promise<void>((resolve) => {
                    finishB = resolve;
                  }),
              }),
          },
        ],
      }),
      { name: 'sup' },
    );
    rec.clear();
    const stopping = system.stop();
    await eventually(() => finishB !== undefined, 'PostStop of b to run');
    await settle(20);
    expect(rec.events).to.deep.equal(['stop:b']);
    finishB?.();
    await stopping;
    expect(rec.events).to.deep.equal(['stop:b', 'stop:a']);
  });
});
