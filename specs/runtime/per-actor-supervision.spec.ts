import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { SimulatedClock } from '../../runtime/clock.ts';
import {
  BackoffStrategy,
  type SupervisorStrategy as Strategy,
  SupervisorStrategy,
} from '../../runtime/supervisor-strategy.ts';
import { collectDeadLetters, collectFailures, settle, startTestSystem } from '../support/test-system.ts';

class Transient extends Error {}
class Fatal extends Error {}

type Command =
  | { readonly type: 'inc' }
  | { readonly type: 'fail'; readonly error?: () => Error }
  | { readonly type: 'report' };

const inc: Command = { type: 'inc' };
const fail = (error: () => Error = () => new Transient('transient')): Command => ({ type: 'fail', error });
const report: Command = { type: 'report' };

interface Counter {
  readonly ref: ActorRef<Command>;
  /** Counts reported, one per 'report'. */
  readonly reports: number[];
  /** Every message handled, in order. */
  readonly handled: string[];
  setups(): number;
}

/** Mulberry32: a small seeded generator, so backoff jitter is reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('per-actor supervision', () => {
  let system: ActorSystem;
  let clock: SimulatedClock;

  afterEach(async () => {
    await system?.stop();
  });

  async function start(random?: () => number): Promise<void> {
    clock = new SimulatedClock();
    system = await startTestSystem(random === undefined ? { clock } : { clock, random });
  }

  /** A counter whose state lives in its behavior; `wrap` adds supervision. */
  function spawnCounter(wrap: (b: Behavior<Command>) => Behavior<Command> = (b) => b): Counter {
    const reports: number[] = [];
    const handled: string[] = [];
    let setups = 0;
    const counting = (n: number): Behavior<Command> =>
      Behaviors.receiveMessage<Command>((command) => {
        handled.push(command.type);
        switch (command.type) {
          case 'inc':
            return counting(n + 1);
          case 'fail':
            throw (command.error ?? (() => new Transient('transient')))();
          case 'report':
            reports.push(n);
            return Behaviors.same;
        }
      });
    const behavior = Behaviors.setup<Command>(() => {
      setups++;
      return counting(0);
    });
    const ref = system.spawn(wrap(behavior), { name: 'counter' });
    return { ref, reports, handled, setups: () => setups };
  }

  const supervised =
    (strategy: Strategy, errorClass?: abstract new (...args: never[]) => Error) =>
    (b: Behavior<Command>): Behavior<Command> =>
      Behaviors.supervise(b).onFailure(strategy, errorClass);

  it('stops a failing actor by default and turns its queued messages into dead letters', async () => {
    await start();
    const failures = collectFailures(system);
    const letters = collectDeadLetters(system);
    const counter = spawnCounter();
    for (const m of [inc, fail(), inc, report]) counter.ref.tell(m);
    await settle();
    expect(failures).to.have.length(1);
    expect(failures[0]?.error).to.be.instanceOf(Transient);
    expect(counter.handled).to.deep.equal(['inc', 'fail']);
    expect(letters.map((l) => [l.reason, (l.message as Command).type])).to.deep.equal([
      ['actor-dead', 'inc'],
      ['actor-dead', 'report'],
    ]);
    expect(system.stats.restarts).to.equal(0);
  });

  it('restarts from the initial behavior and keeps queued messages, without redelivering the failed one', async () => {
    await start();
    const restarts: number[] = [];
    system.on('actor:restart', ({ delayMs }) => restarts.push(delayMs));
    const counter = spawnCounter(supervised(SupervisorStrategy.restart));
    for (const m of [inc, inc, fail(), inc, report]) counter.ref.tell(m);
    await settle();
    expect(counter.setups()).to.equal(2);
    expect(counter.handled).to.deep.equal(['inc', 'inc', 'fail', 'inc', 'report']);
    expect(counter.reports, 'state was reset to 0, then one inc').to.deep.equal([1]);
    expect(restarts).to.deep.equal([0]);
    expect(system.stats.restarts).to.equal(1);
  });

  it('resumes with its state intact, dropping only the failed message', async () => {
    await start();
    const counter = spawnCounter(supervised(SupervisorStrategy.resume));
    for (const m of [inc, inc, fail(), inc, report]) counter.ref.tell(m);
    await settle();
    expect(counter.setups()).to.equal(1);
    expect(counter.reports).to.deep.equal([3]);
    expect(system.stats.restarts).to.equal(0);
  });

  it('stops with the stop strategy', async () => {
    await start();
    const failures = collectFailures(system);
    const counter = spawnCounter(supervised(SupervisorStrategy.stop));
    for (const m of [fail(), report]) counter.ref.tell(m);
    await settle();
    expect(failures).to.have.length(1);
    expect(counter.reports).to.deep.equal([]);
    expect(counter.setups()).to.equal(1);
  });

  it('stops once the restart limit is reached within the window', async () => {
    await start();
    const failures = collectFailures(system);
    const counter = spawnCounter(supervised(SupervisorStrategy.restart.withLimit(2, 1000)));
    counter.ref.tell(fail());
    counter.ref.tell(fail());
    await settle();
    expect(counter.setups(), 'two restarts allowed').to.equal(3);
    counter.ref.tell(fail());
    counter.ref.tell(report);
    await settle();
    expect(failures).to.have.length(3);
    expect(counter.setups(), 'the third failure in the window stops it').to.equal(3);
    expect(counter.reports).to.deep.equal([]);
  });

  it('keeps restarting when failures fall outside the limit’s window', async () => {
    await start();
    const counter = spawnCounter(supervised(SupervisorStrategy.restart.withLimit(2, 1000)));
    for (let i = 0; i < 6; i++) {
      counter.ref.tell(fail());
      await settle();
      clock.advance(600); // at most two failures in any 1000 ms
    }
    counter.ref.tell(report);
    await settle();
    expect(counter.setups()).to.equal(7);
    expect(counter.reports).to.deep.equal([0]);
  });

  it('refuses a negative or fractional restart limit and a non-positive window with RangeError', () => {
    expect(() => SupervisorStrategy.restart.withLimit(-1, 1000)).to.throw(RangeError);
    expect(() => SupervisorStrategy.restart.withLimit(1.5, 1000)).to.throw(RangeError);
    expect(() => SupervisorStrategy.restart.withLimit(3, 0)).to.throw(RangeError);
  });

  it('delays each restart with exponential backoff up to the maximum, with jitter from the seeded random', async () => {
    await start(seeded(42));
    const jitter = seeded(42);
    const delays: number[] = [];
    system.on('actor:restart', ({ delayMs }) => delays.push(delayMs));
    const counter = spawnCounter(supervised(SupervisorStrategy.restartWithBackoff(100, 1000, 0.2)));
    const expected: number[] = [];
    for (let attempt = 0; attempt < 6; attempt++) {
      const base = Math.min(1000, 100 * 2 ** attempt);
      const delay = Math.min(1000, base * (1 + 0.2 * jitter()));
      expected.push(delay);
      counter.ref.tell(fail());
      await settle();
      expect(counter.setups(), `attempt ${attempt}: not restarted yet`).to.equal(attempt + 1);
      clock.advance(delay - 1);
      await settle();
      expect(counter.setups(), `attempt ${attempt}: still waiting 1 ms before the delay`).to.equal(
        attempt + 1,
      );
      clock.advance(1);
      await settle();
      expect(counter.setups(), `attempt ${attempt}: restarted after the delay`).to.equal(attempt + 2);
    }
    expect(delays).to.deep.equal(expected);
    expect(delays[0]).to.be.greaterThan(100).and.lessThan(120);
    expect(delays[3]).to.be.greaterThan(800).and.lessThan(960);
    expect(delays.slice(4)).to.deep.equal([1000, 1000]);
  });

  it('keeps messages that arrive during the backoff delay and handles them after the restart', async () => {
    await start(() => 0);
    const counter = spawnCounter(supervised(SupervisorStrategy.restartWithBackoff(100, 1000)));
    counter.ref.tell(fail());
    await settle();
    counter.ref.tell(inc);
    counter.ref.tell(report);
    await settle();
    expect(counter.reports).to.deep.equal([]);
    expect(system.stats.queuedMessages).to.equal(2);
    clock.advance(100);
    await settle();
    expect(counter.reports).to.deep.equal([1]);
  });

  it('starts the backoff again from the minimum after a quiet period', async () => {
    await start(() => 0);
    const delays: number[] = [];
    system.on('actor:restart', ({ delayMs }) => delays.push(delayMs));
    const strategy = new BackoffStrategy(100, 1000, 0).withResetAfter(5000);
    const counter = spawnCounter(supervised(strategy));
    for (const wait of [100, 200, 5000]) {
      counter.ref.tell(fail());
      await settle();
      clock.advance(wait);
      await settle();
    }
    counter.ref.tell(fail());
    await settle();
    expect(delays).to.deep.equal([100, 200, 400, 100]);
  });

  it('stops after the backoff’s maximum number of restarts', async () => {
    await start(() => 0);
    const failures = collectFailures(system);
    const counter = spawnCounter(
      supervised(SupervisorStrategy.restartWithBackoff(10, 100).withMaxRestarts(2)),
    );
    for (let i = 0; i < 3; i++) {
      counter.ref.tell(fail());
      await settle();
      clock.advance(100);
      await settle();
    }
    counter.ref.tell(report);
    await settle();
    expect(failures).to.have.length(3);
    expect(counter.setups()).to.equal(3);
    expect(counter.reports).to.deep.equal([]);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('refuses invalid backoff bounds and jitter with RangeError', () => {
    expect(() => SupervisorStrategy.restartWithBackoff(0, 100)).to.throw(RangeError);
    expect(() => SupervisorStrategy.restartWithBackoff(200, 100)).to.throw(RangeError);
    expect(() => SupervisorStrategy.restartWithBackoff(10, 100, -0.1)).to.throw(RangeError);
  });

  it('applies a strategy only to failures of its error class; others stop the actor', async () => {
    await start();
    const failures = collectFailures(system);
    const counter = spawnCounter(supervised(SupervisorStrategy.restart, Transient));
    counter.ref.tell(fail(() => new Transient('t')));
    await settle();
    expect(counter.setups()).to.equal(2);
    counter.ref.tell(fail(() => new Fatal('f')));
    counter.ref.tell(report);
    await settle();
    expect(counter.setups()).to.equal(2);
    expect(counter.reports).to.deep.equal([]);
    expect(failures.map((f) => f.error.constructor)).to.deep.equal([Transient, Fatal]);
  });

  it('routes each failure to the innermost strategy whose error class matches', async () => {
    await start();
    const counter = spawnCounter((b) =>
      Behaviors.supervise(Behaviors.supervise(b).onFailure(SupervisorStrategy.resume, Transient)).onFailure(
        SupervisorStrategy.restart,
      ),
    );
    for (const m of [inc, fail(() => new Transient('t')), inc, report]) counter.ref.tell(m);
    await settle();
    expect(counter.reports, 'resumed by the inner strategy').to.deep.equal([2]);
    for (const m of [fail(() => new Fatal('f')), inc, report]) counter.ref.tell(m);
    await settle();
    expect(counter.reports, 'restarted by the outer strategy').to.deep.equal([2, 1]);
    expect(counter.setups()).to.equal(2);
  });

  it('stops an actor whose setup fails at start under resume', async () => {
    await start();
    const failures = collectFailures(system);
    const ref = system.spawn(
      Behaviors.supervise(
        Behaviors.setup<Command>(() => {
          throw new Transient('setup failed');
        }),
      ).onFailure(SupervisorStrategy.resume),
    );
    ref.tell(report);
    await settle();
    expect(failures.map((f) => f.error.constructor)).to.deep.equal([Transient]);
    expect(system.stats.liveActors).to.equal(5);
  });

  it('stops an actor whose setup fails under resume during a restart, instead of resuming the old state', async () => {
    await start();
    const failures = collectFailures(system);
    let setups = 0;
    const reports: number[] = [];
    const counting = (n: number): Behavior<Command> =>
      Behaviors.receiveMessage<Command>((command) => {
        if (command.type === 'fail') throw new Fatal('fatal');
        if (command.type === 'report') reports.push(n);
        return command.type === 'inc' ? counting(n + 1) : Behaviors.same;
      });
    const ref = system.spawn(
      Behaviors.supervise(
        Behaviors.supervise(
          Behaviors.setup<Command>(() => {
            if (++setups > 1) throw new Transient('setup failed');
            return counting(0);
          }),
        ).onFailure(SupervisorStrategy.resume, Transient),
      ).onFailure(SupervisorStrategy.restart, Fatal),
    );
    for (const m of [inc, inc, fail(), inc, report]) ref.tell(m);
    await settle();
    // Resuming needs a behavior of this incarnation; the failed one's state must not come back.
    expect(reports).to.deep.equal([]);
    expect(failures.map((f) => f.error.constructor)).to.deep.equal([Fatal, Transient]);
    expect(system.stats.liveActors).to.equal(5);
  });

  it('stops the children of a restarting actor and lets the new incarnation spawn them again', async () => {
    await start();
    const log: string[] = [];
    let incarnation = 0;
    const ref = system.spawn(
      Behaviors.supervise(
        Behaviors.setup<string>((ctx) => {
          const n = ++incarnation;
          ctx.spawn(
            Behaviors.receiveSignal<string>((_c, signal) => {
              log.push(`child${n}:${signal.type}`);
              return Behaviors.same;
            }),
            { name: 'child' },
          );
          return Behaviors.receiveMessage<string>(() => {
            throw new Transient('t');
          });
        }),
      ).onFailure(SupervisorStrategy.restart),
      { name: 'parent' },
    );
    ref.tell('fail');
    await settle();
    expect(incarnation).to.equal(2);
    expect(log).to.deep.equal(['child1:PostStop']);
    expect(system.stats.liveActors).to.equal(7);
  });
});
