import { expect } from 'chai';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { StashOverflowError } from '../../runtime/errors.ts';
import type { StashBuffer } from '../../runtime/stash-buffer.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import { collectDeadLetters, collectFailures, settle, startTestSystem } from '../support/test-system.ts';

type Message = number | 'open' | 'close' | 'boom';

/** Stashes numbers while closed, handles them while open; 'open' unstashes everything. */
function gate(capacity: number, handled: Message[], sizes: number[] = []): Behavior<Message> {
  return Behaviors.withStash<Message>(capacity, (stash: StashBuffer<Message>) => {
    const open: Behavior<Message> = Behaviors.receiveMessage<Message>((m) => {
      if (m === 'boom') throw new Error('boom');
      if (m === 'close') return closed;
      handled.push(m);
      return Behaviors.same;
    });
    const closed: Behavior<Message> = Behaviors.receiveMessage<Message>((m) => {
      if (m === 'boom') throw new Error('boom');
      if (m === 'open') {
        sizes.push(stash.size);
        return stash.unstashAll(open);
      }
      stash.stash(m);
      return Behaviors.same;
    });
    return closed;
  });
}

describe('stash', () => {
  let system: ActorSystem;

  afterEach(async () => {
    await system?.stop();
  });

  it('replays stashed messages in order, ahead of messages that were already queued behind them', async () => {
    system = await startTestSystem();
    const handled: Message[] = [];
    const sizes: number[] = [];
    const ref = system.spawn(gate(10, handled, sizes));
    for (const m of [1, 2, 3, 'open', 4, 5] as const) ref.tell(m);
    await settle();
    expect(handled).to.deep.equal([1, 2, 3, 4, 5]);
    expect(sizes).to.deep.equal([3]);
    expect(system.stats.queuedMessages).to.equal(0);
  });

  it('stashes again after unstashing and keeps the order across rounds', async () => {
    system = await startTestSystem();
    const handled: Message[] = [];
    const ref = system.spawn(gate(10, handled));
    for (const m of [1, 'open', 2, 'close', 3, 4, 'open', 5] as const) ref.tell(m);
    await settle();
    expect(handled).to.deep.equal([1, 2, 3, 4, 5]);
  });

  it('fails the actor with StashOverflowError when the stash is full, dropping what it held', async () => {
    system = await startTestSystem();
    const failures = collectFailures(system);
    const letters = collectDeadLetters(system);
    const handled: Message[] = [];
    const ref = system.spawn(gate(2, handled), { name: 'gate' });
    for (const m of [1, 2, 3, 4] as const) ref.tell(m);
    await settle();
    expect(failures).to.have.length(1);
    expect(failures[0]?.error).to.be.instanceOf(StashOverflowError);
    expect(failures[0]?.error).to.have.property('code', 'STASH_OVERFLOW');
    expect(letters.map((l) => [l.reason, l.message])).to.deep.equal([
      ['stash-dropped', 1],
      ['stash-dropped', 2],
      ['actor-dead', 4],
    ]);
    expect(handled).to.deep.equal([]);
  });

  it('drops stashed messages as stash-dropped dead letters on restart and keeps later ones', async () => {
    system = await startTestSystem();
    const letters = collectDeadLetters(system);
    const handled: Message[] = [];
    const ref = system.spawn(Behaviors.supervise(gate(10, handled)).onFailure(SupervisorStrategy.restart), {
      name: 'gate',
    });
    for (const m of [1, 2, 'boom', 3, 'open', 4] as const) ref.tell(m);
    await settle();
    expect(letters).to.deep.equal([
      { recipient: '/user/gate', message: 1, reason: 'stash-dropped' },
      { recipient: '/user/gate', message: 2, reason: 'stash-dropped' },
    ]);
    // The new incarnation starts closed with an empty stash: 3 is stashed, then replayed on 'open'.
    expect(handled).to.deep.equal([3, 4]);
  });

  it('reports its size, emptiness and fullness', async () => {
    system = await startTestSystem();
    const seen: [number, boolean, boolean][] = [];
    const ref = system.spawn(
      Behaviors.withStash<number>(2, (stash) =>
        Behaviors.receiveMessage<number>((m) => {
          seen.push([stash.size, stash.isEmpty, stash.isFull]);
          if (!stash.isFull) stash.stash(m);
          return Behaviors.same;
        }),
      ),
    );
    for (const m of [1, 2, 3]) ref.tell(m);
    await settle();
    expect(seen).to.deep.equal([
      [0, true, false],
      [1, false, false],
      [2, false, true],
    ]);
  });

  it('refuses a stash capacity that is not a positive integer with RangeError', () => {
    for (const capacity of [0, -1, 2.5, Number.NaN]) {
      expect(() => Behaviors.withStash(capacity, () => Behaviors.ignore())).to.throw(RangeError);
    }
  });
});
