import http from 'node:http';
import net from 'node:net';
import { expect } from 'chai';
import { HealthMonitor, type HealthTransition, runProbe } from '../../actors/agent/health-check.ts';
import type { HealthCheck } from '../../actors/coordinator/workload-spec.ts';

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('agent health checks', () => {
  it('exec: exit 0 is healthy, non-zero is not, a hung command is killed at the deadline', async () => {
    expect(await runProbe({ type: 'exec', command: 'true', args: [] }, { timeoutMs: 5000 })).to.deep.equal({
      healthy: true,
      detail: 'exit code 0',
    });
    expect(
      await runProbe({ type: 'exec', command: 'sh', args: ['-c', 'exit 4'] }, { timeoutMs: 5000 }),
    ).to.deep.equal({
      healthy: false,
      detail: 'exit code 4',
    });
    const started = Date.now();
    const hung = await runProbe({ type: 'exec', command: 'sleep', args: ['30'] }, { timeoutMs: 150 });
    expect(hung).to.deep.equal({ healthy: false, detail: 'timed out after 150 ms' });
    expect(Date.now() - started).to.be.lessThan(5000);
    const missing = await runProbe(
      { type: 'exec', command: 'cloudless-no-such-probe', args: [] },
      { timeoutMs: 5000 },
    );
    expect(missing.healthy).to.equal(false);
    expect(missing.detail).to.match(/cannot run cloudless-no-such-probe/);
  });

  it('tcp: healthy when the port accepts, not when it refuses', async () => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    const port = await listen(server);
    const up = await runProbe({ type: 'tcp', host: '127.0.0.1', port }, { timeoutMs: 2000 });
    expect(up.healthy).to.equal(true);
    for (const socket of sockets) socket.destroy();
    await close(server);
    const down = await runProbe({ type: 'tcp', host: '127.0.0.1', port }, { timeoutMs: 2000 });
    expect(down.healthy).to.equal(false);
    expect(down.detail).to.match(/ECONNREFUSED/);
  });

  it('http: 2xx and 3xx are healthy, 5xx is not', async () => {
    const server = http.createServer((request, response) => {
      const status = request.url === '/ok' ? 200 : request.url === '/moved' ? 302 : 503;
      response.writeHead(status, { location: '/ok' }).end('body');
    });
    const port = await listen(server);
    try {
      const probe = (path: string) =>
        runProbe({ type: 'http', host: '127.0.0.1', port, path }, { timeoutMs: 2000 });
      expect(await probe('/ok')).to.deep.equal({ healthy: true, detail: 'HTTP 200' });
      expect(await probe('/moved')).to.deep.equal({ healthy: true, detail: 'HTTP 302' });
      expect(await probe('/broken')).to.deep.equal({ healthy: false, detail: 'HTTP 503' });
    } finally {
      server.closeAllConnections();
      await close(server);
    }
  });

  it('monitor: ready after a success, not ready after failureThreshold failures in a row', async () => {
    let healthy = true;
    const server = http.createServer((_request, response) => {
      response.writeHead(healthy ? 200 : 500).end();
    });
    const port = await listen(server);
    const check: HealthCheck = {
      probe: { type: 'http', host: '127.0.0.1', port, path: '/health' },
      intervalMs: 20,
      timeoutMs: 1000,
      initialDelayMs: 10,
      failureThreshold: 3,
    };
    const transitions: HealthTransition[] = [];
    let notify: (() => void) | undefined;
    const monitor = new HealthMonitor({
      check,
      onTransition: (transition) => {
        transitions.push(transition);
        notify?.();
      },
    });
    const next = () => new Promise<void>((resolve) => (notify = resolve));
    try {
      let changed = next();
      monitor.start();
      await changed;
      expect(monitor.ready).to.equal(true);
      healthy = false;
      changed = next();
      await changed;
      expect(monitor.ready).to.equal(false);
      expect(transitions.map((t) => t.ready)).to.deep.equal([true, false]);
      expect(transitions[1]?.result.detail).to.equal('HTTP 500');
    } finally {
      await monitor.stop();
      server.closeAllConnections();
      await close(server);
    }
  });
});
