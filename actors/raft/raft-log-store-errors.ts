import { DataCorruptError } from '../../runtime/errors.ts';

/**
 * A Raft log store's files fail their checks in a way that cannot be a torn, never-acknowledged
 * tail: a checksum mismatch followed by valid records, a sealed segment that does not parse, a
 * gap between segments or after the snapshot, a snapshot or hard state that does not verify, or a
 * commit index past the log.
 * Acknowledged data may be damaged, so the store refuses to open rather than use or drop it;
 * restore the member from a peer or a backup.
 *
 * `code` is `DATA_CORRUPT`; `reason` (`RAFT_LOG_CORRUPT`) tells it from other corrupt data.
 */
export class RaftLogCorruptError extends DataCorruptError {
  readonly reason = 'RAFT_LOG_CORRUPT';
  readonly file: string;

  constructor(file: string, detail: string, options?: { cause?: unknown }) {
    super(
      `raft log store file ${file} is corrupt: ${detail}; refusing to open so acknowledged data is ` +
        'neither used nor dropped — restore this member from a peer or a backup',
      options,
    );
    this.file = file;
  }
}
