/**
 * The other process of benchmarks/remote-messaging.ts: a mesh node with a windowed receiver
 * (`/user/receiver`) and an echo (`/user/echo`), plus the baselines' bare libp2p protocols:
 * `rawProtocol` counts msgpackr-packed batches off a plain stream and acks each window,
 * `rawEchoProtocol` sends back whatever arrives.
 *
 * Prints `{ "peerId": …, "multiaddrs": [...] }` on stdout when ready; stops on SIGTERM or when its
 * stdin closes (the benchmark process is gone).
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { Packr } from 'msgpackr';
import type { ActorRef } from '../runtime/actor-ref.ts';
import { ActorSystem } from '../runtime/actor-system.ts';
import { Behaviors } from '../runtime/behavior.ts';
import { encodeFrame, FrameDecoder } from '../transport/frame-codec.ts';
import { MeshTransport } from '../transport/mesh-transport.ts';
import {
  type EchoRequest,
  type ReceiverMessage,
  rawEchoProtocol,
  rawProtocol,
} from './remote-messaging-protocol.ts';

/** Counts numbers; acks every `window` so the sender never overruns a bounded queue. */
function receiver() {
  return Behaviors.setup<ReceiverMessage>(() => {
    let count = 0;
    let ackTo: ActorRef<'ack'> | undefined;
    let window = 1;
    return Behaviors.receiveMessage<ReceiverMessage>((message) => {
      if (typeof message === 'number') {
        if (++count % window === 0) ackTo?.tell('ack');
      } else {
        ackTo = message.ackTo;
        window = message.window;
        count = 0;
      }
      return Behaviors.same;
    });
  });
}

/** The baseline's receiving end: unpack each batch, count its messages, ack every `window`. */
function serveRaw(stream: Stream, window: number): void {
  const packr = new Packr({ useRecords: false, moreTypes: true });
  const decoder = new FrameDecoder({ maxFrameBytes: 4 * 1024 * 1024 });
  let count = 0;
  stream.addEventListener('message', (event) => {
    const data = event.data;
    for (const frame of decoder.push(data instanceof Uint8Array ? data : data.subarray())) {
      const batch = packr.unpack(frame.subarray(1)) as unknown[];
      count += batch.length / 3;
      while (count >= window) {
        count -= window;
        const ack = new Uint8Array(4);
        new DataView(ack.buffer).setUint32(0, window);
        stream.send(encodeFrame(ack));
      }
    }
  });
}

const privateKey = await generateKeyPair('Ed25519');
const system = await ActorSystem.start({
  nodeId: peerIdFromPrivateKey(privateKey).toString(),
  logLevel: 'warn',
  dispatchers: {},
});
const mesh = await MeshTransport.start(system, { privateKey });
system.spawn(receiver(), { name: 'receiver' });
system.spawn(
  Behaviors.receiveMessage<EchoRequest>((request) => {
    request.replyTo.tell(request.value);
    return Behaviors.same;
  }),
  { name: 'echo' },
);
const window = Number(process.argv[2] ?? 8192);
await mesh.node.handle(rawProtocol, (stream) => serveRaw(stream, window));
await mesh.node.handle(rawEchoProtocol, (stream) => {
  stream.addEventListener('message', (event) => {
    const data = event.data;
    stream.send(data instanceof Uint8Array ? data : data.subarray());
  });
});

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stdin.destroy();
  await mesh.stop();
  await system.stop();
}
process.once('SIGTERM', () => void shutdown());
process.stdin.on('end', () => void shutdown());
process.stdin.resume();
process.stdout.write(`${JSON.stringify({ peerId: mesh.peerId, multiaddrs: mesh.multiaddrs })}\n`);
