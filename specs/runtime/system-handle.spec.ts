import { once } from 'node:events';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { expect } from 'chai';
import { createEndpoint, type Remote, wrap } from 'comlink';
import nodeAdapter from 'comlink/dist/umd/node-adapter.js';
import type { ActorAddress, ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { Receptionist, type Registered } from '../../runtime/receptionist.ts';
import { ServiceKey } from '../../runtime/service-key.ts';
import { checkMessageSize, exposeSystemHandle, type SystemHandle } from '../../runtime/system-handle.ts';
import type { WorkerAnswer, WorkerCommand } from '../fixtures/system-handle-worker.ts';
import { type Probe, spawnProbe, startTestSystem } from '../support/test-system.ts';

type Command =
  | { readonly type: 'double'; readonly value: number; readonly replyTo: ActorRef<Doubled> }
  | { readonly type: 'hold'; readonly replyTo: ActorRef<Doubled> };
interface Doubled {
  readonly type: 'doubled';
  readonly value: number;
  readonly by: ActorRef<Command>;
}

/** Doubles numbers and says who did it (a ref, to check it comes back as an address); never answers 'hold'. */
const calculator = Behaviors.receive<Command>((ctx, command) => {
  if (command.type === 'double')
    command.replyTo.tell({ type: 'doubled', value: command.value * 2, by: ctx.self });
  return Behaviors.same;
});

/** Polls `ready` every 10 ms for up to 2 s. */
async function eventually(ready: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (ready()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`still waiting for ${what} after 2 s`);
}

/** Talks to the fixture worker: posts a command and resolves with its answer. */
class WorkerDriver {
  readonly worker: Worker;
  #next = 1;
  readonly #waiting = new Map<number, (answer: WorkerAnswer) => void>();

  constructor(port: MessagePort) {
    this.worker = new Worker(new URL('../fixtures/system-handle-worker.ts', import.meta.url), {
      workerData: { port },
      transferList: [port],
    });
    this.worker.on('message', (answer: WorkerAnswer) => {
      this.#waiting.get(answer.id)?.(answer);
      this.#waiting.delete(answer.id);
    });
  }

  send(command: { type: WorkerCommand['type']; args?: unknown[] }, timeoutMs = 5_000): Promise<WorkerAnswer> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`worker did not answer ${command.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.worker.postMessage({ id, ...command });
    });
  }

  async value(command: { type: WorkerCommand['type']; args?: unknown[] }): Promise<unknown> {
    const answer = await this.send(command);
    if (!answer.ok)
      throw new Error(`worker ${command.type} failed: ${answer.error.name}: ${answer.error.message}`);
    return answer.value;
  }

  async error(command: { type: WorkerCommand['type']; args?: unknown[] }) {
    const answer = await this.send(command);
    if (answer.ok) throw new Error(`worker ${command.type} succeeded with ${JSON.stringify(answer.value)}`);
    return answer.error;
  }
}

describe('system handle', () => {
  let system: ActorSystem;
  let close: () => void;
  let driver: WorkerDriver | undefined;

  beforeEach(async () => {
    system = await startTestSystem();
    const { port1, port2 } = new MessageChannel();
    close = exposeSystemHandle(system, port1);
    driver = new WorkerDriver(port2);
  });

  afterEach(async () => {
    await driver?.worker.terminate();
    driver = undefined;
    close();
    await system.stop();
  });

  const address = (ref: ActorAddress): ActorAddress => ({ node: ref.node, path: ref.path });

  it('tells an actor plain data from a worker thread', async () => {
    const probe: Probe<unknown> = spawnProbe(system, 'inbox');
    expect(
      await driver?.value({ type: 'tell', args: [address(probe.ref), { type: 'hello', n: 1 }] }),
    ).to.equal(undefined);
    expect(await probe.next()).to.deep.equal({ type: 'hello', n: 1 });
    expect(await driver?.value({ type: 'nodeId' })).to.equal(system.nodeId);
  });

  it('asks an actor and gets its typed reply, with refs in the reply as addresses', async () => {
    const calc = system.spawn(calculator, { name: 'calc' });
    const reply = await driver?.value({ type: 'ask', args: [address(calc), { type: 'double', value: 21 }] });
    expect(reply).to.deep.equal({
      type: 'doubled',
      value: 42,
      by: { node: system.nodeId, path: '/user/calc' },
    });
    expect(system.stats.pendingAsks).to.equal(0);
  });

  it('puts the reply ref in the field the ask names', async () => {
    const echo = system.spawn(
      Behaviors.receiveMessage<{ respondTo: ActorRef<string>; text: string }>(({ respondTo, text }) => {
        respondTo.tell(text.toUpperCase());
        return Behaviors.same;
      }),
    );
    const reply = await driver?.value({
      type: 'ask',
      args: [address(echo), { text: 'shout' }, { replyField: 'respondTo', timeoutMs: 1_000 }],
    });
    expect(reply).to.equal('SHOUT');
  });

  it('rejects an ask nobody answers with TimeoutError rebuilt in the worker', async () => {
    const calc = system.spawn(calculator);
    const error = await driver?.error({
      type: 'ask',
      args: [address(calc), { type: 'hold' }, { timeoutMs: 50 }],
    });
    expect(error?.code).to.equal('TIMEOUT');
    expect(error?.name).to.equal('TimeoutError');
    expect(system.stats.pendingAsks).to.equal(0);
  });

  it('finds the services registered with the receptionist under a key', async () => {
    const key = ServiceKey.create<unknown>('greeters');
    const greeter = system.spawn(Behaviors.ignore<unknown>(), { name: 'greeter' });
    await system.receptionist.ask<Registered>((replyTo) => Receptionist.register(key, greeter, replyTo));
    expect(await driver?.value({ type: 'find', args: ['greeters'] })).to.deep.equal([address(greeter)]);
    expect(await driver?.value({ type: 'find', args: ['nobody'] })).to.deep.equal([]);
  });

  it('rejects a malformed address with InvalidRequestError rebuilt in the worker, and sends nothing', async () => {
    const probe = spawnProbe<unknown>(system, 'inbox');
    for (const bad of [{ node: system.nodeId }, 'not-an-address', { node: '', path: '/user/inbox' }, null]) {
      const error = await driver?.error({ type: 'tell', args: [bad, { type: 'hello' }] });
      expect(error?.code).to.equal('INVALID_REQUEST');
      expect(error?.invalidRequest, 'an InvalidRequestError instance in the worker').to.equal(true);
    }
    const system_ = await driver?.error({
      type: 'tell',
      args: [{ node: system.nodeId, path: '/system/receptionist' }, { type: 'Find' }],
    });
    expect(system_?.code, 'system actors are out of reach').to.equal('INVALID_REQUEST');
    expect(probe.received).to.deep.equal([]);
  });

  it('rejects a message over 1 MiB and bad ask options with InvalidRequestError', async () => {
    const probe = spawnProbe<unknown>(system, 'inbox');
    const big = { type: 'blob', data: 'x'.repeat(1024 * 1024 + 1) };
    expect((await driver?.error({ type: 'tell', args: [address(probe.ref), big] }))?.code).to.equal(
      'INVALID_REQUEST',
    );
    expect(
      (await driver?.error({ type: 'ask', args: [address(probe.ref), { type: 'x' }, { replyField: '' }] }))
        ?.code,
    ).to.equal('INVALID_REQUEST');
    expect((await driver?.error({ type: 'find', args: [''] }))?.code).to.equal('INVALID_REQUEST');
    expect(probe.received).to.deep.equal([]);
  });

  it('fails calls in flight with UnavailableError when the main thread closes the handle', async () => {
    const calc = system.spawn(calculator);
    const pending = driver?.error({
      type: 'ask',
      args: [address(calc), { type: 'hold' }, { timeoutMs: 4_000 }],
    });
    await eventually(() => system.stats.pendingAsks === 1, 'the ask to reach the actor');
    close();
    const error = await pending;
    expect(error?.code).to.equal('UNAVAILABLE');
    expect(system.stats.pendingAsks, 'the ask on the main thread was aborted').to.equal(0);
  });

  it('aborts the main side asks when the worker releases the handle, and the worker exits', async () => {
    const calc = system.spawn(calculator);
    const exited = once(driver?.worker as Worker, 'exit');
    const pending = driver?.error({
      type: 'ask',
      args: [address(calc), { type: 'hold' }, { timeoutMs: 4_000 }],
    });
    await eventually(() => system.stats.pendingAsks === 1, 'the ask to reach the actor');
    expect(await driver?.value({ type: 'release' })).to.equal('released');
    expect((await pending)?.code, 'the call in flight fails in the worker').to.equal('UNAVAILABLE');
    await exited;
    driver = undefined;
    await eventually(() => system.stats.pendingAsks === 0, 'the ask on the main thread to be aborted');
  });
});

describe('system handle request guard', () => {
  let system: ActorSystem;
  let close: () => void;
  let remote: Remote<SystemHandle>;
  let workerSide: MessagePort;

  beforeEach(async () => {
    system = await startTestSystem();
    const { port1, port2 } = new MessageChannel();
    close = exposeSystemHandle(system, port1);
    workerSide = port2;
    remote = wrap<SystemHandle>((nodeAdapter as unknown as typeof nodeAdapter.default)(port2 as never));
  });

  afterEach(async () => {
    workerSide.close();
    close();
    await system.stop();
  });

  it('answers only method calls: property reads and new channels are refused as INVALID_REQUEST', async () => {
    expect(await remote.nodeId()).to.equal(system.nodeId);
    for (const attempt of [
      async () => (remote as unknown as { tell: Promise<unknown> }).tell,
      () => remote[createEndpoint](),
    ]) {
      let thrown: unknown;
      try {
        await attempt();
      } catch (caught) {
        thrown = caught;
      }
      expect(thrown).to.deep.include({ code: 'INVALID_REQUEST' });
    }
  });
  it('refuses arguments comlink would decode into proxies or throw on, without failing the main thread', async () => {
    const answer = once(workerSide, 'message');
    workerSide.postMessage({
      id: 'raw-1',
      type: 'APPLY',
      path: ['tell'],
      argumentList: [{ type: 'HANDLER', name: 'throw', value: { isError: false, value: 'boom' } }],
    });
    const [reply] = (await answer) as [{ id: string; value: { value: { code: string } } }];
    expect(reply.id).to.equal('raw-1');
    expect(reply.value.value.code).to.equal('INVALID_REQUEST');
    expect(await remote.nodeId(), 'the handle still answers').to.equal(system.nodeId);
  });
});

describe('checkMessageSize', () => {
  it('estimates plain data and refuses what is too big, too deep or not data', () => {
    expect(checkMessageSize({ a: [1, 'two', new Uint8Array(10)] }, 1024, 'm')).to.be.within(20, 100);
    const deep: unknown[] = [];
    let cursor = deep;
    for (let i = 0; i < 100; i++) {
      const next: unknown[] = [];
      cursor.push(next);
      cursor = next;
    }
    for (const bad of [new Array(2_000_000), deep, { f: () => 1 }, { s: Symbol('x') }]) {
      expect(() => checkMessageSize(bad, 1024 * 1024, 'm'))
        .to.throw()
        .with.property('code', 'INVALID_REQUEST');
    }
  });
});
