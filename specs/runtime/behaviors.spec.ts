import { expect } from 'chai';
import type { PipeOutcome } from '../../runtime/actor-context.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { type Behavior, Behaviors } from '../../runtime/behavior.ts';
import { InvalidBehaviorError } from '../../runtime/errors.ts';
import { collectDeadLetters, collectFailures, settle, startTestSystem } from '../support/test-system.ts';

class PipeFailure extends Error {}

describe('behaviors', () => {
  let system: ActorSystem;

  beforeEach(async () => {
    system = await startTestSystem();
  });

  afterEach(async () => {
    await system.stop();
  });

  it('keeps the current behavior on Behaviors.same and switches to a returned behavior', async () => {
    const log: string[] = [];
    const locked: Behavior<string> = Behaviors.receiveMessage<string>((m) => {
      log.push(`locked:${m}`);
      return m === 'unlock' ? unlocked : Behaviors.same;
    });
    const unlocked: Behavior<string> = Behaviors.receiveMessage<string>((m) => {
      log.push(`unlocked:${m}`);
      return m === 'lock' ? locked : Behaviors.same;
    });
    const ref = system.spawn(locked);
    for (const m of ['a', 'unlock', 'b', 'lock', 'c']) ref.tell(m);
    await settle();
    expect(log).to.deep.equal(['locked:a', 'locked:unlock', 'unlocked:b', 'unlocked:lock', 'locked:c']);
  });

  it('stops after the current message on Behaviors.stopped; later messages are actor-dead dead letters', async () => {
    const letters = collectDeadLetters(system);
    const handled: string[] = [];
    const ref = system.spawn(
      Behaviors.receiveMessage<string>((m) => {
        handled.push(m);
        return m === 'stop' ? Behaviors.stopped : Behaviors.same;
      }),
      { name: 'a' },
    );
    for (const m of ['x', 'stop', 'y']) ref.tell(m);
    await settle();
    expect(handled).to.deep.equal(['x', 'stop']);
    expect(letters).to.deep.equal([{ recipient: '/user/a', message: 'y', reason: 'actor-dead' }]);
  });

  it('publishes a message answered with Behaviors.unhandled as an unhandled dead letter and keeps going', async () => {
    const letters = collectDeadLetters(system);
    const handled: number[] = [];
    const ref = system.spawn(
      Behaviors.receiveMessage<number>((n) => {
        if (n % 2 === 1) return Behaviors.unhandled;
        handled.push(n);
        return Behaviors.same;
      }),
      { name: 'evens' },
    );
    for (const n of [1, 2, 3, 4]) ref.tell(n);
    await settle();
    expect(handled).to.deep.equal([2, 4]);
    expect(letters).to.deep.equal([
      { recipient: '/user/evens', message: 1, reason: 'unhandled' },
      { recipient: '/user/evens', message: 3, reason: 'unhandled' },
    ]);
  });

  it('treats every message to Behaviors.empty as unhandled and none to Behaviors.ignore', async () => {
    const letters = collectDeadLetters(system);
    const empty = system.spawn(Behaviors.empty<string>(), { name: 'empty' });
    const ignore = system.spawn(Behaviors.ignore<string>(), { name: 'ignore' });
    empty.tell('a');
    ignore.tell('b');
    await settle();
    expect(letters).to.deep.equal([{ recipient: '/user/empty', message: 'a', reason: 'unhandled' }]);
    expect(system.stats.liveActors).to.equal(7);
  });

  it('fails an actor whose handler returns a promise with InvalidBehaviorError', async () => {
    const failures = collectFailures(system);
    const ref = system.spawn(
      Behaviors.receiveMessage<string>((async () => Behaviors.same) as unknown as () => Behavior<string>),
    );
    ref.tell('x');
    await settle();
    expect(failures).to.have.length(1);
    expect(failures[0]?.error).to.be.instanceOf(InvalidBehaviorError);
    expect(failures[0]?.error).to.have.property('code', 'INVALID_BEHAVIOR');
    expect(system.stats.liveActors).to.equal(5);
  });

  /** Runs `body` and returns the promise rejections nothing handled meanwhile. */
  async function unhandledRejectionsDuring(body: () => Promise<void>): Promise<unknown[]> {
    const unhandled: unknown[] = [];
    const listener = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', listener);
    try {
      await body();
      await settle();
    } finally {
      process.off('unhandledRejection', listener);
    }
    return unhandled;
  }

  it('fails an actor whose async handler rejects with InvalidBehaviorError, leaving no unhandled rejection', async () => {
    const failures = collectFailures(system);
    class Rejected extends Error {}
    const unhandled = await unhandledRejectionsDuring(async () => {
      const ref = system.spawn(
        Behaviors.receiveMessage<string>((async () => {
          throw new Rejected('async failure');
        }) as unknown as () => Behavior<string>),
      );
      ref.tell('x');
      await settle();
    });
    expect(failures).to.have.length(1);
    expect(failures[0]?.error).to.be.instanceOf(InvalidBehaviorError);
    expect(unhandled).to.deep.equal([]);
  });

  it('fails an actor whose async setup rejects with InvalidBehaviorError, leaving no unhandled rejection', async () => {
    const failures = collectFailures(system);
    class Rejected extends Error {}
    const unhandled = await unhandledRejectionsDuring(async () => {
      system.spawn(
        Behaviors.setup<string>((async () => {
          throw new Rejected('async setup failure');
        }) as unknown as () => Behavior<string>),
      );
    });
    expect(failures).to.have.length(1);
    expect(failures[0]?.error).to.be.instanceOf(InvalidBehaviorError);
    expect(unhandled).to.deep.equal([]);
  });

  it('leaves no unhandled rejection when an async Terminated handler rejects', async () => {
    const failures = collectFailures(system);
    const unhandled = await unhandledRejectionsDuring(async () => {
      const target = system.spawn(Behaviors.receiveMessage<string>(() => Behaviors.stopped));
      const watcher = system.spawn(
        Behaviors.receive<string>((ctx) => {
          ctx.watch(target as never);
          return Behaviors.same;
        }).receiveSignal(async () => {
          throw new Error('async signal failure');
        }),
      );
      watcher.tell('watch');
      await settle();
      target.tell('stop');
    });
    expect(unhandled).to.deep.equal([]);
    expect(failures).to.deep.equal([]);
  });

  for (const [label, result] of [
    ['undefined', undefined],
    ['a promise', Promise.resolve(Behaviors.ignore())],
    ['Behaviors.same', Behaviors.same],
    ['Behaviors.unhandled', Behaviors.unhandled],
    ['a plain object', { type: 'not a behavior' }],
  ] as const) {
    it(`fails an actor whose setup returns ${label} with InvalidBehaviorError`, async () => {
      const failures = collectFailures(system);
      const letters = collectDeadLetters(system);
      const ref = system.spawn(
        Behaviors.setup<string>(() => result as unknown as Behavior<string>),
        {
          name: 'bad',
        },
      );
      expect(failures).to.have.length(1);
      expect(failures[0]?.error).to.be.instanceOf(InvalidBehaviorError);
      ref.tell('x');
      expect(letters.map((l) => l.reason)).to.deep.equal(['actor-dead']);
    });
  }

  it('fails an actor whose handler throws, with what it threw', async () => {
    const failures = collectFailures(system);
    const ref = system.spawn(
      Behaviors.receiveMessage<string>(() => {
        throw 'not an error object';
      }),
    );
    ref.tell('x');
    await settle();
    expect(failures).to.have.length(1);
    expect(failures[0]?.error).to.be.instanceOf(Error);
  });

  it('delivers a resolved promise through pipeToSelf as a success message', async () => {
    const outcomes: PipeOutcome<number>[] = [];
    type Msg = { type: 'start'; work: Promise<number> } | { type: 'done'; outcome: PipeOutcome<number> };
    const ref = system.spawn(
      Behaviors.receive<Msg>((ctx, m) => {
        if (m.type === 'start') ctx.pipeToSelf(m.work, (outcome) => ({ type: 'done', outcome }));
        else outcomes.push(m.outcome);
        return Behaviors.same;
      }),
    );
    ref.tell({ type: 'start', work: Promise.resolve(42) });
    await settle();
    expect(outcomes).to.deep.equal([{ ok: true, value: 42 }]);
  });

  it('delivers a rejected promise through pipeToSelf as a failure message carrying the error', async () => {
    const outcomes: PipeOutcome<number>[] = [];
    type Msg = { type: 'start'; work: Promise<number> } | { type: 'done'; outcome: PipeOutcome<number> };
    const ref = system.spawn(
      Behaviors.receive<Msg>((ctx, m) => {
        if (m.type === 'start') ctx.pipeToSelf(m.work, (outcome) => ({ type: 'done', outcome }));
        else outcomes.push(m.outcome);
        return Behaviors.same;
      }),
    );
    ref.tell({ type: 'start', work: Promise.reject(new PipeFailure('io failed')) });
    await settle();
    expect(outcomes).to.have.length(1);
    expect(outcomes[0]?.ok).to.equal(false);
    expect(outcomes[0]?.ok === false && outcomes[0].error).to.be.instanceOf(PipeFailure);
  });

  it('keeps a piped result in order behind messages that arrived first', async () => {
    const log: string[] = [];
    let release!: (value: string) => void;
    const work = new Promise<string>((resolve) => {
      release = resolve;
    });
    const ref = system.spawn(
      Behaviors.receive<string>((ctx, m) => {
        log.push(m);
        if (m === 'start') ctx.pipeToSelf(work, (o) => (o.ok ? `piped:${o.value}` : 'piped:error'));
        return Behaviors.same;
      }),
    );
    ref.tell('start');
    await settle();
    ref.tell('before');
    release('v');
    await settle();
    ref.tell('after');
    await settle();
    expect(log).to.deep.equal(['start', 'before', 'piped:v', 'after']);
  });

  it('fails the actor when the pipeToSelf mapping throws', async () => {
    const failures = collectFailures(system);
    const ref = system.spawn(
      Behaviors.receive<string>((ctx) => {
        ctx.pipeToSelf(Promise.resolve(1), () => {
          throw new PipeFailure('bad mapping');
        });
        return Behaviors.same;
      }),
    );
    ref.tell('start');
    await settle();
    expect(failures).to.have.length(1);
    expect(failures[0]?.error).to.be.instanceOf(PipeFailure);
  });

  it('drops a piped result for an actor that has stopped', async () => {
    const letters = collectDeadLetters(system);
    let release!: (value: number) => void;
    const work = new Promise<number>((resolve) => {
      release = resolve;
    });
    const ref = system.spawn(
      Behaviors.receive<string>((ctx) => {
        ctx.pipeToSelf(work, () => 'piped');
        return Behaviors.stopped;
      }),
    );
    ref.tell('start');
    await settle();
    release(1);
    await settle();
    expect(letters).to.deep.equal([]);
    expect(system.stats.queuedMessages).to.equal(0);
  });
});
