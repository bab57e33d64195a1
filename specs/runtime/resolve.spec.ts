import { expect } from 'chai';
import type { ActorAddress, ActorRef } from '../../runtime/actor-ref.ts';
import { formatAddress, isActorAddress } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { SimulatedClock } from '../../runtime/clock.ts';
import { TimeoutError } from '../../runtime/errors.ts';
import type { Router } from '../../runtime/router.ts';
import type { ThreadSpawner } from '../../runtime/worker-threads.ts';
import { collectDeadLetters, settle, spawnProbe, startTestSystem, track } from '../support/test-system.ts';

/** A request whose replyTo crossed a serialization boundary as a plain address. */
interface WireRequest {
  readonly value: number;
  readonly replyTo: ActorAddress;
}

describe('resolve', () => {
  let system: ActorSystem;
  let clock: SimulatedClock;

  beforeEach(async () => {
    clock = new SimulatedClock();
    system = await startTestSystem({ clock, nodeId: 'node-a' });
  });

  afterEach(async () => {
    await system.stop();
  });

  it('gives the live ref for the address of a local actor', async () => {
    const probe = spawnProbe<string>(system, 'target');
    const address = JSON.parse(JSON.stringify(probe.ref)) as ActorAddress;
    expect(address).to.deep.equal({ node: 'node-a', path: '/user/target' });
    expect(isActorAddress(address)).to.equal(true);
    expect(formatAddress(address)).to.equal('cloudless://node-a/user/target');
    const resolved = system.resolve<string>(address);
    expect(resolved).to.equal(probe.ref);
    resolved.tell('hello');
    expect(await probe.next()).to.equal('hello');
  });

  it('completes an ask whose replyTo was serialized with toJSON and resolved back', async () => {
    // The responder sees only JSON, as it would across a thread or the network.
    const responder = system.spawn(
      Behaviors.receiveMessage<string>((json) => {
        const request = JSON.parse(json) as WireRequest;
        system.resolve<number>(request.replyTo).tell(request.value + 1);
        return Behaviors.same;
      }),
    );
    const reply = await responder.ask<number>((replyTo) => JSON.stringify({ value: 41, replyTo }));
    expect(reply).to.equal(42);
    expect(system.stats.pendingAsks).to.equal(0);
  });

  it('sends a reply to a serialized replyTo whose ask already timed out to dead letters', async () => {
    const letters = collectDeadLetters(system);
    let address: ActorAddress | undefined;
    const silent = system.spawn(
      Behaviors.receiveMessage<string>((json) => {
        address = (JSON.parse(json) as WireRequest).replyTo;
        return Behaviors.same;
      }),
    );
    const outcome = track(
      silent.ask<number>((replyTo) => JSON.stringify({ value: 1, replyTo }), { timeoutMs: 10 }),
    );
    await settle();
    clock.advance(10);
    await settle();
    expect(outcome.error).to.be.instanceOf(TimeoutError);
    system.resolve<number>(address as ActorAddress).tell(2);
    expect(letters).to.have.length(1);
    expect(letters[0]?.message).to.equal(2);
    expect(letters[0]?.recipient).to.equal(address?.path);
  });

  it('gives a ref whose messages are not-found dead letters for a local path with no actor', () => {
    const letters = collectDeadLetters(system);
    const ref = system.resolve<string>({ node: 'node-a', path: '/user/nobody' });
    expect(ref.path).to.equal('/user/nobody');
    expect(() => ref.tell('hello')).not.to.throw();
    expect(letters).to.deep.equal([{ recipient: '/user/nobody', message: 'hello', reason: 'not-found' }]);
  });

  it('gives a ref for a stopped actor whose messages are dead letters', async () => {
    const letters = collectDeadLetters(system);
    const ref = system.spawn(
      Behaviors.receiveMessage<string>(() => Behaviors.stopped),
      { name: 'gone' },
    );
    ref.tell('stop');
    await settle();
    system.resolve<string>(ref.toJSON()).tell('late');
    expect(letters.map((l) => [l.recipient, l.message, l.reason])).to.deep.equal([
      ['/user/gone', 'late', 'not-found'],
    ]);
  });

  it('sends messages for another node to no-route dead letters while no router is installed', () => {
    const letters = collectDeadLetters(system);
    system.resolve<string>({ node: 'node-b', path: '/user/x' }).tell('hi');
    expect(letters).to.deep.equal([{ recipient: '/user/x', message: 'hi', reason: 'no-route' }]);
  });

  it('hands messages for another node to the installed mesh router', () => {
    const noSpawner: ThreadSpawner = {
      dispatcherNames: [],
      prepare: () => {
        throw new Error('not used');
      },
    };
    const delivered: { to: ActorAddress; message: unknown }[] = [];
    const router: Router = {
      deliver: (to, message) => {
        delivered.push({ to: { node: to.node, path: to.path }, message });
        return true;
      },
      watch: () => {},
      unwatch: () => {},
    };
    system.attachMesh({ router, spawner: noSpawner });
    const remote: ActorRef<string> = system.resolve({ node: 'node-b', path: '/user/x' });
    expect(remote.toJSON()).to.deep.equal({ node: 'node-b', path: '/user/x' });
    remote.tell('hi');
    expect(delivered).to.deep.equal([{ to: { node: 'node-b', path: '/user/x' }, message: 'hi' }]);
    system.attachMesh(undefined);
  });
});
