/**
 * The actor cell: one actor's mailbox, current behavior, children, watches and lifecycle. It is
 * also the actor's `ActorContext` (one object per actor keeps idle actors small).
 *
 * Lifecycle: running → (restarting → running)* → terminating → dead, with `suspended` never used
 * as a separate state: a restart waits for its backoff delay inside `restarting`.
 * Stopping stops children one at a time in reverse order of spawn, each bounded by its
 * `shutdown` (OTP), then runs `PostStop`, then tells watchers and the parent.
 */
import type { Logger } from 'winston';
import type { ActorContext, PipeOutcome, ShutdownSpec, SpawnOptions } from './actor-context.ts';
import type { ActorRef } from './actor-ref.ts';
import type { ActorSystem } from './actor-system.ts';
import {
  type Behavior,
  Behaviors,
  BehaviorTag,
  type ReceiveBehavior,
  type SetupBehavior,
  type StashBehavior,
  type StoppedBehavior,
  type SuperviseBehavior,
  type TimersBehavior,
} from './behavior.ts';
import type { TimerHandle } from './clock.ts';
import type { Schedulable } from './dispatcher.ts';
import {
  DeathPactError,
  InvalidBehaviorError,
  InvalidRequestError,
  toError,
  UnavailableError,
} from './errors.ts';
import { DeathNotice, InternalMessage, PipedOutcome, TimerTick } from './internal-messages.ts';
import type { Kernel } from './kernel.ts';
import { LocalActorRef } from './local-actor-ref.ts';
import { type MailboxOptions, resolveMailboxOptions } from './mailbox-options.ts';
import type { RegisteredBehavior } from './registered-behavior.ts';
import { RingBuffer } from './ring-buffer.ts';
import { type ChildFailed, PostStop, PreRestart, type Signal, type Terminated } from './signals.ts';
import { Stash } from './stash.ts';
import type { BackoffStrategy, RestartStrategy } from './supervisor-strategy.ts';
import { Timers } from './timers.ts';

/** How many terminated children an OTP supervisor remembers restart counts of. */
const maxRememberedIncarnations = 256;

const RUNNING = 0;
const RESTARTING = 1;
const TERMINATING = 2;
const DEAD = 3;

const SYS_STOP = 0;
const SYS_CHILD_TERMINATED = 1;
const SYS_RESTART_READY = 2;
const SYS_TERMINATE_AS = 3;
const SYS_FAIL = 4;

type SystemMessage =
  | { readonly kind: typeof SYS_STOP }
  | { readonly kind: typeof SYS_CHILD_TERMINATED; readonly child: ActorCell<unknown> }
  | { readonly kind: typeof SYS_RESTART_READY; readonly generation: number }
  | { readonly kind: typeof SYS_TERMINATE_AS; readonly error: Error | undefined }
  | { readonly kind: typeof SYS_FAIL; readonly error: Error };

const STOP_MESSAGE: SystemMessage = { kind: SYS_STOP };

const namePattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** One `Behaviors.supervise` wrapper in effect, with the restart history its strategy needs. */
interface SupervisionClause {
  readonly wrapper: SuperviseBehavior<unknown>;
  restartTimes: number[];
  backoffAttempt: number;
  lastFailureAt: number;
}

/** Something told when a watched actor terminates; local cells, and later remote watchers. */
export interface DeathWatcher {
  deathNotice(ref: ActorRef<never>, error: Error | undefined, fromChild: boolean): void;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

/** Where a cell sits when it is not a plain child: hosted for another thread, or a worker proxy. */
export interface CellPlacement {
  readonly key?: string;
  readonly parentRef?: ActorRef<never>;
  readonly makeSelf?: (cell: ActorCell<unknown>, node: string, path: string) => LocalActorRef<unknown>;
}

export class ActorCell<TMsg> implements ActorContext<TMsg>, Schedulable, DeathWatcher {
  readonly kernel: Kernel;
  readonly self: LocalActorRef<TMsg>;
  readonly name: string;
  /** The key under which the parent holds this child: its name, or its path for hosted actors. */
  readonly key: string;
  readonly parentCell: ActorCell<unknown> | undefined;
  scheduled = false;
  /** How the parent stops this actor. */
  readonly shutdown: ShutdownSpec;
  /** Called once when this actor is dead (the guardians use it). */
  onDead: (() => void) | undefined;
  /** Children to stop first, in this order (OTP supervisors stop in reverse spec order). */
  childStopOrder: (() => readonly ActorRef<never>[]) | undefined;

