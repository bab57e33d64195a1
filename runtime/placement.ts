/**
 * Placing an actor somewhere other than this thread: on a worker-thread host or on another node.
 * Both work the same way, so both use this module: the behavior must be a registered one
 * (its code is loaded there), per-actor strategies travel as data, and a local proxy (see
 * placed-actor-proxy.ts) stands in for the actor as the child its parent supervises.
 *
 * `RemotePlacements` is the placing side's bookkeeping (which incarnation lives where, who waits
 * for a stop); `hostPlacedActor` is the hosting side's answer to a `spawn` control message.
 */
import type { DeathWatcher } from './actor-cell.ts';
import type { ActorRef } from './actor-ref.ts';
import type { ActorSystem } from './actor-system.ts';
import { type Behavior, BehaviorTag, SuperviseBehavior } from './behavior.ts';
import type { BehaviorRegistry } from './behavior-registry.ts';
import { InvalidRequestError, toError } from './errors.ts';
import type { ControlMessage, SpawnMailbox, StrategyData } from './host-protocol.ts';
import { toWireError } from './host-protocol.ts';
import type { Kernel } from './kernel.ts';
import type { MailboxOptions } from './mailbox-options.ts';
import type { MessageCodec } from './message-codec.ts';
import { PlacedActorRef, type ProxyHost, proxyBehavior } from './placed-actor-proxy.ts';
import type { RegisteredBehavior } from './registered-behavior.ts';
import {
  BackoffStrategy,
  RestartStrategy,
  type SupervisorStrategy as Strategy,
  SupervisorStrategy,
} from './supervisor-strategy.ts';

/** Where a placed actor lives, as its proxy sees it. */
export interface ActorHost {
  readonly alive: boolean;
  readonly channel: { send(path: string, message: unknown): void };
  stopRemote(path: string, id: number, brutal: boolean): Promise<void>;
}

export function makePlacedRef(
  cell: ConstructorParameters<typeof PlacedActorRef>[0],
  node: string,
  path: string,
): PlacedActorRef<unknown> {
  return new PlacedActorRef(cell, node, path);
}

function strategyData(strategy: Strategy, errorClassName: string | undefined): StrategyData {
  switch (strategy.kind) {
    case 'restart':
      return {
        kind: 'restart',
        maxRestarts: strategy.maxRestarts,
        withinMs: strategy.withinMs,
        errorClassName,
      };
    case 'backoff':
      return {
        kind: 'backoff',
        minMs: strategy.minMs,
        maxMs: strategy.maxMs,
        jitter: strategy.jitter,
        resetAfterMs: strategy.resetAfterMs,
        maxRestarts: strategy.maxRestarts,
        errorClassName,
      };
    default:
      return { kind: strategy.kind, errorClassName };
  }
}

/**
 * Turns a behavior to be spawned at `key` (a dispatcher name or a node) into the proxy behavior
 * spawned here. Throws `InvalidRequestError` for anything that cannot run there.
 */
export function placeBehavior(init: {
  behavior: Behavior<unknown>;
  /** For messages: "dispatcher 'worker'", "node 12D3…". */
  where: string;
  key: string;
  registry: BehaviorRegistry;
  host: ProxyHost;
  mailbox: Partial<MailboxOptions> | undefined;
}): { behavior: Behavior<unknown>; makeSelf: typeof makePlacedRef } {
  const loaded = init.registry.modules.length === 0 ? 'none' : init.registry.modules.join(', ');
  const wrappers: SuperviseBehavior<unknown>[] = [];
  let inner: Behavior<unknown> = init.behavior;
  while (inner.tag === BehaviorTag.supervise) {
    wrappers.push(inner as SuperviseBehavior<unknown>);
    inner = (inner as SuperviseBehavior<unknown>).inner;
  }
  if (inner.tag !== BehaviorTag.registered) {
    throw new InvalidRequestError(
      `only behaviors defined with defineBehavior can run on ${init.where} (their code must be loaded ` +
        `there); define it in a module listed in behaviorModules (loaded: ${loaded})`,
    );
  }
  const remote = inner as RegisteredBehavior<unknown>;
  const registered = init.registry.get(remote.definitionName);
  if (registered.factory !== remote.factory) {
    // Same name, other code: the host would run the registered one, not the one given here.
    throw new InvalidRequestError(
      `behavior '${remote.definitionName}' given to spawn on ${init.where} is not the one registered under ` +
        `that name; spawn the definition exported by its module (loaded: ${loaded})`,
    );
  }
  const strategies = wrappers.map((wrapper) => strategyData(wrapper.strategy, wrapper.errorClass?.name));
  const mailbox: SpawnMailbox | undefined =
    init.mailbox === undefined
      ? undefined
      : { capacity: init.mailbox.capacity, overflow: init.mailbox.overflow };
  // The proxy carries the same strategies: they decide what happens when the host itself is lost.
  let proxied: Behavior<unknown> = proxyBehavior(init.host, init.key, remote, strategies, mailbox);
  for (let i = wrappers.length - 1; i >= 0; i--) {
    const wrapper = wrappers[i] as SuperviseBehavior<unknown>;
    proxied = new SuperviseBehavior(proxied, wrapper.strategy, wrapper.errorClass);
  }
  return { behavior: proxied, makeSelf: makePlacedRef };
}

