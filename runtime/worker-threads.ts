/**
 * Worker-thread dispatchers on the main thread: named pools of worker-thread hosts, placement of
 * actors on them, routing of envelopes and death watch to whatever lives there, and
 * let-it-crash at thread level: when a host dies, every actor on it fails (their supervisors
 * restart them on a live host), asks to them fail, and the thread is replaced.
 */
import os from 'node:os';
import type { ResourceLimits } from 'node:worker_threads';
import type { DeathWatcher } from './actor-cell.ts';
import type { ActorAddress, ActorRef } from './actor-ref.ts';
import type { Behavior } from './behavior.ts';
import type { BehaviorRegistry } from './behavior-registry.ts';
import { errorFromWire, InvalidRequestError, UnavailableError, WorkerThreadDiedError } from './errors.ts';
import type { SpawnMailbox, StrategyData, WireError } from './host-protocol.ts';
import type { HostedSnapshot } from './introspection.ts';
import type { Kernel } from './kernel.ts';
import type { MailboxOptions } from './mailbox-options.ts';
import type { MessageCodec } from './message-codec.ts';
import { PlacedActorRef, type ProxyHost } from './placed-actor-proxy.ts';
import { type ActorHost, type makePlacedRef, placeBehavior } from './placement.ts';
import type { RegisteredBehavior } from './registered-behavior.ts';
import type { Router } from './router.ts';
import { WorkerHost } from './worker-host.ts';

export interface DispatcherConfig {
  /** Worker threads in this dispatcher; default: available cores − 1, at least 1. */
  threads?: number;
  /** V8 limits per worker (an actor that exceeds them kills its thread, not the node). */
  resourceLimits?: ResourceLimits;
}

export interface WorkerThreadsInit {
  kernel: Kernel;
  codec: MessageCodec;
  registry: BehaviorRegistry;
  dispatchers: Record<string, DispatcherConfig>;
  logLevel: string;
  mailbox: MailboxOptions;
  askTimeoutMs: number;
  /** How long a starting thread may take to load its modules; default 20 s. */
  startTimeoutMs?: number;
}

/** What `ActorCell.spawn` needs to put an actor on another thread. */
export interface ThreadSpawner {
  readonly dispatcherNames: readonly string[];
  prepare(
    behavior: Behavior<unknown>,
    dispatcher: string,
    mailbox: Partial<MailboxOptions> | undefined,
  ): { behavior: Behavior<unknown>; makeSelf: typeof makePlacedRef };
}

const resourceLimitKeys = [
  'maxYoungGenerationSizeMb',
  'maxOldGenerationSizeMb',
  'codeRangeSizeMb',
  'stackSizeMb',
] as const;

/** Checks one dispatcher's config; returns its thread count. */
function validateDispatcher(name: string, config: DispatcherConfig): number {
  if (typeof config !== 'object' || config === null) {
    throw new InvalidRequestError(
      `dispatcher '${name}': its config must be an object, got ${String(config)}`,
    );
  }
  const count = config.threads ?? Math.max(1, os.availableParallelism() - 1);
  if (!Number.isInteger(count) || count < 1 || count > 256) {
    throw new InvalidRequestError(
      `dispatcher '${name}': threads must be an integer from 1 to 256, got ${String(count)}`,
    );
  }
  const limits = config.resourceLimits ?? {};
  for (const key of Object.keys(limits)) {
    const value = (limits as Record<string, unknown>)[key];
    if (!(resourceLimitKeys as readonly string[]).includes(key)) {
      throw new InvalidRequestError(
        `dispatcher '${name}': unknown resourceLimits key '${key}'; use ${resourceLimitKeys.join(', ')}`,
      );
    }
    if (value !== undefined && !(typeof value === 'number' && value > 0 && Number.isFinite(value))) {
      throw new InvalidRequestError(
        `dispatcher '${name}': resourceLimits.${key} must be a positive number of megabytes, got ${String(value)}`,
      );
    }
  }
  return count;
}

interface Slot {
  host: WorkerHost;
  readonly config: DispatcherConfig;
}

export class WorkerThreads implements Router, ThreadSpawner, ProxyHost {
  readonly #init: WorkerThreadsInit;
  readonly #kernel: Kernel;
  readonly #slots = new Map<string, Slot[]>();
  readonly #byTag = new Map<string, WorkerHost>();
  readonly #proxies = new Map<WorkerHost, Set<PlacedActorRef<unknown>>>();
  readonly #nextPick = new Map<string, number>();
  #generation = 0;
  #stopping = false;

  private constructor(init: WorkerThreadsInit) {
    this.#init = init;
    this.#kernel = init.kernel;
  }

