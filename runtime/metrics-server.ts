/**
 * The node's observability endpoint (`--metrics-addr HOST:PORT`): a small node:http server with
 * three read-only resources.
 *
 *   GET /metrics   the node's prom-client registry in the Prometheus text format
 *   GET /healthz   200 while the process runs (liveness)
 *   GET /readyz    200 once every readiness check passes, else 503 with the first failing
 *                  check's reason (readiness)
 *
 * HEAD is answered like GET without a body; other methods get 405, other paths 404. Requests
 * have no body, so the server reads none; headers and whole requests have deadlines, and the
 * number of open connections is capped, so a slow or hostile client cannot hold the node.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Gauge, type Registry } from 'prom-client';
import { UnavailableError } from './errors.ts';
import { parseHostPort } from './node-config.ts';

/**
 * One input to readiness: resolves with undefined when satisfied, or a short reason (shown in
 * the 503 body) when not. It must honour `signal`: the server aborts it at the check deadline.
 */
export type ReadinessCheck = (signal: AbortSignal) => Promise<string | undefined> | string | undefined;

export interface MetricsServerComponents {
  readonly registry: Registry;
}

export interface MetricsServerInit {
  /** `HOST:PORT` to bind exactly (port 0: a free one, see `address`). */
  readonly address: string;
  /** Named readiness checks, run in order on every /readyz; none means ready. */
  readonly readiness?: ReadonlyMap<string, ReadinessCheck>;
  /** Deadline of all readiness checks of one request; default 2000 ms. */
  readonly readinessTimeoutMs?: number;
  /** Most connections open at once; default 32. */
  readonly maxConnections?: number;
}

export class MetricsServer {
  readonly #server: Server;
  readonly #registry: Registry;
  readonly #readiness: Map<string, ReadinessCheck>;
  readonly #readinessTimeoutMs: number;
  readonly #sockets = new Set<Socket>();
  #closed = false;

  private constructor(server: Server, registry: Registry, init: MetricsServerInit) {
    this.#server = server;
    this.#registry = registry;
    this.#readiness = new Map(init.readiness ?? []);
    this.#readinessTimeoutMs = init.readinessTimeoutMs ?? 2000;
  }

