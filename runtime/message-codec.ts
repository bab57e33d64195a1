/**
 * Encoding of messages that cross a thread or the mesh: msgpackr, with every actor ref written as an
 * extension (`[node, path]`) and read back as a live ref of the receiving thread's kernel.
 *
 * Why msgpackr and not structured clone: a ref in memory points at its actor's cell (the whole
 * actor graph), so structured clone would need a walk over every message to swap refs for
 * addresses before posting and back after; msgpackr does that swap during the one encoding
 * pass. Measured in benchmarks/thread-messaging.ts (`codec` figures): for a batch of small
 * messages, msgpackr encode+decode plus posting one Uint8Array beat structured clone of the
 * same batch with the ref walk; see docs/performance.md.
 */
import { addExtension, Packr } from 'msgpackr';
import type { ActorAddress, ActorRef } from './actor-ref.ts';
import { LocalActorRef } from './local-actor-ref.ts';
import { PromiseRef } from './promise-ref.ts';
import { RemoteActorRef } from './remote-actor-ref.ts';

export interface RefResolver {
  resolve<TMsg>(address: ActorAddress): ActorRef<TMsg>;
}

const refExtensionType = 0x43;

/**
 * msgpackr's extensions are process-wide, so the kernel that turns addresses back into refs is
 * set for the duration of each (synchronous) decode call.
 */
let decodingWith: RefResolver | undefined;

function readRef(value: unknown): ActorRef<unknown> | ActorAddress {
  const [node, path] = value as [string, string];
  const address = { node: String(node), path: String(path) };
  return decodingWith === undefined ? address : decodingWith.resolve(address);
}

for (const Class of [LocalActorRef, RemoteActorRef, PromiseRef]) {
  addExtension({
    Class,
    type: refExtensionType,
    write: (ref: ActorRef<unknown>) => [ref.node, ref.path],
    read: readRef,
  });
}

export class MessageCodec {
  readonly #packr = new Packr({ useRecords: false, moreTypes: true });
  readonly #resolver: RefResolver;

  constructor(resolver: RefResolver) {
    this.#resolver = resolver;
  }

  /** A standalone copy (msgpackr reuses its buffer between calls). */
  encode(value: unknown): Uint8Array {
    return Uint8Array.prototype.slice.call(this.#packr.pack(value));
  }

  /**
   * A view of msgpackr's own buffer, valid only until the next encode: for a caller that copies
   * it at once (into a frame), saving the copy `encode` makes.
   */
  encodeTransient(value: unknown): Uint8Array {
    return this.#packr.pack(value);
  }

  decode(bytes: Uint8Array): unknown {
    const previous = decodingWith;
    decodingWith = this.#resolver;
    try {
      return this.#packr.unpack(bytes);
    } finally {
      decodingWith = previous;
    }
  }
}
