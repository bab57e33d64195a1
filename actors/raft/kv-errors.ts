import {
  DataCorruptError,
  InvalidRequestError,
  NotFoundError,
  UnavailableError,
} from '../../runtime/errors.ts';

/**
 * Errors of the replicated key-value store. runtime/errors.ts has a closed set of codes, so each
 * class reuses the code closest to its meaning and adds a stable `reason` that tells the
 * conditions apart; specs match on the class (or `code` + `reason`), never on message text.
 */
export type KvErrorReason =
  | 'invalid-command'
  | 'stale-command'
  | 'compacted'
  | 'snapshot-corrupt'
  | 'too-many-watchers';

/** A command, read or watch request broke a rule (type, size, range). Nothing was changed. */
export class KvInvalidCommandError extends InvalidRequestError {
  readonly reason: KvErrorReason = 'invalid-command';
  constructor(message: string, options?: { cause?: unknown }) {
    super(`kv store: ${message}`, options);
  }
}

/**
 * A command carries a `seq` older than the latest one applied for its client: its result is no
 * longer cached, so it can be neither applied (it would apply twice or out of order) nor answered.
 */
export class KvStaleCommandError extends InvalidRequestError {
  readonly reason: KvErrorReason = 'stale-command';
  readonly clientId: string;
  readonly seq: number;
  readonly latestSeq: number;
  constructor(clientId: string, seq: number, latestSeq: number) {
    super(
      `kv store: command seq ${seq} of client '${clientId}' is stale; seq ${latestSeq} was already ` +
        'applied and only the latest result is kept. Send new commands with a seq above the latest',
    );
    this.clientId = clientId;
    this.seq = seq;
    this.latestSeq = latestSeq;
  }
}

/** A watch or history read asked for events older than the retained history (etcd's ErrCompacted). */
export class KvCompactedError extends NotFoundError {
  readonly reason: KvErrorReason = 'compacted';
  readonly fromRevision: number;
  readonly compactRevision: number;
  constructor(fromRevision: number, compactRevision: number) {
    super(
      `kv store: revision ${fromRevision} has been compacted (history kept from revision ` +
        `${compactRevision + 1}); re-read the current state with range() and watch from its revision + 1`,
    );
    this.fromRevision = fromRevision;
    this.compactRevision = compactRevision;
  }
}

/** Snapshot bytes failed the format, version, checksum or shape check; they must not be used. */
export class KvSnapshotCorruptError extends DataCorruptError {
  readonly reason: KvErrorReason = 'snapshot-corrupt';
  constructor(message: string, options?: { cause?: unknown }) {
    super(`kv store snapshot rejected: ${message}`, options);
  }
}

/** The local watcher registry is full; cancel watches or raise `maxWatchers`. */
export class KvTooManyWatchersError extends UnavailableError {
  readonly reason: KvErrorReason = 'too-many-watchers';
  constructor(limit: number) {
    super(`kv store: ${limit} watches are open, the limit; cancel a watch before opening another`);
  }
}