  /** Binds `init.address` and serves until `stop()`; throws UnavailableError if it cannot bind. */
  static async start(components: MetricsServerComponents, init: MetricsServerInit): Promise<MetricsServer> {
    const { host, port } = parseHostPort(init.address);
    const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000 });
    server.maxConnections = init.maxConnections ?? 32;
    server.maxHeadersCount = 64;
    const metrics = new MetricsServer(server, components.registry, init);
    server.on('request', (request, response) => metrics.#handle(request, response));
    server.on('connection', (socket: Socket) => {
      metrics.#sockets.add(socket);
      socket.once('close', () => metrics.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => {
        reject(
          new UnavailableError(
            `cannot serve metrics on ${init.address}: ${error.message}; pick a free address with --metrics-addr`,
            { cause: error },
          ),
        );
      };
      server.once('error', onError);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    return metrics;
  }

  /** The bound address as `HOST:PORT` (with the real port when 0 was asked). */
  get address(): string {
    const info = this.#server.address() as AddressInfo;
    return info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`;
  }

  /** Adds or replaces a readiness check (the membership part adds 'joined'). */
  setReadinessCheck(name: string, check: ReadinessCheck): void {
    this.#readiness.set(name, check);
  }

  /** Stops listening and closes every open connection; idempotent. */
  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.#server.closeAllConnections();
    await closed;
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    const method = request.method ?? '';
    const path = (request.url ?? '').split('?')[0];
    const head = method === 'HEAD';
    const send = (status: number, body: string, contentType = 'text/plain; charset=utf-8'): void => {
      if (response.headersSent) return;
      response.writeHead(status, {
        'content-type': contentType,
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        ...(status === 405 ? { allow: 'GET, HEAD' } : {}),
      });
      response.end(head ? undefined : body);
    };
    // Requests here carry no body; one that sends some is not read, just discarded.
    request.resume();
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
      send(404, 'not found: try /metrics, /healthz or /readyz\n');
      return;
    }
    if (method !== 'GET' && !head) {
      send(405, `method ${method.slice(0, 16)} not allowed: use GET or HEAD\n`);
      return;
    }
    if (path === '/healthz') {
      send(200, 'ok\n');
      return;
    }
    const work =
      path === '/metrics'
        ? this.#registry.metrics().then((text) => send(200, text, this.#registry.contentType))
        : this.#ready().then((reason) => send(reason === undefined ? 200 : 503, `${reason ?? 'ready'}\n`));
    work.catch((error: unknown) => send(500, `error: ${(error as Error)?.message ?? String(error)}\n`));
  }

  /** Runs the checks in order under one deadline; the first failing one gives the reason. */
  async #ready(): Promise<string | undefined> {
    return withDeadlineSignal(this.#readinessTimeoutMs, async (signal) => {
      const expired = new Promise<string>((resolve) => {
        if (signal.aborted) resolve('timed out');
        else signal.addEventListener('abort', () => resolve('timed out'), { once: true });
      });
      for (const [name, check] of this.#readiness) {
        let reason: string | undefined;
        try {
          reason = await Promise.race([Promise.resolve(check(signal)), expired]);
        } catch (error) {
          reason = (error as Error)?.message ?? String(error);
        }
        if (reason !== undefined) return `not ready: ${name}: ${reason}`;
      }
      return undefined;
    });
  }
}

/**
 * Runs `body` with a signal aborted after `timeoutMs`, and clears the timer when `body` settles
 * (AbortSignal.timeout would leave its timer behind until it fires).
 */
async function withDeadlineSignal<T>(
  timeoutMs: number,
  body: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`deadline of ${timeoutMs} ms passed`)),
    timeoutMs,
  );
  try {
    return await body(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

/** What the Raft gauges read on each scrape. */
export interface RaftMetricsSource {
  /** Resolves with the local member's position, or undefined if it did not answer in time. */
  status(
    signal: AbortSignal,
  ): Promise<{ term: number; commitIndex: number; appliedIndex: number; isLeader: boolean } | undefined>;
}

/**
 * Raft gauges, read from the local member on scrape: `cloudless_raft_term`,
 * `cloudless_raft_commit_index`, `cloudless_raft_applied_index`, `cloudless_raft_is_leader_bool`.
 * One status ask per scrape serves all four; when the member does not answer within 1 s they
 * keep their last values (0 before the first answer) rather than fail the scrape.
 */
export function registerRaftMetrics(registry: Registry, source: RaftMetricsSource): void {
  let pending: Promise<Awaited<ReturnType<RaftMetricsSource['status']>>> | undefined;
  const read = (): Promise<Awaited<ReturnType<RaftMetricsSource['status']>>> => {
    // The four collectors of one scrape share one ask.
    pending ??= withDeadlineSignal(1000, (signal) => source.status(signal))
      .catch(() => undefined)
      .finally(() => {
        setImmediate(() => {
          pending = undefined;
        });
      });
    return pending;
  };
  const gauge = (
    name: string,
    help: string,
    pick: (status: NonNullable<Awaited<ReturnType<RaftMetricsSource['status']>>>) => number,
  ): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const status = await read();
        if (status !== undefined) this.set(pick(status));
      },
    });
  };
  gauge('cloudless_raft_term', 'Current Raft term of the local member', (s) => s.term);
  gauge(
    'cloudless_raft_commit_index',
    'Highest log index the local member knows is committed',
    (s) => s.commitIndex,
  );
  gauge(
    'cloudless_raft_applied_index',
    'Highest log index the local member has applied',
    (s) => s.appliedIndex,
  );
  gauge('cloudless_raft_is_leader_bool', '1 while the local member is the Raft leader, else 0', (s) =>
    s.isLeader ? 1 : 0,
  );
}
