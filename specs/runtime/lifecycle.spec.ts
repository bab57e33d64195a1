import { expect } from 'chai';
import type { ActorContext } from '../../runtime/actor-context.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { SimulatedClock } from '../../runtime/clock.ts';
import { UnavailableError } from '../../runtime/errors.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import { settle, startTestSystem } from '../support/test-system.ts';

/** A message is a function the actor runs on itself. */
type Script = (ctx: ActorContext<Script>) => Behavior<Script> | undefined;

/** An actor that runs scripts and logs its signals as `name:Signal`. */
function scripted(name: string, log: string[], postStop?: () => PromiseLike<unknown>): Behavior<Script> {
  return Behaviors.receive<Script>((ctx, script) => script(ctx) ?? Behaviors.same).receiveSignal(
    (_ctx, signal) => {
      log.push(
        signal.type === 'Terminated' ? `${name}:Terminated(${signal.ref.path})` : `${name}:${signal.type}`,
      );
      if (signal.type === 'PostStop' && postStop !== undefined) return postStop();
      return Behaviors.same;
    },
  );
}

describe('lifecycle signals', () => {
  let system: ActorSystem;
  let clock: SimulatedClock;

  beforeEach(async () => {
    clock = new SimulatedClock();
    system = await startTestSystem({ clock });
  });

  afterEach(async () => {
    await system.stop();
  });

  it('delivers PostStop when an actor stops itself', async () => {
    const log: string[] = [];
    const ref = system.spawn(scripted('a', log));
    ref.tell(() => Behaviors.stopped);
    await settle();
    expect(log).to.deep.equal(['a:PostStop']);
    expect(system.stats.liveActors).to.equal(5);
  });

  it('delivers PostStop to each actor when the system stops', async () => {
    const log: string[] = [];
    system.spawn(scripted('a', log));
    system.spawn(scripted('b', log));
    await system.stop();
    expect(log).to.deep.equal(['b:PostStop', 'a:PostStop']);
    expect(system.stats.liveActors).to.equal(0);
  });

  it('runs the stoppedWith callback after PostStop', async () => {
    const log: string[] = [];
    const ref = system.spawn(scripted('a', log));
    ref.tell(() => Behaviors.stoppedWith(() => log.push('callback')));
    await settle();
    expect(log).to.deep.equal(['a:PostStop', 'callback']);
  });

  it('delivers PreRestart to the failed incarnation before setup runs again', async () => {
    const log: string[] = [];
    let incarnation = 0;
    const ref = system.spawn(
      Behaviors.supervise(
        Behaviors.setup<Script>(() => {
          const n = ++incarnation;
          log.push(`setup:${n}`);
          return scripted(`a${n}`, log);
        }),
      ).onFailure(SupervisorStrategy.restart),
    );
    ref.tell(() => {
      throw new Error('fail');
    });
    await settle();
    expect(log).to.deep.equal(['setup:1', 'a1:PreRestart', 'setup:2']);
  });

  it('stops children in reverse order of spawn before the parent’s PostStop', async () => {
    const log: string[] = [];
    const parent = system.spawn(
      Behaviors.setup<Script>((ctx) => {
        for (const name of ['c1', 'c2', 'c3']) {
          const child = ctx.spawn(scripted(name, log), { name });
          child.tell((childCtx) => {
            childCtx.spawn(scripted(`${name}.g`, log), { name: 'g' });
            return undefined;
          });
        }
        return scripted('parent', log);
      }),
    );
    await settle();
    parent.tell(() => Behaviors.stopped);
    await settle();
    expect(log).to.deep.equal([
      'c3.g:PostStop',
      'c3:PostStop',
      'c2.g:PostStop',
      'c2:PostStop',
      'c1.g:PostStop',
      'c1:PostStop',
      'parent:PostStop',
    ]);
  });

  it('waits for the promise a PostStop returns before the actor counts as terminated', async () => {
    const log: string[] = [];
    let release!: () => void;
    const cleanup = new Promise<void>((resolve) => {
      release = resolve;
    });
    const target = system.spawn(
      scripted('target', log, () => cleanup.then(() => log.push('cleanup done'))),
      { name: 'target' },
    );
    const watcher = system.spawn(scripted('watcher', log));
    watcher.tell((ctx) => {
      ctx.watch(target as ActorRef<never>);
      return undefined;
    });
    await settle();
    target.tell(() => Behaviors.stopped);
    await settle();
    expect(log).to.deep.equal(['target:PostStop']);
    expect(system.stats.liveActors, 'the target is still alive').to.equal(7);
    release();
    await settle();
    expect(log).to.deep.equal(['target:PostStop', 'cleanup done', 'watcher:Terminated(/user/target)']);
    expect(system.stats.liveActors).to.equal(6);
  });

  it('kills a child whose PostStop does not settle within its shutdown time', async () => {
    const log: string[] = [];
    const parent = system.spawn(scripted('parent', log), { name: 'parent' });
    parent.tell((ctx) => {
      const child = ctx.spawn(
        scripted('child', log, () => new Promise(() => {})),
        { name: 'child', shutdown: 100 },
      );
      ctx.watch(child as ActorRef<never>);
      ctx.stop(child as ActorRef<never>);
      return undefined;
    });
    await settle();
    expect(log).to.deep.equal(['child:PostStop']);
    clock.advance(99);
    await settle();
    expect(log).to.deep.equal(['child:PostStop']);
    clock.advance(1);
    await settle();
    expect(log).to.deep.equal(['child:PostStop', 'parent:Terminated(/user/parent/child)']);
  });

  it('stops a brutal_kill child at once, without PostStop', async () => {
    const log: string[] = [];
    const parent = system.spawn(scripted('parent', log), { name: 'parent' });
    parent.tell((ctx) => {
      const child = ctx.spawn(scripted('child', log), { name: 'child', shutdown: 'brutal_kill' });
      ctx.watch(child as ActorRef<never>);
      ctx.stop(child as ActorRef<never>);
      return undefined;
    });
    await settle();
    expect(log).to.deep.equal(['parent:Terminated(/user/parent/child)']);
  });

  it('kills what has not stopped when the system stop times out', async () => {
    const log: string[] = [];
    system.spawn(
      scripted('stuck', log, () => new Promise(() => {})),
      { shutdown: 'infinity' },
    );
    let stopped = false;
    const stopping = system.stop({ timeoutMs: 1000 }).then(() => {
      stopped = true;
    });
    await settle();
    expect(stopped).to.equal(false);
    clock.advance(1000);
    await stopping;
    expect(log).to.deep.equal(['stuck:PostStop']);
    expect(system.stats.liveActors).to.equal(0);
  });

  it('is idempotent to stop, resolves whenTerminated, and refuses to spawn once stopping', async () => {
    const first = system.stop();
    const second = system.stop();
    expect(second).to.equal(first);
    expect(() => system.spawn(Behaviors.ignore())).to.throw(UnavailableError);
    await first;
    await system.whenTerminated;
    expect(system.stats.liveActors).to.equal(0);
  });
});