  #state = RUNNING;
  /** The real parent of an actor hosted for another thread (its local parent is the host guardian). */
  readonly #parentRef: ActorRef<never> | undefined;
  #mailboxOptions: MailboxOptions;
  #mailbox: RingBuffer<unknown> | undefined;
  /** User messages in the mailbox; kernel items do not count against its capacity. */
  #userQueued = 0;
  #system: SystemMessage[] | undefined;
  #behavior: ReceiveBehavior<TMsg> | undefined;
  #children: Map<string, ActorCell<unknown>> | undefined;
  #watchers: Set<DeathWatcher> | undefined;
  /** Watched refs, each with the message `watchWith` gave (undefined means a signal). */
  #watching: Map<ActorRef<never>, TMsg | undefined> | undefined;
  #clauses: SupervisionClause[] | undefined;
  #timers: Timers<TMsg> | undefined;
  #stashes: Stash<TMsg>[] | undefined;
  #log: Logger | undefined;
  /** Why the actor is stopping: its failure, or undefined for a normal stop. */
  #failure: Error | undefined;
  #postStopCallback: (() => void) | undefined;
  /** Set while stopping children one by one (for a stop or a restart). */
  #stopQueue: ActorCell<unknown>[] | undefined;
  #stoppingChild: ActorCell<unknown> | undefined;
  #afterChildren: (() => void) | undefined;
  /** The parent's deadline for this actor's graceful stop. */
  #killTimer: TimerHandle | undefined;
  #restart:
    | { clause: SupervisionClause; delayDone: boolean; generation: number; timer?: TimerHandle }
    | undefined;
  #restartGeneration = 0;
  /**
   * Restarts so far, for introspection (`cloudless status --tree`): by this actor's own strategy,
   * plus those of the earlier incarnations an OTP supervisor replaced (see `#incarnations`).
   */
  #restartCount = 0;
  /**
   * Only in OTP supervisors (cells with `childStopOrder`): the restart count a terminated child
   * had, plus one, keyed by child name, so the incarnation the supervisor starts in its place
   * continues the count. Bounded: the oldest entry goes first.
   */
  #incarnations: Map<string, number> | undefined;

  constructor(
    kernel: Kernel,
    parent: ActorCell<unknown> | undefined,
    name: string,
    path: string,
    mailbox: MailboxOptions,
    shutdown: ShutdownSpec,
    placement?: CellPlacement,
  ) {
    this.kernel = kernel;
    this.parentCell = parent;
    this.name = name;
    this.key = placement?.key ?? name;
    this.#mailboxOptions = mailbox;
    this.shutdown = shutdown;
    this.#parentRef = placement?.parentRef;
    this.self =
      placement?.makeSelf === undefined
        ? new LocalActorRef(this, kernel.nodeId, path)
        : (placement.makeSelf(this as ActorCell<unknown>, kernel.nodeId, path) as LocalActorRef<TMsg>);
  }

  // ---------------------------------------------------------------- ActorContext

  get system(): ActorSystem {
    return this.kernel.system;
  }

  get parent(): ActorRef<never> | undefined {
    return this.#parentRef ?? (this.parentCell?.self as ActorRef<never> | undefined);
  }

