/**
 * The receptionist: actors register under a `ServiceKey`, others find or subscribe to the set
 * registered under it. It is an actor at `/system/receptionist` speaking plain messages, so the
 * mesh can later speak to it from other nodes. Registrations end when the actor terminates.
 */
import type { ActorRef } from './actor-ref.ts';
import { type Behavior, Behaviors } from './behavior.ts';
import type { ServiceKey } from './service-key.ts';

export interface Listing<TMsg> {
  readonly type: 'Listing';
  readonly key: ServiceKey<TMsg>;
  readonly services: readonly ActorRef<TMsg>[];
}

export interface Registered {
  readonly type: 'Registered';
  readonly key: ServiceKey<unknown>;
  readonly service: ActorRef<unknown>;
}

export type ReceptionistCommand =
  | {
      readonly type: 'Register';
      readonly key: ServiceKey<never>;
      readonly service: ActorRef<never>;
      readonly replyTo?: ActorRef<Registered>;
    }
  | {
      readonly type: 'Deregister';
      readonly key: ServiceKey<never>;
      readonly service: ActorRef<never>;
      readonly replyTo?: ActorRef<Registered>;
    }
  | { readonly type: 'Find'; readonly key: ServiceKey<never>; readonly replyTo: ActorRef<Listing<never>> }
  | {
      readonly type: 'Subscribe';
      readonly key: ServiceKey<never>;
      readonly subscriber: ActorRef<Listing<never>>;
    }
  | {
      readonly type: 'Unsubscribe';
      readonly key: ServiceKey<never>;
      readonly subscriber: ActorRef<Listing<never>>;
    }
  | { readonly type: 'ActorTerminated'; readonly ref: ActorRef<never> };

/** Builders for receptionist messages, typed by the key. */
export const Receptionist = {
  register<TMsg>(
    key: ServiceKey<TMsg>,
    service: ActorRef<TMsg>,
    replyTo?: ActorRef<Registered>,
  ): ReceptionistCommand {
    return { type: 'Register', key: key as ServiceKey<never>, service: service as ActorRef<never>, replyTo };
  },
  deregister<TMsg>(
    key: ServiceKey<TMsg>,
    service: ActorRef<TMsg>,
    replyTo?: ActorRef<Registered>,
  ): ReceptionistCommand {
    return {
      type: 'Deregister',
      key: key as ServiceKey<never>,
      service: service as ActorRef<never>,
      replyTo,
    };
  },
  find<TMsg>(key: ServiceKey<TMsg>, replyTo: ActorRef<Listing<TMsg>>): ReceptionistCommand {
    return { type: 'Find', key: key as ServiceKey<never>, replyTo: replyTo as ActorRef<Listing<never>> };
  },
  subscribe<TMsg>(key: ServiceKey<TMsg>, subscriber: ActorRef<Listing<TMsg>>): ReceptionistCommand {
    return {
      type: 'Subscribe',
      key: key as ServiceKey<never>,
      subscriber: subscriber as ActorRef<Listing<never>>,
    };
  },
  unsubscribe<TMsg>(key: ServiceKey<TMsg>, subscriber: ActorRef<Listing<TMsg>>): ReceptionistCommand {
    return {
      type: 'Unsubscribe',
      key: key as ServiceKey<never>,
      subscriber: subscriber as ActorRef<Listing<never>>,
    };
  },
} as const;

/**
 * Refs are kept by address (`node` + `path`), not by object: a ref decoded from another thread or
 * node is a new object each time, and must still name the same registration.
 */
const addressOf = (ref: ActorRef<never>): string => `${ref.node}${ref.path}`;

interface Entry {
  key: ServiceKey<never>;
  services: Map<string, ActorRef<never>>;
  subscribers: Map<string, ActorRef<Listing<never>>>;
}

interface Mention {
  /** The ref the receptionist watches this actor through. */
  readonly ref: ActorRef<never>;
  /** How many entries mention the actor, so it is unwatched when none do. */
  count: number;
}

export function receptionistBehavior(): Behavior<ReceptionistCommand> {
  return Behaviors.setup<ReceptionistCommand>((ctx) => {
    const entries = new Map<string, Entry>();
    const mentions = new Map<string, Mention>();

    const entryFor = (key: ServiceKey<never>): Entry => {
      let entry = entries.get(key.id);
      if (entry === undefined) {
        entry = { key, services: new Map(), subscribers: new Map() };
        entries.set(key.id, entry);
      }
      return entry;
    };
    const mention = (ref: ActorRef<never>): void => {
      const address = addressOf(ref);
      const existing = mentions.get(address);
      if (existing !== undefined) {
        existing.count++;
        return;
      }
      mentions.set(address, { ref, count: 1 });
      ctx.watchWith(ref, { type: 'ActorTerminated', ref });
    };
    const forget = (address: string): void => {
      const existing = mentions.get(address);
      if (existing === undefined) return;
      if (--existing.count > 0) return;
      mentions.delete(address);
      ctx.unwatch(existing.ref);
    };
    const listing = (entry: Entry): Listing<never> => ({
      type: 'Listing',
      key: entry.key,
      services: [...entry.services.values()],
    });
    const publish = (entry: Entry): void => {
      const message = listing(entry);
      for (const subscriber of entry.subscribers.values()) subscriber.tell(message);
    };
    const prune = (entry: Entry): void => {
      if (entry.services.size === 0 && entry.subscribers.size === 0) entries.delete(entry.key.id);
    };

    return Behaviors.receiveMessage<ReceptionistCommand>((command) => {
      switch (command.type) {
        case 'Register': {
          const entry = entryFor(command.key);
          const address = addressOf(command.service);
          if (!entry.services.has(address)) {
            entry.services.set(address, command.service);
            mention(command.service);
            publish(entry);
          }
          command.replyTo?.tell({ type: 'Registered', key: command.key, service: command.service });
          break;
        }
        case 'Deregister': {
          const entry = entries.get(command.key.id);
          const address = addressOf(command.service);
          if (entry?.services.delete(address)) {
            forget(address);
            publish(entry);
            prune(entry);
          }
          command.replyTo?.tell({ type: 'Registered', key: command.key, service: command.service });
          break;
        }
        case 'Find': {
          const entry = entries.get(command.key.id);
          command.replyTo.tell(entry ? listing(entry) : { type: 'Listing', key: command.key, services: [] });
          break;
        }
        case 'Subscribe': {
          const entry = entryFor(command.key);
          const address = addressOf(command.subscriber as ActorRef<never>);
          if (!entry.subscribers.has(address)) {
            entry.subscribers.set(address, command.subscriber);
            mention(command.subscriber as ActorRef<never>);
          }
          command.subscriber.tell(listing(entry));
          break;
        }
        case 'Unsubscribe': {
          const entry = entries.get(command.key.id);
          const address = addressOf(command.subscriber as ActorRef<never>);
          if (entry?.subscribers.delete(address)) {
            forget(address);
            prune(entry);
          }
          break;
        }
        case 'ActorTerminated': {
          const address = addressOf(command.ref);
          mentions.delete(address);
          for (const entry of [...entries.values()]) {
            entry.subscribers.delete(address);
            if (entry.services.delete(address)) publish(entry);
            prune(entry);
          }
          break;
        }
      }
      return Behaviors.same;
    });
  });
}
