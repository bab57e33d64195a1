import { expect } from 'chai';
import type { ActorContext } from '../../runtime/actor-context.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { InvalidRequestError } from '../../runtime/errors.ts';
import { settle, startTestSystem } from '../support/test-system.ts';

/** A message is a function the actor runs on itself. */
type Script = (ctx: ActorContext<Script>) => Behavior<Script> | undefined;

const scripted = (onTerminated?: (path: string) => void): Behavior<Script> =>
  Behaviors.receive<Script>((ctx, script) => script(ctx) ?? Behaviors.same).receiveSignal((_ctx, signal) => {
    if (signal.type === 'Terminated') onTerminated?.(signal.ref.path);
    return Behaviors.same;
  });

describe('spawn', () => {
  let system: ActorSystem;

  beforeEach(async () => {
    system = await startTestSystem();
  });

  afterEach(async () => {
    await system.stop();
  });

  /** Runs `script` inside a fresh parent actor and returns what it returned or threw. */
  async function inParent<T>(
    script: (ctx: ActorContext<Script>) => T,
  ): Promise<{ value?: T; error?: unknown }> {
    const parent = system.spawn(scripted());
    const outcome: { value?: T; error?: unknown } = {};
    parent.tell((ctx) => {
      try {
        outcome.value = script(ctx);
      } catch (error) {
        outcome.error = error;
      }
      return undefined;
    });
    await settle();
    return outcome;
  }

  const invalidNames: [string, unknown][] = [
    ['empty', ''],
    ['starting with -', '-worker'],
    ['starting with .', '.worker'],
    ['with a slash', 'a/b'],
    ['with a space', 'a b'],
    ['starting with $ (reserved for generated names)', '$1'],
    ['129 characters long', 'x'.repeat(129)],
    ['not a string', 42],
  ];
  for (const [label, name] of invalidNames) {
    it(`refuses a name ${label} with InvalidRequestError`, async () => {
      expect(() => system.spawn(Behaviors.ignore(), { name: name as string }))
        .to.throw(InvalidRequestError)
        .with.property('code', 'INVALID_REQUEST');
      const { error } = await inParent((ctx) => ctx.spawn(Behaviors.ignore(), { name: name as string }));
      expect(error).to.be.instanceOf(InvalidRequestError);
      expect(system.stats.liveActors, 'nothing was spawned').to.equal(6);
    });
  }

  it('accepts letters, digits, -, _ and . up to 128 characters and builds the path from them', () => {
    const names = ['a', 'Worker_1', 'node-2.shard_3', '_x', '9', 'x'.repeat(128)];
    for (const name of names) {
      expect(system.spawn(Behaviors.ignore(), { name }).path).to.equal(`/user/${name}`);
    }
  });

  it('refuses a name already taken by a live sibling with InvalidRequestError', async () => {
    system.spawn(Behaviors.ignore(), { name: 'taken' });
    expect(() => system.spawn(Behaviors.ignore(), { name: 'taken' })).to.throw(InvalidRequestError);
    const { error } = await inParent((ctx) => {
      ctx.spawn(Behaviors.ignore(), { name: 'child' });
      return ctx.spawn(Behaviors.ignore(), { name: 'child' });
    });
    expect(error).to.be.instanceOf(InvalidRequestError);
  });

  it('allows the same name under different parents', async () => {
    system.spawn(Behaviors.ignore(), { name: 'same' });
    const { value, error } = await inParent((ctx) => ctx.spawn(Behaviors.ignore(), { name: 'same' }).path);
    expect(error).to.equal(undefined);
    expect(value).to.match(/^\/user\/\$[0-9a-z]+\/same$/);
  });

  it('frees a name once its actor has terminated', async () => {
    const terminated: string[] = [];
    const parent = system.spawn(
      scripted((path) => terminated.push(path)),
      { name: 'parent' },
    );
    parent.tell((ctx) => {
      const child = ctx.spawn(Behaviors.ignore(), { name: 'reused' });
      ctx.watch(child as ActorRef<never>);
      ctx.stop(child as ActorRef<never>);
      return undefined;
    });
    await settle();
    expect(terminated).to.deep.equal(['/user/parent/reused']);
    const paths: string[] = [];
    parent.tell((ctx) => {
      paths.push(ctx.spawn(Behaviors.ignore(), { name: 'reused' }).path);
      return undefined;
    });
    await settle();
    expect(paths).to.deep.equal(['/user/parent/reused']);
  });

  it('gives anonymous actors unique generated names', async () => {
    const names = new Set<string>();
    const nameOf = (ref: ActorRef<never>): string => ref.path.slice(ref.path.lastIndexOf('/') + 1);
    for (let i = 0; i < 50; i++) names.add(nameOf(system.spawn(Behaviors.ignore<never>())));
    const { value } = await inParent((ctx) => [
      ctx.spawn(Behaviors.ignore<never>()),
      ctx.spawn(Behaviors.ignore<never>()),
    ]);
    for (const ref of value ?? []) names.add(nameOf(ref));
    expect(names.size).to.equal(52);
    for (const name of names) expect(name).to.match(/^\$[0-9a-z]+$/);
  });

  it('refuses to stop an actor that is not its child with InvalidRequestError', async () => {
    const stranger = system.spawn(Behaviors.ignore<string>(), { name: 'stranger' });
    const { error } = await inParent((ctx) => ctx.stop(stranger as ActorRef<never>));
    expect(error).to.be.instanceOf(InvalidRequestError);
    const self = await inParent((ctx) => ctx.stop(ctx.self as ActorRef<never>));
    expect(self.error).to.be.instanceOf(InvalidRequestError);
    expect(system.stats.liveActors, 'nothing was stopped').to.equal(8);
  });

  it('refuses to stop a grandchild with InvalidRequestError', async () => {
    const parent = system.spawn(scripted(), { name: 'parent' });
    let grandchild: ActorRef<never> | undefined;
    parent.tell((ctx) => {
      const child = ctx.spawn(scripted(), { name: 'child' });
      child.tell((childCtx) => {
        grandchild = childCtx.spawn(Behaviors.ignore<never>(), { name: 'grandchild' });
        return undefined;
      });
      return undefined;
    });
    await settle();
    let error: unknown;
    parent.tell((ctx) => {
      try {
        ctx.stop(grandchild as ActorRef<never>);
      } catch (caught) {
        error = caught;
      }
      return undefined;
    });
    await settle();
    expect(grandchild?.path).to.equal('/user/parent/child/grandchild');
    expect(error).to.be.instanceOf(InvalidRequestError);
    expect(system.stats.liveActors).to.equal(8);
  });

  for (const [label, shutdown] of [
    ['-1', -1],
    ["'soon'", 'soon'],
    ['NaN', Number.NaN],
  ] as const) {
    it(`refuses shutdown ${label} with InvalidRequestError`, () => {
      expect(() => system.spawn(Behaviors.ignore(), { shutdown: shutdown as never })).to.throw(
        InvalidRequestError,
      );
    });
  }

  it('lists its children and finds a child by name', async () => {
    const { value } = await inParent((ctx) => {
      const a = ctx.spawn(Behaviors.ignore(), { name: 'a' });
      const b = ctx.spawn(Behaviors.ignore(), { name: 'b' });
      return {
        children: ctx.children().map((c) => c.path.slice(c.path.lastIndexOf('/') + 1)),
        a: ctx.child('a') === a,
        b: ctx.child('b') === b,
        missing: ctx.child('c'),
      };
    });
    expect(value).to.deep.equal({ children: ['a', 'b'], a: true, b: true, missing: undefined });
  });

  it('gives a spawned actor its parent and the system', async () => {
    const { value } = await inParent((ctx) => {
      let seen: { parent?: string; system?: boolean } = {};
      ctx.spawn(
        Behaviors.setup<string>((childCtx) => {
          seen = { parent: childCtx.parent?.path, system: childCtx.system === system };
          return Behaviors.ignore();
        }),
        { name: 'c' },
      );
      return { seen, self: ctx.self.path };
    });
    expect(value?.seen).to.deep.equal({ parent: value?.self, system: true });
  });
});
