import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem, ActorSystemOptions } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { SimulatedClock } from '../../runtime/clock.ts';
import { InvalidRequestError, UnavailableError } from '../../runtime/errors.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import { settle, startTestSystem, track } from '../support/test-system.ts';

describe('actor system', () => {
  const invalidOptions: [string, ActorSystemOptions][] = [
    ['askTimeoutMs 0', { askTimeoutMs: 0 }],
    ['askTimeoutMs Infinity', { askTimeoutMs: Number.POSITIVE_INFINITY }],
    ['sliceMs 0', { sliceMs: 0 }],
    ['maxPendingAsks 0', { maxPendingAsks: 0 }],
    ['throughput 2.5', { throughput: 2.5 }],
    ['an empty nodeId', { nodeId: '' }],
    ["a nodeId with '/'", { nodeId: 'a/b' }],
    ['mailbox capacity -1', { mailbox: { capacity: -1 } }],
    ["logLevel 'verbose'", { logLevel: 'verbose' as never }],
  ];
  for (const [label, options] of invalidOptions) {
    it(`refuses to start with ${label}, with InvalidRequestError`, async () => {
      let error: unknown;
      try {
        const system = await startTestSystem(options);
        await system.stop();
      } catch (caught) {
        error = caught;
      }
      expect(error).to.be.instanceOf(InvalidRequestError);
      expect((error as InvalidRequestError).code).to.equal('INVALID_REQUEST');
    });
  }

  describe('stop', () => {
    let system: ActorSystem;
    let clock: SimulatedClock;

    beforeEach(async () => {
      clock = new SimulatedClock();
      system = await startTestSystem({ clock, nodeId: 'node-1', random: () => 0 });
    });

    afterEach(async () => {
      await system.stop();
    });

    it('stops user actors, then actors hosted for other threads or nodes, then the system’s own, children before parents', async () => {
      const order: string[] = [];
      system.on('actor:stop', ({ ref }) => order.push(ref.path));
      const parent = system.spawn(
        Behaviors.setup<string>((ctx) => {
          ctx.spawn(Behaviors.ignore(), { name: 'child' });
          return Behaviors.ignore();
        }),
        { name: 'parent' },
      );
      system.spawnSystemActor(Behaviors.ignore(), { name: 'kernel-side' });
      expect(parent.path).to.equal('/user/parent');
      await system.stop();
      expect(order).to.deep.equal([
        '/user/parent/child',
        '/user/parent',
        '/user',
        '/host',
        '/system/kernel-side',
        '/system/receptionist',
        '/system',
        '/',
      ]);
    });

    it('leaves no timer, queued message or pending ask behind', async () => {
      const ticking = system.spawn(
        Behaviors.withTimers<string>((timers) => {
          timers.startTimerAtFixedRate('tick', 'tick', 10);
          return Behaviors.ignore();
        }),
      );
      const backingOff = system.spawn(
        Behaviors.supervise(
          Behaviors.receiveMessage<string>(() => {
            throw new Error('fail');
          }),
        ).onFailure(SupervisorStrategy.restartWithBackoff(1000, 1000)),
      );
      backingOff.tell('fail');
      await settle();
      backingOff.tell('queued while backing off');
      const ask = track(
        system
          .spawn(Behaviors.ignore<{ replyTo: ActorRef<string> }>())
          .ask<string>((replyTo) => ({ replyTo })),
      );
      expect(ticking.path).to.match(/^\/user\//);
      expect(clock.pendingTimers).to.equal(3);
      await system.stop();
      await settle(1);
      expect(clock.pendingTimers).to.equal(0);
      expect(system.stats).to.deep.include({ liveActors: 0, queuedMessages: 0, pendingAsks: 0 });
      expect(ask.error).to.be.instanceOf(UnavailableError);
    });

    it('refuses to spawn system actors once stopping, with UnavailableError', async () => {
      const stopping = system.stop();
      expect(() => system.spawnSystemActor(Behaviors.ignore())).to.throw(UnavailableError);
      await stopping;
    });
  });
});
