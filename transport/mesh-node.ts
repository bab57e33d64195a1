/**
 * One libp2p node per process: TCP, Noise, Yamux, plus the standard identify and ping services,
 * so any ordinary libp2p peer can dial a Cloudless node, identify it and ping it.
 */
import { noise } from '@chainsafe/libp2p-noise';
import { identify } from '@libp2p/identify';
import type { ConnectionGater, Libp2p, PrivateKey } from '@libp2p/interface';
import { ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { yamux } from '@libp2p/yamux';
import { createLibp2p } from 'libp2p';
import './yamux-window-updates.ts';

export type MeshServices = {
  identify: ReturnType<ReturnType<typeof identify>>;
  ping: ReturnType<ReturnType<typeof ping>>;
};

export type MeshNode = Libp2p<MeshServices>;

export interface MeshNodeInit {
  privateKey: PrivateKey;
  /** Multiaddrs to listen on; default loopback on a free port. */
  listen?: string[];
  /** Decides which peers may connect (accept-all when absent). */
  gater?: ConnectionGater;
  /** Shown to peers by identify. */
  agentVersion?: string;
  /**
   * New inbound connections accepted per second from one IP address; default 100. libp2p's own
   * default (5) refuses a sixth connection within a second from the same host by resetting it
   * mid-handshake, which every CLI command, client and node on one machine (or behind one NAT)
   * shares; the connection gater, not a per-host rate, is what keeps strangers out.
   */
  inboundConnectionsPerHostPerSecond?: number;
  /**
   * Run identify on every new connection (default true). Off for a client that calls
   * `services.identify.identify(connection)` itself: identify allows one outbound stream per
   * connection, so the automatic run would race the explicit one.
   */
  identifyOnConnect?: boolean;
}

export const defaultListen = ['/ip4/127.0.0.1/tcp/0'];

export async function createMeshNode(init: MeshNodeInit): Promise<MeshNode> {
  return createLibp2p({
    privateKey: init.privateKey,
    addresses: { listen: init.listen ?? defaultListen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: init.gater,
    connectionManager: {
      inboundConnectionThreshold: init.inboundConnectionsPerHostPerSecond ?? 100,
      maxIncomingPendingConnections: 100,
    },
    nodeInfo: { userAgent: init.agentVersion ?? 'cloudless' },
    services: { identify: identify({ runOnConnectionOpen: init.identifyOnConnect ?? true }), ping: ping() },
  });
}
