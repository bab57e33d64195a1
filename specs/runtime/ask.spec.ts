import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { SimulatedClock } from '../../runtime/clock.ts';
import { AbortError, InvalidRequestError, TimeoutError, UnavailableError } from '../../runtime/errors.ts';
import { collectDeadLetters, sampleValue, settle, startTestSystem, track } from '../support/test-system.ts';

type Command =
  | { readonly type: 'double'; readonly value: number; readonly replyTo: ActorRef<number> }
  | { readonly type: 'hold'; readonly replyTo: ActorRef<number> }
  | { readonly type: 'release'; readonly value: number };

/** Doubles numbers at once, or holds a replyTo until told to release it. */
function calculator(received: Command[] = []) {
  return Behaviors.setup<Command>(() => {
    const held: ActorRef<number>[] = [];
    return Behaviors.receiveMessage<Command>((command) => {
      received.push(command);
      switch (command.type) {
        case 'double':
          command.replyTo.tell(command.value * 2);
          break;
        case 'hold':
          held.push(command.replyTo);
          break;
        case 'release':
          for (const ref of held.splice(0)) ref.tell(command.value);
          break;
      }
      return Behaviors.same;
    });
  });
}

describe('ask', () => {
  let system: ActorSystem;
  let clock: SimulatedClock;

  beforeEach(() => {
    clock = new SimulatedClock();
  });

  afterEach(async () => {
    await system?.stop();
  });

  it('resolves with the typed reply the actor sends to replyTo', async () => {
    system = await startTestSystem({ clock });
    const calc = system.spawn(calculator());
    const reply: number = await calc.ask<number>((replyTo) => ({ type: 'double', value: 21, replyTo }));
    expect(reply).to.equal(42);
    expect(system.stats.pendingAsks).to.equal(0);
    expect(clock.pendingTimers, 'the ask deadline is cleared').to.equal(0);
  });

  it('rejects with TimeoutError once timeoutMs passes on the simulated clock, and counts the timeout', async () => {
    system = await startTestSystem({ clock });
    const calc = system.spawn(calculator());
    const outcome = track(calc.ask<number>((replyTo) => ({ type: 'hold', replyTo }), { timeoutMs: 100 }));
    await settle();
    clock.advance(99);
    await settle();
    expect(outcome.settled, 'still waiting 1 ms before the deadline').to.equal(false);
    clock.advance(1);
    await settle();
    expect(outcome.error).to.be.instanceOf(TimeoutError);
    expect((outcome.error as TimeoutError).code).to.equal('TIMEOUT');
    expect(system.stats.pendingAsks).to.equal(0);
    const text = await system.metrics.metrics();
    expect(sampleValue(text, 'cloudless_actor_ask_timeouts_total')).to.equal(1);
  });

  it('uses the system askTimeoutMs when the ask gives none', async () => {
    system = await startTestSystem({ clock, askTimeoutMs: 50 });
    const calc = system.spawn(calculator());
    const outcome = track(calc.ask<number>((replyTo) => ({ type: 'hold', replyTo })));
    clock.advance(49);
    await settle();
    expect(outcome.settled).to.equal(false);
    clock.advance(1);
    await settle();
    expect(outcome.error).to.be.instanceOf(TimeoutError);
  });

  it('rejects with AbortError and sends nothing when the signal is aborted before the ask', async () => {
    system = await startTestSystem({ clock });
    const received: Command[] = [];
    const calc = system.spawn(calculator(received));
    const controller = new AbortController();
    controller.abort();
    let error: unknown;
    try {
      await calc.ask<number>((replyTo) => ({ type: 'double', value: 1, replyTo }), {
        signal: controller.signal,
      });
    } catch (caught) {
      error = caught;
    }
    await settle();
    expect(error).to.be.instanceOf(AbortError);
    expect((error as AbortError).code).to.equal('ABORTED');
    expect(received).to.deep.equal([]);
    expect(system.stats.pendingAsks).to.equal(0);
  });

  it('rejects with AbortError when the signal is aborted while waiting, and the late reply is a dead letter', async () => {
    system = await startTestSystem({ clock });
    const letters = collectDeadLetters(system);
    const calc = system.spawn(calculator());
    const controller = new AbortController();
    const outcome = track(
      calc.ask<number>((replyTo) => ({ type: 'hold', replyTo }), { signal: controller.signal }),
    );
    await settle();
    expect(outcome.settled).to.equal(false);
    controller.abort();
    await settle();
    expect(outcome.error).to.be.instanceOf(AbortError);
    expect(system.stats.pendingAsks).to.equal(0);
    expect(clock.pendingTimers, 'the ask deadline is cleared').to.equal(0);
    calc.tell({ type: 'release', value: 7 });
    await settle();
    expect(letters.map((l) => [l.reason, l.message])).to.deep.equal([['ask-completed', 7]]);
  });

  it('sends a reply that arrives after the timeout to dead letters as ask-completed', async () => {
    system = await startTestSystem({ clock });
    const letters = collectDeadLetters(system);
    const calc = system.spawn(calculator());
    const outcome = track(calc.ask<number>((replyTo) => ({ type: 'hold', replyTo }), { timeoutMs: 10 }));
    await settle();
    clock.advance(10);
    await settle();
    expect(outcome.error).to.be.instanceOf(TimeoutError);
    calc.tell({ type: 'release', value: 5 });
    await settle();
    expect(letters).to.have.length(1);
    expect(letters[0]?.reason).to.equal('ask-completed');
    expect(letters[0]?.message).to.equal(5);
    expect(letters[0]?.recipient).to.match(/^\/temp\//);
    expect(outcome.value).to.equal(undefined);
  });

  it('settles with the first reply and sends later ones to dead letters', async () => {
    system = await startTestSystem({ clock });
    const letters = collectDeadLetters(system);
    const twice = system.spawn(
      Behaviors.receiveMessage<{ replyTo: ActorRef<string> }>(({ replyTo }) => {
        replyTo.tell('first');
        replyTo.tell('second');
        return Behaviors.same;
      }),
    );
    expect(await twice.ask<string>((replyTo) => ({ replyTo }))).to.equal('first');
    expect(letters.map((l) => [l.reason, l.message])).to.deep.equal([['ask-completed', 'second']]);
  });

  it('rejects with UnavailableError when maxPendingAsks asks are already waiting', async () => {
    system = await startTestSystem({ clock, maxPendingAsks: 2 });
    const received: Command[] = [];
    const calc = system.spawn(calculator(received));
    const first = track(calc.ask<number>((replyTo) => ({ type: 'hold', replyTo })));
    const second = track(calc.ask<number>((replyTo) => ({ type: 'hold', replyTo })));
    let error: unknown;
    try {
      await calc.ask<number>((replyTo) => ({ type: 'hold', replyTo }));
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(UnavailableError);
    expect((error as UnavailableError).code).to.equal('UNAVAILABLE');
    await settle();
    expect(received, 'the refused ask sent nothing').to.have.length(2);
    // Once one completes there is room again.
    calc.tell({ type: 'release', value: 1 });
    await settle();
    expect(first.value).to.equal(1);
    expect(second.value).to.equal(1);
    expect(await calc.ask<number>((replyTo) => ({ type: 'double', value: 2, replyTo }))).to.equal(4);
  });

  it('rejects every pending ask with UnavailableError when the system stops', async () => {
    system = await startTestSystem({ clock });
    const calc = system.spawn(calculator());
    const outcomes = [
      track(calc.ask<number>((replyTo) => ({ type: 'hold', replyTo }))),
      track(calc.ask<number>((replyTo) => ({ type: 'hold', replyTo }))),
    ];
    await settle();
    await system.stop();
    await settle(1);
    for (const outcome of outcomes) expect(outcome.error).to.be.instanceOf(UnavailableError);
    expect(system.stats.pendingAsks).to.equal(0);
    expect(clock.pendingTimers).to.equal(0);
  });

  const invalidTimeouts: [string, number][] = [
    ['0', 0],
    ['-1', -1],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ["the string '100'", '100' as unknown as number],
  ];
  for (const [label, timeoutMs] of invalidTimeouts) {
    it(`rejects timeoutMs ${label} with InvalidRequestError and sends nothing`, async () => {
      system = await startTestSystem({ clock });
      const received: Command[] = [];
      const calc = system.spawn(calculator(received));
      let error: unknown;
      try {
        await calc.ask<number>((replyTo) => ({ type: 'double', value: 1, replyTo }), { timeoutMs });
      } catch (caught) {
        error = caught;
      }
      await settle();
      expect(error).to.be.instanceOf(InvalidRequestError);
      expect(received).to.deep.equal([]);
      expect(system.stats.pendingAsks).to.equal(0);
    });
  }

  it('rejects with the error thrown while building the message, and sends nothing', async () => {
    system = await startTestSystem({ clock });
    const received: Command[] = [];
    const calc = system.spawn(calculator(received));
    class BuildError extends Error {}
    let error: unknown;
    try {
      await calc.ask<number>(() => {
        throw new BuildError('no message');
      });
    } catch (caught) {
      error = caught;
    }
    await settle();
    expect(error).to.be.instanceOf(BuildError);
    expect(received).to.deep.equal([]);
    expect(system.stats.pendingAsks).to.equal(0);
    expect(clock.pendingTimers).to.equal(0);
  });
});
