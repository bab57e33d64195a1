import { InvalidRequestError } from '../../runtime/errors.ts';
import type { InstallSnapshot, NodeId } from './raft-types.ts';

/**
 * InstallSnapshot in pieces. A snapshot can be far larger than one mesh frame (4 MiB by default),
 * so the shell sends it as chunks in order over the one stream it has to that follower, and the
 * follower's shell puts them back together before the core sees one whole `install-snapshot`.
 * The core stays unaware: it resends the whole snapshot if no answer comes, which restarts the
 * assembly.
 */
export interface RaftSnapshotChunk {
  readonly type: 'raft-snapshot-chunk';
  /** `message.from`, where the transport checks it (see `RaftPeerMessage`). */
  readonly from: NodeId;
  /** The message the chunks make up, without its data. */
  readonly message: Omit<InstallSnapshot, 'data'>;
  readonly offset: number;
  readonly total: number;
  readonly bytes: Uint8Array;
}

/** Splits `message` (with its data) into chunks of at most `chunkBytes`. */
export function chunkSnapshot(
  message: InstallSnapshot & { data: Uint8Array },
  chunkBytes: number,
): RaftSnapshotChunk[] {
  const { data, ...rest } = message;
  const chunks: RaftSnapshotChunk[] = [];
  for (let offset = 0; offset < data.length || offset === 0; offset += chunkBytes) {
    chunks.push({
      type: 'raft-snapshot-chunk',
      from: rest.from,
      message: rest,
      offset,
      total: data.length,
      bytes: data.subarray(offset, Math.min(offset + chunkBytes, data.length)),
    });
    if (data.length === 0) break;
  }
  return chunks;
}

interface Assembly {
  readonly key: string;
  readonly buffer: Uint8Array;
  received: number;
}

/** Reassembles chunks, at most one snapshot per sender at a time and none over `maxBytes`. */
export class SnapshotAssembler {
  readonly #maxBytes: number;
  readonly #assemblies = new Map<NodeId, Assembly>();

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /**
   * Takes one chunk; returns the whole message when it was the last one. A chunk that does not
   * continue the assembly in progress from its sender drops that assembly (the leader will send
   * the snapshot again); a malformed or oversized one throws `InvalidRequestError`.
   */
  add(chunk: RaftSnapshotChunk): InstallSnapshot | undefined {
    const { message, offset, total, bytes } = chunk;
    if (!(bytes instanceof Uint8Array) || !Number.isSafeInteger(offset) || !Number.isSafeInteger(total)) {
      throw new InvalidRequestError(`snapshot chunk from ${message.from} is malformed`);
    }
    if (total > this.#maxBytes) {
      throw new InvalidRequestError(
        `snapshot of ${total} bytes from ${message.from} is over the ${this.#maxBytes}-byte limit; raise maxSnapshotBytes`,
      );
    }
    const key = `${message.term}:${message.snapshot.index}:${total}`;
    let assembly = this.#assemblies.get(message.from);
    if (offset === 0) {
      assembly = { key, buffer: new Uint8Array(total), received: 0 };
      this.#assemblies.set(message.from, assembly);
    }
    if (
      assembly === undefined ||
      assembly.key !== key ||
      assembly.received !== offset ||
      offset + bytes.length > total
    ) {
      this.#assemblies.delete(message.from);
      return undefined;
    }
    assembly.buffer.set(bytes, offset);
    assembly.received += bytes.length;
    if (assembly.received < total) return undefined;
    this.#assemblies.delete(message.from);
    return { ...message, data: assembly.buffer };
  }

  /** Snapshots being assembled (for status and tests). */
  get inProgress(): number {
    return this.#assemblies.size;
  }
}
