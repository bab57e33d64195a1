/**
 * What benchmarks/remote-messaging.ts and its peer process (remote-messaging-peer.ts) agree on:
 * the actors' messages and the baseline's bare libp2p protocol.
 */
import type { ActorRef } from '../runtime/actor-ref.ts';

/** The baseline's protocol: frames of one kind byte and a packed batch; acks are 4-byte counts. */
export const rawProtocol = '/cloudless/bench-raw/1.0.0';

/** The round-trip baseline's protocol: every chunk received is sent straight back. */
export const rawEchoProtocol = '/cloudless/bench-echo/1.0.0';

/** To `/user/receiver`: numbers to count, after a `hello` that says where and how often to ack. */
export type ReceiverMessage = number | { type: 'hello'; ackTo: ActorRef<'ack'>; window: number };

/** To `/user/echo`: answered with `value`. */
export interface EchoRequest {
  value: number;
  replyTo: ActorRef<number>;
}
