import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { collectDeadLetters, startTestSystem } from '../support/test-system.ts';

interface Numbered {
  readonly from: number;
  readonly seq: number;
}

describe('message ordering', () => {
  let system: ActorSystem;

  afterEach(async () => {
    await system?.stop();
  });

  it('delivers messages from one sender to one receiver in the order they were sent', async () => {
    system = await startTestSystem();
    const total = 10_000;
    const received: number[] = [];
    let done!: () => void;
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    const receiver = system.spawn(
      Behaviors.receiveMessage<number>((n) => {
        received.push(n);
        if (received.length === total) done();
        return Behaviors.same;
      }),
    );
    const sender = system.spawn(
      Behaviors.receiveMessage<'go'>(() => {
        for (let i = 0; i < total; i++) receiver.tell(i);
        return Behaviors.same;
      }),
    );
    sender.tell('go');
    await finished;
    expect(received).to.deep.equal(Array.from({ length: total }, (_, i) => i));
  });

  it('keeps each sender’s order when several senders interleave 100,000 messages', async () => {
    system = await startTestSystem({ throughput: 16 });
    const letters = collectDeadLetters(system);
    const senders = 4;
    const perSender = 25_000;
    const total = senders * perSender;
    const lastSeq = new Array<number>(senders).fill(-1);
    const outOfOrder: Numbered[] = [];
    let count = 0;
    let switches = 0;
    let previousFrom = -1;
    let done!: () => void;
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    const receiver = system.spawn(
      Behaviors.receiveMessage<Numbered>((m) => {
        if (m.seq !== (lastSeq[m.from] as number) + 1) outOfOrder.push(m);
        lastSeq[m.from] = m.seq;
        if (previousFrom !== -1 && previousFrom !== m.from) switches++;
        previousFrom = m.from;
        if (++count === total) done();
        return Behaviors.same;
      }),
    );
    const refs: ActorRef<'send'>[] = [];
    for (let from = 0; from < senders; from++) {
      let seq = 0;
      refs.push(
        system.spawn(
          Behaviors.receiveMessage<'send'>(() => {
            receiver.tell({ from, seq: seq++ });
            return Behaviors.same;
          }),
        ),
      );
    }
    // Each sender sends one message per 'send' it handles, so with a small throughput the
    // senders take turns and their streams reach the receiver interleaved.
    for (let i = 0; i < perSender; i++) for (const ref of refs) ref.tell('send');
    await finished;
    expect(outOfOrder).to.deep.equal([]);
    expect(lastSeq).to.deep.equal(new Array<number>(senders).fill(perSender - 1));
    expect(switches, 'the streams really were interleaved').to.be.greaterThan(1000);
    expect(letters).to.deep.equal([]);
  });
});
