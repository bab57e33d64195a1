import { expect } from 'chai';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import {
  type IntrospectReply,
  type IntrospectRequest,
  introspectionBehavior,
  snapshotActorTree,
} from '../../runtime/introspection.ts';
import { SupervisorStrategy } from '../../runtime/supervisor-strategy.ts';
import { supervisor } from '../../supervision/supervisor.ts';
import { parent as threadParent } from '../fixtures/thread-behaviors.ts';
import { until } from '../support/deadline.ts';
import { settle, startTestSystem } from '../support/test-system.ts';
import { startWorkerTestSystem } from '../support/worker-test-system.ts';

type WorkerMessage = 'crash';

const crashy = () =>
  Behaviors.receiveMessage<WorkerMessage>(() => {
    throw new Error('crash on purpose');
  });

describe('introspection', () => {
  let system: ActorSystem;

  beforeEach(async () => {
    system = await startTestSystem();
  });

  afterEach(async () => {
    await system.stop();
  });

  const actorAt = (path: string) =>
    snapshotActorTree(system.internals).actors.find((actor) => actor.path === path);

  it('lists the tree in pre-order with depths, kinds and mailbox sizes', async () => {
    const parent = system.spawn(
      Behaviors.setup<string>((ctx) => {
        ctx.spawn(Behaviors.ignore<string>(), { name: 'child' });
        return Behaviors.ignore<string>();
      }),
      { name: 'parent' },
    );
    parent.tell('x');
    await settle();
    const tree = snapshotActorTree(system.internals);
    const paths = tree.actors.map((actor) => actor.path);
    expect(paths[0]).to.equal('/');
    expect(paths.indexOf('/user/parent')).to.be.greaterThan(paths.indexOf('/user'));
    expect(paths.indexOf('/user/parent/child')).to.equal(paths.indexOf('/user/parent') + 1);
    expect(actorAt('/user/parent')).to.include({
      depth: 2,
      kind: 'actor',
      lifecycle: 'running',
      children: 1,
    });
    expect(actorAt('/user')?.kind).to.equal('guardian');
    expect(tree.total).to.equal(system.internals.registry.size);
    expect(tree.truncated).to.equal(false);
  });

  it("counts an actor's restarts by its own strategy", async () => {
    const ref = system.spawn(Behaviors.supervise(crashy()).onFailure(SupervisorStrategy.restart), {
      name: 'w',
    });
    ref.tell('crash');
    ref.tell('crash');
    await until(() => (actorAt('/user/w')?.restarts === 2 ? true : undefined), 5000, 'two restarts');
  });

  it('carries the restart count over the incarnations an OTP supervisor starts in place of a failed child', async () => {
    system.spawn(
      supervisor({
        flags: { strategy: 'one_for_one', intensity: 10, period: 5 },
        children: [
          { id: 'w', start: crashy },
          { id: 'quiet', start: () => Behaviors.ignore<string>() },
        ],
      }),
      { name: 'sup' },
    );
    await settle();
    expect(actorAt('/user/sup')?.kind).to.equal('supervisor');
    for (let expected = 1; expected <= 3; expected++) {
      system.resolve<WorkerMessage>({ node: system.internals.nodeId, path: '/user/sup/w' }).tell('crash');
      await until(
        () =>
          actorAt('/user/sup/w')?.restarts === expected && actorAt('/user/sup/w')?.lifecycle === 'running'
            ? true
            : undefined,
        5000,
        `restart ${expected} of /user/sup/w`,
      );
    }
    expect(actorAt('/user/sup/quiet')?.restarts).to.equal(0);
  });

  it('stops at the limit and says the snapshot is truncated', async () => {
    for (let i = 0; i < 20; i++) system.spawn(Behaviors.ignore<string>(), { name: `a${i}` });
    const tree = snapshotActorTree(system.internals, { maxActors: 5 });
    expect(tree.actors).to.have.length(5);
    expect(tree.truncated).to.equal(true);
    expect(tree.total).to.be.greaterThan(20);
  });

  it('answers introspect requests, and refuses a bad limit with INVALID_REQUEST', async () => {
    const ref = system.spawnSystemActor(introspectionBehavior(), { name: 'introspection' });
    const ok = await ref.ask<IntrospectReply>((replyTo) => ({ type: 'introspect', maxActors: 3, replyTo }));
    expect(ok.ok && ok.value.actors.length).to.equal(3);
    const bad = await ref.ask<IntrospectReply>(
      (replyTo) => ({ type: 'introspect', maxActors: 10_001, replyTo }) as IntrospectRequest,
    );
    expect(bad.ok).to.equal(false);
    if (!bad.ok) expect(bad.error.code).to.equal('INVALID_REQUEST');
    expect(ref.path).to.equal('/system/introspection');
    const noReply = ref as unknown as ActorRef<unknown>;
    noReply.tell({ type: 'something else' });
    await settle();
  });

  describe('with worker threads', () => {
    let threaded: ActorSystem;

    before(async () => {
      threaded = await startWorkerTestSystem();
    });

    after(async () => {
      await threaded?.stop();
    });

    it('lists actors on worker threads under their parent, with their descendants there, marked with the thread', async () => {
      threaded.spawn(
        Behaviors.setup<string>((ctx) => {
          ctx.spawn(threadParent.with({}), { name: 'on-worker', dispatcher: 'worker' });
          return Behaviors.ignore<string>();
        }),
        { name: 'keeper' },
      );
      const ref = threaded.spawnSystemActor(introspectionBehavior(), { name: 'introspection' });
      const tree = await until(
        async () => {
          const reply = await ref.ask<IntrospectReply>((replyTo) => ({ type: 'introspect', replyTo }));
          if (!reply.ok) throw new Error(reply.error.message);
          const found = reply.value.actors.some((a) => a.path === '/user/keeper/on-worker/child');
          return found ? reply.value : undefined;
        },
        10_000,
        'the worker actor and its child in the tree',
      );
      const paths = tree.actors.map((actor) => actor.path);
      const at = (path: string) => tree.actors.find((actor) => actor.path === path);
      // Pre-order: the worker actor right under its main-thread parent, its child right under it.
      expect(paths.indexOf('/user/keeper/on-worker')).to.equal(paths.indexOf('/user/keeper') + 1);
      expect(paths.indexOf('/user/keeper/on-worker/child')).to.equal(
        paths.indexOf('/user/keeper/on-worker') + 1,
      );
      const onWorker = at('/user/keeper/on-worker');
      const child = at('/user/keeper/on-worker/child');
      expect(onWorker).to.include({ depth: 3, kind: 'actor', lifecycle: 'running', children: 1 });
      expect(child).to.include({ depth: 4, kind: 'actor', lifecycle: 'running', children: 0 });
      expect(onWorker?.thread).to.match(/^worker\/w\d+g\d+$/);
      expect(child?.thread).to.equal(onWorker?.thread);
      expect(at('/user/keeper')?.thread).to.equal(undefined);
      // Counted once: the proxy and the actor it stands for are one actor.
      expect(tree.total).to.equal(threaded.internals.registry.size + 1);
      expect(tree.truncated).to.equal(false);
    });
  });
});
