import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { type Listing, Receptionist, type Registered } from '../../runtime/receptionist.ts';
import { ServiceKey } from '../../runtime/service-key.ts';
import { collectDeadLetters, settle, spawnProbe, startTestSystem } from '../support/test-system.ts';

type Work = 'stop' | 'work';

const worker = () =>
  Behaviors.receiveMessage<Work>((m) => (m === 'stop' ? Behaviors.stopped : Behaviors.same));

const pathsOf = (listing: Listing<unknown>): string[] => listing.services.map((s) => s.path).sort();

describe('receptionist', () => {
  let system: ActorSystem;
  const key = ServiceKey.create<Work>('workers');

  beforeEach(async () => {
    system = await startTestSystem();
  });

  afterEach(async () => {
    await system.stop();
  });

  const find = <T>(k: ServiceKey<T>): Promise<Listing<T>> =>
    system.receptionist.ask<Listing<T>>((replyTo) => Receptionist.find(k, replyTo));

  it('lists the actors registered under a key', async () => {
    const a = system.spawn(worker(), { name: 'a' });
    const b = system.spawn(worker(), { name: 'b' });
    system.receptionist.tell(Receptionist.register(key, a));
    system.receptionist.tell(Receptionist.register(key, b));
    system.receptionist.tell(Receptionist.register(key, a)); // registering twice is one entry
    const listing = await find(key);
    expect(listing.type).to.equal('Listing');
    expect(listing.key.id).to.equal('workers');
    expect(pathsOf(listing)).to.deep.equal(['/user/a', '/user/b']);
    expect(listing.services).to.include(a);
  });

  it('answers an empty listing for a key nobody registered', async () => {
    const listing = await find(ServiceKey.create<string>('nobody'));
    expect(listing.services).to.deep.equal([]);
  });

  it('acknowledges a registration to replyTo', async () => {
    const a = system.spawn(worker(), { name: 'a' });
    const ack = await system.receptionist.ask<Registered>((replyTo) =>
      Receptionist.register(key, a, replyTo),
    );
    expect(ack.type).to.equal('Registered');
    expect(ack.service).to.equal(a);
    expect(ack.key.id).to.equal('workers');
  });

  it('treats two keys with the same id as the same key', async () => {
    const a = system.spawn(worker(), { name: 'a' });
    system.receptionist.tell(Receptionist.register(ServiceKey.create<Work>('workers'), a));
    expect(pathsOf(await find(ServiceKey.create<Work>('workers')))).to.deep.equal(['/user/a']);
  });

  it('removes a deregistered actor', async () => {
    const a = system.spawn(worker(), { name: 'a' });
    const b = system.spawn(worker(), { name: 'b' });
    system.receptionist.tell(Receptionist.register(key, a));
    system.receptionist.tell(Receptionist.register(key, b));
    system.receptionist.tell(Receptionist.deregister(key, a));
    expect(pathsOf(await find(key))).to.deep.equal(['/user/b']);
  });

  it('removes a registered actor automatically when it terminates', async () => {
    const a = system.spawn(worker(), { name: 'a' });
    const b = system.spawn(worker(), { name: 'b' });
    system.receptionist.tell(Receptionist.register(key, a));
    system.receptionist.tell(Receptionist.register(key, b));
    expect(pathsOf(await find(key))).to.deep.equal(['/user/a', '/user/b']);
    a.tell('stop');
    await settle();
    expect(pathsOf(await find(key))).to.deep.equal(['/user/b']);
  });

  it('sends a subscriber the current listing, then a new one on every change', async () => {
    const probe = spawnProbe<Listing<Work>>(system, 'subscriber');
    const a = system.spawn(worker(), { name: 'a' });
    system.receptionist.tell(Receptionist.register(key, a));
    system.receptionist.tell(Receptionist.subscribe(key, probe.ref));
    expect(pathsOf(await probe.next())).to.deep.equal(['/user/a']);
    const b = system.spawn(worker(), { name: 'b' });
    system.receptionist.tell(Receptionist.register(key, b));
    expect(pathsOf(await probe.next())).to.deep.equal(['/user/a', '/user/b']);
    a.tell('stop');
    expect(pathsOf(await probe.next()), 'a terminated').to.deep.equal(['/user/b']);
    system.receptionist.tell(Receptionist.deregister(key, b));
    expect(pathsOf(await probe.next())).to.deep.equal([]);
    await settle();
    expect(probe.received).to.have.length(4);
  });

  it('sends nothing more after unsubscribe', async () => {
    const probe = spawnProbe<Listing<Work>>(system);
    system.receptionist.tell(Receptionist.subscribe(key, probe.ref));
    await probe.next();
    system.receptionist.tell(Receptionist.unsubscribe(key, probe.ref));
    system.receptionist.tell(Receptionist.register(key, system.spawn(worker())));
    await find(key);
    await settle();
    expect(probe.received).to.have.length(1);
  });

  it('forgets a subscriber that terminates', async () => {
    const letters = collectDeadLetters(system);
    const subscriber = system.spawn(
      Behaviors.receiveMessage<Listing<Work> | 'stop'>((m) =>
        m === 'stop' ? Behaviors.stopped : Behaviors.same,
      ),
      { name: 'subscriber' },
    );
    system.receptionist.tell(Receptionist.subscribe(key, subscriber as ActorRef<Listing<Work>>));
    await settle();
    subscriber.tell('stop');
    await settle();
    system.receptionist.tell(Receptionist.register(key, system.spawn(worker())));
    await find(key);
    await settle();
    expect(letters, 'no listing was sent to the dead subscriber').to.deep.equal([]);
  });

  it('keeps listings of different keys apart', async () => {
    const other = ServiceKey.create<string>('other');
    const a = system.spawn(worker(), { name: 'a' });
    const b = system.spawn(Behaviors.ignore<string>(), { name: 'b' });
    system.receptionist.tell(Receptionist.register(key, a));
    system.receptionist.tell(Receptionist.register(other, b));
    expect(pathsOf(await find(key))).to.deep.equal(['/user/a']);
    expect(pathsOf(await find(other))).to.deep.equal(['/user/b']);
  });

  it('refuses an empty or over-long service key id with RangeError', () => {
    expect(() => ServiceKey.create('')).to.throw(RangeError);
    expect(() => ServiceKey.create('k'.repeat(257))).to.throw(RangeError);
  });
});
