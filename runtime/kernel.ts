/**
 * The state one actor system shares among its cells: the registry of live actors, the
 * dispatcher, the clock, dead letters, asks and the counters behind the metrics. Internal: users
 * see it through `ActorSystem`.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'winston';
import type { ActorCell, DeathWatcher } from './actor-cell.ts';
import type { ActorAddress, ActorRef, AskOptions } from './actor-ref.ts';
import type { ActorSystem } from './actor-system.ts';
import type { Clock } from './clock.ts';
import { Dispatcher } from './dispatcher.ts';
import { AbortError, InvalidRequestError, UnavailableError } from './errors.ts';
import { LocalActorRef } from './local-actor-ref.ts';
import type { MailboxOptions } from './mailbox-options.ts';
import { PromiseRef } from './promise-ref.ts';
import { RemoteActorRef } from './remote-actor-ref.ts';
import type { Router } from './router.ts';
import type { ThreadSpawner } from './worker-threads.ts';

export type DeadLetterReason =
  | 'actor-dead'
  | 'mailbox-full'
  | 'unhandled'
  | 'ask-completed'
  | 'stash-dropped'
  | 'no-route'
  | 'not-found'
  | 'unreachable'
  /** Arrived from the mesh naming, in its `from` field, a node other than the one it came from. */
  | 'forged-sender';

export const deadLetterReasons: readonly DeadLetterReason[] = [
  'actor-dead',
  'mailbox-full',
  'unhandled',
  'ask-completed',
  'stash-dropped',
  'no-route',
  'not-found',
  'unreachable',
  'forged-sender',
];

export interface DeadLetter {
  /** Path of the actor the message was for. */
  readonly recipient: string;
  readonly message: unknown;
  readonly reason: DeadLetterReason;
}

export interface SystemEvents {
  'dead-letter:publish': [DeadLetter];
  'actor:failure': [{ ref: ActorRef<never>; error: Error }];
  'actor:restart': [{ ref: ActorRef<never>; error: Error; delayMs: number }];
  'actor:stop': [{ ref: ActorRef<never>; error: Error | undefined }];
}

export interface KernelInit {
  nodeId: string;
  clock: Clock;
  logger: Logger;
  random: () => number;
  throughput: number;
  sliceMs: number;
  mailbox: MailboxOptions;
  askTimeoutMs: number;
  maxPendingAsks: number;
  /** Prefix of ask reply paths; unique per thread so replies find their way back. Default `/temp`. */
  tempPrefix?: string;
}

export class Kernel {
  readonly nodeId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly random: () => number;
  readonly mailbox: MailboxOptions;
  readonly askTimeoutMs: number;
  readonly maxPendingAsks: number;
  readonly dispatcher: Dispatcher;
  readonly events = new EventEmitter<SystemEvents>();
  readonly registry = new Map<string, ActorCell<unknown>>();
  readonly temp = new Map<string, PromiseRef<unknown>>();
  /** Routes to actors of this node that are not on this thread (the worker-thread dispatchers). */
  router: Router | undefined;
  /** Routes to actors on other nodes (the mesh); on a worker-thread host, the main thread. */
  remote: Router | undefined;
  /** Places actors on other nodes (`spawn(…, { node })`), when the mesh is up. */
  mesh: ThreadSpawner | undefined;
  /** Worker-thread dispatchers, when this thread has any (the main thread of a system with workers). */
  threads: ThreadSpawner | undefined;
  readonly tempPrefix: string;
  system!: ActorSystem;

  // Plain counters on the hot path; metrics read them at scrape time.
  queued = 0;
  processed = 0;
  restarts = 0;
  spawned = 0;
  stopped = 0;
  askTimeouts = 0;
  /** Asks waiting for a reply; bounded by maxPendingAsks, failed at system stop. */
  readonly pendingAsks = new Set<PromiseRef<unknown>>();
  readonly deadLetters = new Map<DeadLetterReason, number>();
  #anonymous = 0;
  #tempSeq = 0;

  constructor(init: KernelInit) {
    this.nodeId = init.nodeId;
    this.clock = init.clock;
    this.logger = init.logger;
    this.random = init.random;
    this.mailbox = init.mailbox;
    this.askTimeoutMs = init.askTimeoutMs;
    this.maxPendingAsks = init.maxPendingAsks;
    this.tempPrefix = init.tempPrefix ?? '/temp';
    this.dispatcher = new Dispatcher({
      throughput: init.throughput,
      sliceMs: init.sliceMs,
      onFault: (error) =>
        this.logger.error(`dispatcher turn failed: ${(error as Error)?.message ?? String(error)}`, {
          error: (error as Error)?.stack,
        }),
    });
  }

  nextAnonymousName(): string {
    return `$${(this.#anonymous++).toString(36)}`;
  }

  registerCell(cell: ActorCell<unknown>): void {
    this.registry.set(cell.self.path, cell);
  }

  unregisterCell(cell: ActorCell<unknown>): void {
    if (this.registry.get(cell.self.path) === cell) this.registry.delete(cell.self.path);
  }

  registerTemp(ref: PromiseRef<unknown>): string {
    const path = `${this.tempPrefix}/$${(this.#tempSeq++).toString(36)}`;
    if (!ref.settled) this.temp.set(path, ref);
    return path;
  }

  deadLetter(recipient: string, message: unknown, reason: DeadLetterReason): void {
    this.deadLetters.set(reason, (this.deadLetters.get(reason) ?? 0) + 1);
    if (this.events.listenerCount('dead-letter:publish') > 0) {
      this.emit('dead-letter:publish', { recipient, message, reason });
    }
  }

