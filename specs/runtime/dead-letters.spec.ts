import { expect } from 'chai';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import type { DeadLetter } from '../../runtime/kernel.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import { collectDeadLetters, settle, startTestSystem } from '../support/test-system.ts';

describe('dead letters', () => {
  let system: ActorSystem;

  beforeEach(async () => {
    system = await startTestSystem();
  });

  afterEach(async () => {
    await system.stop();
  });

  it('publishes one dead letter per undeliverable message with its recipient and reason', async () => {
    const letters = collectDeadLetters(system);
    const dead = system.spawn(
      Behaviors.receiveMessage<string>(() => Behaviors.stopped),
      { name: 'dead' },
    );
    dead.tell('stop');
    await settle();
    dead.tell('to the dead');
    const full = system.spawn(Behaviors.ignore<string>(), { name: 'full', mailbox: { capacity: 1 } });
    full.tell('fits');
    full.tell('overflows');
    const picky = system.spawn(
      Behaviors.receiveMessage<string>(() => Behaviors.unhandled),
      { name: 'picky' },
    );
    picky.tell('not for me');
    const stashing = system.spawn(
      Behaviors.supervise(
        Behaviors.withStash<string>(10, (stash) =>
          Behaviors.receiveMessage<string>((m) => {
            if (m === 'boom') throw new Error('boom');
            stash.stash(m);
            return Behaviors.same;
          }),
        ),
      ).onFailure(SupervisorStrategy.restart),
      { name: 'stashing' },
    );
    stashing.tell('kept aside');
    stashing.tell('boom');
    system.resolve<string>({ node: system.nodeId, path: '/user/nobody' }).tell('lost');
    system.resolve<string>({ node: 'elsewhere', path: '/user/x' }).tell('far away');
    await settle();
    const byReason = (reason: DeadLetter['reason']): [string, unknown][] =>
      letters.filter((l) => l.reason === reason).map((l) => [l.recipient, l.message]);
    expect(byReason('actor-dead')).to.deep.equal([['/user/dead', 'to the dead']]);
    expect(byReason('mailbox-full')).to.deep.equal([['/user/full', 'overflows']]);
    expect(byReason('unhandled')).to.deep.equal([['/user/picky', 'not for me']]);
    expect(byReason('stash-dropped')).to.deep.equal([['/user/stashing', 'kept aside']]);
    expect(byReason('not-found')).to.deep.equal([['/user/nobody', 'lost']]);
    expect(byReason('no-route')).to.deep.equal([['/user/x', 'far away']]);
    expect(letters).to.have.length(6);
    expect(system.stats.deadLetters).to.equal(6);
  });

  it('counts dead letters even when nobody listens for them', async () => {
    const dead = system.spawn(Behaviors.receiveMessage<string>(() => Behaviors.stopped));
    dead.tell('stop');
    await settle();
    for (let i = 0; i < 3; i++) dead.tell('late');
    expect(system.stats.deadLetters).to.equal(3);
  });

  it('stops publishing to a listener that was removed', async () => {
    const seen: DeadLetter[] = [];
    const listener = (letter: DeadLetter): void => {
      seen.push(letter);
    };
    system.on('dead-letter:publish', listener);
    const picky = system.spawn(Behaviors.empty<string>());
    picky.tell('one');
    await settle();
    system.off('dead-letter:publish', listener);
    picky.tell('two');
    await settle();
    expect(seen.map((l) => l.message)).to.deep.equal(['one']);
    expect(system.stats.deadLetters).to.equal(2);
  });
});
