import { threadId as mainThreadId } from 'node:worker_threads';
import { expect } from 'chai';
import sinon from 'sinon';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { InvalidRequestError, NotFoundError } from '../../runtime/errors.ts';
import { type Listing, Receptionist } from '../../runtime/receptionist.ts';
import { defineBehavior } from '../../runtime/registered-behavior.ts';
import { ServiceKey } from '../../runtime/service-key.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import {
  type CounterState,
  counter,
  type Hello,
  type OrderVerdict,
  orderChecker,
  orderSender,
  parent,
  type Question,
  type RelayMessage,
  registrant,
  relay,
  type WatchReport,
  type Whereabouts,
  watcher,
} from '../fixtures/thread-behaviors.ts';
import { collectDeadLetters, type Probe, spawnProbe, startTestSystem } from '../support/test-system.ts';
import {
  hostOfThread,
  startWorkerTestSystem,
  threadBehaviorsModule,
  thrownBy,
} from '../support/worker-test-system.ts';

/** Not exported from any module the hosts load. */
const unregistered = defineBehavior('spec/unregistered', (_props: Record<string, never>) =>
  Behaviors.ignore<string>(),
);
/** Reuses a registered name with other code. */
const impostor = defineBehavior('spec/counter', (_props: Record<string, never>) =>
  Behaviors.ignore<string>(),
);

