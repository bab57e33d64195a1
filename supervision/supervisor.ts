/**
 * The OTP supervisor as an actor behavior. It starts its children in order, watches them, and
 * restarts them by its strategy; more than `intensity` restarts within `period` seconds make it
 * fail with `MaxRestartIntensityError`, which stops its children (in reverse order, each within
 * its `shutdown`) and escalates to its own parent.
 *
 * Stopping children takes time (each may have a PostStop to finish), so the supervisor runs one
 * operation at a time: a restart or an API request waits until the previous one has finished,
 * exactly as an OTP supervisor's single process does.
 */
import type { ActorContext } from '../runtime/actor-context.ts';
import type { ActorAddress, ActorRef } from '../runtime/actor-ref.ts';
import { type Behavior, Behaviors } from '../runtime/behavior.ts';
import {
  ChildStartError,
  type CloudlessError,
  type ErrorCode,
  InvalidRequestError,
  MaxRestartIntensityError,
  NotFoundError,
  toError,
  UnavailableError,
} from '../runtime/errors.ts';
import type { Signal } from '../runtime/signals.ts';
import { failureOf, setChildStopOrder } from '../runtime/supervision-hooks.ts';
import {
  type ChildSpec,
  type ChildType,
  type NormalizedChildSpec,
  type NormalizedFlags,
  normalizeChildSpec,
  normalizeFlags,
  type SupervisorFlags,
} from './child-spec.ts';

export type SupervisorReply<TValue> =
  | { readonly ok: true; readonly value: TValue }
  | { readonly ok: false; readonly error: { readonly code: ErrorCode; readonly message: string } };

export interface ChildInfo {
  readonly id: string;
  /** The running child, or undefined when it is not running. */
  readonly ref: ActorAddress | undefined;
  readonly status: 'running' | 'restarting' | 'undefined';
  readonly type: ChildType;
}

export interface ChildCounts {
  readonly specs: number;
  readonly active: number;
  readonly supervisors: number;
  readonly workers: number;
}

export type SupervisorCommand =
  | {
      readonly type: 'StartChild';
      readonly spec: ChildSpec<unknown>;
      readonly replyTo: ActorRef<SupervisorReply<ActorRef<never>>>;
    }
  | {
      readonly type: 'RestartChild';
      readonly id: string;
      readonly replyTo: ActorRef<SupervisorReply<ActorRef<never>>>;
    }
  | {
      readonly type: 'TerminateChild';
      readonly id: string;
      readonly replyTo: ActorRef<SupervisorReply<null>>;
    }
  | { readonly type: 'DeleteChild'; readonly id: string; readonly replyTo: ActorRef<SupervisorReply<null>> }
  | { readonly type: 'WhichChildren'; readonly replyTo: ActorRef<SupervisorReply<ChildInfo[]>> }
  | { readonly type: 'CountChildren'; readonly replyTo: ActorRef<SupervisorReply<ChildCounts>> };

export interface SupervisorInit {
  flags?: SupervisorFlags;
  children?: ChildSpec<unknown>[];
  /** Most API requests held while an operation is in progress; default 10,000. */
  maxPendingRequests?: number;
}

interface Child {
  readonly spec: NormalizedChildSpec;
  ref: ActorRef<never> | undefined;
  restarting: boolean;
}

/** A child that failed to start: the error, and its failed incarnation (if one was spawned). */
interface StartFailure {
  readonly error: Error;
  readonly failed: ActorRef<never> | undefined;
}

type Operation = (done: () => void) => void;

const ok = <TValue>(value: TValue): SupervisorReply<TValue> => ({ ok: true, value });
const failed = (error: CloudlessError): Extract<SupervisorReply<never>, { ok: false }> => ({
  ok: false,
  error: error.toJSON(),
});

export function supervisor(init: SupervisorInit = {}): Behavior<SupervisorCommand> {
  const flags = normalizeFlags(init.flags);
  const initialSpecs = (init.children ?? []).map(normalizeChildSpec);
  const ids = new Set<string>();
  for (const spec of initialSpecs) {
    if (ids.has(spec.id)) throw new InvalidRequestError(`duplicate child id '${spec.id}' in supervisor spec`);
    ids.add(spec.id);
  }
  const maxPending = init.maxPendingRequests ?? 10_000;
  return Behaviors.setup<SupervisorCommand>((ctx) =>
    new SupervisorState(ctx, flags, maxPending).start(initialSpecs),
  );
}

