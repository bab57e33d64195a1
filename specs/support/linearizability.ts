/**
 * A linearizability checker for recorded client histories (test tooling): Wing & Gong's search
 * with Lowe's improvements as Porcupine implements them. The history is split into independent
 * partitions by the model (per key for a key-value store: linearizability is local, Herlihy &
 * Wing), and each partition is searched over a doubly linked list of call and return events:
 * linearize a pending call whose step the model accepts, lift it out of the list, and backtrack
 * when a return is reached whose operation could not be placed. (linearized set, model state)
 * pairs already explored are memoised, so each is searched once.
 *
 * Timing: an operation is concurrent with every operation whose interval overlaps its own; equal
 * times count as overlapping (a call at time t is placed before a return at time t). An
 * operation with `return: undefined` or an `{ type: 'unknown' }` (or absent) output timed out:
 * its return is +infinity and the model accepts any outcome, so it may take effect at any point
 * after its call or never (placing it after everything else is the same as never).
 *
 * The work is bounded by `timeoutMs`: past it the answer is `{ ok: 'unknown' }`, never a hang.
 */
import { InvalidRequestError } from '../../runtime/errors.ts';

/** One client operation as recorded. */
export interface Operation<TInput, TOutput> {
  readonly clientId: string | number;
  readonly input: TInput;
  /** Absent or `{ type: 'unknown' }` when the client never learnt the outcome. */
  readonly output?: TOutput | { readonly type: 'unknown' };
  /** When the call was sent (any monotonic clock, same for every client). */
  readonly call: number;
  /** When the response arrived; undefined for a timed-out operation. */
  readonly return: number | undefined;
}

/**
 * A sequential specification. `step` returns the state after `input`, or undefined when `output`
 * is not what the object could answer from `state`. `output` undefined means the outcome is
 * unknown: apply the input and accept. States must be treated as immutable.
 */
export interface Model<TState, TInput, TOutput> {
  readonly init: () => TState;
  readonly step: (state: TState, input: TInput, output: TOutput | undefined) => TState | undefined;
  /** Equal states must give equal keys (used to memoise visited configurations). */
  readonly stateKey: (state: TState) => string;
  /** Independent sub-histories by name (e.g. per key); the whole history as one when absent. */
  readonly partition?: (
    history: readonly Operation<TInput, TOutput>[],
  ) => ReadonlyMap<string, readonly Operation<TInput, TOutput>[]>;
  /** A short human description of an operation's input and output, for failure reports. */
  readonly describe?: (input: TInput, output: TOutput | undefined) => string;
}

export interface CheckOptions {
  /** Bound on the whole check; past it the result is `{ ok: 'unknown' }`. Default 10 000. */
  readonly timeoutMs?: number;
}

/** Why a partition is not linearizable, from the deepest point the search reached. */
export interface LinearizabilityViolation<TInput, TOutput> {
  readonly ok: false;
  /** The partition (key) that failed. */
  readonly key: string;
  /** The longest order of operations the model accepted before the search got stuck. */
  readonly longestLinearization: readonly Operation<TInput, TOutput>[];
  /**
   * The operation whose return was reached without it being placeable after
   * `longestLinearization` — the point the search could not get past.
   */
  readonly blockedBy: Operation<TInput, TOutput>;
  /**
   * Operations called before `blockedBy` returned and not in `longestLinearization`: none of them
   * could be ordered next (includes `blockedBy`).
   */
  readonly unordered: readonly Operation<TInput, TOutput>[];
  /** Human-readable summary naming the operations. */
  readonly description: string;
}

export type LinearizabilityResult<TInput, TOutput> =
  | { readonly ok: true }
  | LinearizabilityViolation<TInput, TOutput>
  | { readonly ok: 'unknown'; readonly reason: 'timeout' };

/** Is the outcome of `op` unknown to its client? */
export function timedOut(op: Operation<unknown, unknown>): boolean {
  return op.return === undefined || knownOutput(op) === undefined;
}

function knownOutput<TInput, TOutput>(op: Operation<TInput, TOutput>): TOutput | undefined {
  const output = op.output;
  if (output === undefined) return undefined;
  if (typeof output === 'object' && output !== null && (output as { type?: unknown }).type === 'unknown') {
    return undefined;
  }
  return output as TOutput;
}

/**
 * Checks `history` against `model`. Partitions are checked one after another under one deadline;
 * a violation in any partition is the answer, else a timeout in any is `unknown`.
 */
export function checkLinearizable<TState, TInput, TOutput>(
  history: readonly Operation<TInput, TOutput>[],
  model: Model<TState, TInput, TOutput>,
  options: CheckOptions = {},
): LinearizabilityResult<TInput, TOutput> {
  const deadline = performance.now() + (options.timeoutMs ?? 10_000);
  const partitions = model.partition?.(history) ?? new Map([['', history]]);
  let timedOutAny = false;
  for (const [key, ops] of partitions) {
    const result = checkPartition(key, ops, model, deadline);
    if (result.ok === false) return result;
    if (result.ok === 'unknown') timedOutAny = true;
  }
  return timedOutAny ? { ok: 'unknown', reason: 'timeout' } : { ok: true };
}

