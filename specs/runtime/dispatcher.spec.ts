import { expect } from 'chai';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { InvalidRequestError } from '../../runtime/errors.ts';
import { settle, startTestSystem } from '../support/test-system.ts';

describe('dispatcher', () => {
  let system: ActorSystem;

  afterEach(async () => {
    await system?.stop();
  });

  it('handles another actor’s message before a flooded actor has worked through its backlog', async () => {
    system = await startTestSystem({ throughput: 10 });
    const flood = 5000;
    let handledByFlooded = 0;
    let floodedCountWhenOtherRan = -1;
    const flooded = system.spawn(
      Behaviors.receiveMessage<number>(() => {
        handledByFlooded++;
        return Behaviors.same;
      }),
    );
    const other = system.spawn(
      Behaviors.receiveMessage<'ping'>(() => {
        floodedCountWhenOtherRan = handledByFlooded;
        return Behaviors.same;
      }),
    );
    for (let i = 0; i < flood; i++) flooded.tell(i);
    other.tell('ping');
    await settle();
    expect(handledByFlooded).to.equal(flood);
    // The flooded actor was ready first, so it had exactly one turn of `throughput` messages.
    expect(floodedCountWhenOtherRan).to.equal(10);
  });

  it('gives each ready actor at most throughput messages per turn, round robin', async () => {
    system = await startTestSystem({ throughput: 4 });
    const order: string[] = [];
    const make = (name: string) =>
      system.spawn(
        Behaviors.receiveMessage<number>(() => {
          order.push(name);
          return Behaviors.same;
        }),
      );
    const a = make('a');
    const b = make('b');
    for (let i = 0; i < 10; i++) a.tell(i);
    for (let i = 0; i < 6; i++) b.tell(i);
    await settle();
    expect(order.join('')).to.equal('aaaabbbbaaaabbaa');
  });

  it('yields to the event loop once a drain has run for sliceMs', async () => {
    system = await startTestSystem({ sliceMs: 1 });
    const total = 20_000;
    let handled = 0;
    const busy = system.spawn(
      Behaviors.receiveMessage<number>(() => {
        // About 5 µs of work per message: far more than 1 ms per drain slice.
        const until = performance.now() + 0.005;
        while (performance.now() < until) {
          /* spin */
        }
        handled++;
        return Behaviors.same;
      }),
    );
    let handledWhenEventLoopRan = -1;
    setImmediate(() => {
      handledWhenEventLoopRan = handled;
    });
    for (let i = 0; i < total; i++) busy.tell(i);
    while (handled < total) await settle(1);
    expect(handledWhenEventLoopRan).to.be.greaterThan(0);
    expect(handledWhenEventLoopRan).to.be.lessThan(total);
  });

  for (const [label, throughput] of [
    ['0', 0],
    ['1.5', 1.5],
    ['-3', -3],
  ] as const) {
    it(`refuses throughput ${label} with InvalidRequestError`, async () => {
      let error: unknown;
      try {
        await startTestSystem({ throughput });
      } catch (caught) {
        error = caught;
      }
      expect(error).to.be.instanceOf(InvalidRequestError);
    });
  }
});