class SupervisorState {
  readonly #ctx: ActorContext<SupervisorCommand>;
  readonly #flags: NormalizedFlags;
  readonly #maxPending: number;
  readonly #children: Child[] = [];
  readonly #byRef = new Map<ActorRef<never>, Child>();
  #restartTimes: number[] = [];
  readonly #operations: Operation[] = [];
  #busy = false;
  /** The child whose termination the current operation waits for. */
  #awaiting: { ref: ActorRef<never>; next: () => void } | undefined;
  /**
   * Failed restarts to try again, keyed by the failed incarnation: the retry waits until that
   * incarnation is gone, so its name is free again (OTP's try_again_restart).
   */
  readonly #retries = new Map<ActorRef<never>, () => void>();

  constructor(ctx: ActorContext<SupervisorCommand>, flags: NormalizedFlags, maxPending: number) {
    this.#ctx = ctx;
    this.#flags = flags;
    this.#maxPending = maxPending;
    setChildStopOrder(ctx as ActorContext<never>, () => this.#runningRefs().reverse());
  }

  start(specs: NormalizedChildSpec[]): Behavior<SupervisorCommand> {
    for (const spec of specs) {
      const child: Child = { spec, ref: undefined, restarting: false };
      this.#children.push(child);
      const failure = this.#startChild(child);
      // Throwing here fails the supervisor's start; the kernel stops the children already
      // started, in reverse order, and the parent sees ChildFailed (OTP's failed_to_start_child).
      if (failure !== undefined) {
        throw new ChildStartError(this.#ctx.self.path, spec.id, { cause: failure.error });
      }
    }
    return Behaviors.receive<SupervisorCommand>((_ctx, command) => {
      this.#onCommand(command);
      return Behaviors.same;
    }).receiveSignal((_ctx, signal) => {
      this.#onSignal(signal);
      return Behaviors.same;
    });
  }

  // ---------------------------------------------------------------- operations

  #enqueue(operation: Operation): void {
    this.#operations.push(operation);
    this.#pump();
  }

  #pump(): void {
    while (!this.#busy && this.#operations.length > 0) {
      const operation = this.#operations.shift() as Operation;
      this.#busy = true;
      let synchronous = true;
      operation(() => {
        this.#busy = false;
        if (!synchronous) this.#pump();
      });
      synchronous = false;
    }
  }

