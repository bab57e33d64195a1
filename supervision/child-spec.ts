/**
 * OTP child specifications and supervisor flags, word for word, validated on the way in.
 */

import type { ShutdownSpec } from '../runtime/actor-context.ts';
import type { Behavior } from '../runtime/behavior.ts';
import { InvalidRequestError } from '../runtime/errors.ts';
import {
  defaultMailboxOptions,
  type MailboxOptions,
  resolveMailboxOptions,
} from '../runtime/mailbox-options.ts';

/** permanent: always restarted; transient: restarted only after a failure; temporary: never. */
export type RestartType = 'permanent' | 'transient' | 'temporary';
export type ChildType = 'worker' | 'supervisor';
export type RestartStrategyName = 'one_for_one' | 'one_for_all' | 'rest_for_one';

export interface ChildSpec<TMsg = never> {
  /** Unique within the supervisor; also the child's actor name. */
  id: string;
  /** The child's behavior, or a function returning it (called on every start). */
  start: Behavior<TMsg> | (() => Behavior<TMsg>);
  /** Default `permanent`. */
  restart?: RestartType;
  /** Default 5000 ms for a worker, `infinity` for a supervisor. */
  shutdown?: ShutdownSpec;
  /** Default `worker`. */
  type?: ChildType;
  mailbox?: Partial<MailboxOptions>;
  /**
   * Where the child runs: `'main'` (this thread, the default) or a worker-thread dispatcher such
   * as `'worker'`. Off this thread `start` must give a behavior made with `defineBehavior`
   * (optionally wrapped in `Behaviors.supervise`), and a start function runs in the supervisor.
   */
  dispatcher?: string;
}

export interface SupervisorFlags {
  /** Default `one_for_one`. */
  strategy?: RestartStrategyName;
  /** Most restarts allowed within `period`; default 1 (OTP's default). */
  intensity?: number;
  /** Seconds; default 5. */
  period?: number;
}

export interface NormalizedChildSpec {
  readonly id: string;
  readonly start: () => Behavior<unknown>;
  readonly restart: RestartType;
  readonly shutdown: ShutdownSpec;
  readonly type: ChildType;
  readonly mailbox: Partial<MailboxOptions> | undefined;
  /** Undefined for this thread. */
  readonly dispatcher: string | undefined;
}

export interface NormalizedFlags {
  readonly strategy: RestartStrategyName;
  readonly intensity: number;
  readonly period: number;
}

const idPattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const dispatcherPattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const restartTypes: readonly RestartType[] = ['permanent', 'transient', 'temporary'];
const childTypes: readonly ChildType[] = ['worker', 'supervisor'];
const strategies: readonly RestartStrategyName[] = ['one_for_one', 'one_for_all', 'rest_for_one'];

export function normalizeChildSpec(spec: ChildSpec<unknown>): NormalizedChildSpec {
  if (typeof spec !== 'object' || spec === null)
    throw new InvalidRequestError('a child spec must be an object');
  if (typeof spec.id !== 'string' || !idPattern.test(spec.id)) {
    throw new InvalidRequestError(
      `invalid child id '${String(spec.id)}': use 1-128 letters, digits, '-', '_' or '.' (it becomes the actor name)`,
    );
  }
  const restart = spec.restart ?? 'permanent';
  if (!restartTypes.includes(restart)) {
    throw new InvalidRequestError(
      `child '${spec.id}': restart must be one of ${restartTypes.join(', ')}, got '${String(restart)}'`,
    );
  }
  const type = spec.type ?? 'worker';
  if (!childTypes.includes(type)) {
    throw new InvalidRequestError(
      `child '${spec.id}': type must be 'worker' or 'supervisor', got '${String(type)}'`,
    );
  }
  const shutdown = spec.shutdown ?? (type === 'supervisor' ? 'infinity' : 5000);
  if (
    !(
      shutdown === 'brutal_kill' ||
      shutdown === 'infinity' ||
      (typeof shutdown === 'number' && shutdown >= 0 && Number.isFinite(shutdown))
    )
  ) {
    throw new InvalidRequestError(
      `child '${spec.id}': shutdown must be milliseconds >= 0, 'brutal_kill' or 'infinity', got '${String(shutdown)}'`,
    );
  }
  const start = spec.start;
  if (typeof start !== 'function' && (typeof start !== 'object' || start === null || !('tag' in start))) {
    throw new InvalidRequestError(`child '${spec.id}': start must be a behavior or a function returning one`);
  }
  try {
    resolveMailboxOptions(defaultMailboxOptions, spec.mailbox);
  } catch (error) {
    throw new InvalidRequestError(`child '${spec.id}': ${(error as Error).message}`, { cause: error });
  }
  const dispatcher = spec.dispatcher;
  if (dispatcher !== undefined && (typeof dispatcher !== 'string' || !dispatcherPattern.test(dispatcher))) {
    throw new InvalidRequestError(
      `child '${spec.id}': dispatcher must be 'main' or the name of a configured worker dispatcher ` +
        `(1-64 letters, digits, '-', '_' or '.'), got '${String(dispatcher)}'`,
    );
  }
  return {
    id: spec.id,
    start:
      typeof start === 'function' ? (start as () => Behavior<unknown>) : () => start as Behavior<unknown>,
    restart,
    shutdown,
    type,
    mailbox: spec.mailbox,
    dispatcher: dispatcher === 'main' ? undefined : dispatcher,
  };
}

export function normalizeFlags(flags: SupervisorFlags = {}): NormalizedFlags {
  const strategy = flags.strategy ?? 'one_for_one';
  if (!strategies.includes(strategy)) {
    throw new InvalidRequestError(
      `supervisor strategy must be one of ${strategies.join(', ')}, got '${String(strategy)}'`,
    );
  }
  const intensity = flags.intensity ?? 1;
  if (!Number.isInteger(intensity) || intensity < 0) {
    throw new InvalidRequestError(`supervisor intensity must be an integer >= 0, got ${String(intensity)}`);
  }
  const period = flags.period ?? 5;
  if (!(typeof period === 'number' && period > 0 && Number.isFinite(period))) {
    throw new InvalidRequestError(
      `supervisor period must be a positive number of seconds, got ${String(period)}`,
    );
  }
  return { strategy, intensity, period };
}