  static async start(init: WorkerThreadsInit): Promise<WorkerThreads> {
    // Every config is checked before any thread starts, so a bad one leaves nothing running.
    const counts = new Map<string, number>();
    for (const [name, config] of Object.entries(init.dispatchers)) {
      counts.set(name, validateDispatcher(name, config));
    }
    const threads = new WorkerThreads(init);
    const starting: Promise<void>[] = [];
    const timeoutMs = init.startTimeoutMs ?? 20_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      for (const [name, config] of Object.entries(init.dispatchers)) {
        const slots: Slot[] = [];
        threads.#slots.set(name, slots);
        for (let index = 0; index < (counts.get(name) ?? 1); index++) {
          const host = threads.#startHost(name, index, config);
          slots.push({ host, config });
          starting.push(host.ready);
        }
      }
      await Promise.race([
        Promise.all(starting),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new UnavailableError(`worker threads did not start within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } catch (error) {
      await threads.stop();
      throw new UnavailableError(`cannot start worker-thread hosts: ${(error as Error).message}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
    return threads;
  }

  get dispatcherNames(): readonly string[] {
    return [...this.#slots.keys()];
  }

  /** Live hosts, for tests and stats. */
  hosts(dispatcher: string): readonly WorkerHost[] {
    return (this.#slots.get(dispatcher) ?? []).map((slot) => slot.host).filter((host) => host.alive);
  }

  /**
   * What every live host runs (`cloudless status --tree`), each marked `<dispatcher>/<tag>`; a
   * host that does not answer within `timeoutMs` is left out.
   */
  async introspect(
    maxActors: number,
    timeoutMs: number,
  ): Promise<{ readonly thread: string; readonly hosted: HostedSnapshot }[]> {
    const hosts: WorkerHost[] = [];
    for (const slots of this.#slots.values())
      for (const slot of slots) if (slot.host.alive) hosts.push(slot.host);
    const answers = await Promise.all(hosts.map((host) => host.introspect(maxActors, timeoutMs)));
    return answers.flatMap((hosted, i) => {
      const host = hosts[i] as WorkerHost;
      return hosted === undefined ? [] : [{ thread: `${host.dispatcher}/${host.tag}`, hosted }];
    });
  }

  #startHost(dispatcher: string, slotIndex: number, config: DispatcherConfig): WorkerHost {
    const tag = `w${slotIndex}g${this.#generation++}`;
    const host = new WorkerHost({
      tag,
      dispatcher,
      slot: slotIndex,
      kernel: this.#kernel,
      codec: this.#init.codec,
      modules: this.#init.registry.modules,
      logLevel: this.#init.logLevel,
      resourceLimits: config.resourceLimits,
      mailbox: { capacity: this.#init.mailbox.capacity, overflow: this.#init.mailbox.overflow },
      askTimeoutMs: this.#init.askTimeoutMs,
      onTerminated: (h, path, id, error) => this.#onTerminated(h, path, id, error),
      onExit: (h, code, error) => this.#onExit(h, code, error),
    });
    this.#byTag.set(tag, host);
    this.#proxies.set(host, new Set());
    return host;
  }

  // ---------------------------------------------------------------- placement

  prepare(
    behavior: Behavior<unknown>,
    dispatcher: string,
    mailbox: Partial<MailboxOptions> | undefined,
  ): { behavior: Behavior<unknown>; makeSelf: typeof makePlacedRef } {
    if (!this.#slots.has(dispatcher)) {
      throw new InvalidRequestError(
        `no dispatcher named '${dispatcher}'; configured: main, ${this.dispatcherNames.join(', ')}`,
      );
    }
    return placeBehavior({
      behavior,
      where: `dispatcher '${dispatcher}'`,
      key: dispatcher,
      registry: this.#init.registry,
      host: this,
      mailbox,
    });
  }

  pickHost(dispatcher: string): WorkerHost {
    const slots = this.#slots.get(dispatcher) ?? [];
    const start = this.#nextPick.get(dispatcher) ?? 0;
    for (let i = 0; i < slots.length; i++) {
      const index = (start + i) % slots.length;
      const host = (slots[index] as Slot).host;
      if (host.alive && !host.shuttingDown) {
        this.#nextPick.set(dispatcher, index + 1);
        return host;
      }
    }
    throw new UnavailableError(`dispatcher '${dispatcher}' has no live worker thread to place an actor on`);
  }

  spawnOn(
    host: ActorHost,
    path: string,
    remote: RegisteredBehavior<unknown>,
    strategies: readonly StrategyData[],
    parent: string,
    mailbox: SpawnMailbox | undefined,
  ): number {
    return (host as WorkerHost).placements.spawn(path, remote, strategies, parent, mailbox);
  }

  track(ref: PlacedActorRef<unknown>, host: ActorHost): void {
    if (host instanceof WorkerHost) this.#proxies.get(host)?.add(ref);
  }

  untrack(ref: PlacedActorRef<unknown>, host: ActorHost): void {
    if (host instanceof WorkerHost) this.#proxies.get(host)?.delete(ref);
  }

  // ---------------------------------------------------------------- routing (Router)

  /** The host of the actor at `path`: the worker actor itself, a descendant of it, or an ask's reply ref. */
  hostForPath(path: string): WorkerHost | undefined {
    if (path.startsWith('/temp/')) {
      const tag = path.slice(6, path.indexOf('/', 6) === -1 ? undefined : path.indexOf('/', 6));
      return this.#byTag.get(tag);
    }
    const registry = this.#kernel.registry;
    for (let prefix = path; prefix.length > 1; prefix = prefix.slice(0, prefix.lastIndexOf('/'))) {
      const cell = registry.get(prefix);
      if (cell === undefined) continue;
      const self = cell.self;
      return self instanceof PlacedActorRef && self.host instanceof WorkerHost ? self.host : undefined;
    }
    return undefined;
  }

  deliver(to: ActorAddress, message: unknown): boolean {
    const host = this.hostForPath(to.path);
    if (host?.alive) return host.channel.send(to.path, message);
    this.#kernel.deadLetter(to.path, message, 'not-found');
    return false;
  }

  watch(target: ActorAddress, watcher: DeathWatcher): void {
    const host = this.hostForPath(target.path);
    if (host?.alive) host.watches.request(target as ActorRef<never>, watcher);
    else watcher.deathNotice(target as ActorRef<never>, undefined, false);
  }

  unwatch(target: ActorAddress, watcher: DeathWatcher): void {
    this.hostForPath(target.path)?.watches.cancel(target, watcher);
  }

  // ---------------------------------------------------------------- events from hosts

  #onTerminated(host: WorkerHost, path: string, id: number, error: WireError | undefined): void {
    const cell = this.#kernel.registry.get(path);
    if (cell === undefined || !(cell.self instanceof PlacedActorRef)) return;
    // Only the current incarnation's end ends the proxy, not that of one it replaced.
    if (cell.self.host !== host || cell.self.incarnation !== id) return;
    cell.terminateAs(error === undefined ? undefined : errorFromWire(error));
  }

  #onExit(host: WorkerHost, code: number, cause: Error | undefined): void {
    this.#byTag.delete(host.tag);
    const proxies = [...(this.#proxies.get(host) ?? [])];
    this.#proxies.delete(host);
    // From now on tells wait in the proxies' mailboxes: a restarted actor gets them, a stopped
    // one turns them into dead letters, instead of them vanishing into the closed channel.
    for (const ref of proxies) ref.route = undefined;
    if (host.shuttingDown || this.#stopping) return;
    const reason = cause?.message ?? `exit code ${code}`;
    const died = new WorkerThreadDiedError(
      `worker thread ${host.tag} of dispatcher '${host.dispatcher}' died (${reason}); ` +
        'its actors fail and their supervisors decide whether they restart on a live thread',
      { cause },
    );
    this.#kernel.logger.error(died.message);
    for (const ask of [...this.#kernel.pendingAsks]) {
      if (this.hostForPath(ask.targetPath) === host) ask.fail(died);
    }
    const pending = host.channel.abandon();
    for (let i = 0; i < pending.length; i += 2) {
      this.#kernel.deadLetter(pending[i] as string, pending[i + 1], 'actor-dead');
    }
    host.watches.endAll(died);
    // Replace the thread first, so the restarts below find a live host.
    const slot = this.#slots.get(host.dispatcher)?.[host.slot];
    if (slot !== undefined && slot.host === host && host.wasReady) {
      try {
        slot.host = this.#startHost(host.dispatcher, host.slot, slot.config);
      } catch (error) {
        // This runs in the dead worker's exit handler: a throw here would crash the main thread.
        this.#kernel.logger.error(
          `cannot replace worker thread ${host.tag} of dispatcher '${host.dispatcher}': ${(error as Error).message}; ` +
            'the dispatcher runs with one thread fewer',
        );
      }
    }
    for (const ref of proxies) ref.cell.failAs(died);
  }

  /** Stops every host (after the actors on them have been stopped through their proxies). */
  async stop(timeoutMs = 5000): Promise<void> {
    this.#stopping = true;
    const hosts: WorkerHost[] = [];
    for (const slots of this.#slots.values()) for (const slot of slots) hosts.push(slot.host);
    await Promise.all(hosts.map((host) => host.shutdown(timeoutMs)));
  }
}