  /** Stops the given children one at a time, in the order given, then calls `done`. */
  #terminate(children: Child[], done: () => void): void {
    const queue = [...children];
    const step = (): void => {
      for (let child = queue.shift(); child !== undefined; child = queue.shift()) {
        const ref = child.ref;
        if (ref === undefined) continue;
        this.#awaiting = { ref, next: step };
        this.#ctx.stop(ref);
        return;
      }
      done();
    };
    step();
  }

  /** Spawns the child; returns why, if it failed during its start. */
  #startChild(child: Child): StartFailure | undefined {
    const start = child.spec.start;
    const dispatcher = child.spec.dispatcher;
    let ref: ActorRef<never>;
    try {
      // `start()` runs inside the child's setup, so a start function that throws is a failed
      // start of that child like a setup that throws, with an incarnation to wait for. A child
      // on a worker thread cannot be wrapped (only its registered behavior crosses the thread):
      // its start function runs here, and a throw is a refused spawn.
      ref = this.#ctx.spawn(dispatcher === undefined ? Behaviors.setup(() => start()) : start(), {
        name: child.spec.id,
        shutdown: child.spec.shutdown,
        mailbox: child.spec.mailbox,
        dispatcher,
      }) as ActorRef<never>;
    } catch (error) {
      return { error: toError(error), failed: undefined };
    }
    const error = failureOf(ref);
    if (error !== undefined) return { error, failed: ref };
    child.ref = ref;
    child.restarting = false;
    this.#byRef.set(ref, child);
    this.#ctx.watch(ref);
    return undefined;
  }

  #runningRefs(): ActorRef<never>[] {
    const refs: ActorRef<never>[] = [];
    for (const child of this.#children) if (child.ref !== undefined) refs.push(child.ref);
    return refs;
  }

  // ---------------------------------------------------------------- exits and restarts

  #onSignal(signal: Signal): void {
    if (signal.type !== 'Terminated' && signal.type !== 'ChildFailed') return;
    const retry = this.#retries.get(signal.ref);
    if (retry !== undefined) {
      this.#retries.delete(signal.ref);
      retry();
      return;
    }
    const child = this.#byRef.get(signal.ref);
    if (child === undefined) return;
    this.#byRef.delete(signal.ref);
    child.ref = undefined;
    if (this.#awaiting?.ref === signal.ref) {
      const next = this.#awaiting.next;
      this.#awaiting = undefined;
      next();
      return;
    }
    const abnormal = signal.type === 'ChildFailed';
    const reason = abnormal ? signal.error : undefined;
    if (child.spec.restart === 'temporary') {
      this.#remove(child);
      return;
    }
    if (child.spec.restart === 'transient' && !abnormal) return;
    child.restarting = true;
    this.#enqueue((done) => this.#restartAfterExit(child, reason, done));
  }

  #restartAfterExit(child: Child, reason: Error | undefined, done: () => void): void {
    // The child may have been deleted or restarted by an API request queued before this.
    if (!this.#children.includes(child) || child.ref !== undefined) {
      child.restarting = false;
      done();
      return;
    }
    this.#recordRestart(child, reason);
    const index = this.#children.indexOf(child);
    const affected =
      this.#flags.strategy === 'one_for_one'
        ? [child]
        : this.#flags.strategy === 'one_for_all'
          ? [...this.#children]
          : this.#children.slice(index);
    const others = affected.filter((c) => c !== child);
    for (const other of others) if (other.ref !== undefined) other.restarting = true;
    this.#terminate([...others].reverse(), () => {
      for (const c of affected) {
        if (c.spec.restart === 'temporary' && c !== child) {
          this.#remove(c);
          continue;
        }
        if (!this.#children.includes(c)) continue;
        const failure = this.#startChild(c);
        if (failure !== undefined) {
          this.#tryAgainLater(c, failure);
          break;
        }
      }
      done();
    });
  }

  /**
   * A child that fails to start during a restart is restarted again, and that counts as another
   * restart (OTP's try_again_restart), so a child that always fails escalates instead of looping.
   * The retry waits until the failed incarnation has terminated: until then its name is taken.
   */
  #tryAgainLater(child: Child, failure: StartFailure): void {
    child.restarting = true;
    this.#ctx.log.error(`child '${child.spec.id}' failed to restart: ${failure.error.message}`);
    const retry: Operation = (done) => this.#restartAfterExit(child, failure.error, done);
    if (failure.failed === undefined) {
      // Nothing to wait for (the spawn itself was refused): try again next.
      this.#operations.unshift(retry);
      return;
    }
    this.#retries.set(failure.failed, () => this.#enqueue(retry));
    this.#ctx.watch(failure.failed);
  }

  /** Throws (failing the supervisor, which escalates) once intensity is exceeded. */
  #recordRestart(child: Child, reason: Error | undefined): void {
    const now = this.#ctx.system.clock.now();
    const windowMs = this.#flags.period * 1000;
    this.#restartTimes = this.#restartTimes.filter((t) => now - t < windowMs);
    this.#restartTimes.push(now);
    if (this.#restartTimes.length > this.#flags.intensity) {
      throw new MaxRestartIntensityError(this.#ctx.self.path, this.#flags.intensity, this.#flags.period, {
        cause: reason,
      });
    }
    this.#ctx.log.info(`restarting child '${child.spec.id}'`, { reason: reason?.message ?? 'normal exit' });
  }

  #remove(child: Child): void {
    const index = this.#children.indexOf(child);
    if (index >= 0) this.#children.splice(index, 1);
  }

  // ---------------------------------------------------------------- the API

  #onCommand(command: SupervisorCommand): void {
    if (this.#operations.length >= this.#maxPending) {
      command.replyTo.tell(
        failed(
          new UnavailableError(
            `supervisor ${this.#ctx.self.path} has ${this.#maxPending} requests waiting; retry later`,
          ),
        ),
      );
      return;
    }
    switch (command.type) {
      case 'StartChild':
        this.#enqueue((done) => {
          command.replyTo.tell(this.#apiStartChild(command.spec));
          done();
        });
        return;
      case 'RestartChild':
        this.#enqueue((done) => {
          command.replyTo.tell(this.#apiRestartChild(command.id));
          done();
        });
        return;
      case 'TerminateChild':
        this.#enqueue((done) => {
          const child = this.#find(command.id);
          if (child === undefined) {
            command.replyTo.tell(failed(this.#notFound(command.id)));
            done();
            return;
          }
          this.#terminate([child], () => {
            if (child.spec.restart === 'temporary') this.#remove(child);
            command.replyTo.tell(ok(null));
            done();
          });
        });
        return;
      case 'DeleteChild':
        this.#enqueue((done) => {
          const child = this.#find(command.id);
          if (child === undefined) command.replyTo.tell(failed(this.#notFound(command.id)));
          else if (child.ref !== undefined) command.replyTo.tell(failed(this.#running(command.id)));
          else {
            this.#remove(child);
            command.replyTo.tell(ok(null));
          }
          done();
        });
        return;
      case 'WhichChildren':
        command.replyTo.tell(ok(this.#which()));
        return;
      case 'CountChildren': {
        let active = 0;
        let supervisors = 0;
        for (const child of this.#children) {
          if (child.ref !== undefined) active++;
          if (child.spec.type === 'supervisor') supervisors++;
        }
        command.replyTo.tell(
          ok({
            specs: this.#children.length,
            active,
            supervisors,
            workers: this.#children.length - supervisors,
          }),
        );
        return;
      }
      default:
        this.#ctx.log.warn(
          `ignoring unknown supervisor command '${String((command as { type?: unknown }).type)}'`,
        );
    }
  }

  #apiStartChild(raw: ChildSpec<unknown>): SupervisorReply<ActorRef<never>> {
    let spec: NormalizedChildSpec;
    try {
      spec = normalizeChildSpec(raw);
    } catch (error) {
      return failed(error as CloudlessError);
    }
    const existing = this.#find(spec.id);
    if (existing !== undefined) {
      return failed(
        new InvalidRequestError(
          existing.ref !== undefined
            ? `child '${spec.id}' is already started as ${existing.ref.path}`
            : `child '${spec.id}' is already present (not running); use restartChild or deleteChild`,
        ),
      );
    }
    const child: Child = { spec, ref: undefined, restarting: false };
    const failure = this.#startChild(child);
    if (failure !== undefined) {
      return failed(new ChildStartError(this.#ctx.self.path, spec.id, { cause: failure.error }));
    }
    this.#children.push(child);
    return ok(child.ref as ActorRef<never>);
  }

  #apiRestartChild(id: string): SupervisorReply<ActorRef<never>> {
    const child = this.#find(id);
    if (child === undefined) return failed(this.#notFound(id));
    if (child.ref !== undefined) return failed(this.#running(id));
    const failure = this.#startChild(child);
    if (failure !== undefined) {
      return failed(new ChildStartError(this.#ctx.self.path, id, { cause: failure.error }));
    }
    return ok(child.ref as unknown as ActorRef<never>);
  }

  #which(): ChildInfo[] {
    return this.#children.map((child) => ({
      id: child.spec.id,
      ref: child.ref === undefined ? undefined : { node: child.ref.node, path: child.ref.path },
      status: child.ref !== undefined ? 'running' : child.restarting ? 'restarting' : 'undefined',
      type: child.spec.type,
    }));
  }

  #find(id: string): Child | undefined {
    return this.#children.find((child) => child.spec.id === id);
  }

  #notFound(id: string): NotFoundError {
    return new NotFoundError(`supervisor ${this.#ctx.self.path} has no child '${id}'`);
  }

  #running(id: string): InvalidRequestError {
    return new InvalidRequestError(`child '${id}' of ${this.#ctx.self.path} is running; terminate it first`);
  }
}
