import { expect } from 'chai';
import type { ActorContext } from '../../runtime/actor-context.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { DeathPactError } from '../../runtime/errors.ts';
import type { Signal } from '../../runtime/signals.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import { collectFailures, settle, startTestSystem } from '../support/test-system.ts';

/** A message is either a script the actor runs on itself or a note it records. */
type Message = ((ctx: ActorContext<Message>) => Behavior<Message> | undefined) | string;

class ChildBroke extends Error {}
class ParentBroke extends Error {}

interface Watcher {
  readonly ref: ActorRef<Message>;
  /** Signals and notes, as `Signal(path)`, `ChildFailed(path, ErrorName)` or the note. */
  readonly seen: string[];
  /** Errors carried by ChildFailed signals. */
  readonly errors: Error[];
  run(script: (ctx: ActorContext<Message>) => Behavior<Message> | undefined): Promise<void>;
}

function describeSignal(signal: Signal): string {
  switch (signal.type) {
    case 'Terminated':
      return `Terminated(${signal.ref.path})`;
    case 'ChildFailed':
      return `ChildFailed(${signal.ref.path}, ${signal.error.constructor.name})`;
    default:
      return signal.type;
  }
}

/** An actor that runs scripts, records notes and signals, and handles every signal. */
function watcherBehavior(seen: string[], errors: Error[], handleSignals = true): Behavior<Message> {
  const receive = Behaviors.receive<Message>((ctx, message) => {
    if (typeof message === 'string') {
      seen.push(message);
      return Behaviors.same;
    }
    return message(ctx) ?? Behaviors.same;
  });
  if (!handleSignals) return receive;
  return receive.receiveSignal((_ctx, signal) => {
    seen.push(describeSignal(signal));
    if (signal.type === 'ChildFailed') errors.push(signal.error);
    return Behaviors.same;
  });
}

