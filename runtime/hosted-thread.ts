/**
 * The worker-thread side of a host: it runs the actors the main thread places here, delivers
 * envelopes to them, and is the router of this thread's kernel: anything not hosted here goes to
 * the main thread, which knows where everything lives.
 */
import type { MessagePort } from 'node:worker_threads';
import type { DeathWatcher } from './actor-cell.ts';
import type { ActorAddress, ActorRef } from './actor-ref.ts';
import type { ActorSystem } from './actor-system.ts';
import type { BehaviorRegistry } from './behavior-registry.ts';
import type { ControlMessage } from './host-protocol.ts';
import { snapshotHostedActors } from './introspection.ts';
import type { Kernel } from './kernel.ts';
import type { MessageCodec } from './message-codec.ts';
import { hostPlacedActor } from './placement.ts';
import { RemoteWatches } from './remote-watches.ts';
import type { Router } from './router.ts';
import { ThreadChannel } from './thread-channel.ts';

export class HostedThread implements Router {
  readonly #system: ActorSystem;
  readonly #kernel: Kernel;
  readonly #registry: BehaviorRegistry;
  readonly #codec: MessageCodec;
  readonly #channel: ThreadChannel;
  readonly #watches: RemoteWatches;
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
    this.#watches = new RemoteWatches(init.kernel, (message) => this.#channel.control(message));
  }

  // Router: everything that is not here goes to the main thread.
  deliver(to: ActorAddress, message: unknown): boolean {
    return this.#channel.send(to.path, message);
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
      case 'introspect':
        this.#channel.control({
          t: 'introspected',
          id: message.id,
          hosted: snapshotHostedActors(this.#kernel, { maxActors: message.maxActors }),
        });
        return;
      default:
        this.#kernel.logger.warn(`unexpected message on worker host: ${String(message.t)}`);
    }
  }

  #spawn(message: Extract<ControlMessage, { t: 'spawn' }>): void {
    hostPlacedActor({
      system: this.#system,
      kernel: this.#kernel,
      registry: this.#registry,
      codec: this.#codec,
      message,
      parentNode: this.#kernel.nodeId,
      report: (reply) => this.#channel.control(reply),
    });
  }

  /** Sends what is pending before the thread goes. */
  close(): void {
    this.#channel.close();
  }
}
