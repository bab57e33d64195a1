import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { SimulatedClock } from '../../runtime/clock.ts';
import { InvalidRequestError } from '../../runtime/errors.ts';
import type { Signal } from '../../runtime/signals.ts';
import { collectDeadLetters, settle, startTestSystem } from '../support/test-system.ts';

function recorder<T>(received: T[]) {
  return Behaviors.receiveMessage<T>((message) => {
    received.push(message);
    return Behaviors.same;
  });
}

describe('mailbox', () => {
  let system: ActorSystem;

  afterEach(async () => {
    await system?.stop();
  });

  it("rejects the incoming message when full under 'drop-newest' and publishes it as a mailbox-full dead letter", async () => {
    system = await startTestSystem();
    const letters = collectDeadLetters(system);
    const received: number[] = [];
    const ref = system.spawn(recorder(received), {
      name: 'bounded',
      mailbox: { capacity: 3, overflow: 'drop-newest' },
    });
    for (let i = 1; i <= 5; i++) ref.tell(i);
    await settle();
    expect(received).to.deep.equal([1, 2, 3]);
    expect(letters).to.deep.equal([
      { recipient: '/user/bounded', message: 4, reason: 'mailbox-full' },
      { recipient: '/user/bounded', message: 5, reason: 'mailbox-full' },
    ]);
    expect(system.stats.queuedMessages).to.equal(0);
  });

  it("evicts the oldest queued message when full under 'drop-oldest' and publishes it as a mailbox-full dead letter", async () => {
    system = await startTestSystem();
    const letters = collectDeadLetters(system);
    const received: number[] = [];
    const ref = system.spawn(recorder(received), {
      name: 'bounded',
      mailbox: { capacity: 3, overflow: 'drop-oldest' },
    });
    for (let i = 1; i <= 5; i++) ref.tell(i);
    await settle();
    expect(received).to.deep.equal([3, 4, 5]);
    expect(letters).to.deep.equal([
      { recipient: '/user/bounded', message: 1, reason: 'mailbox-full' },
      { recipient: '/user/bounded', message: 2, reason: 'mailbox-full' },
    ]);
    expect(system.stats.queuedMessages).to.equal(0);
  });

  it('uses the system-wide default mailbox for actors that do not set one', async () => {
    system = await startTestSystem({ mailbox: { capacity: 2, overflow: 'drop-oldest' } });
    const letters = collectDeadLetters(system);
    const received: string[] = [];
    const ref = system.spawn(recorder(received));
    for (const m of ['a', 'b', 'c']) ref.tell(m);
    await settle();
    expect(received).to.deep.equal(['b', 'c']);
    expect(letters.map((l) => [l.reason, l.message])).to.deep.equal([['mailbox-full', 'a']]);
  });

  for (const overflow of ['drop-newest', 'drop-oldest'] as const) {
    it(`does not count queued timer ticks against the capacity ('${overflow}')`, async () => {
      const clock = new SimulatedClock();
      system = await startTestSystem({ clock });
      const letters = collectDeadLetters(system);
      const received: string[] = [];
      const ref = system.spawn(
        Behaviors.withTimers<string>((timers) => {
          timers.startSingleTimer('a', 'tick-a', 10);
          timers.startSingleTimer('b', 'tick-b', 10);
          return recorder(received);
        }),
        { mailbox: { capacity: 2, overflow } },
      );
      clock.advance(10); // two ticks are queued; no user message is
      ref.tell('one');
      ref.tell('two');
      await settle();
      expect(received).to.deep.equal(['tick-a', 'tick-b', 'one', 'two']);
      expect(letters).to.deep.equal([]);
    });
  }

  it('handles a stop before user messages already queued, which become actor-dead dead letters', async () => {
    system = await startTestSystem();
    const letters = collectDeadLetters(system);
    const handledByChild: number[] = [];
    const signals: Signal['type'][] = [];
    const parent = system.spawn(
      Behaviors.receive<'go'>((ctx) => {
        const child = ctx.spawn(recorder(handledByChild), { name: 'child' });
        ctx.watch(child);
        child.tell(1);
        child.tell(2);
        child.tell(3);
        ctx.stop(child);
        return Behaviors.same;
      }).receiveSignal((_ctx, signal) => {
        signals.push(signal.type);
        return Behaviors.same;
      }),
      { name: 'parent' },
    );
    parent.tell('go');
    await settle();
    expect(handledByChild).to.deep.equal([]);
    expect(letters).to.deep.equal(
      [1, 2, 3].map((message) => ({
        recipient: '/user/parent/child',
        message,
        reason: 'actor-dead',
      })),
    );
    expect(signals).to.deep.equal(['Terminated']);
    expect(system.stats.queuedMessages).to.equal(0);
  });

  it('turns a tell to a dead actor into an actor-dead dead letter without throwing', async () => {
    system = await startTestSystem();
    const letters = collectDeadLetters(system);
    const ref: ActorRef<string> = system.spawn(
      Behaviors.receiveMessage<string>(() => Behaviors.stopped),
      {
        name: 'short-lived',
      },
    );
    ref.tell('stop');
    await settle();
    expect(() => ref.tell('late')).not.to.throw();
    expect(letters).to.deep.equal([
      { recipient: '/user/short-lived', message: 'late', reason: 'actor-dead' },
    ]);
    expect(system.stats.queuedMessages).to.equal(0);
  });

  it('keeps the queued-message count at zero once every mailbox has drained', async () => {
    system = await startTestSystem();
    const received: number[] = [];
    const ref = system.spawn(recorder(received), { mailbox: { capacity: 10 } });
    for (let i = 0; i < 25; i++) ref.tell(i);
    expect(system.stats.queuedMessages).to.equal(10);
    await settle();
    expect(received).to.have.length(10);
    expect(system.stats.queuedMessages).to.equal(0);
  });

  for (const [label, mailbox] of [
    ['capacity 0', { capacity: 0 }],
    ['capacity 1.5', { capacity: 1.5 }],
    ["overflow 'block'", { overflow: 'block' }],
  ] as const) {
    it(`refuses a spawn with mailbox ${label} with InvalidRequestError`, async () => {
      system = await startTestSystem();
      expect(() => system.spawn(Behaviors.ignore(), { name: 'x', mailbox: mailbox as never }))
        .to.throw(InvalidRequestError)
        .with.property('code', 'INVALID_REQUEST');
      expect(system.stats.liveActors).to.equal(5); // root, /user, /system, /host, the receptionist
    });

    it(`refuses an actor system with default mailbox ${label} with InvalidRequestError`, async () => {
      let error: unknown;
      try {
        await startTestSystem({ mailbox: mailbox as never });
      } catch (caught) {
        error = caught;
      }
      expect(error).to.be.instanceOf(InvalidRequestError);
    });
  }
});
