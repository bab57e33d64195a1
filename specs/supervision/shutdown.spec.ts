import { expect } from 'chai';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { SimulatedClock } from '../../runtime/clock.ts';
import type { ChildSpec } from '../../supervision/child-spec.ts';
import { supervisor } from '../../supervision/supervisor.ts';
import { SupervisorClient } from '../../supervision/supervisor-client.ts';
import { settle, startTestSystem } from '../support/test-system.ts';
import { eventually, LifecycleRecorder, stopAdvancing, track, withDeadline } from './lifecycle-recorder.ts';

/** Long enough that no ask times out while a spec moves the simulated clock. */
const ask = { timeoutMs: 100_000_000 };
const never = (): Promise<never> => new Promise<never>(() => {});

describe('supervisor child shutdown', () => {
  let clock: SimulatedClock;
  let system: ActorSystem;
  let rec: LifecycleRecorder;

  beforeEach(async () => {
    clock = new SimulatedClock();
    system = await startTestSystem({ clock });
    rec = new LifecycleRecorder();
  });

  afterEach(async () => {
    await stopAdvancing(system, clock);
  });

  function start(children: ChildSpec<unknown>[]): SupervisorClient {
    return new SupervisorClient(system.spawn(supervisor({ children }), { name: 'sup' }), ask);
  }

  it('kills a child whose PostStop does not finish within shutdown 100 ms, then goes on with the next request', async () => {
    const client = start([
      { id: 'a', start: () => rec.worker('a') },
      { id: 'slow', start: () => rec.worker('slow', { postStop: never }), shutdown: 100 },
    ]);
    const terminated = track(client.terminateChild('slow'));
    const next = track(client.restartChild('slow'));
    await eventually(() => rec.events.includes('stop:slow'), 'PostStop of slow to run');
    clock.advance(99);
    await settle(20);
    expect(terminated.done).to.equal(false);
    expect(next.done).to.equal(false);
    clock.advance(1);
    await withDeadline(terminated.promise);
    await withDeadline(next.promise);
    expect(rec.starts('slow')).to.equal(2);
    expect(rec.starts('a')).to.equal(1);
  });

  it('stops a child as soon as its PostStop finishes within shutdown, without waiting for the deadline', async () => {
    const client = start([
      {
        id: 'b',
        start: () =>
          rec.worker('b', {
            postStop: () => new Promise<void>((resolve) => clock.setTimeout(() => resolve(), 30)),
          }),
        shutdown: 100,
      },
    ]);
    const terminated = track(client.terminateChild('b'));
    await eventually(() => rec.events.includes('stop:b'), 'PostStop of b to run');
    clock.advance(29);
    await settle(20);
    expect(terminated.done).to.equal(false);
    clock.advance(1);
    await withDeadline(terminated.promise);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('waits for each child in turn when the supervisor stops: a slow child holds back the earlier ones until it is killed', async () => {
    start([
      { id: 'a', start: () => rec.worker('a') },
      { id: 'slow', start: () => rec.worker('slow', { postStop: never }), shutdown: 100 },
      { id: 'c', start: () => rec.worker('c') },
    ]);
    rec.clear();
    const stopping = track(system.stop());
    await eventually(() => rec.events.includes('stop:slow'), 'PostStop of slow to run');
    clock.advance(99);
    await settle(20);
    expect(rec.events).to.deep.equal(['stop:c', 'stop:slow']);
    expect(stopping.done).to.equal(false);
    clock.advance(1);
    await withDeadline(stopping.promise);
    expect(rec.events).to.deep.equal(['stop:c', 'stop:slow', 'stop:a']);
  });

  it("stops a 'brutal_kill' child at once without running its PostStop", async () => {
    const client = start([
      { id: 'a', start: () => rec.worker('a') },
      { id: 'b', start: () => rec.worker('b', { postStop: never }), shutdown: 'brutal_kill' },
    ]);
    await withDeadline(client.terminateChild('b'));
    expect(rec.events).to.deep.equal(['start:a', 'start:b']);
    expect((await withDeadline(client.whichChildren())).map((c) => c.status)).to.deep.equal([
      'running',
      'undefined',
    ]);
  });

  it("skips the PostStop of a 'brutal_kill' child when the supervisor stops, and stops the others gracefully", async () => {
    start([
      { id: 'a', start: () => rec.worker('a') },
      { id: 'b', start: () => rec.worker('b'), shutdown: 'brutal_kill' },
      { id: 'c', start: () => rec.worker('c') },
    ]);
    rec.clear();
    await withDeadline(system.stop());
    expect(rec.events).to.deep.equal(['stop:c', 'stop:a']);
  });

  it("waits as long as it takes for an 'infinity' child's PostStop to settle", async () => {
    let finish: (() => void) | undefined;
    const client = start([
      {
        id: 'b',
        start: () =>
          rec.worker('b', {
            postStop: () =>
              new Promise<void>((resolve) => {
                finish = resolve;
              }),
          }),
        shutdown: 'infinity',
      },
    ]);
    const terminated = track(client.terminateChild('b'));
    await eventually(() => finish !== undefined, 'PostStop of b to run');
    clock.advance(24 * 3_600_000);
    await settle(20);
    expect(terminated.done).to.equal(false);
    finish?.();
    await withDeadline(terminated.promise);
    expect((await withDeadline(client.whichChildren()))[0]?.status).to.equal('undefined');
  });

  it('gives a worker a default shutdown of 5000 ms', async () => {
    const client = start([{ id: 'b', start: () => rec.worker('b', { postStop: never }) }]);
    const terminated = track(client.terminateChild('b'));
    await eventually(() => rec.events.includes('stop:b'), 'PostStop of b to run');
    clock.advance(4_999);
    await settle(20);
    expect(terminated.done).to.equal(false);
    clock.advance(1);
    await withDeadline(terminated.promise);
  });

  it("gives a supervisor child a default shutdown of 'infinity': it is not killed while its own children stop", async () => {
    // inner's child x takes 10 s to be killed; a worker's 5000 ms default would cut inner short.
    const client = start([
      {
        id: 'inner',
        type: 'supervisor',
        start: () =>
          supervisor({
            children: [{ id: 'x', start: () => rec.worker('x', { postStop: never }), shutdown: 10_000 }],
          }),
      },
    ]);
    const terminated = track(client.terminateChild('inner'));
    await eventually(() => rec.events.includes('stop:x'), 'PostStop of x to run');
    clock.advance(9_999);
    await settle(20);
    expect(terminated.done).to.equal(false);
    clock.advance(1);
    await withDeadline(terminated.promise);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('kills a child that is already stopping on its own once its shutdown expires', async () => {
    // b exits normally (transient: not restarted) but its PostStop never finishes; the
    // supervisor's own stop must still be bounded by b's shutdown.
    start([
      { id: 'a', start: () => rec.worker('a') },
      { id: 'b', start: () => rec.worker('b', { postStop: never }), restart: 'transient', shutdown: 100 },
    ]);
    rec.ref('b').tell('exit');
    await eventually(() => rec.events.includes('stop:b'), 'PostStop of b to run');
    const stopping = track(system.stop());
    await settle(20);
    clock.advance(100);
    await settle(20);
    expect(rec.events).to.include('stop:a');
    await withDeadline(stopping.promise);
  });
});
