/**
 * Entry point of a worker-thread host. It loads the behavior modules, starts this thread's
 * kernel in hosted mode, reports `ready`, and then serves the main thread until told to shut
 * down. Messages that arrive while it starts are kept and handled in order once it is ready.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ActorSystem } from './actor-system.ts';
import { BehaviorRegistry } from './behavior-registry.ts';
import type { ControlMessage } from './host-protocol.ts';
import type { LogLevel } from './logging.ts';

interface HostData {
  nodeId: string;
  tag: string;
  modules: string[];
  logLevel: LogLevel;
  mailbox: { capacity: number; overflow: 'drop-newest' | 'drop-oldest' };
  askTimeoutMs: number;
}

const port = parentPort;
if (port === null) throw new Error('worker-host-main.ts runs only as a worker thread');
const data = workerData as HostData;

const early: ControlMessage[] = [];
let handle: (message: ControlMessage) => void = (message) => early.push(message);
port.on('message', (message: ControlMessage) => handle(message));

try {
  const registry = await BehaviorRegistry.load(data.modules);
  const system = await ActorSystem.start({
    nodeId: data.nodeId,
    logLevel: data.logLevel,
    mailbox: data.mailbox,
    askTimeoutMs: data.askTimeoutMs,
    hosted: { tag: data.tag, port, registry },
  });
  const hosted = system.hostedThread;
  if (hosted === undefined) throw new Error('hosted actor system has no hosted thread');
  let shuttingDown = false;
  hosted.onShutdownRequested = async () => {
    if (shuttingDown) return;
    shuttingDown = true;
    await system.stop();
    hosted.close();
    port.close();
  };
  handle = (message) => hosted.onMessage(message);
  port.postMessage({ t: 'ready' } satisfies ControlMessage);
  for (const message of early.splice(0)) handle(message);
} catch (error) {
  port.postMessage({
    t: 'init-failed',
    error: { message: error instanceof Error ? error.message : String(error) },
  } satisfies ControlMessage);
  port.close();
}