  get log(): Logger {
    if (this.#log === undefined) this.#log = this.kernel.logger.child({ actor: this.self.path });
    return this.#log;
  }

  get isAlive(): boolean {
    return this.#state !== DEAD;
  }

  get isTerminating(): boolean {
    return this.#state >= TERMINATING;
  }

  get mailboxSize(): number {
    return this.#mailbox?.length ?? 0;
  }

  /** Restarts of this actor (and of the incarnations it replaced under an OTP supervisor). */
  get restartCount(): number {
    return this.#restartCount;
  }

  /** Where the actor is in its lifecycle, for introspection. */
  get lifecycle(): 'running' | 'restarting' | 'terminating' | 'dead' {
    switch (this.#state) {
      case RUNNING:
        return 'running';
      case RESTARTING:
        return 'restarting';
      case TERMINATING:
        return 'terminating';
      default:
        return 'dead';
    }
  }

  /** The live child cells, in spawn order; a fresh array, so callers cannot change the cell's map. */
  childCells(): ActorCell<unknown>[] {
    return this.#children === undefined ? [] : [...this.#children.values()];
  }

  spawn<TChild>(behavior: Behavior<TChild>, options?: SpawnOptions): ActorRef<TChild> {
    if (this.#state >= TERMINATING) {
      throw new UnavailableError(`cannot spawn a child of ${this.self.path}: it is stopping`);
    }
    let name = options?.name;
    if (name === undefined) {
      name = this.kernel.nextAnonymousName();
    } else if (typeof name !== 'string' || !namePattern.test(name)) {
      throw new InvalidRequestError(
        `invalid actor name '${String(name)}': use 1-128 letters, digits, '-', '_' or '.', not starting with '-' or '.'`,
      );
    }
    const children = this.#children ?? new Map<string, ActorCell<unknown>>();
    if (children.has(name)) {
      throw new InvalidRequestError(
        `actor name '${name}' is already taken under ${this.self.path}; names are unique among live siblings`,
      );
    }
    const shutdown = options?.shutdown ?? 5000;
    if (
      !(
        shutdown === 'brutal_kill' ||
        shutdown === 'infinity' ||
        (typeof shutdown === 'number' && shutdown >= 0)
      )
    ) {
      throw new InvalidRequestError(
        `invalid shutdown '${String(shutdown)}': use milliseconds, 'brutal_kill' or 'infinity'`,
      );
    }
    let mailbox: MailboxOptions;
    try {
      mailbox = resolveMailboxOptions(this.#mailboxOptions, options?.mailbox);
    } catch (error) {
      throw new InvalidRequestError(`invalid mailbox for actor '${name}': ${toError(error).message}`, {
        cause: error,
      });
    }
    const path = this.self.path === '/' ? `/${name}` : `${this.self.path}/${name}`;
    let initial = behavior as Behavior<unknown>;
    let placement: CellPlacement | undefined;
    const dispatcher = options?.dispatcher;
    const node = options?.node;
    if (node !== undefined && node !== this.kernel.nodeId) {
      const mesh = this.kernel.mesh;
      if (mesh === undefined) {
        throw new InvalidRequestError(`cannot spawn on node ${String(node)}: this node is not on a mesh`);
      }
      const prepared = mesh.prepare(initial, String(node), mailbox);
      initial = prepared.behavior;
      placement = { makeSelf: prepared.makeSelf };
    } else if (dispatcher !== undefined && dispatcher !== 'main') {
      const threads = this.kernel.threads;
      if (threads === undefined) {
        throw new InvalidRequestError(
          `no dispatcher named '${String(dispatcher)}' on this thread; start the system with ` +
            "dispatchers (and behaviorModules) to spawn on worker threads, or use dispatcher 'main'",
        );
      }
      const prepared = threads.prepare(initial, String(dispatcher), mailbox);
      initial = prepared.behavior;
      placement = { makeSelf: prepared.makeSelf };
    }
    return this.#spawnChild(initial, name, path, mailbox, shutdown, placement) as ActorRef<TChild>;
  }

  /** Creates, registers and starts a child. */
  #spawnChild(
    behavior: Behavior<unknown>,
    name: string,
    path: string,
    mailbox: MailboxOptions,
    shutdown: ShutdownSpec,
    placement: CellPlacement | undefined,
  ): ActorRef<unknown> {
    const children = this.#children ?? new Map<string, ActorCell<unknown>>();
    const child = new ActorCell<unknown>(
      this.kernel,
      this as ActorCell<unknown>,
      name,
      path,
      mailbox,
      shutdown,
      placement,
    );
    this.#children = children;
    children.set(child.key, child);
    const carried = this.#incarnations?.get(child.key);
    if (carried !== undefined) {
      this.#incarnations?.delete(child.key);
      child.#restartCount = carried;
    }
    this.kernel.registerCell(child);
    child.start(behavior);
    return child.self;
  }

  /**
   * Hosts an actor placed here by another thread, at the path it has there; `parent` is its real
   * parent (this cell, the host guardian, only holds it). Throws if the path is taken.
   */
  spawnHosted(
    behavior: Behavior<unknown>,
    path: string,
    parent: ActorRef<never>,
    mailbox: Partial<MailboxOptions> | undefined,
  ): ActorRef<unknown> {
    if (this.#state >= TERMINATING)
      throw new UnavailableError(`cannot host ${path}: this thread is stopping`);
    if (this.kernel.registry.has(path) || this.#children?.has(path)) {
      throw new InvalidRequestError(`an actor already lives at ${path} on this thread`);
    }
    const name = path.slice(path.lastIndexOf('/') + 1);
    const options = resolveMailboxOptions(this.#mailboxOptions, mailbox);
    return this.#spawnChild(behavior, name, path, options, 'infinity', { key: path, parentRef: parent });
  }

  stop(child: ActorRef<never>): void {
    const cell = child instanceof LocalActorRef ? (child.cell as ActorCell<unknown>) : undefined;
    if (cell === undefined || cell.parentCell !== (this as ActorCell<unknown>)) {
      throw new InvalidRequestError(
        `${this.self.path} can only stop its own children, and ${child.path} is not one; ` +
          'to stop itself a behavior returns Behaviors.stopped',
      );
    }
    this.#requestChildStop(cell);
  }

  children(): ActorRef<never>[] {
    const out: ActorRef<never>[] = [];
    if (this.#children) for (const child of this.#children.values()) out.push(child.self as ActorRef<never>);
    return out;
  }

  child(name: string): ActorRef<never> | undefined {
    return this.#children?.get(name)?.self as ActorRef<never> | undefined;
  }

  watch(target: ActorRef<never>): void {
    this.#watch(target, undefined);
  }

  watchWith(target: ActorRef<never>, message: TMsg): void {
    this.#watch(target, message);
  }

  unwatch(target: ActorRef<never>): void {
    if (this.#watching?.delete(target)) this.kernel.unwatch(target, this);
  }

  pipeToSelf<TValue>(promise: PromiseLike<TValue>, map: (outcome: PipeOutcome<TValue>) => TMsg): void {
    const deliver = (outcome: PipeOutcome<TValue>): void => {
      this.enqueueInternal(new PipedOutcome(() => map(outcome)));
    };
    promise.then(
      (value) => deliver({ ok: true, value }),
      (error: unknown) => deliver({ ok: false, error: toError(error) }),
    );
  }

  // ---------------------------------------------------------------- mailbox

  enqueue(message: TMsg): void {
    if (this.#state === DEAD) {
      this.kernel.deadLetter(this.self.path, message, 'actor-dead');
      return;
    }
    let box = this.#mailbox;
    if (box === undefined) {
      box = new RingBuffer<unknown>(8);
      this.#mailbox = box;
    } else if (this.#userQueued >= this.#mailboxOptions.capacity) {
      if (this.#mailboxOptions.overflow === 'drop-newest') {
        this.kernel.deadLetter(this.self.path, message, 'mailbox-full');
        return;
      }
      this.#dropOldest(box);
    }
    box.push(message);
    this.#userQueued++;
    this.kernel.queued++;
    if (!this.scheduled && this.#state === RUNNING) this.kernel.dispatcher.schedule(this);
  }

  /** Kernel items (timer ticks, death notices, piped results): never dropped for capacity. */
  enqueueInternal(message: InternalMessage): void {
    if (this.#state === DEAD) return;
    if (this.#mailbox === undefined) this.#mailbox = new RingBuffer<unknown>(8);
    this.#mailbox.push(message);
    this.kernel.queued++;
    if (!this.scheduled && this.#state === RUNNING) this.kernel.dispatcher.schedule(this);
  }

  /** Puts already-accepted messages back at the head, keeping their order (unstashAll). */
  prependMessages(messages: readonly TMsg[]): void {
    if (this.#state === DEAD || messages.length === 0) return;
    if (this.#mailbox === undefined) this.#mailbox = new RingBuffer<unknown>(messages.length);
    for (let i = messages.length - 1; i >= 0; i--) this.#mailbox.unshift(messages[i]);
    this.#userQueued += messages.length;
    this.kernel.queued += messages.length;
  }

  #dropOldest(box: RingBuffer<unknown>): void {
    // Kernel items are kept; the oldest user message makes room.
    const kept: unknown[] = [];
    for (let item = box.shift(); item !== undefined; item = box.shift()) {
      this.kernel.queued--;
      if (item instanceof InternalMessage) {
        kept.push(item);
        continue;
      }
      this.#userQueued--;
      this.kernel.deadLetter(this.self.path, item, 'mailbox-full');
      break;
    }
    for (let i = kept.length - 1; i >= 0; i--) {
      box.unshift(kept[i]);
      this.kernel.queued++;
    }
  }

  #sysEnqueue(message: SystemMessage): void {
    if (this.#state === DEAD) return;
    if (this.#system === undefined) this.#system = [];
    this.#system.push(message);
    if (!this.scheduled) this.kernel.dispatcher.schedule(this);
  }

  // ---------------------------------------------------------------- the run loop

  run(budget: number): boolean {
    let remaining = budget;
    for (;;) {
      const system = this.#system;
      if (system !== undefined && system.length > 0) {
        this.#system = undefined;
        for (const message of system) this.#processSystem(message);
        continue;
      }
      if (this.#state !== RUNNING) return false;
      const box = this.#mailbox;
      if (box === undefined || box.length === 0) return false;
      const message = box.shift();
      this.kernel.queued--;
      if (!(message instanceof InternalMessage)) this.#userQueued--;
      this.#invoke(message);
      if (--remaining === 0) {
        return (
          (this.#system !== undefined && this.#system.length > 0) ||
          (this.#state === RUNNING && box.length > 0)
        );
      }
    }
  }

  #invoke(message: unknown): void {
    if (message instanceof InternalMessage) {
      this.#invokeInternal(message);
      return;
    }
    const behavior = this.#behavior as ReceiveBehavior<TMsg>;
    let next: Behavior<TMsg>;
    try {
      next = behavior.onMessage(this, message as TMsg);
    } catch (error) {
      this.kernel.processed++;
      this.#fail(error);
      return;
    }
    this.kernel.processed++;
    if (next !== (Behaviors.same as Behavior<TMsg>) && next !== undefined) this.#become(next, message);
  }

  #invokeInternal(message: InternalMessage): void {
    if (message instanceof TimerTick) {
      const payload = this.#timers?.take(message);
      if (payload !== undefined) this.#invoke(payload.message);
      return;
    }
    if (message instanceof DeathNotice) {
      const watching = this.#watching;
      if (watching === undefined || !watching.has(message.ref)) return;
      const custom = watching.get(message.ref);
      watching.delete(message.ref);
      if (custom !== undefined) {
        this.#invoke(custom);
        return;
      }
      const signal: Terminated | ChildFailed =
        message.fromChild && message.error !== undefined
          ? { type: 'ChildFailed', ref: message.ref, error: message.error }
          : { type: 'Terminated', ref: message.ref };
      this.#deliverSignal(signal);
      return;
    }
    if (message instanceof PipedOutcome) {
      let mapped: unknown;
      try {
        mapped = message.run();
      } catch (error) {
        this.#fail(error);
        return;
      }
      this.#invoke(mapped);
    }
  }

  #deliverSignal(signal: Terminated | ChildFailed): void {
    const handler = (this.#behavior as ReceiveBehavior<TMsg>).onSignal;
    let next: unknown;
    try {
      next = handler === undefined ? Behaviors.unhandled : handler(this, signal);
    } catch (error) {
      this.#fail(error);
      return;
    }
    if (next === Behaviors.unhandled) {
      this.#fail(new DeathPactError(signal.ref.path));
      return;
    }
    if (isThenable(next)) {
      this.#observeRejection(next, `${signal.type} handler`);
      return;
    }
    if (next === undefined || next === Behaviors.same) return;
    this.#become(next as Behavior<TMsg>, signal);
  }

  #become(next: Behavior<TMsg>, cause: unknown): void {
    switch (next.tag) {
      case BehaviorTag.receive:
        this.#behavior = next as ReceiveBehavior<TMsg>;
        return;
      case BehaviorTag.same:
        return;
      case BehaviorTag.unhandled:
        this.kernel.deadLetter(this.self.path, cause, 'unhandled');
        return;
      case BehaviorTag.stopped:
        this.#stopSelf(undefined, (next as StoppedBehavior).postStop);
        return;
      default:
        if (isThenable(next)) {
          this.#observeRejection(next, 'message handler');
          this.#fail(
            new InvalidBehaviorError(
              `a handler of ${this.self.path} returned a promise; handlers are synchronous: ` +
                'return the next behavior and bring async results back with ctx.pipeToSelf',
            ),
          );
          return;
        }
        try {
          this.#establish(next, 'replace');
        } catch (error) {
          this.#fail(error);
        }
    }
  }

  /**
   * Unwraps setup, timers, stash and supervise wrappers until a receive behavior (or stopped)
   * remains, and makes it current. `clauses` says what to do with supervise wrappers found:
   * at start and restart they add to the list; a behavior returned by a handler replaces it.
   */
  #establish(initial: Behavior<TMsg>, clauses: 'add' | 'replace', reuse?: SupervisionClause): void {
    let behavior: unknown = initial;
    let replaced = false;
    for (;;) {
      const tag = (behavior as Behavior<TMsg> | undefined)?.tag;
      switch (tag) {
        case BehaviorTag.receive:
          this.#behavior = behavior as ReceiveBehavior<TMsg>;
          return;
        case BehaviorTag.stopped:
          if (this.#behavior === undefined) this.#behavior = Behaviors.empty<TMsg>() as ReceiveBehavior<TMsg>;
          this.#stopSelf(undefined, (behavior as StoppedBehavior).postStop);
          return;
        case BehaviorTag.setup:
          behavior = (behavior as SetupBehavior<TMsg>).factory(this);
          break;
        case BehaviorTag.timers:
          if (this.#timers === undefined) this.#timers = new Timers<TMsg>(this, this.kernel.clock);
          behavior = (behavior as TimersBehavior<TMsg>).factory(this.#timers);
          break;
        case BehaviorTag.stash: {
          const spec = behavior as StashBehavior<TMsg>;
          const stash = new Stash<TMsg>(this, spec.capacity);
          if (this.#stashes === undefined) this.#stashes = [];
          this.#stashes.push(stash);
          behavior = spec.factory(stash);
          break;
        }
        case BehaviorTag.registered: {
          const registered = behavior as RegisteredBehavior<TMsg>;
          behavior = registered.factory(registered.props);
          break;
        }
        case BehaviorTag.supervise: {
          const wrapper = behavior as SuperviseBehavior<TMsg>;
          if (clauses === 'replace' && !replaced) {
            this.#clauses = [];
            replaced = true;
          }
          const clause: SupervisionClause =
            reuse !== undefined && reuse.wrapper === wrapper
              ? reuse
              : {
                  wrapper: wrapper as SuperviseBehavior<unknown>,
                  restartTimes: [],
                  backoffAttempt: 0,
                  lastFailureAt: 0,
                };
          if (this.#clauses === undefined) this.#clauses = [];
          this.#clauses.push(clause);
          behavior = wrapper.inner;
          break;
        }
        default:
          if (isThenable(behavior)) this.#observeRejection(behavior, 'setup');
          throw new InvalidBehaviorError(this.#describeInvalid(behavior));
      }
    }
  }

  #describeInvalid(value: unknown): string {
    const where = `${this.self.path}`;
    if (isThenable(value)) {
      return `setup of ${where} returned a promise; setup is synchronous: return a behavior and use ctx.pipeToSelf`;
    }
    if (value === Behaviors.same)
      return `setup of ${where} returned Behaviors.same; return a behavior to start with`;
    if (value === Behaviors.unhandled)
      return `setup of ${where} returned Behaviors.unhandled; return a behavior`;
    return `setup of ${where} returned ${value === undefined ? 'undefined' : typeof value}, not a behavior; return one of Behaviors.*`;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Runs the initial behavior's setup, synchronously, as part of spawn. */
  start(behavior: Behavior<TMsg>): void {
    this.kernel.spawned++;
    try {
      this.#establish(behavior, 'add');
    } catch (error) {
      this.#fail(error);
    }
  }

  #fail(thrown: unknown): void {
    const error = toError(thrown);
    if (this.#state >= TERMINATING) {
      this.log.error(`actor failed while stopping: ${error.message}`, { error: error.stack });
      return;
    }
    this.kernel.reportFailure(this.self, error);
    const clauses = this.#clauses;
    let clause: SupervisionClause | undefined;
    if (clauses !== undefined) {
      for (let i = clauses.length - 1; i >= 0; i--) {
        const candidate = clauses[i] as SupervisionClause;
        const errorClass = candidate.wrapper.errorClass;
        if (errorClass === undefined || error instanceof errorClass) {
          clause = candidate;
          break;
        }
      }
    }
    const strategy = clause?.wrapper.strategy;
    if (clause === undefined || strategy === undefined || strategy.kind === 'stop') {
      this.#stopSelf(error);
      return;
    }
    if (strategy.kind === 'resume') {
      // Resuming needs a behavior to resume; a failure in setup has none.
      if (this.#behavior === undefined) this.#stopSelf(error);
      return;
    }
    const now = this.kernel.clock.now();
    if (strategy.kind === 'restart') {
      const limit = strategy as RestartStrategy;
      if (limit.maxRestarts >= 0) {
        clause.restartTimes = clause.restartTimes.filter((t) => now - t < limit.withinMs);
        if (clause.restartTimes.length >= limit.maxRestarts) {
          this.#stopSelf(error);
          return;
        }
        clause.restartTimes.push(now);
      }
      this.#beginRestart(clause, error, 0);
      return;
    }
    const backoff = strategy as BackoffStrategy;
    if (clause.lastFailureAt > 0 && now - clause.lastFailureAt >= backoff.resetAfterMs)
      clause.backoffAttempt = 0;
    clause.lastFailureAt = now || Number.MIN_VALUE;
    if (backoff.maxRestarts >= 0 && clause.backoffAttempt >= backoff.maxRestarts) {
      this.#stopSelf(error);
      return;
    }
    const delay = backoff.delayFor(clause.backoffAttempt, this.kernel.random());
    clause.backoffAttempt++;
    this.#beginRestart(clause, error, delay);
  }

  #beginRestart(clause: SupervisionClause, error: Error, delayMs: number): void {
    this.kernel.restarts++;
    this.#restartCount++;
    this.kernel.emit('actor:restart', { ref: this.self as ActorRef<never>, error, delayMs });
    if (this.#behavior !== undefined) this.#signalQuietly(PreRestart);
    this.#timers?.cancelAll();
    this.#dropStashes();
    this.#state = RESTARTING;
    const generation = ++this.#restartGeneration;
    const restart: {
      clause: SupervisionClause;
      delayDone: boolean;
      generation: number;
      timer?: TimerHandle;
    } = {
      clause,
      delayDone: false,
      generation,
    };
    this.#restart = restart;
    // The restart always completes through the system queue, so a behavior that fails in its
    // setup every time loops across dispatcher turns instead of recursing on the stack.
    if (delayMs > 0) {
      restart.timer = this.kernel.clock.setTimeout(() => {
        restart.timer = undefined;
        this.#sysEnqueue({ kind: SYS_RESTART_READY, generation });
      }, delayMs);
    } else {
      this.#sysEnqueue({ kind: SYS_RESTART_READY, generation });
    }
    // The children this restart stops belong to the failed incarnation: the new one never
    // watched them, so it is not told of their termination (nor fails on it by a death pact).
    if (this.#children !== undefined && this.#watching !== undefined) {
      for (const child of this.#children.values()) this.unwatch(child.self as ActorRef<never>);
    }
    this.#stopChildrenThen(() => this.#maybeCompleteRestart());
  }

  #maybeCompleteRestart(): void {
    const restart = this.#restart;
    if (restart === undefined || !restart.delayDone || this.#stopQueue !== undefined) return;
    if (this.#children !== undefined && this.#children.size > 0) return;
    this.#restart = undefined;
    this.#state = RUNNING;
    // The failed incarnation's behavior is gone: a setup failure now has nothing to resume.
    this.#behavior = undefined;
    const index = this.#clauses?.indexOf(restart.clause) ?? -1;
    if (this.#clauses !== undefined && index >= 0) this.#clauses.length = index;
    try {
      this.#establish(restart.clause.wrapper as SuperviseBehavior<TMsg>, 'add', restart.clause);
    } catch (error) {
      this.#fail(error);
      return;
    }
    if (!this.scheduled && this.#state === RUNNING && (this.#mailbox?.length ?? 0) > 0) {
      this.kernel.dispatcher.schedule(this);
    }
  }

  #stopSelf(error: Error | undefined, postStop?: () => void): void {
    if (this.#state >= TERMINATING) return;
    this.#state = TERMINATING;
    this.#failure = error;
    this.#postStopCallback = postStop;
    if (this.#restart?.timer !== undefined) this.kernel.clock.clearTimeout(this.#restart.timer);
    this.#restart = undefined;
    this.#timers?.cancelAll();
    this.#stopChildrenThen(() => this.#runPostStop());
  }

  /**
   * Another party reports how this actor ended (the thread hosting the real actor said so): it
   * stops with that reason, without consulting its supervision strategy.
   */
  terminateAs(error: Error | undefined): void {
    this.#sysEnqueue({ kind: SYS_TERMINATE_AS, error });
  }

  /** Another party reports a failure of this actor (its host thread died): its strategy decides. */
  failAs(error: Error): void {
    this.#sysEnqueue({ kind: SYS_FAIL, error });
  }

  /** Asked by the parent (or the system) to stop. */
  requestStop(): void {
    this.#sysEnqueue(STOP_MESSAGE);
  }

  #requestChildStop(child: ActorCell<unknown>): void {
    if (!child.isAlive) return;
    const shutdown = child.shutdown;
    if (shutdown === 'brutal_kill') {
      child.kill();
      return;
    }
    // The bound holds even for a child already stopping on its own (OTP waits `Shutdown` ms either way).
    if (typeof shutdown === 'number' && child.#killTimer === undefined) {
      child.#killTimer = this.kernel.clock.setTimeout(() => {
        child.#killTimer = undefined;
        child.log.warn(`did not stop within its shutdown of ${shutdown} ms; killing it`);
        child.kill();
      }, shutdown);
    }
    child.requestStop();
  }

  #stopChildrenThen(next: () => void): void {
    const children = this.#children;
    if (children === undefined || children.size === 0) {
      next();
      return;
    }
    this.#afterChildren = next;
    // Popped from the end: reverse order of spawn, unless the actor named an order.
    let queue = [...children.values()];
    const preferred = this.childStopOrder?.();
    if (preferred !== undefined) {
      const first: ActorCell<unknown>[] = [];
      for (const ref of preferred) {
        if (ref instanceof LocalActorRef && children.get(ref.cell.name) === ref.cell) first.push(ref.cell);
      }
      const chosen = new Set(first);
      queue = [...queue.filter((cell) => !chosen.has(cell)), ...first.reverse()];
    }
    this.#stopQueue = queue;
    this.#stopNextChild();
  }

  #stopNextChild(): void {
    const queue = this.#stopQueue;
    if (queue === undefined) return;
    for (let child = queue.pop(); child !== undefined; child = queue.pop()) {
      if (!child.isAlive) continue;
      this.#stoppingChild = child;
      this.#requestChildStop(child);
      return;
    }
    this.#stopQueue = undefined;
    this.#stoppingChild = undefined;
    if (this.#children !== undefined && this.#children.size > 0) return; // wait for stragglers
    const next = this.#afterChildren;
    this.#afterChildren = undefined;
    next?.();
  }

  #rememberIncarnation(child: ActorCell<unknown>): void {
    const incarnations = this.#incarnations ?? new Map<string, number>();
    this.#incarnations = incarnations;
    incarnations.delete(child.key);
    if (incarnations.size >= maxRememberedIncarnations) {
      const oldest = incarnations.keys().next().value;
      if (oldest !== undefined) incarnations.delete(oldest);
    }
    incarnations.set(child.key, child.#restartCount + 1);
  }

  #processSystem(message: SystemMessage): void {
    switch (message.kind) {
      case SYS_STOP:
        this.#stopSelf(undefined);
        return;
      case SYS_CHILD_TERMINATED: {
        const child = message.child;
        const children = this.#children;
        if (children !== undefined && children.get(child.key) === child) children.delete(child.key);
        if (this.childStopOrder !== undefined && this.#state < TERMINATING) this.#rememberIncarnation(child);
        if (this.#stoppingChild === child) {
          this.#stoppingChild = undefined;
          this.#stopNextChild();
        } else if (
          this.#stopQueue === undefined &&
          this.#afterChildren !== undefined &&
          (children === undefined || children.size === 0)
        ) {
          const next = this.#afterChildren;
          this.#afterChildren = undefined;
          next();
        }
        return;
      }
      case SYS_TERMINATE_AS:
        this.#stopSelf(message.error);
        return;
      case SYS_FAIL:
        if (this.#state === RUNNING) this.#fail(message.error);
        return;
      case SYS_RESTART_READY:
        if (this.#restart !== undefined && this.#restart.generation === message.generation) {
          this.#restart.delayDone = true;
          this.#maybeCompleteRestart();
        }
        return;
    }
  }

  #runPostStop(): void {
    const behavior = this.#behavior;
    let result: unknown;
    if (behavior?.onSignal !== undefined) {
      try {
        result = behavior.onSignal(this, PostStop);
      } catch (error) {
        this.log.error(`PostStop handler failed: ${toError(error).message}`, { error: toError(error).stack });
      }
    }
    if (this.#postStopCallback !== undefined) {
      try {
        this.#postStopCallback();
      } catch (error) {
        this.log.error(`stopped callback failed: ${toError(error).message}`, { error: toError(error).stack });
      }
    }
    if (isThenable(result)) {
      result.then(
        () => this.#finalize(),
        (error: unknown) => {
          this.log.error(`PostStop cleanup failed: ${toError(error).message}`, {
            error: toError(error).stack,
          });
          this.#finalize();
        },
      );
      return;
    }
    this.#finalize();
  }

  #signalQuietly(signal: Signal): void {
    const handler = this.#behavior?.onSignal;
    if (handler === undefined) return;
    try {
      const result = handler(this, signal);
      if (isThenable(result)) this.#observeRejection(result, `${signal.type} handler`);
    } catch (error) {
      this.log.error(`${signal.type} handler failed: ${toError(error).message}`, {
        error: toError(error).stack,
      });
    }
  }

  /**
   * Logs the rejection of a promise a handler returned where the kernel does not wait for one
   * (the actor has already been failed for it, or the signal needs no cleanup), so that it is
   * never left unhandled: an unhandled rejection would take the whole process down.
   */
  #observeRejection(promise: PromiseLike<unknown>, what: string): void {
    promise.then(undefined, (error: unknown) => {
      const cause = toError(error);
      this.log.error(`the promise a ${what} of ${this.self.path} returned rejected: ${cause.message}`, {
        error: cause.stack,
      });
    });
  }

  /** Stops this actor and its subtree at once: no PostStop (OTP's brutal_kill, or a missed shutdown). */
  kill(): void {
    if (this.#state === DEAD) return;
    if (this.#children !== undefined) for (const child of [...this.#children.values()]) child.kill();
    this.#finalize();
  }

  #finalize(): void {
    if (this.#state === DEAD) return;
    this.#state = DEAD;
    const kernel = this.kernel;
    if (this.#killTimer !== undefined) {
      kernel.clock.clearTimeout(this.#killTimer);
      this.#killTimer = undefined;
    }
    if (this.#restart?.timer !== undefined) kernel.clock.clearTimeout(this.#restart.timer);
    this.#restart = undefined;
    this.#timers?.cancelAll();
    this.#dropStashes();
    const box = this.#mailbox;
    if (box !== undefined) {
      for (let item = box.shift(); item !== undefined; item = box.shift()) {
        kernel.queued--;
        if (!(item instanceof InternalMessage)) kernel.deadLetter(this.self.path, item, 'actor-dead');
      }
      this.#mailbox = undefined;
    }
    this.#userQueued = 0;
    this.#system = undefined;
    kernel.unregisterCell(this as ActorCell<unknown>);
    const ref = this.self as ActorRef<never>;
    const error = this.#failure;
    const parent = this.parentCell;
    if (this.#watchers !== undefined) {
      for (const watcher of this.#watchers) {
        watcher.deathNotice(ref, error, watcher === (parent as DeathWatcher | undefined));
      }
      this.#watchers = undefined;
    }
    if (this.#watching !== undefined) {
      for (const target of this.#watching.keys()) kernel.unwatch(target, this);
      this.#watching = undefined;
    }
    this.#behavior = undefined;
    this.#children = undefined;
    this.#stopQueue = undefined;
    this.#afterChildren = undefined;
    if (parent !== undefined)
      parent.#sysEnqueue({ kind: SYS_CHILD_TERMINATED, child: this as ActorCell<unknown> });
    kernel.stopped++;
    if (error !== undefined) {
      kernel.emit('actor:stop', { ref, error });
    } else if (kernel.events.listenerCount('actor:stop') > 0) {
      kernel.emit('actor:stop', { ref, error: undefined });
    }
    const onDead = this.onDead;
    this.onDead = undefined;
    onDead?.();
  }

  #dropStashes(): void {
    if (this.#stashes === undefined) return;
    for (const stash of this.#stashes) stash.clear();
    this.#stashes = undefined;
  }

  // ---------------------------------------------------------------- death watch

  #watch(target: ActorRef<never>, message: TMsg | undefined): void {
    if (this.#state === DEAD) return;
    if ((target as unknown) === this.self) return;
    if (this.#watching === undefined) this.#watching = new Map();
    this.#watching.set(target, message);
    this.kernel.watch(target, this);
  }

  /** Adds a watcher; if this actor is already dead the watcher hears so at once. */
  addWatcher(watcher: DeathWatcher): void {
    if (this.#state === DEAD) {
      watcher.deathNotice(this.self as ActorRef<never>, this.#failure, watcher === this.parentCell);
      return;
    }
    if (this.#watchers === undefined) this.#watchers = new Set();
    this.#watchers.add(watcher);
  }

  removeWatcher(watcher: DeathWatcher): void {
    this.#watchers?.delete(watcher);
  }

  deathNotice(ref: ActorRef<never>, error: Error | undefined, fromChild: boolean): void {
    this.enqueueInternal(new DeathNotice(ref, error, fromChild));
  }

  /** Lifetime failure reason, for the kernel's dead-letter and stop reporting. */
  get failure(): Error | undefined {
    return this.#failure;
  }
}
