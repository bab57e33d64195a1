/**
 * The actor system: the root of one node's actors on this thread. It owns the guardians
 * (`/user` for what you spawn, `/system` for the kernel's own actors), the dispatcher, the
 * clock, dead letters, the receptionist and a Prometheus registry, and `stop()` takes all of it
 * down, leaving no timer or handle behind.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import { Registry } from 'prom-client';
import type { Logger } from 'winston';
import { ActorCell } from './actor-cell.ts';
import type { SpawnOptions } from './actor-context.ts';
import type { ActorAddress, ActorRef } from './actor-ref.ts';
import { type Behavior, Behaviors } from './behavior.ts';
import { BehaviorRegistry } from './behavior-registry.ts';
import { type Clock, RealClock } from './clock.ts';
import { ComputePool, type ComputePoolInit, type ComputeRunOptions } from './compute-pool.ts';
import type { ComputeTask } from './compute-task.ts';
import { InvalidRequestError, UnavailableError } from './errors.ts';
import { HostedThread } from './hosted-thread.ts';
import { Kernel, type SystemEvents } from './kernel.ts';
import { createLogger, type LogLevel } from './logging.ts';
import { defaultMailboxOptions, type MailboxOptions, resolveMailboxOptions } from './mailbox-options.ts';
import { MessageCodec } from './message-codec.ts';
import { type ReceptionistCommand, receptionistBehavior } from './receptionist.ts';
import type { Router } from './router.ts';
import { registerRuntimeMetrics } from './runtime-metrics.ts';
import { exposeSystemHandle, type SystemHandleInit } from './system-handle.ts';
import { type DispatcherConfig, type ThreadSpawner, WorkerThreads } from './worker-threads.ts';

export interface ActorSystemOptions {
  /** Shown in logs; default `cloudless`. */
  name?: string;
  /** This node's id in every ref it hands out; default a random `node-…` id. */
  nodeId?: string;
  clock?: Clock;
  /** A logger to use instead of the default JSON logger on stderr. */
  logger?: Logger;
  /** Level of the default logger; default `info`. */
  logLevel?: LogLevel;
  /** Source of randomness for backoff jitter; inject a seeded one for deterministic runs. */
  random?: () => number;
  /** Messages an actor handles per turn before the next ready actor runs; default 64. */
  throughput?: number;
  /** How long one dispatcher drain runs before yielding to the event loop; default 10 ms. */
  sliceMs?: number;
  /** Default mailbox for every actor; default capacity 100,000, `drop-newest`. */
  mailbox?: Partial<MailboxOptions>;
  /** Default ask timeout; default 5000 ms. */
  askTimeoutMs?: number;
  /** Most asks waiting at once; default 1,000,000. */
  maxPendingAsks?: number;
  /** Registry for the kernel's metrics; default a new one per system. */
  metrics?: Registry;
  /**
   * Modules whose `defineBehavior` exports can be spawned on worker threads (paths, file URLs or
   * package names). Every thread loads them.
   */
  behaviorModules?: string[];
  /**
   * Worker-thread dispatchers by name. Default, when `behaviorModules` is given:
   * `{ worker: { threads: available cores − 1, at least 1 } }`. Without either, actors run on
   * this thread only.
   */
  dispatchers?: Record<string, DispatcherConfig>;
  /**
   * The compute pool for stateless CPU work (`system.compute`). It starts on first use, or at
   * start when `modules` are given (so a module that does not load fails the start).
   */
  compute?: Omit<ComputePoolInit, 'logger'>;
  /** Internal: this system serves a worker-thread host for the main thread. */
  hosted?: { tag: string; port: MessagePort; registry: BehaviorRegistry };
}

export interface StopOptions {
  /** After this long, whatever has not stopped gracefully is killed; default 30,000 ms. */
  timeoutMs?: number;
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new InvalidRequestError(
      `ActorSystem option ${name} must be a positive integer, got ${String(value)}`,
    );
  }
  return value;
}

export class ActorSystem {
  readonly name: string;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Registry;
  /** The receptionist at `/system/receptionist`; build its messages with `Receptionist.*`. */
  readonly receptionist: ActorRef<ReceptionistCommand>;
  readonly #kernel: Kernel;
  readonly #root: ActorCell<unknown>;
  readonly #user: ActorCell<unknown>;
  readonly #systemGuardian: ActorCell<unknown>;
  #stopping: Promise<void> | undefined;
  readonly #terminated: Promise<void>;
  #markTerminated!: () => void;

