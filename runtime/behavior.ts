/**
 * Behaviors: an actor handles one message at a time and returns the behavior for the next one,
 * so its state lives in the behavior it returns (Akka Typed's model). Handlers are synchronous;
 * asynchronous work comes back as a message through `ctx.pipeToSelf`.
 */
import type { ActorContext } from './actor-context.ts';
import type { Signal } from './signals.ts';
import type { StashBuffer } from './stash-buffer.ts';
import type { SupervisorStrategy } from './supervisor-strategy.ts';
import type { TimerScheduler } from './timer-scheduler.ts';

export const BehaviorTag = {
  receive: 0,
  same: 1,
  stopped: 2,
  unhandled: 3,
  setup: 4,
  timers: 5,
  stash: 6,
  supervise: 7,
  registered: 8,
} as const;
export type BehaviorTag = (typeof BehaviorTag)[keyof typeof BehaviorTag];

export abstract class Behavior<TMsg> {
  abstract readonly tag: BehaviorTag;
  /** Carries the message type for inference; never set. */
  declare readonly __message?: TMsg;
}

export type MessageHandler<TMsg> = (ctx: ActorContext<TMsg>, message: TMsg) => Behavior<TMsg>;
/**
 * Handles a lifecycle signal. For `PostStop` it may return a promise: the actor counts as
 * terminated once it settles (bounded by the parent's shutdown time), which is how an actor
 * closes a socket or flushes a file before its supervisor moves on.
 */
export type SignalHandler<TMsg> = (
  ctx: ActorContext<TMsg>,
  signal: Signal,
) => Behavior<TMsg> | PromiseLike<unknown>;

export class ReceiveBehavior<TMsg> extends Behavior<TMsg> {
  readonly tag = BehaviorTag.receive;
  readonly onMessage: MessageHandler<TMsg>;
  readonly onSignal: SignalHandler<TMsg> | undefined;

  constructor(onMessage: MessageHandler<TMsg>, onSignal?: SignalHandler<TMsg>) {
    super();
    this.onMessage = onMessage;
    this.onSignal = onSignal;
  }

  /** The same message handler, with `handler` for signals. */
  receiveSignal(handler: SignalHandler<TMsg>): ReceiveBehavior<TMsg> {
    return new ReceiveBehavior(this.onMessage, handler);
  }
}

class MarkerBehavior extends Behavior<never> {
  readonly tag: BehaviorTag;
  constructor(tag: BehaviorTag) {
    super();
    this.tag = tag;
  }
}

export class StoppedBehavior extends Behavior<never> {
  readonly tag = BehaviorTag.stopped;
  readonly postStop: (() => void) | undefined;
  constructor(postStop?: () => void) {
    super();
    this.postStop = postStop;
  }
}

export class SetupBehavior<TMsg> extends Behavior<TMsg> {
  readonly tag = BehaviorTag.setup;
  readonly factory: (ctx: ActorContext<TMsg>) => Behavior<TMsg>;
  constructor(factory: (ctx: ActorContext<TMsg>) => Behavior<TMsg>) {
    super();
    this.factory = factory;
  }
}

export class TimersBehavior<TMsg> extends Behavior<TMsg> {
  readonly tag = BehaviorTag.timers;
  readonly factory: (timers: TimerScheduler<TMsg>) => Behavior<TMsg>;
  constructor(factory: (timers: TimerScheduler<TMsg>) => Behavior<TMsg>) {
    super();
    this.factory = factory;
  }
}