describe('death watch', () => {
  let system: ActorSystem;

  beforeEach(async () => {
    system = await startTestSystem();
  });

  afterEach(async () => {
    await system.stop();
  });

  function spawnWatcher(name: string, handleSignals = true): Watcher {
    const seen: string[] = [];
    const errors: Error[] = [];
    const ref = system.spawn(watcherBehavior(seen, errors, handleSignals), { name });
    return {
      ref,
      seen,
      errors,
      async run(script) {
        ref.tell(script);
        await settle();
      },
    };
  }

  /** A top-level actor that stops on 'stop' and throws ChildBroke on 'fail'. */
  function spawnTarget(name: string): ActorRef<string> {
    return system.spawn(
      Behaviors.receiveMessage<string>((m) => {
        if (m === 'fail') throw new ChildBroke('broke');
        return m === 'stop' ? Behaviors.stopped : Behaviors.same;
      }),
      { name },
    );
  }

  it('delivers Terminated when a watched actor stops normally', async () => {
    const watcher = spawnWatcher('watcher');
    const target = spawnTarget('target');
    await watcher.run((ctx) => {
      ctx.watch(target as ActorRef<never>);
      return undefined;
    });
    target.tell('stop');
    await settle();
    expect(watcher.seen).to.deep.equal(['Terminated(/user/target)']);
  });

  it('delivers ChildFailed with the error to a parent watching a child that failed', async () => {
    const parent = spawnWatcher('parent');
    await parent.run((ctx) => {
      const child = ctx.spawn(
        Behaviors.receiveMessage<string>(() => {
          throw new ChildBroke('broke');
        }),
        { name: 'child' },
      );
      ctx.watch(child as ActorRef<never>);
      child.tell('fail');
      return undefined;
    });
    expect(parent.seen).to.deep.equal(['ChildFailed(/user/parent/child, ChildBroke)']);
    expect(parent.errors[0]).to.be.instanceOf(ChildBroke);
  });

  it('delivers Terminated, not ChildFailed, to a watcher that is not the parent of the failed actor', async () => {
    const watcher = spawnWatcher('watcher');
    const target = spawnTarget('target');
    await watcher.run((ctx) => {
      ctx.watch(target as ActorRef<never>);
      return undefined;
    });
    target.tell('fail');
    await settle();
    expect(watcher.seen).to.deep.equal(['Terminated(/user/target)']);
  });

  it('delivers Terminated to a parent watching a child that it stopped', async () => {
    const parent = spawnWatcher('parent');
    await parent.run((ctx) => {
      const child = ctx.spawn(Behaviors.ignore<string>(), { name: 'child' });
      ctx.watch(child as ActorRef<never>);
      ctx.stop(child as ActorRef<never>);
      return undefined;
    });
    expect(parent.seen).to.deep.equal(['Terminated(/user/parent/child)']);
  });

  it('delivers the watchWith message instead of a signal', async () => {
    const watcher = spawnWatcher('watcher');
    const target = spawnTarget('target');
    await watcher.run((ctx) => {
      ctx.watchWith(target as ActorRef<never>, 'target is gone');
      return undefined;
    });
    target.tell('fail');
    await settle();
    expect(watcher.seen).to.deep.equal(['target is gone']);
  });

  it('delivers nothing after unwatch', async () => {
    const watcher = spawnWatcher('watcher');
    const target = spawnTarget('target');
    await watcher.run((ctx) => {
      ctx.watch(target as ActorRef<never>);
      return undefined;
    });
    await watcher.run((ctx) => {
      ctx.unwatch(target as ActorRef<never>);
      return undefined;
    });
    target.tell('stop');
    await settle();
    watcher.ref.tell('still here');
    await settle();
    expect(watcher.seen).to.deep.equal(['still here']);
  });

  it('drops a death notice already queued when the watcher unwatches', async () => {
    const watcher = spawnWatcher('watcher');
    const target = spawnTarget('target');
    await watcher.run((ctx) => {
      ctx.watch(target as ActorRef<never>);
      return undefined;
    });
    // The unwatch is queued first; the target's death notice lands behind it.
    watcher.ref.tell((ctx) => {
      ctx.unwatch(target as ActorRef<never>);
      return undefined;
    });
    target.tell('stop');
    await settle();
    expect(watcher.seen).to.deep.equal([]);
  });

  it('fails a watcher that does not handle Terminated with DeathPactError', async () => {
    const failures = collectFailures(system);
    const watcher = spawnWatcher('watcher', false);
    const target = spawnTarget('target');
    await watcher.run((ctx) => {
      ctx.watch(target as ActorRef<never>);
      return undefined;
    });
    target.tell('stop');
    await settle();
    expect(failures.map((f) => f.path)).to.deep.equal(['/user/watcher']);
    expect(failures[0]?.error).to.be.instanceOf(DeathPactError);
    expect(failures[0]?.error).to.have.property('code', 'DEATH_PACT');
    const observer = spawnWatcher('observer');
    await observer.run((ctx) => {
      ctx.watch(watcher.ref as ActorRef<never>);
      return undefined;
    });
    expect(observer.seen, 'the watcher stopped').to.deep.equal(['Terminated(/user/watcher)']);
  });

  it('notifies at once when watching an actor that is already dead', async () => {
    const target = spawnTarget('target');
    target.tell('stop');
    await settle();
    const watcher = spawnWatcher('watcher');
    await watcher.run((ctx) => {
      ctx.watch(target as ActorRef<never>);
      return undefined;
    });
    expect(watcher.seen).to.deep.equal(['Terminated(/user/target)']);
  });

  it('notifies each of several watchers once', async () => {
    const first = spawnWatcher('first');
    const second = spawnWatcher('second');
    const target = spawnTarget('target');
    for (const watcher of [first, second]) {
      await watcher.run((ctx) => {
        ctx.watch(target as ActorRef<never>);
        ctx.watch(target as ActorRef<never>); // watching twice is one watch
        return undefined;
      });
    }
    target.tell('stop');
    await settle();
    expect(first.seen).to.deep.equal(['Terminated(/user/target)']);
    expect(second.seen).to.deep.equal(['Terminated(/user/target)']);
  });

  it('does not tell a restarted parent about the children its restart stopped', async () => {
    const failures = collectFailures(system);
    let setups = 0;
    const parent = system.spawn(
      Behaviors.supervise(
        Behaviors.setup<string>((ctx) => {
          setups++;
          const child = ctx.spawn(Behaviors.ignore<string>(), { name: 'child' });
          // Not handling Terminated: the parent should die with its child (a death pact).
          ctx.watch(child as ActorRef<never>);
          return Behaviors.receiveMessage<string>(() => {
            throw new ParentBroke('parent failed');
          });
        }),
      ).onFailure(SupervisorStrategy.restart.withLimit(5, 60_000)),
      { name: 'parent' },
    );
    parent.tell('fail');
    await settle();
    expect(setups).to.equal(2);
    expect(failures).to.have.length(1);
    expect(failures[0]?.error).to.be.instanceOf(ParentBroke);
    expect(system.stats.liveActors, 'the new parent and its new child run').to.equal(7);
  });
});
