/**
 * Entry point of a worker replica's thread (see worker-driver.ts): imports the module, calls the
 * named export with a `WorkerContext` and reports how it ended. The thread inherits the agent's
 * execArgv (conditions, type stripping), so `.ts` modules load as they do in the agent.
 *
 * To the driver: `{ t: 'started' }` once the function is called, then `{ t: 'ended', ok, message }`;
 * or `{ t: 'failed', failure, message }` when the module or export cannot be loaded. From the
 * driver: `{ t: 'abort' }` aborts the context's signal.
 */
import { format } from 'node:util';
import { parentPort, workerData } from 'node:worker_threads';
import type { WorkerContext, WorkerEntryData, WorkerEntryMessage } from './worker-driver.ts';

const port = parentPort;
if (port === null) throw new Error('worker-entry.ts runs only as a worker thread');
const data = workerData as WorkerEntryData;
const controller = new AbortController();
port.on('message', (message: { t?: unknown }) => {
  if (message.t === 'abort') controller.abort(new Error(`replica ${data.replicaId} is stopping`));
});
// The port keeps the thread alive while the function awaits only the abort; the thread ends
// with process.exit below once the function has settled.

function post(message: WorkerEntryMessage): void {
  port?.postMessage(message);
}

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

async function run(): Promise<number> {
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(data.module)) as Record<string, unknown>;
  } catch (error) {
    post({
      t: 'failed',
      failure: 'module-not-found',
      message: `cannot load module ${data.module}: ${messageOf(error)}`,
    });
    return 1;
  }
  const fn = loaded[data.exportName];
  if (typeof fn !== 'function') {
    const exported = Object.keys(loaded).filter((k) => typeof loaded[k] === 'function');
    post({
      t: 'failed',
      failure: 'export-not-found',
      message:
        `module ${data.module} has no function export '${data.exportName}' ` +
        `(function exports: ${exported.join(', ') || 'none'})`,
    });
    return 1;
  }
  const context: WorkerContext = {
    env: Object.freeze({ ...data.env }),
    signal: controller.signal,
    replicaId: data.replicaId,
    log: (...args: unknown[]) => {
      process.stdout.write(`${format(...args)}\n`);
    },
  };
  post({ t: 'started' });
  try {
    await (fn as (context: WorkerContext) => unknown)(context);
    post({ t: 'ended', ok: true, message: 'returned' });
    return 0;
  } catch (error) {
    post({ t: 'ended', ok: false, message: messageOf(error) });
    return 1;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const code = await run();
await Promise.all([flush(process.stdout), flush(process.stderr)]);
// The replica is its function: whatever it left running (timers, sockets) ends with it.
process.exit(code);