describe('worker-thread dispatcher: messaging', () => {
  let system: ActorSystem;

  // One system for the whole file; its threads are part of every spec's resource baseline.
  before(async () => {
    system = await startWorkerTestSystem();
  });

  after(async () => {
    await system?.stop();
  });

  /** The next listing that satisfies `ready`, skipping earlier ones. */
  async function eventuallyListing(
    listings: Probe<Listing<RelayMessage>>,
    ready: (services: readonly ActorRef<RelayMessage>[]) => boolean,
  ): Promise<Listing<RelayMessage>> {
    for (;;) {
      const listing = await listings.next();
      if (ready(listing.services)) return listing;
    }
  }

  function where(ref: ActorRef<RelayMessage>): Promise<Whereabouts> {
    return ref.ask<Whereabouts>((replyTo) => ({ type: 'where', replyTo }));
  }

  /** A main-thread actor that answers questions. */
  function spawnOracle(): ActorRef<Question> {
    return system.spawn(
      Behaviors.receiveMessage<Question>((question) => {
        question.replyTo.tell(`main thread says: ${question.text}`);
        return Behaviors.same;
      }),
    );
  }

  describe('tell and ask', () => {
    it('runs a registered behavior on a worker thread and answers tell and ask from the main thread', async () => {
      const ref = system.spawn(counter.with({}), { dispatcher: 'worker', name: 'tally' });
      expect(ref.path).to.equal('/user/tally');
      for (let i = 0; i < 3; i++) ref.tell({ type: 'inc' });
      const state = await ref.ask<CounterState>((replyTo) => ({ type: 'get', replyTo }));
      expect(state.count).to.equal(3);
      expect(state.path).to.equal('/user/tally');
      expect(state.threadId).to.not.equal(mainThreadId);
      expect(system.workerThreads?.hosts('worker').map((host) => host.worker.threadId)).to.include(
        state.threadId,
      );
    });

    it('spreads actors over the hosts of the dispatcher', async () => {
      const a = system.spawn(relay.with({}), { dispatcher: 'worker' });
      const b = system.spawn(relay.with({}), { dispatcher: 'worker' });
      const [atA, atB] = await Promise.all([where(a), where(b)]);
      expect(atA.threadId).to.not.equal(atB.threadId);
      expect([atA.threadId, atB.threadId]).to.have.members(
        system.workerThreads?.hosts('worker').map((host) => host.worker.threadId) ?? [],
      );
    });

    it('lets a worker actor tell and ask a main-thread actor through refs in a message', async () => {
      const probe = spawnProbe<unknown>(system);
      const worker = system.spawn(relay.with({}), { dispatcher: 'worker' });
      worker.tell({ type: 'forward', to: probe.ref, message: 'told from a worker' });
      expect(await probe.next()).to.equal('told from a worker');
      worker.tell({ type: 'ask', target: spawnOracle(), text: 'ping', replyTo: probe.ref });
      expect(await probe.next()).to.equal('main thread says: ping');
    });

    it('lets the main thread ask through a worker actor that asks the main thread in turn', async () => {
      const worker = system.spawn(relay.with({}), { dispatcher: 'worker' });
      const answer = await worker.ask<string>((replyTo) => ({
        type: 'ask',
        target: spawnOracle(),
        text: 'nested',
        replyTo,
      }));
      expect(answer).to.equal('main thread says: nested');
    });
  });

  describe('refs in messages', () => {
    it('arrive live: a ref passed worker → main → worker reaches the actor it names', async () => {
      const probe = spawnProbe<unknown>(system);
      const first = system.spawn(relay.with({}), { dispatcher: 'worker' });
      const second = system.spawn(relay.with({}), { dispatcher: 'worker' });
      expect((await where(first)).threadId).to.not.equal((await where(second)).threadId);
      const received: ActorRef<RelayMessage>[] = [];
      const middle = system.spawn(
        Behaviors.receiveMessage<Hello>((hello) => {
          received.push(hello.from);
          second.tell({
            type: 'forward',
            to: hello.from,
            message: { type: 'echo', value: 'round trip', replyTo: probe.ref },
          });
          return Behaviors.same;
        }),
      );
      first.tell({ type: 'introduce', to: middle });
      expect(await probe.next()).to.equal('round trip');
      expect(received).to.have.length(1);
      expect(received[0], 'the ref that arrived on the main thread is the spawned ref itself').to.equal(
        first,
      );
    });

    it('lets the main thread talk straight to a child a worker actor spawned on its own thread', async () => {
      const owner = system.spawn(parent.with({}), { dispatcher: 'worker', name: 'owner' });
      const child = await owner.ask<ActorRef<RelayMessage>>((replyTo) => ({ type: 'child', replyTo }));
      expect(child.path).to.equal('/user/owner/child');
      const [atChild, atOwner] = await Promise.all([
        where(child),
        owner.ask<Whereabouts>((replyTo) => ({ type: 'where', replyTo })),
      ]);
      expect(atChild.threadId, "the child lives on its parent's thread").to.equal(atOwner.threadId);
      expect(atChild.threadId).to.not.equal(mainThreadId);
      const echoed = await owner.ask<unknown>((replyTo) => ({
        type: 'via-child',
        value: [1, 'two'],
        replyTo,
      }));
      expect(echoed).to.deep.equal([1, 'two']);
    });
  });

  describe('batching and ordering', () => {
    it('sends the tells of one turn to a host as one batch', async () => {
      const ref = system.spawn(counter.with({}), { dispatcher: 'worker' });
      const at = await ref.ask<CounterState>((replyTo) => ({ type: 'get', replyTo }));
      const host = hostOfThread(system, at.threadId);
      const post = sinon.spy(host.worker, 'postMessage');
      try {
        for (let i = 0; i < 1000; i++) ref.tell({ type: 'inc' });
        expect(post.callCount, 'nothing is posted before the turn ends').to.equal(0);
        const state = await ref.ask<CounterState>((replyTo) => ({ type: 'get', replyTo }));
        expect(state.count).to.equal(1000);
        const batches = post.getCalls().filter((call) => (call.args[0] as { t?: string }).t === 'batch');
        expect(batches.map((call) => (call.args[0] as { n: number }).n)).to.deep.equal([1001]);
      } finally {
        post.restore();
      }
    });

    it('keeps per-sender order for three main-thread senders of 50,000 messages each to one worker actor', async () => {
      const verdicts = spawnProbe<OrderVerdict>(system);
      const checker = system.spawn(orderChecker.with({ expected: 150_000, reportTo: verdicts.ref }), {
        dispatcher: 'worker',
        mailbox: { capacity: 200_000 },
      });
      const letters = collectDeadLetters(system);
      for (let i = 0; i < 3; i++) {
        const sender = system.spawn(orderSender.with({}));
        sender.tell({ type: 'send', to: checker, sender: `main-${i}`, count: 50_000 });
      }
      const verdict = await verdicts.next(20_000);
      expect(verdict.threadId).to.not.equal(mainThreadId);
      expect(verdict.violations).to.deep.equal([]);
      expect(verdict.counts).to.deep.equal({ 'main-0': 50_000, 'main-1': 50_000, 'main-2': 50_000 });
      expect(letters).to.have.length(0);
    });

    it('keeps per-sender order from worker actors on both hosts to a main-thread actor', async () => {
      const verdicts = spawnProbe<OrderVerdict>(system);
      const checker = system.spawn(orderChecker.with({ expected: 100_000, reportTo: verdicts.ref }), {
        mailbox: { capacity: 200_000 },
      });
      const senders = [0, 1].map(() => system.spawn(orderSender.with({}), { dispatcher: 'worker' }));
      senders.forEach((sender, i) => {
        sender.tell({ type: 'send', to: checker, sender: `worker-${i}`, count: 50_000 });
      });
      const verdict = await verdicts.next(20_000);
      expect(verdict.threadId).to.equal(mainThreadId);
      expect(verdict.violations).to.deep.equal([]);
      expect(verdict.counts).to.deep.equal({ 'worker-0': 50_000, 'worker-1': 50_000 });
    });

    it('keeps per-sender order to a worker actor from senders on its thread, the other thread and the main thread', async () => {
      const verdicts = spawnProbe<OrderVerdict>(system);
      const checker = system.spawn(orderChecker.with({ expected: 90_000, reportTo: verdicts.ref }), {
        dispatcher: 'worker',
        mailbox: { capacity: 200_000 },
      });
      const senders = {
        'worker-a': system.spawn(orderSender.with({}), { dispatcher: 'worker' }),
        'worker-b': system.spawn(orderSender.with({}), { dispatcher: 'worker' }),
        main: system.spawn(orderSender.with({})),
      };
      const hostOf = (ref: ActorRef<never>) => system.workerThreads?.hostForPath(ref.path);
      const checkerHost = hostOf(checker as ActorRef<never>);
      expect(
        [senders['worker-a'], senders['worker-b']].map(
          (ref) => hostOf(ref as ActorRef<never>) === checkerHost,
        ),
      ).to.have.members([true, false]);
      for (const [sender, ref] of Object.entries(senders)) {
        ref.tell({ type: 'send', to: checker, sender, count: 30_000 });
      }
      const verdict = await verdicts.next(20_000);
      expect(verdict.violations).to.deep.equal([]);
      expect(verdict.counts).to.deep.equal({ 'worker-a': 30_000, 'worker-b': 30_000, main: 30_000 });
    });
  });

  describe('death watch', () => {
    it('tells a main-thread watcher Terminated when a worker actor stops', async () => {
      const target = system.spawn(relay.with({}), { dispatcher: 'worker' });
      const probe = spawnProbe<ActorRef<never>>(system);
      system.spawn(
        Behaviors.setup<never>((ctx) => {
          ctx.watch(target as ActorRef<never>);
          return Behaviors.receiveSignal<never>((_ctx, signal) => {
            if (signal.type === 'Terminated') probe.ref.tell(signal.ref);
            return Behaviors.same;
          });
        }),
      );
      target.tell({ type: 'stop' });
      expect(await probe.next()).to.equal(target);
    });

    it('lets a worker actor watch a main-thread actor', async () => {
      const reports = spawnProbe<WatchReport>(system);
      const target = system.spawn(Behaviors.receiveMessage<'stop'>(() => Behaviors.stopped));
      const watching = system.spawn(watcher.with({}), { dispatcher: 'worker' });
      watching.tell({ type: 'watch', target: target as ActorRef<never>, reportTo: reports.ref });
      expect(await reports.next()).to.deep.equal({ type: 'watching', path: target.path });
      target.tell('stop');
      const report = await reports.next();
      expect(report).to.include({ type: 'terminated', path: target.path });
      expect(report.type === 'terminated' && report.threadId).to.not.equal(mainThreadId);
    });

    it('lets a worker actor watch an actor on the other worker thread', async () => {
      const reports = spawnProbe<WatchReport>(system);
      const watching = system.spawn(watcher.with({}), { dispatcher: 'worker' });
      const target = system.spawn(relay.with({}), { dispatcher: 'worker' });
      const [atWatcher, atTarget] = await Promise.all([
        watching.ask<Whereabouts>((replyTo) => ({ type: 'where', replyTo })),
        where(target),
      ]);
      expect(atWatcher.threadId).to.not.equal(atTarget.threadId);
      watching.tell({ type: 'watch', target: target as ActorRef<never>, reportTo: reports.ref });
      await reports.next();
      target.tell({ type: 'stop' });
      const report = await reports.next();
      expect(report).to.include({ type: 'terminated', path: target.path });
      expect(report.type === 'terminated' && report.threadId).to.equal(atWatcher.threadId);
    });
  });

  describe('receptionist', () => {
    it('finds a worker actor that registered itself from its worker thread, until it stops', async () => {
      const key = ServiceKey.create<RelayMessage>('spec-worker-echo');
      const listings = spawnProbe<Listing<RelayMessage>>(system);
      system.receptionist.tell(Receptionist.subscribe(key, listings.ref));
      expect((await listings.next()).services).to.have.length(0);
      const service = system.spawn(registrant.with({ key: key.id }), { dispatcher: 'worker' });
      const listing = await listings.next();
      expect(listing.services).to.have.length(1);
      expect(listing.services[0]).to.equal(service);
      const found = await system.receptionist.ask<Listing<RelayMessage>>((replyTo) =>
        Receptionist.find(key, replyTo),
      );
      const echoed = await found.services[0]?.ask<unknown>((replyTo) => ({
        type: 'echo',
        value: 'found it',
        replyTo,
      }));
      expect(echoed).to.equal('found it');
      service.tell({ type: 'stop' });
      expect((await listings.next()).services).to.have.length(0);
    });

    it('finds the child a worker actor spawned on its own thread, until that child stops', async () => {
      const key = ServiceKey.create<RelayMessage>('spec-worker-grandchild');
      const listings = spawnProbe<Listing<RelayMessage>>(system);
      system.receptionist.tell(Receptionist.subscribe(key, listings.ref));
      await listings.next();
      const owner = system.spawn(parent.with({ childKey: key.id }), {
        dispatcher: 'worker',
        name: 'registrar',
      });
      const listing = await listings.next();
      expect(listing.services.map((service) => service.path)).to.deep.equal(['/user/registrar/child']);
      const child = listing.services[0] as ActorRef<RelayMessage>;
      expect((await where(child)).path).to.equal('/user/registrar/child');
      child.tell({ type: 'stop' });
      const after = await eventuallyListing(listings, (services) => services.length === 0);
      expect(after.services).to.deep.equal([]);
      expect(owner.path).to.equal('/user/registrar');
    });

    it('lists a worker actor’s own child once when it registers twice', async () => {
      const key = ServiceKey.create<RelayMessage>('spec-worker-grandchild-twice');
      const listings = spawnProbe<Listing<RelayMessage>>(system);
      system.receptionist.tell(Receptionist.subscribe(key, listings.ref));
      await listings.next();
      system.spawn(parent.with({ childKey: key.id }), { dispatcher: 'worker', name: 'registrar-twice' });
      await listings.next();
      // Both Registers came in one batch, so the second is in the receptionist's mailbox already.
      const found = await system.receptionist.ask<Listing<RelayMessage>>((replyTo) =>
        Receptionist.find(key, replyTo),
      );
      expect(found.services.map((service) => service.path)).to.deep.equal(['/user/registrar-twice/child']);
    });
  });

  describe('what cannot run on a worker thread', () => {
    it('refuses a behavior name no loaded module registers, naming the modules loaded', () => {
      const before = system.stats.liveActors;
      const error = thrownBy(() => system.spawn(unregistered.with({}), { dispatcher: 'worker' }));
      expect(error).to.be.instanceOf(NotFoundError);
      expect(error.code).to.equal('NOT_FOUND');
      // The one message check: the issue requires the error to name the modules loaded.
      expect(error.message).to.include('spec/unregistered').and.include(threadBehaviorsModule);
      expect(system.stats.liveActors).to.equal(before);
    });

    it('refuses a definition that reuses a registered name with other code', () => {
      const error = thrownBy(() => system.spawn(impostor.with({}), { dispatcher: 'worker' }));
      expect(error).to.be.instanceOf(InvalidRequestError);
      expect(error.code).to.equal('INVALID_REQUEST');
    });

    it('refuses a plain behavior, supervised or not, with InvalidRequestError', () => {
      const plain = Behaviors.receiveMessage<string>(() => Behaviors.same);
      for (const behavior of [plain, Behaviors.supervise(plain).onFailure(SupervisorStrategy.restart)]) {
        const error = thrownBy(() => system.spawn(behavior, { dispatcher: 'worker' }));
        expect(error).to.be.instanceOf(InvalidRequestError);
        expect(error.code).to.equal('INVALID_REQUEST');
      }
    });

    it('refuses a dispatcher name that is not configured with InvalidRequestError', () => {
      const error = thrownBy(() => system.spawn(counter.with({}), { dispatcher: 'gpu' }));
      expect(error).to.be.instanceOf(InvalidRequestError);
      expect(error.code).to.equal('INVALID_REQUEST');
    });

    it('refuses a worker dispatcher on a system started without any', async () => {
      const plain = await startTestSystem();
      try {
        const error = thrownBy(() => plain.spawn(counter.with({}), { dispatcher: 'worker' }));
        expect(error).to.be.instanceOf(InvalidRequestError);
        expect(error.code).to.equal('INVALID_REQUEST');
        // The same registered behavior runs on the main thread when no dispatcher is asked for.
        const local = plain.spawn(counter.with({}));
        local.tell({ type: 'inc' });
        const state = await local.ask<CounterState>((replyTo) => ({ type: 'get', replyTo }));
        expect(state).to.include({ count: 1, threadId: mainThreadId });
      } finally {
        await plain.stop();
      }
    });
  });
});
