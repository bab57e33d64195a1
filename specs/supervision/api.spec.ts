import { expect } from 'chai';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import {
  ChildStartError,
  type ErrorCode,
  InvalidRequestError,
  NotFoundError,
  UnavailableError,
} from '../../runtime/errors.ts';
import type { ChildSpec, SupervisorFlags } from '../../supervision/child-spec.ts';
import { supervisor } from '../../supervision/supervisor.ts';
import { SupervisorClient } from '../../supervision/supervisor-client.ts';
import { settle, startTestSystem } from '../support/test-system.ts';
import { eventually, LifecycleRecorder, track, type WorkerMessage } from './lifecycle-recorder.ts';

type ErrorClass = abstract new (...args: never[]) => Error;

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  expect.fail('expected the request to be rejected');
}

async function expectRejected(
  promise: Promise<unknown>,
  errorClass: ErrorClass,
  code: ErrorCode,
): Promise<void> {
  const error = await rejection(promise);
  expect(error).to.be.instanceOf(errorClass);
  expect((error as { code?: unknown }).code).to.equal(code);
}

describe('supervisor API', () => {
  let system: ActorSystem;
  let rec: LifecycleRecorder;

  beforeEach(async () => {
    system = await startTestSystem();
    rec = new LifecycleRecorder();
  });

  afterEach(async () => {
    await system.stop();
  });

  function start(children: ChildSpec<unknown>[], flags?: SupervisorFlags): SupervisorClient {
    return new SupervisorClient(system.spawn(supervisor({ flags, children }), { name: 'sup' }));
  }

  function workers(...ids: string[]): ChildSpec<unknown>[] {
    return ids.map((id) => ({ id, start: () => rec.worker(id) }));
  }

  describe('startChild', () => {
    it('starts the child, returns its ref and adds it after the existing children', async () => {
      const client = start(workers('a'));
      const ref = await client.startChild<WorkerMessage>({ id: 'n', start: () => rec.worker('n') });
      expect(ref.path).to.equal('/user/sup/n');
      expect(ref).to.equal(rec.ref('n'));
      expect((await client.whichChildren()).map((c) => [c.id, c.status])).to.deep.equal([
        ['a', 'running'],
        ['n', 'running'],
      ]);
      expect(await client.countChildren()).to.deep.equal({ specs: 2, active: 2, supervisors: 0, workers: 2 });
    });

    it('supervises a child it started: a failed permanent child is restarted', async () => {
      const client = start([]);
      await client.startChild({ id: 'n', start: () => rec.worker('n') });
      rec.ref('n').tell('fail');
      await eventually(() => rec.starts('n') === 2, 'n to restart');
      expect((await client.whichChildren())[0]?.status).to.equal('running');
    });

    it('rejects an id that is already running with InvalidRequestError and leaves that child alone', async () => {
      const client = start(workers('a'));
      await expectRejected(
        client.startChild({ id: 'a', start: () => rec.worker('a') }),
        InvalidRequestError,
        'INVALID_REQUEST',
      );
      expect(rec.starts('a')).to.equal(1);
      expect(await client.countChildren()).to.deep.include({ specs: 1, active: 1 });
    });

    it('rejects the id of a terminated child that is still present with InvalidRequestError', async () => {
      const client = start(workers('a'));
      await client.terminateChild('a');
      await expectRejected(
        client.startChild({ id: 'a', start: () => rec.worker('a') }),
        InvalidRequestError,
        'INVALID_REQUEST',
      );
      expect(rec.starts('a')).to.equal(1);
    });

    const invalid: [string, Record<string, unknown>][] = [
      ['an id that is not a valid actor name', { id: 'a/b' }],
      ['an empty id', { id: '' }],
      ['an unknown restart type', { id: 'x', restart: 'sometimes' }],
      ['a negative shutdown', { id: 'x', shutdown: -1 }],
      ['a shutdown that is not a number or an OTP word', { id: 'x', shutdown: 'later' }],
      ['an unknown child type', { id: 'x', type: 'manager' }],
      ['a start that is neither a behavior nor a function', { id: 'x', start: 42 }],
      ['a mailbox capacity of 0', { id: 'x', mailbox: { capacity: 0 } }],
    ];
    for (const [what, fields] of invalid) {
      it(`rejects a spec with ${what} with InvalidRequestError and starts nothing`, async () => {
        const client = start(workers('a'));
        const spec = { start: () => rec.worker('x'), ...fields } as unknown as ChildSpec<unknown>;
        await expectRejected(client.startChild(spec), InvalidRequestError, 'INVALID_REQUEST');
        expect(rec.starts('x')).to.equal(0);
        expect(await client.countChildren()).to.deep.include({ specs: 1, active: 1 });
      });
    }

    it('rejects a child whose setup throws with CHILD_START_FAILED and does not add it', async () => {
      const client = start(workers('a'));
      await expectRejected(
        client.startChild({ id: 'bad', start: () => rec.worker('bad', { failStart: true }) }),
        Error,
        'CHILD_START_FAILED',
      );
      expect(rec.starts('bad')).to.equal(1);
      expect((await client.whichChildren()).map((c) => c.id)).to.deep.equal(['a']);
      expect(rec.starts('a')).to.equal(1);
    });

    it('rejects a child whose setup throws with a ChildStartError', async () => {
      const client = start([]);
      const error = await rejection(
        client.startChild({ id: 'bad', start: () => rec.worker('bad', { failStart: true }) }),
      );
      expect(error).to.be.instanceOf(ChildStartError);
    });

    it('rejects a child whose start function throws with CHILD_START_FAILED', async () => {
      const client = start([]);
      await expectRejected(
        client.startChild({
          id: 'bad',
          start: () => {
            throw new Error('no behavior today');
          },
        }),
        Error,
        'CHILD_START_FAILED',
      );
      expect(await client.countChildren()).to.deep.include({ specs: 0 });
    });

    it('starts the same id once a failed start is over', async () => {
      const client = start([]);
      await rejection(client.startChild({ id: 'n', start: () => rec.worker('n', { failStart: [1] }) }));
      await client.startChild({ id: 'n', start: () => rec.worker('n', { failStart: [1] }) });
      expect(rec.starts('n')).to.equal(2);
      expect((await client.whichChildren())[0]?.status).to.equal('running');
    });
  });

  describe('restartChild', () => {
    it('starts a terminated child again as a new incarnation', async () => {
      const client = start(workers('a', 'b'));
      const first = rec.ref('a');
      await client.terminateChild('a');
      const ref = await client.restartChild('a');
      expect(ref.path).to.equal('/user/sup/a');
      expect(rec.starts('a')).to.equal(2);
      expect(rec.ref('a')).to.not.equal(first);
      expect((await client.whichChildren()).map((c) => [c.id, c.status])).to.deep.equal([
        ['a', 'running'],
        ['b', 'running'],
      ]);
    });

    it('rejects a running child with InvalidRequestError and leaves it running', async () => {
      const client = start(workers('a'));
      await expectRejected(client.restartChild('a'), InvalidRequestError, 'INVALID_REQUEST');
      expect(rec.starts('a')).to.equal(1);
      expect(rec.only('stop')).to.deep.equal([]);
    });

    it('rejects an unknown id with NotFoundError', async () => {
      const client = start(workers('a'));
      await expectRejected(client.restartChild('zz'), NotFoundError, 'NOT_FOUND');
    });

    it('rejects with CHILD_START_FAILED when the child fails in its setup, and keeps it not running', async () => {
      const client = start([{ id: 'a', start: () => rec.worker('a', { failStart: [2] }) }]);
      await client.terminateChild('a');
      await expectRejected(client.restartChild('a'), Error, 'CHILD_START_FAILED');
      expect((await client.whichChildren()).map((c) => [c.id, c.status])).to.deep.equal([['a', 'undefined']]);
    });
  });

  describe('terminateChild', () => {
    it('stops the child (PostStop runs), keeps its spec with status undefined and does not restart it', async () => {
      const client = start(workers('a', 'b'));
      await client.terminateChild('a');
      expect(rec.only('stop')).to.deep.equal(['a']);
      await settle(20);
      expect(rec.starts('a')).to.equal(1);
      expect(await client.whichChildren()).to.deep.equal([
        { id: 'a', ref: undefined, status: 'undefined', type: 'worker' },
        { id: 'b', ref: { node: system.nodeId, path: '/user/sup/b' }, status: 'running', type: 'worker' },
      ]);
    });

    it('removes a temporary child', async () => {
      const client = start([
        { id: 'a', start: () => rec.worker('a') },
        { id: 't', start: () => rec.worker('t'), restart: 'temporary' },
      ]);
      await client.terminateChild('t');
      expect(rec.only('stop')).to.deep.equal(['t']);
      expect((await client.whichChildren()).map((c) => c.id)).to.deep.equal(['a']);
    });

    it('succeeds for a child that is not running and changes nothing', async () => {
      const client = start(workers('a'));
      await client.terminateChild('a');
      await client.terminateChild('a');
      expect(rec.only('stop')).to.deep.equal(['a']);
      expect(await client.countChildren()).to.deep.include({ specs: 1, active: 0 });
    });

    it('rejects an unknown id with NotFoundError', async () => {
      const client = start(workers('a'));
      await expectRejected(client.terminateChild('zz'), NotFoundError, 'NOT_FOUND');
      expect(rec.only('stop')).to.deep.equal([]);
    });
  });

  describe('deleteChild', () => {
    it('rejects a running child with InvalidRequestError and leaves it running', async () => {
      const client = start(workers('a'));
      await expectRejected(client.deleteChild('a'), InvalidRequestError, 'INVALID_REQUEST');
      expect(await client.countChildren()).to.deep.include({ specs: 1, active: 1 });
      expect(rec.only('stop')).to.deep.equal([]);
    });

    it('removes a terminated child, so its id can be started afresh', async () => {
      const client = start(workers('a', 'b'));
      await client.terminateChild('a');
      await client.deleteChild('a');
      expect((await client.whichChildren()).map((c) => c.id)).to.deep.equal(['b']);
      expect(await client.countChildren()).to.deep.equal({ specs: 1, active: 1, supervisors: 0, workers: 1 });
      await client.startChild({ id: 'a', start: () => rec.worker('a') });
      expect((await client.whichChildren()).map((c) => c.id)).to.deep.equal(['b', 'a']);
    });

    it('rejects an unknown id with NotFoundError', async () => {
      const client = start([]);
      await expectRejected(client.deleteChild('zz'), NotFoundError, 'NOT_FOUND');
    });
  });

  describe('whichChildren and countChildren', () => {
    function mixed(): SupervisorClient {
      return start([
        { id: 'a', start: () => rec.worker('a') },
        { id: 'inner', type: 'supervisor', start: () => supervisor({ children: workers('x') }) },
        { id: 'b', start: () => rec.worker('b') },
      ]);
    }

    it('lists id, ref, status and type of every child in spec order', async () => {
      const client = mixed();
      await client.terminateChild('a');
      const node = system.nodeId;
      expect(await client.whichChildren()).to.deep.equal([
        { id: 'a', ref: undefined, status: 'undefined', type: 'worker' },
        { id: 'inner', ref: { node, path: '/user/sup/inner' }, status: 'running', type: 'supervisor' },
        { id: 'b', ref: { node, path: '/user/sup/b' }, status: 'running', type: 'worker' },
      ]);
    });

    it('reports children waiting for a one_for_all restart as restarting until they run again', async () => {
      let finish: (() => void) | undefined;
      const client = start(
        [
          { id: 'a', start: () => rec.worker('a') },
          {
            id: 'slow',
            start: () =>
              rec.worker('slow', {
                postStop: () =>
                  finish === undefined
                    ? new Promise<void>((resolve) => {
                        finish = resolve;
                      })
                    : undefined,
              }),
            shutdown: 'infinity',
          },
          { id: 'c', start: () => rec.worker('c') },
        ],
        { strategy: 'one_for_all', intensity: 3 },
      );
      rec.ref('a').tell('fail');
      await eventually(() => finish !== undefined, 'the restart to reach slow');
      const statuses = async (): Promise<string[][]> =>
        (await client.whichChildren()).map((c) => [c.id, c.status]);
      expect(await statuses()).to.deep.equal([
        ['a', 'restarting'],
        ['slow', 'running'],
        ['c', 'restarting'],
      ]);
      finish?.();
      await eventually(() => rec.starts('c') === 2, 'the group to run again');
      expect(await statuses()).to.deep.equal([
        ['a', 'running'],
        ['slow', 'running'],
        ['c', 'running'],
      ]);
    });

    it('counts specs, running children, supervisors and workers', async () => {
      const client = mixed();
      expect(await client.countChildren()).to.deep.equal({ specs: 3, active: 3, supervisors: 1, workers: 2 });
      await client.terminateChild('b');
      expect(await client.countChildren()).to.deep.equal({ specs: 3, active: 2, supervisors: 1, workers: 2 });
      await client.terminateChild('inner');
      await client.deleteChild('inner');
      expect(await client.countChildren()).to.deep.equal({ specs: 2, active: 1, supervisors: 0, workers: 2 });
    });
  });

  describe('request queue', () => {
    it('holds requests while an operation is in progress and answers them in order once it is done', async () => {
      let finish: (() => void) | undefined;
      const client = start([
        {
          id: 'b',
          start: () =>
            rec.worker('b', {
              // Only the first incarnation is slow to stop.
              postStop: () =>
                finish === undefined
                  ? new Promise<void>((resolve) => {
                      finish = resolve;
                    })
                  : undefined,
            }),
          shutdown: 'infinity',
        },
      ]);
      rec.clear();
      const terminated = track(client.terminateChild('b'));
      const restarted = track(client.restartChild('b'));
      await eventually(() => finish !== undefined, 'PostStop of b to run');
      await settle(20);
      expect([terminated.done, restarted.done]).to.deep.equal([false, false]);
      expect(rec.events).to.deep.equal(['stop:b']);
      finish?.();
      await Promise.all([terminated.promise, restarted.promise]);
      expect(rec.events).to.deep.equal(['stop:b', 'start:b']);
    });

    it('refuses a request beyond maxPendingRequests with UnavailableError', async () => {
      let finish: (() => void) | undefined;
      const sup = system.spawn(
        supervisor({
          maxPendingRequests: 1,
          children: [
            {
              id: 'b',
              start: () =>
                rec.worker('b', {
                  // Only the first incarnation is slow to stop.
                  postStop: () =>
                    finish === undefined
                      ? new Promise<void>((resolve) => {
                          finish = resolve;
                        })
                      : undefined,
                }),
              shutdown: 'infinity',
            },
          ],
        }),
        { name: 'sup' },
      );
      const client = new SupervisorClient(sup);
      const terminated = client.terminateChild('b');
      await eventually(() => finish !== undefined, 'PostStop of b to run');
      const queued = client.restartChild('b');
      await expectRejected(
        client.startChild({ id: 'c', start: () => rec.worker('c') }),
        UnavailableError,
        'UNAVAILABLE',
      );
      finish?.();
      await terminated;
      await queued;
      expect(rec.starts('c')).to.equal(0);
    });
  });

  describe('supervisor()', () => {
    const badInits: [string, () => unknown][] = [
      ['duplicate child ids', () => supervisor({ children: [...workers('a'), ...workers('a')] })],
      ['an unknown strategy', () => supervisor({ flags: { strategy: 'one_for_some' as never } })],
      ['a negative intensity', () => supervisor({ flags: { intensity: -1 } })],
      ['a fractional intensity', () => supervisor({ flags: { intensity: 1.5 } })],
      ['a period of 0', () => supervisor({ flags: { period: 0 } })],
      [
        'an invalid child spec',
        () => supervisor({ children: [{ id: 'a', start: Behaviors.ignore(), restart: 'never' as never }] }),
      ],
    ];
    for (const [what, build] of badInits) {
      it(`throws InvalidRequestError for ${what}`, () => {
        expect(build).to.throw(InvalidRequestError);
      });
    }
  });
});
