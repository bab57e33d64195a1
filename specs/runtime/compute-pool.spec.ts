import { createHash } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { gunzipSync, gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { gunzipTask, gzipTask, sha256Task } from '../../runtime/builtin-compute-tasks.ts';
import { ComputePool, type ComputePoolInit } from '../../runtime/compute-pool.ts';
import {
  AbortError,
  InvalidRequestError,
  NotFoundError,
  TimeoutError,
  UnavailableError,
} from '../../runtime/errors.ts';
import { createLogger } from '../../runtime/logging.ts';
import { add, fail, sleep, spin } from '../fixtures/compute-tasks.ts';
import { track } from '../support/test-system.ts';

const fixtures = new URL('../fixtures/compute-tasks.ts', import.meta.url).href;
const logger = createLogger({ level: 'silent', node: 'spec', component: 'spec' });

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject');
}

describe('ComputePool', () => {
  let pool: ComputePool | undefined;

  function start(init: ComputePoolInit = {}): Promise<ComputePool> {
    return ComputePool.start({ modules: [fixtures], maxThreads: 1, logger, ...init }).then((started) => {
      pool = started;
      return started;
    });
  }

  afterEach(async () => {
    await pool?.destroy();
    pool = undefined;
  });

  it('hashes bytes and strings with sha256 exactly as node:crypto does', async () => {
    const p = await start();
    const bytes = new Uint8Array(100_000).map((_, i) => (i * 31) % 251);
    expect(await p.run(sha256Task, bytes)).to.equal(createHash('sha256').update(bytes).digest('hex'));
    expect(await p.run('sha256', 'héllo')).to.equal(createHash('sha256').update('héllo').digest('hex'));
    expect(bytes.byteLength, 'the input is copied by default, not moved').to.equal(100_000);
  });

  it('gzips and gunzips compatibly with node:zlib, moving the input when asked', async () => {
    const p = await start();
    const text = new TextEncoder().encode('cloudless '.repeat(10_000));
    const zipped = await p.run(gzipTask, text);
    expect(zipped).to.be.instanceOf(Uint8Array);
    expect(Buffer.from(gunzipSync(zipped)).equals(Buffer.from(text))).to.equal(true);
    const unzipped = await p.run(gunzipTask, new Uint8Array(gzipSync(text)));
    expect(Buffer.from(unzipped).equals(Buffer.from(text))).to.equal(true);

    const moved = new Uint8Array(text);
    const again = await p.run(gzipTask, moved, { transfer: true });
    expect(moved.byteLength, 'the caller gave its buffer away').to.equal(0);
    expect(Buffer.from(gunzipSync(again)).equals(Buffer.from(text))).to.equal(true);
  });

  it('rejects input a built-in task does not take with InvalidRequestError rebuilt from the thread', async () => {
    const p = await start();
    const error = await rejection(p.run('gzip', 'not bytes'));
    expect(error).to.be.instanceOf(InvalidRequestError);
    expect((error as InvalidRequestError).code).to.equal('INVALID_REQUEST');
  });

  it('runs the tasks a task module exports, and only those', async () => {
    const p = await start();
    expect(await p.run(add, { a: 2, b: 40 })).to.equal(42);
    expect(await p.run<number>('sleep', 1)).to.equal(1);
    expect(p.tasks).to.include.members(['add', 'sleep', 'spin', 'fail', 'sha256', 'gzip', 'gunzip']);
    expect(p.tasks).not.to.include('not-a-task');
  });

  it('rejects an unknown task name with NotFoundError and still runs known ones', async () => {
    const p = await start();
    const error = await rejection(p.run('no-such-task', 1));
    expect(error).to.be.instanceOf(NotFoundError);
    expect((error as NotFoundError).code).to.equal('NOT_FOUND');
    expect(await p.run(add, { a: 1, b: 1 })).to.equal(2);
  });

  it('rejects a task that throws with an Error carrying its message and keeps the error as cause', async () => {
    const p = await start();
    const error = await rejection(p.run(fail, 'the disk is on fire'));
    expect(error).to.be.instanceOf(Error);
    expect(error.message).to.equal('the disk is on fire');
    expect(error.cause).to.be.instanceOf(RangeError);
    expect((error.cause as Error).cause).to.be.instanceOf(TypeError);
  });

  it('refuses a task with UnavailableError when maxQueue tasks are already waiting', async () => {
    const p = await start({ maxThreads: 1, maxQueue: 2 });
    const accepted = [p.run(sleep, 200), p.run(sleep, 1), p.run(sleep, 2)];
    expect(p.queueSize, 'one runs, two wait').to.equal(2);
    const error = await rejection(p.run(sleep, 3));
    expect(error).to.be.instanceOf(UnavailableError);
    expect((error as UnavailableError).code).to.equal('UNAVAILABLE');
    expect(p.queueSize, 'the refused task did not join the queue').to.equal(2);
    expect(await Promise.all(accepted)).to.deep.equal([200, 1, 2]);
    expect(await p.run(sleep, 4), 'room again once the queue drains').to.equal(4);
  });

  it('takes a task aborted while queued off the queue and keeps running the others', async () => {
    const p = await start({ maxThreads: 1 });
    const running = p.run(sleep, 150);
    const controller = new AbortController();
    const queued = p.run(sleep, 1, { signal: controller.signal });
    expect(p.queueSize).to.equal(1);
    controller.abort(new Error('changed my mind'));
    const error = await rejection(queued);
    expect(error).to.be.instanceOf(AbortError);
    expect((error as AbortError).code).to.equal('ABORTED');
    expect(p.queueSize).to.equal(0);
    expect(await running).to.equal(150);
    expect(await p.run(add, { a: 1, b: 2 })).to.equal(3);
  });

  it('terminates the thread of a task aborted while running and keeps working', async () => {
    const p = await start({ maxThreads: 1 });
    const controller = new AbortController();
    const running = p.run(spin, 10_000, { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    const error = await rejection(running);
    expect(error).to.be.instanceOf(AbortError);
    expect(await p.run(add, { a: 20, b: 22 })).to.equal(42);
  });

  it('rejects with AbortError at once for a signal that is already aborted', async () => {
    const p = await start();
    const error = await rejection(p.run(add, { a: 1, b: 1 }, { signal: AbortSignal.abort() }));
    expect(error).to.be.instanceOf(AbortError);
    expect(p.queueSize).to.equal(0);
  });

  it('rejects with TimeoutError when a task overruns timeoutMs, and the pool keeps working', async () => {
    const p = await start({ maxThreads: 1 });
    const started = Date.now();
    const error = await rejection(p.run(spin, 10_000, { timeoutMs: 150 }));
    expect(error).to.be.instanceOf(TimeoutError);
    expect((error as TimeoutError).code).to.equal('TIMEOUT');
    expect(Date.now() - started).to.be.below(5_000);
    expect(await p.run(add, { a: 1, b: 1 })).to.equal(2);
  });

  it('spreads CPU-heavy tasks over threads so they run at the same time', async () => {
    const p = await start({ maxThreads: 2, minThreads: 2 });
    const [first, second] = await Promise.all([p.run(spin, 300), p.run(spin, 300)]);
    expect(first.threadId).not.to.equal(second.threadId);
    const overlap = Math.min(first.endedAt, second.endedAt) - Math.max(first.startedAt, second.startedAt);
    expect(overlap, 'milliseconds both tasks were running').to.be.above(100);
  });

  it('validates the task name, the options and the start options with InvalidRequestError', async () => {
    const p = await start();
    for (const attempt of [
      () => p.run(42 as unknown as string, 1),
      () => p.run('', 1),
      () => p.run(add, { a: 1, b: 1 }, { timeoutMs: -1 }),
      () => p.run(add, { a: 1, b: 1 }, { signal: 'stop' as unknown as AbortSignal }),
      () => ComputePool.start({ maxThreads: 0, logger }),
      () => ComputePool.start({ modules: [''], logger }),
    ]) {
      const error = await rejection(attempt());
      expect(error).to.be.instanceOf(InvalidRequestError);
    }
  });

  it('refuses to start when a task module does not load, leaving no thread behind', async () => {
    const error = await rejection(
      ComputePool.start({ modules: [new URL('../fixtures/missing.ts', import.meta.url).href], logger }),
    );
    expect(error).to.be.instanceOf(InvalidRequestError);
  });

  it('destroy() fails waiting and running tasks, stops every thread and refuses new tasks', async () => {
    // Idle pool threads are unref'd, which hides them from the leak hooks: count them here.
    const alive = new Set<Worker>();
    const onWorker = (worker: Worker): void => {
      alive.add(worker);
      worker.once('exit', () => alive.delete(worker));
    };
    process.on('worker', onWorker);
    try {
      const p = await start({ maxThreads: 1, minThreads: 1 });
      // A thread terminated by an abort is no longer piscina's, but destroy() still waits for it.
      const aborted = new AbortController();
      const cancelled = track(p.run(spin, 10_000, { signal: aborted.signal }));
      const outcomes = [track(p.run(spin, 10_000)), track(p.run(spin, 10_000)), track(p.run(sleep, 10_000))];
      await new Promise((resolve) => setTimeout(resolve, 50));
      aborted.abort();
      await p.destroy();
      expect(cancelled.error).to.be.instanceOf(AbortError);
      expect(alive.size, 'threads still alive after destroy()').to.equal(0);
      expect(p.threads).to.equal(0);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(alive.size + p.threads, 'threads started after destroy()').to.equal(0);
      for (const outcome of outcomes) {
        expect(outcome.settled).to.equal(true);
        expect(outcome.error).to.be.instanceOf(UnavailableError);
      }
      expect(await rejection(p.run(add, { a: 1, b: 1 }))).to.be.instanceOf(UnavailableError);
      await p.destroy();
    } finally {
      process.off('worker', onWorker);
    }
  });
});
