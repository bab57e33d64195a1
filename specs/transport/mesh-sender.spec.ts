/**
 * The sender rule of the mesh (transport/peer-link.ts): a message from another node that names a
 * sender in a string `from` field must name the node it came from; any other is a dead letter
 * (`forged-sender`) on the receiving node and is counted, never delivered.
 */
import { expect } from 'chai';
import { Behaviors } from '../../runtime/behavior.ts';
import { until } from '../support/deadline.ts';
import { type SpecNode, settleLibp2pTimersAfterEach, startSpecNode } from '../support/mesh-spec-node.ts';

interface Note {
  readonly seq: number;
  readonly from?: unknown;
}

async function forgedCount(node: SpecNode): Promise<number> {
  const metric = await node.system.metrics.getSingleMetricAsString(
    'cloudless_transport_forged_senders_total',
  );
  const line = metric.split('\n').find((l) => l.startsWith('cloudless_transport_forged_senders_total'));
  return Number(line?.split(' ')[1] ?? Number.NaN);
}

describe('mesh sender rule', function () {
  this.timeout(30_000);
  settleLibp2pTimersAfterEach();

  let a: SpecNode;
  let b: SpecNode;
  let c: SpecNode;
  let received: Note[];

  beforeEach(async () => {
    // Mocha arms the hook timer after the synchronous part; see mesh-fault-injection.spec.ts.
    await Promise.resolve();
    a = await startSpecNode();
    b = await startSpecNode();
    c = await startSpecNode();
    received = [];
    b.system.spawn(
      Behaviors.receiveMessage<Note>((note) => {
        received.push(note);
        return Behaviors.same;
      }),
      { name: 'inbox' },
    );
    await a.mesh.connect(b.mesh.multiaddrs[0] as string);
  });

  afterEach(async () => {
    // Every mesh first: each node's stop waits for the sockets opened after it started to go.
    await Promise.all([a, b, c].map((node) => node?.mesh.stop()));
    for (const node of [c, b, a]) await node?.stop();
  });

  it('delivers a message whose from is the sending node and drops one naming another node as forged-sender', async () => {
    const inbox = a.system.resolve<Note>({ node: b.peerId, path: '/user/inbox' });
    inbox.tell({ seq: 1, from: c.peerId });
    inbox.tell({ seq: 2, from: a.peerId });
    inbox.tell({ seq: 3 });
    // Only a string names a sender: anything else in `from` is the message's own business.
    inbox.tell({ seq: 4, from: 42 });
    inbox.tell({ seq: 5, from: b.peerId });
    await until(() => (received.length >= 3 ? true : undefined), 5000, 'genuine messages delivered');
    // Everything A sent arrives in one order: once seq 4 is in, 1 and 5 have been dealt with.
    await until(() => (received.some((n) => n.seq === 4) ? true : undefined), 5000, 'seq 4 delivered');
    expect(received.map((n) => n.seq)).to.deep.equal([2, 3, 4]);
    const forged = b.deadLetters.filter((letter) => letter.reason === 'forged-sender');
    expect(forged.map((letter) => [letter.recipient, (letter.message as Note).seq])).to.deep.equal([
      ['/user/inbox', 1],
      ['/user/inbox', 5],
    ]);
    expect(await forgedCount(b)).to.equal(2);
    expect(await forgedCount(a)).to.equal(0);
  });

  it('holds each node to its own id: a third node cannot speak for the first either', async () => {
    await c.mesh.connect(b.mesh.multiaddrs[0] as string);
    c.system.resolve<Note>({ node: b.peerId, path: '/user/inbox' }).tell({ seq: 1, from: a.peerId });
    c.system.resolve<Note>({ node: b.peerId, path: '/user/inbox' }).tell({ seq: 2, from: c.peerId });
    await until(() => (received.length >= 1 ? true : undefined), 5000, 'the genuine message delivered');
    expect(received).to.deep.equal([{ seq: 2, from: c.peerId }]);
    expect(b.deadLetters.filter((l) => l.reason === 'forged-sender')).to.have.length(1);
  });
});
