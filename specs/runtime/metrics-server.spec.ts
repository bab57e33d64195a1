import { request } from 'node:http';
import { expect } from 'chai';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { UnavailableError } from '../../runtime/errors.ts';
import { MetricsServer, registerRaftMetrics } from '../../runtime/metrics-server.ts';
import { checkMetricFamilies } from '../support/metric-names.ts';
import { startTestSystem } from '../support/test-system.ts';

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One HTTP request with a deadline; the connection is not kept alive. */
function fetchPath(address: string, path: string, method = 'GET'): Promise<Reply> {
  const { hostname, port } = new URL(`http://${address}`);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname.replace(/^\[|\]$/g, ''), port, path, method, agent: false, timeout: 5000 },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          body += chunk;
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 5000 ms`)));
    req.on('error', reject);
    req.end();
  });
}

describe('metrics server', () => {
  let system: ActorSystem;
  let server: MetricsServer | undefined;

  beforeEach(async () => {
    // The kernel's metrics; a real node's full set (with the mesh's) is checked in specs/bin/start.spec.ts.
    system = await startTestSystem();
  });

  afterEach(async () => {
    await server?.stop();
    server = undefined;
    await system.stop();
  });

  it('serves /metrics that a Prometheus text parser reads, every name following the naming rule', async () => {
    registerRaftMetrics(system.metrics, {
      status: async () => ({ term: 7, commitIndex: 42, appliedIndex: 41, isLeader: true }),
    });
    system.spawn(Behaviors.ignore<string>()).tell('x');
    server = await MetricsServer.start({ registry: system.metrics }, { address: '127.0.0.1:0' });
    const reply = await fetchPath(server.address, '/metrics');
    expect(reply.status).to.equal(200);
    expect(String(reply.headers['content-type'])).to.match(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusTextFormat(reply.body);
    const names = families.map((family) => family.name);
    expect(names).to.include.members([
      'cloudless_actor_messages_processed_total',
      'cloudless_actor_live_actors',
      'cloudless_raft_term',
      'cloudless_raft_commit_index',
      'cloudless_raft_applied_index',
      'cloudless_raft_is_leader_bool',
    ]);
    checkMetricFamilies(families);
    const value = (name: string): string | undefined =>
      families.find((family) => family.name === name)?.metrics[0]?.value;
    expect(value('cloudless_raft_term')).to.equal('7');
    expect(value('cloudless_raft_commit_index')).to.equal('42');
    expect(value('cloudless_raft_is_leader_bool')).to.equal('1');
  });

  it('labels take only values from a fixed set', async () => {
    server = await MetricsServer.start({ registry: system.metrics }, { address: '127.0.0.1:0' });
    const families = parsePrometheusTextFormat((await fetchPath(server.address, '/metrics')).body);
    for (const family of families) {
      for (const sample of family.metrics) {
        const labels = Object.keys(sample.labels ?? {});
        // The only labelled metric: dead letters by reason, one of the kernel's reasons.
        if (labels.length > 0) {
          expect(family.name).to.equal('cloudless_actor_dead_letters_total');
          expect(labels).to.deep.equal(['reason']);
        }
      }
    }
  });

  it('answers /healthz with 200 and /readyz with 503 and the reason until every check passes', async () => {
    let joined = false;
    const readiness = new Map([['joined', () => (joined ? undefined : 'not joined yet')]]);
    server = await MetricsServer.start({ registry: system.metrics }, { address: '127.0.0.1:0', readiness });
    expect((await fetchPath(server.address, '/healthz')).status).to.equal(200);
    const before = await fetchPath(server.address, '/readyz');
    expect(before.status).to.equal(503);
    expect(before.body).to.include('not joined yet');
    joined = true;
    expect((await fetchPath(server.address, '/readyz')).status).to.equal(200);
    server.setReadinessCheck('leader', async () => 'no Raft leader known');
    expect((await fetchPath(server.address, '/readyz')).body).to.include('leader: no Raft leader known');
  });

  it('fails readiness with a timeout reason when a check does not answer in time', async () => {
    const readiness = new Map([
      [
        'slow',
        (signal: AbortSignal) =>
          new Promise<string | undefined>((resolve) =>
            signal.addEventListener('abort', () => resolve(undefined)),
          ),
      ],
    ]);
    server = await MetricsServer.start(
      { registry: system.metrics },
      { address: '127.0.0.1:0', readiness, readinessTimeoutMs: 50 },
    );
    const reply = await fetchPath(server.address, '/readyz');
    expect(reply.status).to.equal(503);
    expect(reply.body).to.include('slow');
  });

  it('answers 404 for other paths, 405 for other methods, and HEAD without a body', async () => {
    server = await MetricsServer.start({ registry: system.metrics }, { address: '127.0.0.1:0' });
    expect((await fetchPath(server.address, '/')).status).to.equal(404);
    expect((await fetchPath(server.address, '/metrics/extra')).status).to.equal(404);
    const post = await fetchPath(server.address, '/metrics', 'POST');
    expect(post.status).to.equal(405);
    expect(post.headers.allow).to.equal('GET, HEAD');
    expect((await fetchPath(server.address, '/healthz', 'DELETE')).status).to.equal(405);
    const head = await fetchPath(server.address, '/metrics', 'HEAD');
    expect(head.status).to.equal(200);
    expect(head.body).to.equal('');
  });

  it('binds exactly the address given and refuses one that is taken', async () => {
    server = await MetricsServer.start({ registry: system.metrics }, { address: '127.0.0.1:0' });
    expect(server.address).to.match(/^127\.0\.0\.1:\d+$/);
    const taken = await MetricsServer.start({ registry: system.metrics }, { address: server.address }).then(
      (second) => second.stop().then(() => undefined),
      (error: unknown) => error,
    );
    expect(taken).to.be.instanceOf(UnavailableError);
  });

  it('stops listening on stop(), closing idle connections', async () => {
    server = await MetricsServer.start({ registry: system.metrics }, { address: '127.0.0.1:0' });
    const address = server.address;
    expect((await fetchPath(address, '/healthz')).status).to.equal(200);
    await server.stop();
    await server.stop();
    const error = await fetchPath(address, '/healthz').then(
      () => undefined,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    expect(error?.code).to.equal('ECONNREFUSED');
  });
});
