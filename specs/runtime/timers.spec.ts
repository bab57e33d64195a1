import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { SimulatedClock } from '../../runtime/clock.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import type { TimerScheduler } from '../../runtime/timer-scheduler.ts';
import { collectDeadLetters, settle, startTestSystem } from '../support/test-system.ts';

type Command =
  | { readonly type: 'tick'; readonly label: string }
  | { readonly type: 'do'; readonly run: (timers: TimerScheduler<Command>) => void }
  | { readonly type: 'fail' }
  | { readonly type: 'stop' };

const tick = (label: string): Command => ({ type: 'tick', label });

interface TimerActor {
  readonly ref: ActorRef<Command>;
  /** `label@time` for every tick handled. */
  readonly ticks: string[];
  /** How often setup ran. */
  readonly setups: () => number;
  /** Runs `fn` with the actor's timers inside the actor, then lets the dispatcher settle. */
  run(fn: (timers: TimerScheduler<Command>) => void): Promise<void>;
  /** Advances the clock and lets the actor handle what fell due. */
  advance(ms: number): Promise<void>;
}

describe('timers', () => {
  let system: ActorSystem;
  let clock: SimulatedClock;

  beforeEach(async () => {
    clock = new SimulatedClock();
    system = await startTestSystem({ clock });
  });

  afterEach(async () => {
    await system.stop();
  });

  function spawnTimerActor(wrap: (b: Behavior<Command>) => Behavior<Command> = (b) => b): TimerActor {
    const ticks: string[] = [];
    let setups = 0;
    const behavior = Behaviors.withTimers<Command>((timers) => {
      setups++;
      return Behaviors.receiveMessage<Command>((command) => {
        switch (command.type) {
          case 'tick':
            ticks.push(`${command.label}@${clock.now()}`);
            return Behaviors.same;
          case 'do':
            command.run(timers);
            return Behaviors.same;
          case 'fail':
            throw new Error('requested failure');
          case 'stop':
            return Behaviors.stopped;
        }
      });
    });
    const ref = system.spawn(wrap(behavior), { name: 'timed' });
    return {
      ref,
      ticks,
      setups: () => setups,
      async run(fn) {
        ref.tell({ type: 'do', run: fn });
        await settle();
      },
      async advance(ms) {
        clock.advance(ms);
        await settle();
      },
    };
  }

  it('delivers a single timer once, when its delay has passed', async () => {
    const actor = spawnTimerActor();
    let active: boolean[] = [];
    await actor.run((timers) => timers.startSingleTimer('once', tick('once'), 100));
    await actor.advance(99);
    expect(actor.ticks).to.deep.equal([]);
    await actor.advance(1);
    expect(actor.ticks).to.deep.equal(['once@100']);
    await actor.advance(1000);
    expect(actor.ticks).to.deep.equal(['once@100']);
    await actor.run((timers) => {
      active = [timers.isTimerActive('once')];
    });
    expect(active).to.deep.equal([false]);
  });

  it('waits each fixed delay from the handling of the previous tick', async () => {
    const actor = spawnTimerActor();
    await actor.run((timers) => timers.startTimerWithFixedDelay('k', tick('d'), 100));
    for (let i = 0; i < 3; i++) await actor.advance(100);
    expect(actor.ticks).to.deep.equal(['d@100', 'd@200', 'd@300']);
    // One long jump: the next delay only starts once the tick is handled, so one tick, no catch-up.
    await actor.advance(1000);
    expect(actor.ticks).to.deep.equal(['d@100', 'd@200', 'd@300', 'd@1300']);
    await actor.advance(100);
    expect(actor.ticks.at(-1)).to.equal('d@1400');
  });

  it('keeps a fixed rate measured from the first tick and catches up after a long gap', async () => {
    const actor = spawnTimerActor();
    await actor.run((timers) => timers.startTimerAtFixedRate('k', tick('r'), 100));
    await actor.advance(100);
    expect(actor.ticks).to.deep.equal(['r@100']);
    await actor.advance(450);
    expect(actor.ticks).to.deep.equal(['r@100', 'r@550', 'r@550', 'r@550', 'r@550']);
    await actor.advance(50);
    expect(actor.ticks).to.have.length(6);
  });

  it('starts a repeating timer after its initial delay', async () => {
    const actor = spawnTimerActor();
    await actor.run((timers) => timers.startTimerAtFixedRate('k', tick('r'), 100, 10));
    await actor.advance(10);
    await actor.advance(100);
    await actor.advance(100);
    expect(actor.ticks).to.deep.equal(['r@10', 'r@110', 'r@210']);
  });

  it('replaces a timer started again with the same key', async () => {
    const actor = spawnTimerActor();
    await actor.run((timers) => timers.startSingleTimer('k', tick('old'), 100));
    await actor.advance(50);
    await actor.run((timers) => timers.startSingleTimer('k', tick('new'), 100));
    await actor.advance(100);
    expect(actor.ticks).to.deep.equal(['new@150']);
    await actor.advance(1000);
    expect(actor.ticks).to.deep.equal(['new@150']);
  });

  it('never delivers a cancelled timer', async () => {
    const actor = spawnTimerActor();
    const active: unknown[] = [];
    await actor.run((timers) => {
      timers.startTimerAtFixedRate('rate', tick('rate'), 10);
      timers.startSingleTimer('single', tick('single'), 10);
      timers.cancel('rate');
      active.push(timers.isTimerActive('rate'), timers.isTimerActive('single'));
    });
    await actor.advance(100);
    expect(actor.ticks).to.deep.equal(['single@100']);
    expect(active).to.deep.equal([false, true]);
  });

  it('cancels every timer with cancelAll', async () => {
    const actor = spawnTimerActor();
    let keys: readonly unknown[] = [];
    await actor.run((timers) => {
      timers.startTimerAtFixedRate('a', tick('a'), 10);
      timers.startTimerWithFixedDelay('b', tick('b'), 10);
      timers.startSingleTimer('c', tick('c'), 10);
      timers.cancelAll();
      keys = timers.activeKeys;
    });
    await actor.advance(100);
    expect(actor.ticks).to.deep.equal([]);
    expect(keys).to.deep.equal([]);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('does not deliver a tick that was already queued when its timer was cancelled', async () => {
    const actor = spawnTimerActor();
    await actor.run((timers) => timers.startSingleTimer('k', tick('late'), 100));
    actor.ref.tell({ type: 'do', run: (timers) => timers.cancel('k') });
    clock.advance(100); // the tick is queued behind the cancel
    await settle();
    expect(actor.ticks).to.deep.equal([]);
  });

  it('delivers only the replacement when the replaced timer’s tick was already queued', async () => {
    const actor = spawnTimerActor();
    await actor.run((timers) => timers.startSingleTimer('k', tick('old'), 100));
    actor.ref.tell({ type: 'do', run: (timers) => timers.startSingleTimer('k', tick('new'), 10) });
    clock.advance(100); // the old tick is queued behind the replacement
    await settle();
    await actor.advance(10);
    expect(actor.ticks).to.deep.equal(['new@110']);
  });

  it('cancels its timers when the actor stops', async () => {
    const letters = collectDeadLetters(system);
    const actor = spawnTimerActor();
    await actor.run((timers) => {
      timers.startTimerAtFixedRate('a', tick('a'), 10);
      timers.startSingleTimer('b', tick('b'), 10);
    });
    expect(clock.pendingTimers).to.equal(2);
    actor.ref.tell({ type: 'stop' });
    await settle();
    expect(clock.pendingTimers).to.equal(0);
    await actor.advance(100);
    expect(actor.ticks).to.deep.equal([]);
    expect(letters, 'ticks are not dead letters').to.deep.equal([]);
  });

  it('cancels its timers when the actor restarts, including ticks already queued', async () => {
    const actor = spawnTimerActor((b) => Behaviors.supervise(b).onFailure(SupervisorStrategy.restart));
    await actor.run((timers) => timers.startTimerAtFixedRate('a', tick('a'), 10));
    actor.ref.tell({ type: 'fail' });
    clock.advance(10); // a tick is queued behind the failing message
    await settle();
    expect(actor.setups()).to.equal(2);
    expect(clock.pendingTimers).to.equal(0);
    await actor.advance(100);
    expect(actor.ticks).to.deep.equal([]);
    let keys: readonly unknown[] = ['not read'];
    await actor.run((timers) => {
      keys = timers.activeKeys;
    });
    expect(keys).to.deep.equal([]);
  });

  it('refuses negative, non-finite and zero repeating delays with RangeError', async () => {
    const actor = spawnTimerActor();
    const errors: unknown[] = [];
    await actor.run((timers) => {
      const attempts = [
        () => timers.startSingleTimer('a', tick('a'), -1),
        () => timers.startSingleTimer('a', tick('a'), Number.NaN),
        () => timers.startTimerWithFixedDelay('a', tick('a'), 0),
        () => timers.startTimerAtFixedRate('a', tick('a'), 0),
        () => timers.startTimerAtFixedRate('a', tick('a'), 10, Number.POSITIVE_INFINITY),
      ];
      for (const attempt of attempts) {
        try {
          attempt();
          errors.push(undefined);
        } catch (error) {
          errors.push(error);
        }
      }
    });
    expect(errors).to.have.length(5);
    for (const error of errors) expect(error).to.be.instanceOf(RangeError);
    expect(clock.pendingTimers).to.equal(0);
  });
});
