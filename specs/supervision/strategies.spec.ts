import { expect } from 'chai';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import type { RestartStrategyName, RestartType } from '../../supervision/child-spec.ts';
import { supervisor } from '../../supervision/supervisor.ts';
import { SupervisorClient } from '../../supervision/supervisor-client.ts';
import { settle, startTestSystem } from '../support/test-system.ts';
import { eventually, LifecycleRecorder, type WorkerMessage } from './lifecycle-recorder.ts';

const strategies: readonly RestartStrategyName[] = ['one_for_one', 'one_for_all', 'rest_for_one'];
const restartTypes: readonly RestartType[] = ['permanent', 'transient', 'temporary'];
const exits: readonly { message: WorkerMessage; label: string; abnormal: boolean }[] = [
  { message: 'fail', label: 'fails', abnormal: true },
  { message: 'exit', label: 'exits normally', abnormal: false },
];

/** Which of a, b, c a restart of b affects, and the lifecycle events it causes after b's own stop. */
const restartOfB: Record<RestartStrategyName, { affected: string[]; events: string[] }> = {
  one_for_one: { affected: ['b'], events: ['stop:b', 'start:b'] },
  one_for_all: {
    affected: ['a', 'b', 'c'],
    events: ['stop:b', 'stop:c', 'stop:a', 'start:a', 'start:b', 'start:c'],
  },
  rest_for_one: { affected: ['b', 'c'], events: ['stop:b', 'stop:c', 'start:b', 'start:c'] },
};

function restarted(restart: RestartType, abnormal: boolean): boolean {
  return restart === 'permanent' || (restart === 'transient' && abnormal);
}

