import { expect } from 'chai';
import { Registry } from 'prom-client';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { SimulatedClock } from '../../runtime/clock.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import { sampleValue, settle, startTestSystem, track } from '../support/test-system.ts';

describe('runtime metrics', () => {
  let system: ActorSystem;
  let clock: SimulatedClock;

  beforeEach(async () => {
    clock = new SimulatedClock();
    system = await startTestSystem({ clock, random: () => 0 });
  });

  afterEach(async () => {
    await system.stop();
  });

  const scrape = (): Promise<string> => system.metrics.metrics();

  it('counts messages processed by actors', async () => {
    const ref = system.spawn(Behaviors.ignore<number>());
    const before = sampleValue(await scrape(), 'cloudless_actor_messages_processed_total');
    for (let i = 0; i < 7; i++) ref.tell(i);
    await settle();
    expect(before).to.equal(0);
    expect(sampleValue(await scrape(), 'cloudless_actor_messages_processed_total')).to.equal(7);
  });

  it('counts dead letters by reason, with every reason present', async () => {
    const picky = system.spawn(Behaviors.empty<string>());
    picky.tell('a');
    picky.tell('b');
    const full = system.spawn(Behaviors.ignore<string>(), { mailbox: { capacity: 1 } });
    for (const m of ['1', '2', '3', '4']) full.tell(m);
    await settle();
    const text = await scrape();
    const deadLetters = (reason: string) =>
      sampleValue(text, 'cloudless_actor_dead_letters_total', `reason="${reason}"`);
    expect(deadLetters('unhandled')).to.equal(2);
    expect(deadLetters('mailbox-full')).to.equal(3);
    for (const reason of ['actor-dead', 'ask-completed', 'stash-dropped', 'no-route', 'not-found']) {
      expect(deadLetters(reason), reason).to.equal(0);
    }
  });

  it('counts restarts', async () => {
    const ref = system.spawn(
      Behaviors.supervise(
        Behaviors.receiveMessage<string>(() => {
          throw new Error('fail');
        }),
      ).onFailure(SupervisorStrategy.restart),
    );
    for (let i = 0; i < 3; i++) ref.tell('fail');
    await settle();
    expect(sampleValue(await scrape(), 'cloudless_actor_restarts_total')).to.equal(3);
  });

  it('counts ask timeouts and shows pending asks', async () => {
    const silent = system.spawn(Behaviors.ignore<{ replyTo: ActorRef<string> }>());
    const outcomes = [
      track(silent.ask<string>((replyTo) => ({ replyTo }), { timeoutMs: 10 })),
      track(silent.ask<string>((replyTo) => ({ replyTo }), { timeoutMs: 20 })),
    ];
    await settle();
    expect(sampleValue(await scrape(), 'cloudless_actor_pending_asks')).to.equal(2);
    clock.advance(10);
    await settle();
    let text = await scrape();
    expect(sampleValue(text, 'cloudless_actor_ask_timeouts_total')).to.equal(1);
    expect(sampleValue(text, 'cloudless_actor_pending_asks')).to.equal(1);
    clock.advance(10);
    await settle();
    text = await scrape();
    expect(sampleValue(text, 'cloudless_actor_ask_timeouts_total')).to.equal(2);
    expect(sampleValue(text, 'cloudless_actor_pending_asks')).to.equal(0);
    expect(outcomes.every((o) => o.settled)).to.equal(true);
  });

  it('shows the messages waiting in mailboxes, in total and in the deepest one', async () => {
    // An actor waiting out a restart backoff keeps its messages queued.
    const waiting = system.spawn(
      Behaviors.supervise(
        Behaviors.receiveMessage<string>((m) => {
          if (m === 'fail') throw new Error('fail');
          return Behaviors.same;
        }),
      ).onFailure(SupervisorStrategy.restartWithBackoff(1000, 1000)),
    );
    const other = system.spawn(
      Behaviors.supervise(
        Behaviors.receiveMessage<string>((m) => {
          if (m === 'fail') throw new Error('fail');
          return Behaviors.same;
        }),
      ).onFailure(SupervisorStrategy.restartWithBackoff(1000, 1000)),
    );
    waiting.tell('fail');
    other.tell('fail');
    await settle();
    for (let i = 0; i < 4; i++) waiting.tell('queued');
    other.tell('queued');
    let text = await scrape();
    expect(sampleValue(text, 'cloudless_actor_mailbox_depth_messages')).to.equal(5);
    expect(sampleValue(text, 'cloudless_actor_mailbox_depth_max_messages')).to.equal(4);
    clock.advance(1000);
    await settle();
    text = await scrape();
    expect(sampleValue(text, 'cloudless_actor_mailbox_depth_messages')).to.equal(0);
    expect(sampleValue(text, 'cloudless_actor_mailbox_depth_max_messages')).to.equal(0);
  });

  it('shows live actors and counts spawns', async () => {
    const before = await scrape();
    const ref = system.spawn(Behaviors.receiveMessage<string>(() => Behaviors.stopped));
    system.spawn(Behaviors.ignore());
    let text = await scrape();
    expect(sampleValue(text, 'cloudless_actor_live_actors')).to.equal(
      (sampleValue(before, 'cloudless_actor_live_actors') ?? Number.NaN) + 2,
    );
    expect(sampleValue(text, 'cloudless_actor_spawned_total')).to.equal(
      (sampleValue(before, 'cloudless_actor_spawned_total') ?? Number.NaN) + 2,
    );
    ref.tell('stop');
    await settle();
    text = await scrape();
    expect(sampleValue(text, 'cloudless_actor_live_actors')).to.equal(
      (sampleValue(before, 'cloudless_actor_live_actors') ?? Number.NaN) + 1,
    );
  });

  it('registers on a registry given in the options', async () => {
    const registry = new Registry();
    const other = await startTestSystem({ clock, metrics: registry });
    try {
      expect(other.metrics).to.equal(registry);
      other.spawn(Behaviors.ignore<string>()).tell('x');
      await settle();
      expect(sampleValue(await registry.metrics(), 'cloudless_actor_messages_processed_total')).to.equal(1);
      expect(sampleValue(await scrape(), 'cloudless_actor_messages_processed_total')).to.equal(0);
    } finally {
      await other.stop();
    }
  });
});