/** A call or return event in the search list. */
interface Entry {
  readonly id: number;
  readonly isCall: boolean;
  readonly time: number;
  /** Call entries: their return entry. */
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

function buildList(ops: readonly Operation<unknown, unknown>[]): Entry {
  const events: Entry[] = [];
  ops.forEach((op, id) => {
    const ret: Entry = {
      id,
      isCall: false,
      time: timedOut(op) ? Number.POSITIVE_INFINITY : (op.return as number),
      match: undefined,
      prev: undefined,
      next: undefined,
    };
    events.push({ id, isCall: true, time: op.call, match: ret, prev: undefined, next: undefined }, ret);
  });
  // Calls before returns at equal times (overlap), then by operation id so the order is stable.
  events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.id - b.id);
  const head: Entry = {
    id: -1,
    isCall: false,
    time: Number.NEGATIVE_INFINITY,
    match: undefined,
    prev: undefined,
    next: undefined,
  };
  let last = head;
  for (const event of events) {
    event.prev = last;
    last.next = event;
    last = event;
  }
  return head;
}

/** Removes a call and its return from the list. */
function lift(call: Entry): void {
  const ret = call.match as Entry;
  (call.prev as Entry).next = call.next;
  if (call.next !== undefined) call.next.prev = call.prev;
  (ret.prev as Entry).next = ret.next;
  if (ret.next !== undefined) ret.next.prev = ret.prev;
}

/** Puts a lifted call and its return back, in reverse order of `lift`. */
function unlift(call: Entry): void {
  const ret = call.match as Entry;
  (ret.prev as Entry).next = ret;
  if (ret.next !== undefined) ret.next.prev = ret;
  (call.prev as Entry).next = call;
  if (call.next !== undefined) call.next.prev = call;
}

const deadlineCheckInterval = 1024;

function checkPartition<TState, TInput, TOutput>(
  key: string,
  ops: readonly Operation<TInput, TOutput>[],
  model: Model<TState, TInput, TOutput>,
  deadline: number,
): LinearizabilityResult<TInput, TOutput> {
  for (const op of ops) {
    if (!Number.isFinite(op.call) || (op.return !== undefined && !(op.return >= op.call))) {
      throw new InvalidRequestError(
        `operation of client ${op.clientId} has call ${op.call} and return ${op.return}: call must be finite and not after return`,
      );
    }
  }
  const head = buildList(ops);
  const linearized = new Uint32Array(Math.ceil(ops.length / 32) || 1);
  const seen = new Set<string>();
  const stack: { call: Entry; state: TState }[] = [];
  let state = model.init();
  let entry = head.next;
  let longest: number[] = [];
  let blockedAtLongest = -1;
  let iterations = 0;

  while (entry !== undefined) {
    if (iterations++ % deadlineCheckInterval === 0 && performance.now() >= deadline) {
      return { ok: 'unknown', reason: 'timeout' };
    }
    const op = ops[entry.id] as Operation<TInput, TOutput>;
    if (entry.isCall) {
      const next = model.step(state, op.input, knownOutput(op));
      if (next !== undefined) {
        const word = entry.id >>> 5;
        const bit = 1 << (entry.id & 31);
        linearized[word] = (linearized[word] as number) | bit;
        const configuration = `${linearized.join(',')}|${model.stateKey(next)}`;
        if (!seen.has(configuration)) {
          seen.add(configuration);
          stack.push({ call: entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[word] = (linearized[word] as number) & ~bit;
      }
      entry = entry.next;
      continue;
    }
    // A return: its operation could not be linearized in this branch.
    if (entry.time === Number.POSITIVE_INFINITY) {
      // Only timed-out operations are left; each can go last with an accepted outcome (or never).
      return { ok: true };
    }
    if (blockedAtLongest === -1 || stack.length > longest.length) {
      longest = stack.map((frame) => frame.call.id);
      blockedAtLongest = entry.id;
    }
    const frame = stack.pop();
    if (frame === undefined) {
      return violation(key, ops, model, longest, blockedAtLongest);
    }
    state = frame.state;
    const id = frame.call.id;
    linearized[id >>> 5] = (linearized[id >>> 5] as number) & ~(1 << (id & 31));
    unlift(frame.call);
    entry = frame.call.next;
  }
  return { ok: true };
}

function violation<TState, TInput, TOutput>(
  key: string,
  ops: readonly Operation<TInput, TOutput>[],
  model: Model<TState, TInput, TOutput>,
  longestIds: readonly number[],
  blockedId: number,
): LinearizabilityViolation<TInput, TOutput> {
  const blockedBy = ops[blockedId] as Operation<TInput, TOutput>;
  const placed = new Set(longestIds);
  const blockTime = blockedBy.return as number;
  const unordered = ops.filter((op, id) => !placed.has(id) && op.call <= blockTime);
  const longestLinearization = longestIds.map((id) => ops[id] as Operation<TInput, TOutput>);
  const name = (op: Operation<TInput, TOutput>): string => {
    const what =
      model.describe?.(op.input, knownOutput(op)) ?? JSON.stringify({ input: op.input, output: op.output });
    return `client ${op.clientId} ${what} [${op.call}, ${op.return ?? '∞'}]`;
  };
  const description =
    `partition ${JSON.stringify(key)} is not linearizable: after ` +
    (longestLinearization.length === 0 ? 'no operations' : longestLinearization.map(name).join(' → ')) +
    `, none of [${unordered.map(name).join('; ')}] can be ordered next, and ${name(blockedBy)} has returned`;
  return { ok: false, key, longestLinearization, blockedBy, unordered, description };
}
