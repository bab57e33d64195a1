import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { expect } from 'chai';
import { createMeshNode, type MeshNode } from '../../transport/mesh-node.ts';
import { identityFileName, readIdentityFile } from '../../transport/node-identity.ts';
import { waitForOutput } from '../support/child-output.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'bin', 'cloudless.ts');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cloudless …` as a real process; resolves with its exit code and output, never rejects. */
function cloudless(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

function json(run: Run): Record<string, unknown> {
  expect(run.code, run.stderr).to.equal(0);
  const lines = run.stdout.trim().split('\n');
  expect(lines, 'one JSON object on stdout').to.have.length(1);
  return JSON.parse(lines[0] ?? '') as Record<string, unknown>;
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
}

/**
 * Stops a libp2p node started in this process and waits (up to 3 s) until the timers libp2p keeps
 * for about a second after stop() have fired, so the leak hook sees what this spec really left.
 */
async function stopMeshNode(node: MeshNode, timersBefore: number): Promise<void> {
  await node.stop();
  for (let waited = 0; waited < 3000 && timers() > timersBefore; waited += 25) await sleep(25);
}

/** A loopback TCP port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('cloudless peer', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-peer-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('keygen', () => {
    it('writes a 0600 identity file whose PeerId it prints, and refuses to overwrite it without --force', async () => {
      const file = path.join(dir, 'node2.key');
      const created = json(await cloudless(['peer', 'keygen', '--out', file, '--json']));
      expect((await stat(file)).mode & 0o777).to.equal(0o600);
      expect(created.file).to.equal(file);
      expect(created.peerId).to.equal(peerIdFromPrivateKey(await readIdentityFile(file)).toString());

      const before = await readFile(file);
      const refused = await cloudless(['peer', 'keygen', '--out', file]);
      expect(refused.code).to.equal(2);
      expect(refused.stderr).to.include(file);
      expect(await readFile(file)).to.deep.equal(before);

      const replaced = json(await cloudless(['peer', 'keygen', '--out', file, '--force', '--json']));
      expect(replaced.peerId).not.to.equal(created.peerId);
      expect(replaced.peerId).to.equal(peerIdFromPrivateKey(await readIdentityFile(file)).toString());
    });

    it('exits 2 without --out', async () => {
      const run = await cloudless(['peer', 'keygen', '--json']);
      expect(run.code).to.equal(2);
      expect(run.stdout).to.equal('');
      expect(run.stderr).to.include('--out');
    });
  });

  describe('id', () => {
    it('prints the PeerId of the identity in the data dir, creating it once', async () => {
      const first = json(await cloudless(['peer', 'id', '--data-dir', dir, '--json']));
      const identityFile = path.join(dir, identityFileName);
      const peerId = peerIdFromPrivateKey(await readIdentityFile(identityFile)).toString();
      expect(first).to.deep.equal({
        peerId,
        identityFile,
        created: true,
        listen: [`/ip4/127.0.0.1/tcp/0/p2p/${peerId}`],
      });
      const again = json(
        await cloudless(['peer', 'id', '--data-dir', dir, '--listen', '/ip4/0.0.0.0/tcp/7000', '--json']),
      );
      expect(again).to.include({ peerId, created: false });
      expect(again.listen).to.deep.equal([`/ip4/0.0.0.0/tcp/7000/p2p/${peerId}`]);
    });

    it('exits 2 on a listen address that is not TCP', async () => {
      const run = await cloudless(['peer', 'id', '--data-dir', dir, '--listen', '/ip4/127.0.0.1/udp/7000']);
      expect(run.code).to.equal(2);
      expect(run.stderr).to.include('/ip4/127.0.0.1/udp/7000');
    });

    it('gives the same id that cloudless start uses as its node id', async () => {
      const { peerId } = json(await cloudless(['peer', 'id', '--data-dir', dir, '--json']));
      const child = spawn(process.execPath, [
        cli,
        'start',
        '--data-dir',
        dir,
        '--log-level',
        'warn',
        '--worker-threads',
        '0',
      ]);
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const output = await waitForOutput(child, 'stop with Ctrl-C');
      child.kill('SIGTERM');
      expect(await exited).to.equal(0);
      expect(output).to.include(`node ${String(peerId)} is up`);
    });
  });

  describe('ping and identify', () => {
    // `cloudless start` does not run the mesh yet (it says "not yet: libp2p mesh"), so the node
    // answering here is a mesh node started in this process with the identity `start` created.
    it('pings and identifies the mesh node cloudless start runs, by the PeerId of its identity', async () => {
      const child = spawn(process.execPath, [
        cli,
        'start',
        '--data-dir',
        dir,
        '--log-level',
        'warn',
        '--worker-threads',
        '0',
      ]);
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      try {
        const output = await waitForOutput(child, 'stop with Ctrl-C');
        const nodeId = /node (\S+) is up/.exec(output)?.[1];
        const privateKey = await readIdentityFile(path.join(dir, identityFileName));
        expect(peerIdFromPrivateKey(privateKey).toString()).to.equal(nodeId);
        const address = /listening: (\S+)/.exec(output)?.[1] ?? '';
        expect(address).to.match(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${nodeId}$`));

        const ping = json(await cloudless(['peer', 'ping', address, '--count', '3', '--json']));
        expect(ping).to.include({ address, peerId: nodeId, count: 3 });
        const rtts = ping.rttMs as number[];
        expect(rtts).to.have.length(3);
        for (const rtt of rtts) expect(rtt).to.be.a('number').and.at.least(0).and.below(5000);
        expect(ping.minMs).to.equal(Math.min(...rtts));
        expect(ping.maxMs).to.equal(Math.max(...rtts));
        expect(ping.avgMs as number).to.be.within(ping.minMs as number, ping.maxMs as number);

        const text = await cloudless(['peer', 'ping', address, '--count', '2']);
        expect(text.code, text.stderr).to.equal(0);
        expect(text.stdout).to.match(/seq=2 time=\d+ ms/);
        expect(text.stdout).to.match(/2 pings: min\/avg\/max = /);

        // Without /p2p/ the tool learns the PeerId from the Noise handshake.
        const bare = address.replace(/\/p2p\/.*$/, '');
        const identify = json(await cloudless(['peer', 'identify', bare, '--json']));
        expect(identify.peerId).to.equal(nodeId);
        expect(identify.protocols).to.include.members([
          '/ipfs/ping/1.0.0',
          '/ipfs/id/1.0.0',
          '/cloudless/actor/1.0.0',
        ]);
        expect(identify.listenAddrs).to.include(bare);
        expect(identify.agentVersion).to.match(/^cloudless\//);
        expect(identify.protocolVersion).to.be.a('string');
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited).to.equal(0);
    });

    it('exits 1 and names the address and the PeerId it found when the /p2p/ part is wrong', async () => {
      const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
      const timersBefore = timers();
      const node = await createMeshNode({ privateKey: await generateKeyPair('Ed25519') });
      try {
        const bare =
          node
            .getMultiaddrs()[0]
            ?.toString()
            .replace(/\/p2p\/.*$/, '') ?? '';
        const wrong = `${bare}/p2p/${other}`;
        const run = await cloudless(['peer', 'ping', wrong, '--json']);
        expect(run.code).to.equal(1);
        expect(run.stdout).to.equal('');
        expect(run.stderr).to.include(wrong);
        expect(run.stderr).to.include(node.peerId.toString());
      } finally {
        await stopMeshNode(node, timersBefore);
      }
    });

    for (const command of ['ping', 'identify']) {
      it(`${command}: exits 2 on a bad multiaddr and names it`, async () => {
        for (const bad of ['not-a-multiaddr', '/ip4/300.1.1.1/tcp/1', '/ip4/127.0.0.1/udp/4001']) {
          const run = await cloudless(['peer', command, bad, '--json']);
          expect(run.code, bad).to.equal(2);
          expect(run.stdout).to.equal('');
          expect(run.stderr).to.include(bad);
        }
      });

      it(`${command}: exits 1 on an address nobody listens on and names the address`, async () => {
        const address = `/ip4/127.0.0.1/tcp/${await deadPort()}`;
        const run = await cloudless(['peer', command, address, '--json', '--timeout-ms', '5000']);
        expect(run.code).to.equal(1);
        expect(run.stdout).to.equal('');
        expect(run.stderr).to.include(address);
        expect(run.stderr).to.include('connection refused');
      });
    }

    it('exits 2 on a bad --count or --timeout-ms', async () => {
      for (const args of [
        ['--count', '0'],
        ['--count', 'three'],
        ['--timeout-ms', '-1'],
      ]) {
        const run = await cloudless(['peer', 'ping', '/ip4/127.0.0.1/tcp/4001', ...args]);
        expect(run.code, args.join(' ')).to.equal(2);
      }
    });

    it('exits 1 within the deadline when the listener never answers', async () => {
      // A TCP listener that accepts and stays silent: the Noise handshake never completes.
      const sockets = new Set<net.Socket>();
      const silent = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => {});
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const address = `/ip4/127.0.0.1/tcp/${(silent.address() as net.AddressInfo).port}`;
        const started = Date.now();
        const run = await cloudless(['peer', 'ping', address, '--timeout-ms', '1000']);
        expect(run.code).to.equal(1);
        expect(run.stderr).to.include(address);
        expect(Date.now() - started).to.be.below(8000);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => silent.close(() => resolve()));
      }
    });
  });
});