  reportFailure(ref: ActorRef<unknown>, error: Error): void {
    this.logger.error(`actor ${ref.path} failed: ${error.message}`, { actor: ref.path, error: error.stack });
    this.emit('actor:failure', { ref: ref as ActorRef<never>, error });
  }

  /**
   * Publishes a system event. A listener that throws is logged, not allowed to break the `tell`
   * or the actor turn that published the event.
   */
  emit<TEvent extends keyof SystemEvents>(event: TEvent, ...args: SystemEvents[TEvent]): void {
    try {
      (this.events.emit as (event: TEvent, ...args: SystemEvents[TEvent]) => boolean)(event, ...args);
    } catch (error) {
      this.logger.error(`a listener of '${event}' threw: ${(error as Error)?.message ?? String(error)}`);
    }
  }

  /** A live ref for an address: the actor's own ref here, a routed ref elsewhere. */
  resolve<TMsg>(address: ActorAddress): ActorRef<TMsg> {
    if (address.node !== this.nodeId) return new RemoteActorRef<TMsg>(this, address);
    const cell = this.registry.get(address.path);
    if (cell !== undefined) return cell.self as unknown as ActorRef<TMsg>;
    const temp = this.temp.get(address.path);
    if (temp !== undefined) return temp as unknown as ActorRef<TMsg>;
    // Not alive here: a ref whose messages become dead letters, like Akka's resolve of a stale path.
    return new RemoteActorRef<TMsg>(this, address);
  }

  /** Delivers to an actor or ask on this thread; false when nothing lives at `path` here. */
  deliverLocal(path: string, message: unknown): boolean {
    const cell = this.registry.get(path);
    if (cell !== undefined) {
      cell.self.tell(message);
      return true;
    }
    const temp = this.temp.get(path);
    if (temp !== undefined) {
      temp.tell(message);
      return true;
    }
    return false;
  }

  /** Sends to any address; false when the message was dropped (and published as a dead letter). */
  route(to: ActorAddress, message: unknown): boolean {
    if (to.node === this.nodeId) {
      if (this.deliverLocal(to.path, message)) return true;
      if (this.router === undefined) {
        this.deadLetter(to.path, message, 'not-found');
        return false;
      }
      return this.router.deliver(to, message);
    }
    return this.routeElsewhere(to, message);
  }

  /** `route` for an address known to be on another node than this one. */
  routeElsewhere(to: ActorAddress, message: unknown): boolean {
    if (this.remote === undefined) {
      this.deadLetter(to.path, message, 'no-route');
      return false;
    }
    return this.remote.deliver(to, message);
  }

  watch(target: ActorRef<never>, watcher: DeathWatcher): void {
    if (target instanceof LocalActorRef) {
      (target.cell as ActorCell<unknown>).addWatcher(watcher);
    } else if (target.node === this.nodeId && this.registry.has(target.path)) {
      this.registry.get(target.path)?.addWatcher(watcher);
    } else if (target.node === this.nodeId) {
      if (this.router === undefined) watcher.deathNotice(target, undefined, false);
      else this.router.watch(target, watcher);
    } else if (this.remote !== undefined) {
      this.remote.watch(target, watcher);
    } else {
      watcher.deathNotice(target, new UnavailableError(`no route to node ${target.node}`), false);
    }
  }

  unwatch(target: ActorRef<never>, watcher: DeathWatcher): void {
    if (target instanceof LocalActorRef) (target.cell as ActorCell<unknown>).removeWatcher(watcher);
    else if (target.node === this.nodeId && this.registry.has(target.path)) {
      this.registry.get(target.path)?.removeWatcher(watcher);
    } else if (target.node === this.nodeId) this.router?.unwatch(target, watcher);
    else this.remote?.unwatch(target, watcher);
  }

  ask<TMsg, TReply>(
    target: ActorRef<TMsg>,
    build: (replyTo: ActorRef<TReply>) => TMsg,
    options: AskOptions | undefined,
  ): Promise<TReply> {
    const timeoutMs = options?.timeoutMs ?? this.askTimeoutMs;
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && Number.isFinite(timeoutMs))) {
      return Promise.reject(
        new InvalidRequestError(`ask timeoutMs must be a positive finite number, got ${String(timeoutMs)}`),
      );
    }
    const signal = options?.signal;
    if (signal?.aborted) {
      return Promise.reject(
        new AbortError(`ask to ${target.path} was aborted before it was sent`, { cause: signal.reason }),
      );
    }
    if (this.pendingAsks.size >= this.maxPendingAsks) {
      return Promise.reject(
        new UnavailableError(
          `too many pending asks (${this.pendingAsks.size}, limit ${this.maxPendingAsks}); ` +
            'wait for replies before asking more, or raise maxPendingAsks',
        ),
      );
    }
    const replyTo = new PromiseRef<TReply>(this, target, timeoutMs, signal);
    this.pendingAsks.add(replyTo as unknown as PromiseRef<unknown>);
    let message: TMsg;
    try {
      message = build(replyTo);
    } catch (error) {
      replyTo.fail(error instanceof Error ? error : new Error(String(error)));
      return replyTo.promise;
    }
    if (target instanceof RemoteActorRef) {
      // A message the route had to drop (a full send buffer, an unreachable node) fails the ask
      // now rather than at its timeout.
      if (!this.route(target, message)) {
        replyTo.fail(
          new UnavailableError(
            `ask to ${target.node}${target.path} could not be sent; see the dead letter for why`,
          ),
        );
      }
    } else {
      target.tell(message);
    }
    return replyTo.promise;
  }

  /** Fails every pending ask (at system stop) so nothing waits on a system that is gone. */
  failPendingAsks(reason: Error): void {
    for (const ref of [...this.pendingAsks]) ref.fail(reason);
    this.temp.clear();
  }
}
