import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { expect } from 'chai';
import { until } from '../support/deadline.ts';
import {
  resourceCounts,
  type SpecNode,
  settleLibp2pTimersAfterEach,
  startSpecNode,
} from '../support/mesh-spec-node.ts';

async function strangerPeerId(): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
}

describe('mesh links', function () {
  this.timeout(20_000);
  settleLibp2pTimersAfterEach();

  it('accepts a burst of connections from one host (clients and nodes on one machine share an IP)', async () => {
    // libp2p's default refuses a sixth inbound connection within a second from one host.
    const baseline = resourceCounts();
    const nodes = await Promise.all(Array.from({ length: 9 }, () => startSpecNode({})));
    const [server, ...clients] = nodes as [SpecNode, ...SpecNode[]];
    try {
      const address = server.mesh.multiaddrs[0] as string;
      const ids = await Promise.all(clients.map((client) => client.mesh.connect(address)));
      expect(new Set(ids)).to.deep.equal(new Set([server.system.nodeId]));
    } finally {
      // Each node's own stop() waits for the process's resources to fall back to where they were
      // at its start, which the others' sockets prevent; stop them all, then wait for the sockets.
      await Promise.all(nodes.map((node) => node.mesh.stop()));
      await Promise.all(nodes.map((node) => node.system.stop()));
      await until(
        () =>
          (resourceCounts().get('TCPSocketWrap') ?? 0) <= (baseline.get('TCPSocketWrap') ?? 0)
            ? true
            : undefined,
        10_000,
        'every socket closed',
      );
    }
  });

  it('forgets idle links to unreachable peers once there are more than maxIdleLinks', async () => {
    // Refs may name any PeerId; none of these answers (this node has no address for them).
    const strangers = await Promise.all([
      strangerPeerId(),
      strangerPeerId(),
      strangerPeerId(),
      strangerPeerId(),
    ]);
    const node = await startSpecNode({ maxIdleLinks: 2, unreachableAfterMs: 150, dialTimeoutMs: 100 });
    try {
      for (const stranger of strangers.slice(0, 3)) {
        node.system.resolve<string>({ node: stranger, path: '/user/x' }).tell('hi');
      }
      expect(node.mesh.linkCount).to.equal(3);
      await until(
        () =>
          node.deadLetters.filter((letter) => letter.reason === 'unreachable').length === 3
            ? true
            : undefined,
        5000,
        'all three declared unreachable',
      );
      node.system.resolve<string>({ node: strangers[3] as string, path: '/user/x' }).tell('hi');
      expect(node.mesh.linkCount, 'the three idle unreachable links were forgotten').to.equal(1);
    } finally {
      await node.stop();
    }
  });
});