describe('supervisor strategies', () => {
  let system: ActorSystem;
  let rec: LifecycleRecorder;

  beforeEach(async () => {
    system = await startTestSystem();
    rec = new LifecycleRecorder();
  });

  afterEach(async () => {
    await system.stop();
  });

  function startSupervisor(strategy: RestartStrategyName, restartOfMiddle: RestartType): SupervisorClient {
    const sup = system.spawn(
      supervisor({
        flags: { strategy, intensity: 3, period: 5 },
        children: [
          { id: 'a', start: () => rec.worker('a') },
          { id: 'b', start: () => rec.worker('b'), restart: restartOfMiddle },
          { id: 'c', start: () => rec.worker('c') },
        ],
      }),
      { name: 'sup' },
    );
    return new SupervisorClient(sup);
  }

  for (const strategy of strategies) {
    describe(strategy, () => {
      for (const restart of restartTypes) {
        for (const exit of exits) {
          const again = restarted(restart, exit.abnormal);
          const expected = restartOfB[strategy];
          const others = ['a', 'c'].filter((id) => !expected.affected.includes(id));
          const title = again
            ? `restarts ${expected.affected.join(', ')} when the ${restart} child b ${exit.label}` +
              (expected.affected.length > 1
                ? ' (siblings stopped in reverse order, all started in order)'
                : '') +
              (others.length > 0 ? `, leaving ${others.join(' and ')} running` : '')
            : `does not restart the ${restart} child b when it ${exit.label}` +
              (restart === 'temporary' ? ', removes its spec' : ', keeps its spec') +
              ' and leaves its siblings running';
          it(title, async () => {
            const client = startSupervisor(strategy, restart);
            const siblingsBefore = { a: rec.ref('a'), c: rec.ref('c') };
            expect(rec.events).to.deep.equal(['start:a', 'start:b', 'start:c']);
            rec.clear();

            rec.ref('b').tell(exit.message);

            if (again) {
              await eventually(() => rec.events.length >= expected.events.length, 'the restart to finish');
              await settle();
              expect(rec.events).to.deep.equal(expected.events);
              for (const id of ['a', 'b', 'c']) {
                expect(rec.starts(id), `starts of ${id}`).to.equal(expected.affected.includes(id) ? 2 : 1);
              }
              if (!expected.affected.includes('a')) expect(rec.ref('a')).to.equal(siblingsBefore.a);
              if (!expected.affected.includes('c')) expect(rec.ref('c')).to.equal(siblingsBefore.c);
            } else {
              await eventually(() => rec.events.length >= 1, 'b to stop');
              await settle(20);
              expect(rec.events).to.deep.equal(['stop:b']);
              expect([rec.starts('a'), rec.starts('b'), rec.starts('c')]).to.deep.equal([1, 1, 1]);
            }

            const children = await client.whichChildren();
            const status = Object.fromEntries(children.map((c) => [c.id, c.status]));
            if (again) {
              expect(status).to.deep.equal({ a: 'running', b: 'running', c: 'running' });
            } else if (restart === 'temporary') {
              expect(status).to.deep.equal({ a: 'running', c: 'running' });
            } else {
              expect(status).to.deep.equal({ a: 'running', b: 'undefined', c: 'running' });
            }
          });
        }
      }
    });
  }

  it('one_for_all terminates a temporary sibling and does not start it again (its spec is removed)', async () => {
    const sup = system.spawn(
      supervisor({
        flags: { strategy: 'one_for_all', intensity: 3, period: 5 },
        children: [
          { id: 'a', start: () => rec.worker('a') },
          { id: 't', start: () => rec.worker('t'), restart: 'temporary' },
          { id: 'c', start: () => rec.worker('c') },
        ],
      }),
      { name: 'sup' },
    );
    const client = new SupervisorClient(sup);
    rec.clear();
    rec.ref('c').tell('fail');
    await eventually(() => rec.only('start').length >= 2, 'a and c to start again');
    await settle();
    expect(rec.events).to.deep.equal(['stop:c', 'stop:t', 'stop:a', 'start:a', 'start:c']);
    expect((await client.whichChildren()).map((c) => c.id)).to.deep.equal(['a', 'c']);
  });

  it('rest_for_one terminates a temporary child after the failed one and does not start it again', async () => {
    const sup = system.spawn(
      supervisor({
        flags: { strategy: 'rest_for_one', intensity: 3, period: 5 },
        children: [
          { id: 'a', start: () => rec.worker('a') },
          { id: 'b', start: () => rec.worker('b') },
          { id: 't', start: () => rec.worker('t'), restart: 'temporary' },
        ],
      }),
      { name: 'sup' },
    );
    const client = new SupervisorClient(sup);
    rec.clear();
    rec.ref('b').tell('fail');
    await eventually(() => rec.only('start').length >= 1, 'b to start again');
    await settle();
    expect(rec.events).to.deep.equal(['stop:b', 'stop:t', 'start:b']);
    expect((await client.whichChildren()).map((c) => c.id)).to.deep.equal(['a', 'b']);
  });

  it('rest_for_one restarts every child when the first one fails, and only the last when the last fails', async () => {
    const client = startSupervisor('rest_for_one', 'permanent');
    rec.clear();
    rec.ref('a').tell('fail');
    await eventually(() => rec.only('start').length >= 3, 'all three to start again');
    await settle();
    expect(rec.events).to.deep.equal(['stop:a', 'stop:c', 'stop:b', 'start:a', 'start:b', 'start:c']);

    rec.clear();
    rec.ref('c').tell('fail');
    await eventually(() => rec.only('start').length >= 1, 'c to start again');
    await settle();
    expect(rec.events).to.deep.equal(['stop:c', 'start:c']);
    expect([rec.starts('a'), rec.starts('b'), rec.starts('c')]).to.deep.equal([2, 2, 3]);
    expect((await client.countChildren()).active).to.equal(3);
  });

  it('gives the restarted child a fresh incarnation that handles messages', async () => {
    const client = startSupervisor('one_for_one', 'permanent');
    const first = rec.ref('b');
    first.tell('fail');
    await eventually(() => rec.starts('b') === 2, 'b to restart');
    const second = rec.ref('b');
    expect(second).to.not.equal(first);
    // The new incarnation is live: failing it restarts it once more.
    second.tell('fail');
    await eventually(() => rec.starts('b') === 3, 'b to restart again');
    const running = (await client.whichChildren()).find((c) => c.id === 'b');
    expect(running?.status).to.equal('running');
    expect(running?.ref?.path).to.equal('/user/sup/b');
  });
});
