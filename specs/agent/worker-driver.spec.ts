import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import type { ReplicaLaunch } from '../../actors/agent/driver.ts';
import { readLogs } from '../../actors/agent/log-files.ts';
import { ReplicaStartError } from '../../actors/agent/replica-start-error.ts';
import { WorkerDriver } from '../../actors/agent/worker-driver.ts';

const workloads = fileURLToPath(new URL('../fixtures/worker-workloads.ts', import.meta.url));

async function waitForLog(dir: string, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await readLogs(dir, { stream: 'stdout' })).data.includes(text)) {
    if (Date.now() > deadline) throw new Error(`log never contained ${text}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('agent WorkerDriver', () => {
  let dir: string;
  const driver = new WorkerDriver();

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cloudless-worker-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function launch(exportName: string, memoryBytes = 64 * 1024 * 1024, module = workloads): ReplicaLaunch {
    return {
      replicaId: 'default/fn/0#w1',
      driver: { type: 'worker', module, export: exportName, env: { GREETING: 'hi' } },
      resources: { cpuMillicores: 100, memoryBytes },
      dir,
      env: { CLOUDLESS_REPLICA: 'default/fn/0' },
    };
  }

  it('calls the export with its context and exits 0 when it returns, logs captured', async () => {
    const handle = await driver.start(launch('ok'));
    expect(handle.limits).to.deep.equal({
      enforced: true,
      detail:
        'worker resourceLimits: heap ≤ 64 MiB (V8 old generation only; young generation, buffers and ' +
        'native memory not bounded); CPU not enforced',
    });
    expect(await handle.exited).to.deep.equal({ code: 0, signal: undefined, reason: 'exited with code 0' });
    expect((await readLogs(dir, { stream: 'stdout' })).data).to.equal(
      'hello from default/fn/0#w1 greeting hi\n',
    );
    expect((await readLogs(dir, { stream: 'stderr' })).data).to.equal('to stderr\n');
  });

  it('exits with code 1 and the message when the function throws', async () => {
    const handle = await driver.start(launch('throws'));
    expect(await handle.exited).to.deep.equal({
      code: 1,
      signal: undefined,
      reason: 'worker threw: workload broke on purpose',
    });
  });

  it('aborts the signal on stop and lets the function return', async () => {
    const handle = await driver.start(launch('untilAbort'));
    await waitForLog(dir, 'running', 10_000);
    const exit = await handle.stop(5000);
    expect(exit).to.deep.equal({ code: 0, signal: undefined, reason: 'exited with code 0 (stopped)' });
    expect((await readLogs(dir, { stream: 'stdout' })).data).to.equal('running\nstopping\n');
  });

  it('terminates a function that ignores the abort once the grace is over', async () => {
    const handle = await driver.start(launch('ignoresAbort'));
    await waitForLog(dir, 'running', 10_000);
    const exit = await handle.stop(100);
    expect(exit.code).to.equal(undefined);
    expect(exit.reason).to.equal('worker terminated: did not return within 100 ms of stop');
  });

  it('ends a function that outgrows its heap limit, saying so', async () => {
    const handle = await driver.start(launch('allocatesTooMuch', 32 * 1024 * 1024));
    const exit = await handle.exited;
    expect(exit.code).to.equal(undefined);
    expect(exit.reason).to.equal('worker ran out of memory: heap limit 32 MiB (memory limit)');
  });

  it('rejects start when the export is not a function or the module does not exist', async () => {
    for (const [spec, failure] of [
      [launch('notAFunction'), 'export-not-found'],
      [launch('missing'), 'export-not-found'],
      [launch('default', undefined, path.join(dir, 'no-such-module.ts')), 'module-not-found'],
      [launch('default', undefined, 'relative/module.ts'), 'invalid-launch'],
    ] as const) {
      let error: unknown;
      try {
        await driver.start(spec);
      } catch (caught) {
        error = caught;
      }
      expect(error, spec.driver.type === 'worker' ? spec.driver.export : '').to.be.instanceOf(
        ReplicaStartError,
      );
      expect((error as ReplicaStartError).failure).to.equal(failure);
    }
  });
});
