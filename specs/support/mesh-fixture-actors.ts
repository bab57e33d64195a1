/**
 * The actors a mesh node process (specs/support/mesh-node-process.ts) runs for the multi-process
 * specs, and the messages they take. Kept apart from the process entry so specs can import the
 * message types without starting a node.
 *
 * - `/user/echo` answers `{ n, replyTo }` with `n`.
 * - `/user/sink` records `{ sender, seq }` per sender and answers `verdict` with the counts and
 *   whether every sender's sequence arrived as 0, 1, 2, … without gap, duplicate or reordering.
 * - `/user/relay` forwards `message` to the ref `to` carried in the message (a 3-node chain).
 * - `/user/blackhole` takes anything and never answers (an ask to it stays in flight).
 * - `/user/admin` drives the node from a spec: connect to another node, spawn and stop echo
 *   actors under itself, and blast a backlog of messages before stopping one of them.
 */
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { Behaviors } from '../../runtime/behavior.ts';

export interface EchoRequest {
  readonly n: number;
  readonly replyTo: ActorRef<number>;
}

export interface SequencedMessage {
  readonly sender: string;
  readonly seq: number;
}

export interface Verdict {
  readonly type: 'verdict';
  /** Sequenced messages received, over all senders. */
  readonly total: number;
  /** Messages received per sender. */
  readonly counts: Record<string, number>;
  /** Every sender's messages arrived as 0, 1, 2, … with nothing missing, doubled or swapped. */
  readonly inOrder: boolean;
  /** The first out-of-order arrival, if any. */
  readonly firstBreak?: { sender: string; expected: number; got: number };
}

export type SinkMessage =
  | SequencedMessage
  | { readonly type: 'verdict'; readonly replyTo: ActorRef<Verdict> }
  | { readonly type: 'reset' };

export interface RelayMessage {
  readonly type: 'forward';
  readonly to: ActorRef<unknown>;
  readonly message: unknown;
}

export type ConnectResult =
  | { readonly ok: true; readonly peerId: string }
  | { readonly ok: false; readonly code: string; readonly message: string };

export type AdminMessage =
  | { readonly type: 'connect'; readonly address: string; readonly replyTo: ActorRef<ConnectResult> }
  | { readonly type: 'spawn-echo'; readonly name: string; readonly replyTo: ActorRef<ActorRef<EchoRequest>> }
  | { readonly type: 'stop-child'; readonly name: string }
  /**
   * Tells `count` messages `{ type: 'blast', i, pad }` to `to` in one turn, then stops the child
   * `thenStop` in the same turn: its death notice is produced while the backlog still waits.
   */
  | {
      readonly type: 'blast';
      readonly to: ActorRef<unknown>;
      readonly count: number;
      readonly pad: string;
      readonly thenStop: string;
    };

export function echoBehavior() {
  return Behaviors.receiveMessage<EchoRequest>((request) => {
    request.replyTo.tell(request.n);
    return Behaviors.same;
  });
}

function isSequenced(message: SinkMessage): message is SequencedMessage {
  return (
    typeof (message as SequencedMessage).sender === 'string' &&
    typeof (message as SequencedMessage).seq === 'number'
  );
}

export function sinkBehavior() {
  return Behaviors.setup<SinkMessage>(() => {
    let next = new Map<string, number>();
    let total = 0;
    let firstBreak: Verdict['firstBreak'];
    return Behaviors.receiveMessage<SinkMessage>((message) => {
      if (isSequenced(message)) {
        const expected = next.get(message.sender) ?? 0;
        if (message.seq !== expected && firstBreak === undefined) {
          firstBreak = { sender: message.sender, expected, got: message.seq };
        }
        next.set(message.sender, expected + 1);
        total++;
      } else if (message.type === 'verdict') {
        message.replyTo.tell({
          type: 'verdict',
          total,
          counts: Object.fromEntries(next),
          inOrder: firstBreak === undefined,
          ...(firstBreak === undefined ? {} : { firstBreak }),
        });
      } else if (message.type === 'reset') {
        next = new Map();
        total = 0;
        firstBreak = undefined;
      }
      return Behaviors.same;
    });
  });
}

export function relayBehavior() {
  return Behaviors.receiveMessage<RelayMessage>((message) => {
    message.to.tell(message.message);
    return Behaviors.same;
  });
}

export function blackholeBehavior() {
  return Behaviors.ignore<unknown>();
}

/** `connect` dials through the node's mesh; the other commands act on this node's actors. */
export function adminBehavior(connect: (address: string) => Promise<string>) {
  return Behaviors.receive<AdminMessage>((ctx, message) => {
    switch (message.type) {
      case 'connect':
        connect(message.address).then(
          (peerId) => message.replyTo.tell({ ok: true, peerId }),
          (error: Error & { code?: string }) =>
            message.replyTo.tell({ ok: false, code: error.code ?? 'UNKNOWN', message: error.message }),
        );
        break;
      case 'spawn-echo':
        message.replyTo.tell(ctx.spawn(echoBehavior(), { name: message.name }));
        break;
      case 'stop-child': {
        const child = ctx.child(message.name);
        if (child !== undefined) ctx.stop(child);
        break;
      }
      case 'blast': {
        for (let i = 0; i < message.count; i++) message.to.tell({ type: 'blast', i, pad: message.pad });
        const child = ctx.child(message.thenStop);
        if (child !== undefined) ctx.stop(child);
        break;
      }
    }
    return Behaviors.same;
  });
}
