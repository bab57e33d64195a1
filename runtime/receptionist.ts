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

interface Entry {
  key: ServiceKey<never>;
  services: Set<ActorRef<never>>;
  subscribers: Set<ActorRef<Listing<never>>>;
}

export function receptionistBehavior(): Behavior<ReceptionistCommand> {
  return Behaviors.setup<ReceptionistCommand>((ctx) => {
    const entries = new Map<string, Entry>();
    /** How many entries mention each watched actor, so it is unwatched when none do. */
    const mentions = new Map<ActorRef<never>, number>();

    const entryFor = (key: ServiceKey<never>): Entry => {
      let entry = entries.get(key.id);
      if (entry === undefined) {
        entry = { key, services: new Set(), subscribers: new Set() };
        entries.set(key.id, entry);
      }
      return entry;
    };
    const mention = (ref: ActorRef<never>): void => {
      const count = mentions.get(ref) ?? 0;
      if (count === 0) ctx.watchWith(ref, { type: 'ActorTerminated', ref });
      mentions.set(ref, count + 1);
    };
    const forget = (ref: ActorRef<never>): void => {
      const count = (mentions.get(ref) ?? 0) - 1;
      if (count > 0) {
        mentions.set(ref, count);
        return;
      }
      mentions.delete(ref);
      ctx.unwatch(ref);
    };
    const listing = (entry: Entry): Listing<never> => ({
      type: 'Listing',
      key: entry.key,
      services: [...entry.services],
    });
    const publish = (entry: Entry): void => {
      const message = listing(entry);
      for (const subscriber of entry.subscribers) subscriber.tell(message);
    };
    const prune = (entry: Entry): void => {
      if (entry.services.size === 0 && entry.subscribers.size === 0) entries.delete(entry.key.id);
    };

    return Behaviors.receiveMessage<ReceptionistCommand>((command) => {
      switch (command.type) {
        case 'Register': {
          const entry = entryFor(command.key);
          if (!entry.services.has(command.service)) {
            entry.services.add(command.service);
            mention(command.service);
            publish(entry);
          }
          command.replyTo?.tell({ type: 'Registered', key: command.key, service: command.service });
          break;
        }
        case 'Deregister': {
          const entry = entries.get(command.key.id);
          if (entry?.services.delete(command.service)) {
            forget(command.service);
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
          if (!entry.subscribers.has(command.subscriber)) {
            entry.subscribers.add(command.subscriber);
            mention(command.subscriber as ActorRef<never>);
          }
          command.subscriber.tell(listing(entry));
          break;
        }
        case 'Unsubscribe': {
          const entry = entries.get(command.key.id);
          if (entry?.subscribers.delete(command.subscriber)) {
            forget(command.subscriber as ActorRef<never>);
            prune(entry);
          }
          break;
        }
        case 'ActorTerminated': {
          mentions.delete(command.ref);
          for (const entry of [...entries.values()]) {
            entry.subscribers.delete(command.ref as ActorRef<Listing<never>>);
            if (entry.services.delete(command.ref)) publish(entry);
            prune(entry);
          }
          break;
        }
      }
      return Behaviors.same;
    });
  });
}