/** The placing side: incarnations spawned on one host, and who waits for each to stop. */
export class RemotePlacements {
  /** path → id of the incarnation spawned there and not yet reported terminated. */
  readonly live = new Map<string, number>();
  readonly #control: (message: ControlMessage) => void;
  readonly #codec: MessageCodec;
  readonly #stopWaiters = new Map<number, (() => void)[]>();
  #nextId = 1;

  constructor(control: (message: ControlMessage) => void, codec: MessageCodec) {
    this.#control = control;
    this.#codec = codec;
  }

  /** Sends the spawn; returns the incarnation id the host will report termination with. */
  spawn(
    path: string,
    behavior: RegisteredBehavior<unknown>,
    strategies: readonly StrategyData[],
    parent: string,
    mailbox: SpawnMailbox | undefined,
  ): number {
    const id = this.#nextId++;
    this.live.set(path, id);
    this.#control({
      t: 'spawn',
      id,
      path,
      behavior: behavior.definitionName,
      props: this.#codec.encode(behavior.props),
      strategies,
      parent,
      mailbox,
    });
    return id;
  }

  /** Asks the host to stop that incarnation; resolves once it reported termination (or the host is gone). */
  stop(path: string, id: number, brutal: boolean, hostAlive: boolean): Promise<void> {
    if (!hostAlive || this.live.get(path) !== id) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiters = this.#stopWaiters.get(id);
      if (waiters === undefined) this.#stopWaiters.set(id, [resolve]);
      else waiters.push(resolve);
      this.#control({ t: brutal ? 'kill' : 'stop', path });
    });
  }

  /** The host reported that incarnation `id` at `path` terminated. */
  terminated(path: string, id: number): void {
    if (this.live.get(path) === id) this.live.delete(path);
    this.#release(id);
  }

  /** The host is gone: nobody waits any longer. */
  releaseAll(): void {
    for (const id of [...this.#stopWaiters.keys()]) this.#release(id);
    this.live.clear();
  }

  #release(id: number): void {
    const waiters = this.#stopWaiters.get(id);
    if (waiters === undefined) return;
    this.#stopWaiters.delete(id);
    for (const resolve of waiters) resolve();
  }
}

function strategyFrom(data: StrategyData): Strategy {
  switch (data.kind) {
    case 'resume':
      return SupervisorStrategy.resume;
    case 'stop':
      return SupervisorStrategy.stop;
    case 'restart':
      return new RestartStrategy(data.maxRestarts ?? -1, data.withinMs ?? 0);
    case 'backoff':
      return new BackoffStrategy(
        data.minMs ?? 100,
        data.maxMs ?? 10_000,
        data.jitter ?? 0.2,
        data.resetAfterMs,
        data.maxRestarts ?? -1,
      );
    default:
      throw new InvalidRequestError(
        `unknown supervisor strategy '${String((data as { kind?: unknown }).kind)}'`,
      );
  }
}

/** Classes cannot cross threads or nodes; a filter by class name matches the error's class or an ancestor. */
function errorClassNamed(name: string): abstract new (...args: never[]) => Error {
  const matches = (value: unknown): boolean => {
    for (let proto = Object.getPrototypeOf(value); proto !== null; proto = Object.getPrototypeOf(proto)) {
      if (proto.constructor?.name === name) return true;
    }
    return false;
  };
  // `instanceof` consults Symbol.hasInstance, which is all the supervision clause needs.
  const matcher = Object.defineProperty(() => {}, Symbol.hasInstance, { value: matches });
  return matcher as unknown as abstract new (
    ...args: never[]
  ) => Error;
}

/**
 * The hosting side: runs the actor a `spawn` control message asks for, at the path it has on the
 * placing side, and reports its termination (or a failed start) with `report`.
 */
export function hostPlacedActor(init: {
  system: ActorSystem;
  kernel: Kernel;
  registry: BehaviorRegistry;
  codec: MessageCodec;
  message: Extract<ControlMessage, { t: 'spawn' }>;
  parentNode: string;
  report: (message: ControlMessage) => void;
}): void {
  const { message, kernel } = init;
  const { path, id } = message;
  const reportTerminated = (error: Error | undefined): void => {
    init.report({ t: 'terminated', id, path, error: toWireError(error) });
  };
  let ref: ActorRef<unknown>;
  try {
    if (typeof path !== 'string' || path[0] !== '/' || path.length > 1024 || typeof id !== 'number') {
      throw new InvalidRequestError('a spawn request needs a path starting with / and a numeric id');
    }
    if (!Array.isArray(message.strategies) || message.strategies.length > 16) {
      throw new InvalidRequestError('a spawn request carries at most 16 strategies');
    }
    const definition = init.registry.get(String(message.behavior));
    const props = init.codec.decode(message.props);
    let behavior: Behavior<unknown> = definition.factory(props);
    for (let i = message.strategies.length - 1; i >= 0; i--) {
      const data = message.strategies[i] as StrategyData;
      behavior = new SuperviseBehavior(
        behavior,
        strategyFrom(data),
        data.errorClassName === undefined ? undefined : errorClassNamed(String(data.errorClassName)),
      );
    }
    const parent = kernel.resolve<never>({ node: init.parentNode, path: String(message.parent) });
    ref = init.system.hostActor(behavior, path, parent, message.mailbox);
  } catch (error) {
    reportTerminated(toError(error));
    return;
  }
  const relay: DeathWatcher = { deathNotice: (_ref, error) => reportTerminated(error) };
  kernel.watch(ref as ActorRef<never>, relay);
}
