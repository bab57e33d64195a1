/**
 * The worker-thread side of a host: it runs the actors the main thread places here, delivers
 * envelopes to them, and is the router of this thread's kernel: anything not hosted here goes to
 * the main thread, which knows where everything lives.
 */
import type { MessagePort } from 'node:worker_threads';
import type { DeathWatcher } from './actor-cell.ts';
import type { ActorAddress, ActorRef } from './actor-ref.ts';
import type { ActorSystem } from './actor-system.ts';
import { type Behavior, SuperviseBehavior } from './behavior.ts';
import type { BehaviorRegistry } from './behavior-registry.ts';
import { toError } from './errors.ts';
import type { Kernel } from './kernel.ts';
import type { MessageCodec } from './message-codec.ts';
import type { Envelope, Router } from './router.ts';
import {
  BackoffStrategy,
  RestartStrategy,
  type SupervisorStrategy as Strategy,
  SupervisorStrategy,
} from './supervisor-strategy.ts';
import { ThreadChannel } from './thread-channel.ts';
import { type ControlMessage, type StrategyData, toWireError } from './thread-protocol.ts';
import { ThreadWatches } from './thread-watches.ts';

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
  }
}

/** Classes cannot cross threads; a filter by class name matches the error's class or an ancestor. */
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

export class HostedThread implements Router {
  readonly #system: ActorSystem;
  readonly #kernel: Kernel;
  readonly #registry: BehaviorRegistry;
  readonly #codec: MessageCodec;
  readonly #channel: ThreadChannel;
  readonly #watches: ThreadWatches;
  /** Set by the worker entry: what to do when the main thread asks this host to shut down. */
  onShutdownRequested: () => void = () => {};

  constructor(init: {
    system: ActorSystem;
    kernel: Kernel;
    port: MessagePort;
    codec: MessageCodec;
    registry: BehaviorRegistry;
  }) {
    this.#system = init.system;
    this.#kernel = init.kernel;
    this.#registry = init.registry;
    this.#codec = init.codec;
    this.#channel = new ThreadChannel(init.port, init.codec, (path, message) =>
      init.kernel.deadLetter(path, message, 'mailbox-full'),
    );
    this.#watches = new ThreadWatches(init.kernel, (message) => this.#channel.control(message));
  }

  // Router: everything that is not here goes to the main thread.
  deliver(envelope: Envelope): void {
    this.#channel.send(envelope.to.path, envelope.message);
  }

  watch(target: ActorAddress, watcher: DeathWatcher): void {
    this.#watches.request(target as ActorRef<never>, watcher);
  }

  unwatch(target: ActorAddress, watcher: DeathWatcher): void {
    this.#watches.cancel(target, watcher);
  }

  onMessage(message: ControlMessage): void {
    switch (message.t) {
      case 'batch': {
        const envelopes = this.#channel.decode(message.data);
        const kernel = this.#kernel;
        for (let i = 0; i < envelopes.length; i += 2) {
          const path = envelopes[i] as string;
          if (!kernel.deliverLocal(path, envelopes[i + 1]))
            kernel.deadLetter(path, envelopes[i + 1], 'not-found');
        }
        this.#channel.owe(message.n);
        return;
      }
      case 'ack':
        this.#channel.acknowledged(message.n);
        return;
      case 'spawn':
        this.#spawn(message);
        return;
      case 'stop':
        this.#kernel.registry.get(message.path)?.requestStop();
        return;
      case 'kill':
        this.#kernel.registry.get(message.path)?.kill();
        return;
      case 'watch':
        this.#watches.serve(message.id, message.path);
        return;
      case 'unwatch':
        this.#watches.stopServing(message.id);
        return;
      case 'death':
        this.#watches.onDeath(message.id, message.error);
        return;
      case 'shutdown':
        this.onShutdownRequested();
        return;
      default:
        this.#kernel.logger.warn(`unexpected message on worker host: ${String(message.t)}`);
    }
  }

  #spawn(message: Extract<ControlMessage, { t: 'spawn' }>): void {
    const { path, id } = message;
    const reportTerminated = (error: Error | undefined): void => {
      this.#channel.control({ t: 'terminated', id, path, error: toWireError(error) });
    };
    let ref: ActorRef<unknown>;
    try {
      const definition = this.#registry.get(message.behavior);
      const props = this.#codec.decode(message.props);
      let behavior: Behavior<unknown> = definition.factory(props);
      for (let i = message.strategies.length - 1; i >= 0; i--) {
        const data = message.strategies[i] as StrategyData;
        behavior = new SuperviseBehavior(
          behavior,
          strategyFrom(data),
          data.errorClassName === undefined ? undefined : errorClassNamed(data.errorClassName),
        );
      }
      const parent = this.#kernel.resolve<never>({ node: this.#kernel.nodeId, path: message.parent });
      ref = this.#system.hostActor(behavior, path, parent, message.mailbox);
    } catch (error) {
      reportTerminated(toError(error));
      return;
    }
    const relay: DeathWatcher = { deathNotice: (_ref, error) => reportTerminated(error) };
    this.#kernel.watch(ref as ActorRef<never>, relay);
  }

  /** Sends what is pending before the thread goes. */
  close(): void {
    this.#channel.close();
  }
}
