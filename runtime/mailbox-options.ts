/**
 * Mailbox settings. Every mailbox is bounded; what happens to a message that does not fit is an
 * explicit choice, and either way the dropped message is published as a dead letter.
 */

/** `drop-newest` rejects the incoming message; `drop-oldest` evicts the head to make room. */
export type OverflowPolicy = 'drop-newest' | 'drop-oldest';

export interface MailboxOptions {
  /** Most user messages queued at once. System messages do not count and are never dropped. */
  capacity: number;
  overflow: OverflowPolicy;
}

export const defaultMailboxOptions: MailboxOptions = Object.freeze({
  capacity: 100_000,
  overflow: 'drop-newest',
});

export function resolveMailboxOptions(
  base: MailboxOptions,
  override?: Partial<MailboxOptions>,
): MailboxOptions {
  if (override === undefined) return base;
  const capacity = override.capacity ?? base.capacity;
  const overflow = override.overflow ?? base.overflow;
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new RangeError(`mailbox capacity must be a positive integer, got ${capacity}`);
  }
  if (overflow !== 'drop-newest' && overflow !== 'drop-oldest') {
    throw new RangeError(
      `mailbox overflow must be 'drop-newest' or 'drop-oldest', got '${String(overflow)}'`,
    );
  }
  if (capacity === base.capacity && overflow === base.overflow) return base;
  return Object.freeze({ capacity, overflow });
}
