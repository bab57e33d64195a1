/**
 * The main thread's handle on one worker-thread host: the Worker, the batched channel to it,
 * death watch through it, and the actors it hosts for us. A host that dies is reported to its
 * owner (`WorkerThreads`), which fails those actors and starts a replacement.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ResourceLimits, Worker } from 'node:worker_threads';
import type { ControlMessage, WireError } from './host-protocol.ts';
import type { HostedSnapshot } from './introspection.ts';
import type { Kernel } from './kernel.ts';
import type { MessageCodec } from './message-codec.ts';
import { RemotePlacements } from './placement.ts';
import { RemoteWatches } from './remote-watches.ts';
import { ThreadChannel } from './thread-channel.ts';

/** The host entry next to this file: `.ts` when run from source, `.js` from the built package. */
const hostEntry = new URL(
  `./worker-host-main${path.extname(fileURLToPath(import.meta.url))}`,
  import.meta.url,
);

export interface WorkerHostInit {
  /** Unique among all hosts ever started by this system: `w<slot>g<generation>`. */
  tag: string;
  dispatcher: string;
  slot: number;
  kernel: Kernel;
  codec: MessageCodec;
  modules: readonly string[];
  logLevel: string;
  resourceLimits: ResourceLimits | undefined;
  mailbox: { capacity: number; overflow: 'drop-newest' | 'drop-oldest' };
  askTimeoutMs: number;
  onTerminated: (host: WorkerHost, path: string, id: number, error: WireError | undefined) => void;
  onExit: (host: WorkerHost, code: number, error: Error | undefined) => void;
}

export class WorkerHost {
  readonly tag: string;
  readonly dispatcher: string;
  readonly slot: number;
  readonly worker: Worker;
  readonly channel: ThreadChannel;
  readonly watches: RemoteWatches;
  readonly ready: Promise<void>;
  /**
   * Actors spawned here and not yet reported terminated: path → incarnation id. A path can be
   * reused (a killed child restarted under its name) before the old incarnation's end is heard.
   */
  readonly placements: RemotePlacements;
  alive = true;
  /** Became ready once; a host that dies before that is not replaced (it would only die again). */
  wasReady = false;
  /** Set once we asked it to shut down, so its exit is expected. */
  shuttingDown = false;
  readonly #kernel: Kernel;
  /** Incarnation id → who waits for it to terminate. */
  #lastError: Error | undefined;
  /** Introspection requests waiting for the thread's answer: id → settle (clears its timer). */
  readonly #introspections = new Map<number, (hosted: HostedSnapshot | undefined) => void>();
  #introspectionSeq = 0;

  constructor(init: WorkerHostInit) {
    this.tag = init.tag;
    this.dispatcher = init.dispatcher;
    this.slot = init.slot;
    this.#kernel = init.kernel;
    this.worker = new Worker(hostEntry, {
      workerData: {
        nodeId: init.kernel.nodeId,
        tag: init.tag,
        modules: init.modules,
        logLevel: init.logLevel,
        mailbox: init.mailbox,
        askTimeoutMs: init.askTimeoutMs,
      },
      resourceLimits: init.resourceLimits,
    });
    const kernel = init.kernel;
    this.channel = new ThreadChannel(this.worker, init.codec, (path, message) =>
      kernel.deadLetter(path, message, 'mailbox-full'),
    );
    this.watches = new RemoteWatches(kernel, (message) => this.channel.control(message));
    this.placements = new RemotePlacements((message) => this.channel.control(message), init.codec);
    let markReady!: () => void;
    let failReady!: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    // A host that never becomes ready is reported through its exit; nobody has to await this.
    this.ready.catch(() => {});
    this.worker.on('message', (message: ControlMessage) => {
      switch (message.t) {
        case 'ready':
          this.wasReady = true;
          markReady();
          return;
        case 'init-failed':
          this.#lastError = new Error(message.error.message);
          failReady(this.#lastError);
          return;
        case 'terminated':
          this.placements.terminated(message.path, message.id);
          init.onTerminated(this, message.path, message.id, message.error);
          return;
        case 'introspected':
          this.#introspections.get(message.id)?.(message.hosted);
          return;
        default:
          this.#onMessage(message);
      }
    });
    this.worker.on('error', (error) => {
      this.#lastError = error;
      failReady(error);
    });
    this.worker.on('exit', (code) => {
      this.alive = false;
      for (const settle of [...this.#introspections.values()]) settle(undefined);
      failReady(this.#lastError ?? new Error(`worker exited with code ${code}`));
      this.placements.releaseAll();
      init.onExit(this, code, this.#lastError);
    });
  }

  #onMessage(message: ControlMessage): void {
    switch (message.t) {
      case 'batch': {
        const envelopes = this.channel.decode(message.data);
        const kernel = this.#kernel;
        const node = kernel.nodeId;
        for (let i = 0; i < envelopes.length; i += 2) {
          kernel.route({ node, path: envelopes[i] as string }, envelopes[i + 1]);
        }
        this.channel.owe(message.n);
        return;
      }
      case 'ack':
        this.channel.acknowledged(message.n);
        return;
      case 'watch':
        this.watches.serve(message.id, message.path);
        return;
      case 'unwatch':
        this.watches.stopServing(message.id);
        return;
      case 'death':
        this.watches.onDeath(message.id, message.error);
        return;
      default:
        this.#kernel.logger.warn(`unexpected message from worker host ${this.tag}: ${String(message.t)}`);
    }
  }

  /**
   * The actors this thread hosts and their descendants, at most `maxActors`; undefined when the
   * thread does not answer within `timeoutMs` (busy, or gone).
   */
  introspect(maxActors: number, timeoutMs: number): Promise<HostedSnapshot | undefined> {
    if (!this.alive) return Promise.resolve(undefined);
    const id = ++this.#introspectionSeq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(undefined), timeoutMs);
      const settle = (hosted: HostedSnapshot | undefined): void => {
        clearTimeout(timer);
        this.#introspections.delete(id);
        resolve(hosted);
      };
      this.#introspections.set(id, settle);
      this.channel.control({ t: 'introspect', id, maxActors });
    });
  }

  /** Asks the hosted actor to stop; resolves when it has terminated (or the host died). */
  stopRemote(path: string, id: number, brutal: boolean): Promise<void> {
    return this.placements.stop(path, id, brutal, this.alive);
  }

  /** Asks the host to stop its actors and exit; resolves on exit, terminating it after `timeoutMs`. */
  async shutdown(timeoutMs: number): Promise<void> {
    if (!this.alive) return;
    this.shuttingDown = true;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.channel.control({ t: 'shutdown' });
    const timer = setTimeout(() => {
      void this.worker.terminate();
    }, timeoutMs);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