export class StashBehavior<TMsg> extends Behavior<TMsg> {
  readonly tag = BehaviorTag.stash;
  readonly capacity: number;
  readonly factory: (stash: StashBuffer<TMsg>) => Behavior<TMsg>;
  constructor(capacity: number, factory: (stash: StashBuffer<TMsg>) => Behavior<TMsg>) {
    super();
    if (!Number.isInteger(capacity) || capacity <= 0) {
      throw new RangeError(`withStash: capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.factory = factory;
  }
}

export type ErrorClass = abstract new (...args: never[]) => Error;

export class SuperviseBehavior<TMsg> extends Behavior<TMsg> {
  readonly tag = BehaviorTag.supervise;
  readonly inner: Behavior<TMsg>;
  readonly strategy: SupervisorStrategy;
  /** Only failures that are instances of this class use `strategy`; others go to an outer one. */
  readonly errorClass: ErrorClass | undefined;
  constructor(inner: Behavior<TMsg>, strategy: SupervisorStrategy, errorClass?: ErrorClass) {
    super();
    this.inner = inner;
    this.strategy = strategy;
    this.errorClass = errorClass;
  }
}

const same = new MarkerBehavior(BehaviorTag.same);
const unhandled = new MarkerBehavior(BehaviorTag.unhandled);
const stopped = new StoppedBehavior();
const ignoreAll = new ReceiveBehavior<unknown>(() => same);
const emptyBehavior = new ReceiveBehavior<unknown>(() => unhandled);

export const Behaviors = {
  /** Keep the current behavior. */
  same: same as Behavior<never>,
  /** Stop this actor after the current message; children stop first, then `PostStop`. */
  stopped: stopped as Behavior<never>,
  /** Stop, running `postStop` once the actor has stopped. */
  stoppedWith(postStop: () => void): Behavior<never> {
    return new StoppedBehavior(postStop);
  },
  /** The message (or signal) was not handled: it goes to dead letters as unhandled. */
  unhandled: unhandled as Behavior<never>,
  /** Accepts every message and does nothing. */
  ignore<TMsg>(): Behavior<TMsg> {
    return ignoreAll as Behavior<TMsg>;
  },
  /** Handles nothing: every message is unhandled. */
  empty<TMsg>(): Behavior<TMsg> {
    return emptyBehavior as Behavior<TMsg>;
  },
  receive<TMsg>(onMessage: MessageHandler<TMsg>): ReceiveBehavior<TMsg> {
    return new ReceiveBehavior(onMessage);
  },
  receiveMessage<TMsg>(onMessage: (message: TMsg) => Behavior<TMsg>): ReceiveBehavior<TMsg> {
    return new ReceiveBehavior<TMsg>((_ctx, message) => onMessage(message));
  },
  /** Handles only signals; messages are unhandled. */
  receiveSignal<TMsg>(onSignal: SignalHandler<TMsg>): ReceiveBehavior<TMsg> {
    return new ReceiveBehavior<TMsg>(() => unhandled, onSignal);
  },
  /** Runs `factory` when the actor starts (and again on each restart). */
  setup<TMsg>(factory: (ctx: ActorContext<TMsg>) => Behavior<TMsg>): Behavior<TMsg> {
    return new SetupBehavior(factory);
  },
  /** Gives the behavior a timer scheduler; its timers are cancelled on stop and restart. */
  withTimers<TMsg>(factory: (timers: TimerScheduler<TMsg>) => Behavior<TMsg>): Behavior<TMsg> {
    return new TimersBehavior(factory);
  },
  /** Gives the behavior a bounded stash; stashed messages are dropped (as dead letters) on restart. */
  withStash<TMsg>(capacity: number, factory: (stash: StashBuffer<TMsg>) => Behavior<TMsg>): Behavior<TMsg> {
    return new StashBehavior(capacity, factory);
  },
  /**
   * Wraps a behavior with a failure strategy. A restart re-runs the wrapped behavior from the start
   * (its `setup` runs again); the message that failed is not redelivered; messages queued behind it stay.
   */
  supervise<TMsg>(behavior: Behavior<TMsg>): {
    onFailure(strategy: SupervisorStrategy, errorClass?: ErrorClass): Behavior<TMsg>;
  } {
    return {
      onFailure: (strategy, errorClass) => new SuperviseBehavior(behavior, strategy, errorClass),
    };
  },
} as const;
