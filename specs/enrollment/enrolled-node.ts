/**
 * A node in this process wired the way `cloudless start` wires one: admission before the mesh,
 * the coordinator role (optional), then enrollment. Logs are captured (JSON lines) so specs can
 * check audit lines and that no secret was ever logged.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import winston from 'winston';
import { Admission } from '../../actors/enrollment/admission.ts';
import { type NodeEnrollment, startEnrollment } from '../../actors/enrollment/node-enrollment.ts';
import { type Coordinator, startCoordinator } from '../../actors/raft/coordinator.ts';
import { ActorSystem } from '../../runtime/actor-system.ts';
import type { Role } from '../../runtime/node-config.ts';
import { MeshTransport } from '../../transport/mesh-transport.ts';

export interface EnrolledNode {
  readonly system: ActorSystem;
  readonly mesh: MeshTransport;
  readonly admission: Admission;
  readonly coordinator: Coordinator | undefined;
  readonly enrollment: NodeEnrollment;
  readonly dataDir: string;
  readonly logs: string[];
  readonly address: string;
  stop(): Promise<void>;
}

export async function startEnrolledNode(
  init: {
    roles?: Role[];
    join?: string;
    token?: string;
    labels?: Record<string, string>;
    zone?: string;
  } = {},
): Promise<EnrolledNode> {
  const roles = init.roles ?? ['coordinator'];
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-enroll-'));
  const logs: string[] = [];
  const privateKey = await generateKeyPair('Ed25519');
  const nodeId = peerIdFromPrivateKey(privateKey).toString();
  const logger = winston.createLogger({
    level: 'debug',
    format: winston.format.json(),
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk, _encoding, done) {
            logs.push(String(chunk));
            done();
          },
        }),
      }),
    ],
  });
  const system = await ActorSystem.start({ nodeId, logger, dispatchers: {} });
  const admission = new Admission({ self: nodeId });
  const mesh = await MeshTransport.start(system, {
    privateKey,
    gate: admission,
    admission,
    unreachableAfterMs: 3000,
  });
  let coordinator: Coordinator | undefined;
  if (roles.includes('coordinator')) {
    coordinator = await startCoordinator(
      { system, mesh },
      {
        dataDir,
        join: init.join,
        admission,
        retry: { minMs: 50, maxMs: 500 },
        joinTimeoutMs: 20_000,
        ...(init.token === undefined
          ? {}
          : {
              enroll: {
                token: init.token,
                roles,
                labels: init.labels ?? {},
                zone: init.zone,
                resources: undefined,
              },
            }),
      },
    );
  }
  const enrollment = await startEnrollment(
    { system, mesh, admission, coordinator },
    {
      dataDir,
      roles,
      join: init.join,
      token: init.token,
      labels: init.labels ?? {},
      zone: init.zone,
      retry: { minMs: 50, maxMs: 500 },
    },
  );
  const address = mesh.multiaddrs[0] as string;
  let stopped = false;
  return {
    system,
    mesh,
    admission,
    coordinator,
    enrollment,
    dataDir,
    logs,
    address,
    async stop() {
      if (stopped) return;
      stopped = true;
      await enrollment.stop();
      await coordinator?.stop();
      await system.stop();
      await mesh.stop();
      logger.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