  readonly #registry: BehaviorRegistry;
  readonly #hostGuardian: ActorCell<unknown>;
  #threads: WorkerThreads | undefined;
  readonly #computeOptions: Omit<ComputePoolInit, 'logger'> | undefined;
  #compute: Promise<ComputePool> | undefined;
  readonly #handles = new Set<() => void>();
  /** Set on a worker-thread host: its link to the main thread. */
  readonly hostedThread: HostedThread | undefined;

  private constructor(options: ActorSystemOptions, registry: BehaviorRegistry) {
    this.#registry = registry;
    this.#computeOptions = options.compute;
    this.name = options.name ?? 'cloudless';
    this.nodeId = options.nodeId ?? `node-${randomUUID().slice(0, 8)}`;
    if (typeof this.nodeId !== 'string' || this.nodeId.length === 0 || this.nodeId.includes('/')) {
      throw new InvalidRequestError(
        `nodeId must be a non-empty string without '/', got '${String(this.nodeId)}'`,
      );
    }
    this.clock = options.clock ?? new RealClock();
    let log = options.logger;
    if (log === undefined) {
      try {
        log = createLogger({ level: options.logLevel ?? 'info', node: this.nodeId, component: 'runtime' });
      } catch (error) {
        throw new InvalidRequestError(`ActorSystem option logLevel: ${(error as Error).message}`, {
          cause: error,
        });
      }
    }
    this.log = log;
    this.metrics = options.metrics ?? new Registry();
    const askTimeoutMs = options.askTimeoutMs ?? 5000;
    if (!(askTimeoutMs > 0 && Number.isFinite(askTimeoutMs))) {
      throw new InvalidRequestError(
        `ActorSystem option askTimeoutMs must be a positive number, got ${askTimeoutMs}`,
      );
    }
    const sliceMs = options.sliceMs ?? 10;
    if (!(sliceMs > 0))
      throw new InvalidRequestError(`ActorSystem option sliceMs must be positive, got ${sliceMs}`);
    let mailbox: MailboxOptions;
    try {
      mailbox = resolveMailboxOptions(defaultMailboxOptions, options.mailbox);
    } catch (error) {
      throw new InvalidRequestError(`ActorSystem option mailbox: ${(error as Error).message}`, {
        cause: error,
      });
    }
    this.#kernel = new Kernel({
      nodeId: this.nodeId,
      clock: this.clock,
      logger: this.log,
      random: options.random ?? Math.random,
      throughput: positiveInteger('throughput', options.throughput, 64),
      sliceMs,
      mailbox,
      askTimeoutMs,
      maxPendingAsks: positiveInteger('maxPendingAsks', options.maxPendingAsks, 1_000_000),
      tempPrefix: options.hosted === undefined ? '/temp' : `/temp/${options.hosted.tag}`,
    });
    this.#kernel.system = this;
    this.#terminated = new Promise((resolve) => {
      this.#markTerminated = resolve;
    });
    try {
      registerRuntimeMetrics(this.metrics, this.#kernel);
    } catch (error) {
      throw new InvalidRequestError(
        'the metrics registry already holds the cloudless_actor_* metrics of another actor system; ' +
          'give each system its own registry (the default) or merge registries with prom-client',
        { cause: error },
      );
    }

    const guardian = Behaviors.receive<unknown>(() => Behaviors.unhandled).receiveSignal(
      () => Behaviors.same,
    );
    this.#root = new ActorCell(this.#kernel, undefined, '', '/', mailbox, 'infinity');
    this.#kernel.registerCell(this.#root);
    this.#root.start(guardian);
    const user = this.#root.spawn(guardian, { name: 'user', shutdown: 'infinity' });
    const system = this.#root.spawn(guardian, { name: 'system', shutdown: 'infinity' });
    this.#user = this.#kernel.registry.get(user.path) as ActorCell<unknown>;
    this.#systemGuardian = this.#kernel.registry.get(system.path) as ActorCell<unknown>;
    // Holds actors placed here by another thread or node, at the paths they have there.
    const host = this.#root.spawn(guardian, { name: 'host', shutdown: 'infinity' });
    this.#hostGuardian = this.#kernel.registry.get(host.path) as ActorCell<unknown>;
    if (options.hosted === undefined) {
      this.receptionist = this.#systemGuardian.spawn(receptionistBehavior(), { name: 'receptionist' });
      this.hostedThread = undefined;
    } else {
      // A host thread has no receptionist of its own: the main thread's serves every thread.
      this.receptionist = this.#kernel.resolve({ node: this.nodeId, path: '/system/receptionist' });
      this.hostedThread = new HostedThread({
        system: this,
        kernel: this.#kernel,
        port: options.hosted.port,
        codec: new MessageCodec(this.#kernel),
        registry,
      });
      this.#kernel.router = this.hostedThread;
      this.#kernel.remote = this.hostedThread;
    }
  }

  static async start(options: ActorSystemOptions = {}): Promise<ActorSystem> {
    const registry = options.hosted?.registry ?? (await BehaviorRegistry.load(options.behaviorModules ?? []));
    const system = new ActorSystem(options, registry);
    const dispatchers =
      options.dispatchers ??
      (options.hosted === undefined && (options.behaviorModules?.length ?? 0) > 0
        ? { worker: { threads: Math.max(1, os.availableParallelism() - 1) } }
        : undefined);
    if (dispatchers !== undefined && options.hosted === undefined && Object.keys(dispatchers).length > 0) {
      if ('main' in dispatchers) {
        await system.stop();
        throw new InvalidRequestError(
          "'main' names this thread; choose another name for a worker dispatcher",
        );
      }
      try {
        system.#threads = await WorkerThreads.start({
          kernel: system.#kernel,
          codec: new MessageCodec(system.#kernel),
          registry,
          dispatchers,
          logLevel: options.logLevel ?? 'info',
          mailbox: system.#kernel.mailbox,
          askTimeoutMs: system.#kernel.askTimeoutMs,
        });
      } catch (error) {
        await system.stop();
        throw error;
      }
      system.#kernel.threads = system.#threads;
      system.#kernel.router = system.#threads;
    }
    if ((options.compute?.modules?.length ?? 0) > 0) {
      try {
        await system.#computePool();
      } catch (error) {
        await system.stop();
        throw error;
      }
    }
    return system;
  }

  #computePool(): Promise<ComputePool> {
    if (this.#compute === undefined) {
      this.#compute = ComputePool.start({ ...this.#computeOptions, logger: this.log });
      // A pool that failed to start is retried on the next call rather than cached as failed.
      this.#compute.catch(() => {
        this.#compute = undefined;
      });
    }
    return this.#compute;
  }

  /**
   * Runs stateless CPU work (hashing, compression, function-style tasks) on the compute pool, off
   * every actor's thread. Built-in tasks: `sha256`, `gzip`, `gunzip`; more come from
   * `compute.modules`. Bounded queue (`UnavailableError` when full), `signal` cancels.
   */
  compute<TIn, TOut>(task: ComputeTask<TIn, TOut>, input: TIn, options?: ComputeRunOptions): Promise<TOut>;
  compute<TOut = unknown>(task: string, input: unknown, options?: ComputeRunOptions): Promise<TOut>;
  compute(
    task: string | ComputeTask<unknown, unknown>,
    input: unknown,
    options?: ComputeRunOptions,
  ): Promise<unknown> {
    if (this.#stopping !== undefined) {
      return Promise.reject(
        new UnavailableError(`actor system ${this.name} is stopping; no new compute tasks`),
      );
    }
    return this.#computePool().then((pool) => pool.run(task as string, input, options));
  }

  /**
   * Lets code in a raw worker thread reach this system through `port` (comlink; see
   * `connectSystemHandle`). Closed when the returned function is called or the system stops.
   */
  exposeHandle(port: MessagePort, init?: SystemHandleInit): () => void {
    const close = exposeSystemHandle(this, port, init);
    const release = (): void => {
      if (this.#handles.delete(release)) close();
    };
    this.#handles.add(release);
    return release;
  }

  /** The worker-thread dispatchers of this system, if it has any. */
  get workerThreads(): WorkerThreads | undefined {
    return this.#threads;
  }

  /** Behaviors this thread can host by name. */
  get behaviors(): BehaviorRegistry {
    return this.#registry;
  }

  /** Internal (worker-thread hosts): runs an actor placed here by the main thread, at its path there. */
  hostActor(
    behavior: Behavior<unknown>,
    path: string,
    parent: ActorRef<never>,
    mailbox: Partial<MailboxOptions> | undefined,
  ): ActorRef<unknown> {
    return this.#hostGuardian.spawnHosted(behavior, path, parent, mailbox);
  }

  /** Spawns a top-level actor under `/user`. */
  spawn<TMsg>(behavior: Behavior<TMsg>, options?: SpawnOptions): ActorRef<TMsg> {
    if (this.#stopping !== undefined) {
      throw new UnavailableError(
        `actor system ${this.name} is stopping; it cannot spawn ${options?.name ?? 'actors'}`,
      );
    }
    return this.#user.spawn(behavior, options);
  }

  /** Spawns a kernel-side actor under `/system` (subsystems use this, not applications). */
  spawnSystemActor<TMsg>(behavior: Behavior<TMsg>, options?: SpawnOptions): ActorRef<TMsg> {
    if (this.#stopping !== undefined) throw new UnavailableError(`actor system ${this.name} is stopping`);
    return this.#systemGuardian.spawn(behavior, options);
  }

  /** A live ref for a serialized address. */
  resolve<TMsg>(address: ActorAddress): ActorRef<TMsg> {
    return this.#kernel.resolve(address);
  }

  /**
   * Installs the mesh: `router` carries envelopes and death watch to other nodes, `spawner`
   * places actors there (`spawn(…, { node })`). Pass undefined to detach.
   */
  attachMesh(mesh: { router: Router; spawner: ThreadSpawner } | undefined): void {
    this.#kernel.remote = mesh?.router;
    this.#kernel.mesh = mesh?.spawner;
  }

  /** For transport/ only: the kernel the mesh delivers into. */
  get internals(): Kernel {
    return this.#kernel;
  }

  on<TEvent extends keyof SystemEvents>(
    event: TEvent,
    listener: (...args: SystemEvents[TEvent]) => void,
  ): this {
    this.#kernel.events.on(event, listener as never);
    return this;
  }

  off<TEvent extends keyof SystemEvents>(
    event: TEvent,
    listener: (...args: SystemEvents[TEvent]) => void,
  ): this {
    this.#kernel.events.off(event, listener as never);
    return this;
  }

  /** Counts kept by the kernel (the metrics read the same numbers). */
  get stats(): {
    liveActors: number;
    queuedMessages: number;
    processedMessages: number;
    restarts: number;
    deadLetters: number;
    pendingAsks: number;
  } {
    const kernel = this.#kernel;
    let deadLetters = 0;
    for (const count of kernel.deadLetters.values()) deadLetters += count;
    return {
      liveActors: kernel.registry.size,
      queuedMessages: kernel.queued,
      processedMessages: kernel.processed,
      restarts: kernel.restarts,
      deadLetters,
      pendingAsks: kernel.pendingAsks.size,
    };
  }

  /** Resolves once `stop()` has finished. */
  get whenTerminated(): Promise<void> {
    return this.#terminated;
  }

  /**
   * Stops every actor (those under `/user` first, then the system's own), children before
   * parents and in reverse order of spawn, then fails pending asks. Idempotent.
   */
  stop(options: StopOptions = {}): Promise<void> {
    if (this.#stopping === undefined) this.#stopping = this.#stop(options.timeoutMs ?? 30_000);
    return this.#stopping;
  }

  async #stop(timeoutMs: number): Promise<void> {
    const deadline = this.clock.setTimeout(() => {
      this.log.warn(`actor system ${this.name} did not stop within ${timeoutMs} ms; killing what is left`);
      this.#root.kill();
    }, timeoutMs);
    for (const release of [...this.#handles]) release();
    try {
      await this.#stopGuardian(this.#user);
      await this.#stopGuardian(this.#hostGuardian);
      await this.#stopGuardian(this.#systemGuardian);
    } finally {
      this.clock.clearTimeout(deadline);
    }
    // Actors on worker threads stopped with their proxies above; now the threads themselves.
    await this.#threads?.stop();
    // In-flight compute results could still reach actors until here; anything left now fails.
    await this.#compute?.then(
      (pool) => pool.destroy(),
      () => undefined,
    );
    this.#root.kill();
    this.#kernel.failPendingAsks(
      new UnavailableError(`actor system ${this.name} stopped before the reply arrived`),
    );
    this.#kernel.events.removeAllListeners();
    this.#markTerminated();
  }

  #stopGuardian(guardian: ActorCell<unknown>): Promise<void> {
    if (!guardian.isAlive) return Promise.resolve();
    return new Promise<void>((resolve) => {
      guardian.onDead = resolve;
      guardian.requestStop();
    });
  }
}
