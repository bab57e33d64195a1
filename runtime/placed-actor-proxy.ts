/**
 * This side of an actor placed elsewhere: on a worker thread, or on another node. The actor's ref
 * is a `PlacedActorRef`: its `tell` goes straight into the channel to the host (one array push, no
 * hop through a mailbox here). Behind the ref sits a local proxy actor that is the child its
 * parent supervises and watches: it spawns the real actor on a host, stops it when it is stopped,
 * terminates as the real actor terminates, and fails (so its supervisor restarts it, on a live
 * host) when the host is lost (its thread died, its node became unreachable). While the proxy
 * restarts, messages wait in its mailbox and are forwarded, in order, before the ref talks to the
 * new host directly again.
 */
import type { ActorCell } from './actor-cell.ts';
import { type Behavior, Behaviors } from './behavior.ts';
import type { SpawnMailbox, StrategyData } from './host-protocol.ts';
import { LocalActorRef } from './local-actor-ref.ts';
import type { ActorHost } from './placement.ts';
import type { RegisteredBehavior } from './registered-behavior.ts';

export class PlacedActorRef<TMsg> extends LocalActorRef<TMsg> {
  /** Set while the proxy's mailbox is empty and the hosted actor is up: tells bypass the proxy. */
  route: ActorHost | undefined;
  /** The host of the current incarnation, for routing to its descendants. */
  host: ActorHost | undefined;
  /** The current incarnation's id on its host (see `ActorHost.spawnRemote`). */
  incarnation: number | undefined;

  override tell(message: TMsg): void {
    const route = this.route;
    if (route !== undefined) route.channel.send(this.path, message);
    else this.cell.enqueue(message);
  }
}

export interface ProxyHost {
  /** The host to place the next incarnation on, for a dispatcher name or a node id. */
  pickHost(key: string): ActorHost;
  track(ref: PlacedActorRef<unknown>, host: ActorHost): void;
  untrack(ref: PlacedActorRef<unknown>, host: ActorHost): void;
  spawnOn(
    host: ActorHost,
    path: string,
    remote: RegisteredBehavior<unknown>,
    strategies: readonly StrategyData[],
    parent: string,
    mailbox: SpawnMailbox | undefined,
  ): number;
}

export function proxyBehavior(
  threads: ProxyHost,
  dispatcher: string,
  remote: RegisteredBehavior<unknown>,
  strategies: readonly StrategyData[],
  mailbox: SpawnMailbox | undefined,
): Behavior<unknown> {
  return Behaviors.setup<unknown>((ctx) => {
    const self = ctx.self as PlacedActorRef<unknown>;
    const cell = ctx as unknown as ActorCell<unknown>;
    const host = threads.pickHost(dispatcher);
    const id = threads.spawnOn(host, self.path, remote, strategies, ctx.parent?.path ?? '/', mailbox);
    self.host = host;
    self.incarnation = id;
    threads.track(self, host);
    const detach = (): void => {
      self.route = undefined;
      threads.untrack(self, host);
    };
    // Killed (brutal_kill, or a missed shutdown) skips PostStop: the hosted actor goes too.
    cell.onDead = () => {
      detach();
      void host.stopRemote(self.path, id, true);
    };
    const attachIfDrained = (): void => {
      if (cell.mailboxSize === 0 && host.alive) self.route = host;
    };
    attachIfDrained();
    return Behaviors.receive<unknown>((_ctx, message) => {
      host.channel.send(self.path, message);
      attachIfDrained();
      return Behaviors.same;
    }).receiveSignal((_ctx, signal) => {
      if (signal.type === 'PostStop') {
        detach();
        return host.stopRemote(self.path, id, false);
      }
      if (signal.type === 'PreRestart') {
        // The proxy restarts only when its host died; kill the old incarnation in case it did not.
        detach();
        void host.stopRemote(self.path, id, true);
      }
      return Behaviors.same;
    });
  });
}
