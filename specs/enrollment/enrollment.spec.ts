/**
 * Enrollment against a real Raft coordinator in this process: every bad token is refused with its
 * reason and an audit line that holds no secret; a good one makes the joiner a member the actor
 * protocol admits; an unknown peer's actor-protocol stream is reset before any actor sees it; a
 * removed node is kept out; clients need the admin credential.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { expect } from 'chai';
import { credentialFileName } from '../../actors/enrollment/admin-credential.ts';
import { requestJoin } from '../../actors/enrollment/enroll-client.ts';
import { TokenRefusedError, UnauthenticatedClientError } from '../../actors/enrollment/enrollment-errors.ts';
import { frontDoorPort, type KvPort } from '../../actors/enrollment/kv-port.ts';
import { blockedKey, memberKey } from '../../actors/enrollment/member-record.ts';
import {
  encodeTokenRecord,
  formatToken,
  generateToken,
  hashSecret,
  type TokenRecord,
  tokenKey,
} from '../../actors/enrollment/token.ts';
import { TokenStore } from '../../actors/enrollment/token-store.ts';
import { KvClient } from '../../actors/raft/kv-client.ts';
import { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { UnavailableError } from '../../runtime/errors.ts';
import { createMeshNode, type MeshNode } from '../../transport/mesh-node.ts';
import { MeshTransport } from '../../transport/mesh-transport.ts';
import { NotAdmittedError } from '../../transport/transport-errors.ts';
import { until } from '../support/deadline.ts';
import { type EnrolledNode, startEnrolledNode } from './enrolled-node.ts';

async function rawPeer(): Promise<MeshNode> {
  return createMeshNode({ privateKey: await generateKeyPair('Ed25519'), listen: [] });
}

async function plainMesh(): Promise<{ system: ActorSystem; mesh: MeshTransport; stop(): Promise<void> }> {
  const privateKey = await generateKeyPair('Ed25519');
  const system = await ActorSystem.start({
    nodeId: peerIdFromPrivateKey(privateKey).toString(),
    logLevel: 'silent',
    dispatchers: {},
  });
  const mesh = await MeshTransport.start(system, { privateKey, dialTimeoutMs: 3000 });
  return {
    system,
    mesh,
    async stop() {
      await system.stop();
      await mesh.stop();
    },
  };
}

const description = {
  roles: ['agent' as const],
  addresses: [],
  labels: { rack: 'r1' },
  zone: 'z1',
  resources: undefined,
};

describe('enrollment (in process, real Raft)', function () {
  this.timeout(60_000);
  let a: EnrolledNode;
  let kv: KvPort;
  let tokens: TokenStore;
  const peers: MeshNode[] = [];
  const secrets: string[] = [];

  before(async () => {
    a = await startEnrolledNode({ roles: ['coordinator'] });
    await a.enrollment.credential;
    kv = frontDoorPort(a.coordinator?.kv as never);
    tokens = new TokenStore({ kv });
    await until(() => a.admission.credentialHash, 10_000, 'the admission feed loaded');
  });

  after(async () => {
    await a?.stop();
  });

  afterEach(async () => {
    await Promise.all(peers.splice(0).map((peer) => peer.stop()));
    for (const secret of secrets) {
      for (const line of a.logs) expect(line, 'a log line holds a secret').not.to.include(secret);
    }
  });

  async function refusedCount(): Promise<number> {
    const text = await a.system.metrics.getSingleMetricAsString('cloudless_transport_streams_refused_total');
    return Number(/streams_refused_total (\d+)/.exec(text)?.[1] ?? 0);
  }

  async function joiner(): Promise<MeshNode> {
    const peer = await rawPeer();
    peers.push(peer);
    return peer;
  }

  async function create(roles: TokenRecord['roles'], maxUses = 1, ttlMs = 60_000): Promise<string> {
    const { token } = await tokens.create({ roles, ttlMs, maxUses });
    secrets.push(token.slice(17));
    return token;
  }

  /** Writes a token record directly (to make one that expired). */
  async function stored(overrides: Partial<TokenRecord>): Promise<string> {
    const parsed = generateToken();
    secrets.push(parsed.secret);
    const record: TokenRecord = {
      version: 1,
      id: parsed.id,
      secretHash: hashSecret(parsed.secret),
      roles: ['agent'],
      createdAt: Date.now() - 10_000,
      expiresAt: Date.now() + 60_000,
      maxUses: 1,
      uses: 0,
      revoked: false,
      boundPeers: [],
      ...overrides,
    };
    await kv.txn({
      compare: [],
      success: [{ type: 'put', key: tokenKey(parsed.id), value: encodeTokenRecord(record) }],
      failure: [],
    });
    return formatToken(parsed);
  }

  async function refused(
    peer: MeshNode,
    token: string,
    roles = description.roles,
  ): Promise<TokenRefusedError> {
    try {
      await requestJoin(peer, a.address, { token, ...description, roles });
    } catch (error) {
      expect(error).to.be.instanceOf(TokenRefusedError);
      return error as TokenRefusedError;
    }
    throw new Error('the join was not refused');
  }

  function auditLine(peer: MeshNode, reason: string): void {
    const id = peer.peerId.toString();
    const line = a.logs.find(
      (l) => l.includes('enroll:refused') && l.includes(id) && l.includes(`"reason":"${reason}"`),
    );
    expect(line, `an audit line for ${reason}`).not.to.equal(undefined);
  }

  it('redeems a token: binds it to the PeerId, counts the use, records the member; a retry is idempotent', async () => {
    const token = await create(['agent', 'storage']);
    const peer = await joiner();
    const answer = await requestJoin(peer, a.address, { token, ...description });
    expect(answer.member.id).to.equal(peer.peerId.toString());
    expect(answer.member.labels).to.deep.equal({ rack: 'r1' });
    expect(answer.member.tokenId).to.equal(token.slice(0, 16));
    expect(answer.coordinators.map((c) => c.id)).to.deep.equal([a.mesh.peerId]);
    const again = await requestJoin(peer, a.address, { token, ...description });
    expect(again.member).to.deep.equal(answer.member);
    const [record] = (await tokens.list()).filter((r) => r.id === token.slice(0, 16));
    expect(record?.uses).to.equal(1);
    expect(record?.boundPeers).to.deep.equal([peer.peerId.toString()]);
    expect(await kv.get(memberKey(peer.peerId.toString()))).not.to.equal(undefined);
    expect(a.logs.some((l) => l.includes('enroll:admitted') && l.includes(peer.peerId.toString()))).to.equal(
      true,
    );
  });

  it('refuses a malformed token', async () => {
    const peer = await joiner();
    const secret = generateToken().secret;
    secrets.push(secret);
    expect((await refused(peer, `nothex.${secret}`)).reason).to.equal('malformed');
    auditLine(peer, 'malformed');
  });

  it('refuses an unknown token and a wrong secret', async () => {
    const peer = await joiner();
    const unknown = formatToken(generateToken());
    secrets.push(unknown.slice(17));
    expect((await refused(peer, unknown)).reason).to.equal('unknown');
    auditLine(peer, 'unknown');
    const token = await create(['agent']);
    const wrong = `${token.slice(0, 16)}.${generateToken().secret}`;
    secrets.push(wrong.slice(17));
    expect((await refused(peer, wrong)).reason).to.equal('wrong-secret');
    auditLine(peer, 'wrong-secret');
  });

  it('refuses an expired token', async () => {
    const peer = await joiner();
    expect((await refused(peer, await stored({ expiresAt: Date.now() - 1 }))).reason).to.equal('expired');
    auditLine(peer, 'expired');
  });

  it('refuses a revoked token', async () => {
    const token = await create(['agent']);
    await tokens.revoke(token.slice(0, 16));
    const peer = await joiner();
    expect((await refused(peer, token)).reason).to.equal('revoked');
    auditLine(peer, 'revoked');
  });

  it('refuses a token used up, and one replayed by another PeerId', async () => {
    const twice = await create(['agent'], 2);
    await requestJoin(await joiner(), a.address, { token: twice, ...description });
    await requestJoin(await joiner(), a.address, { token: twice, ...description });
    const third = await joiner();
    expect((await refused(third, twice)).reason).to.equal('used-up');
    auditLine(third, 'used-up');

    const once = await create(['agent']);
    await requestJoin(await joiner(), a.address, { token: once, ...description });
    const replay = await joiner();
    expect((await refused(replay, once)).reason).to.equal('bound-elsewhere');
    auditLine(replay, 'bound-elsewhere');
  });

  it('refuses roles the token does not allow', async () => {
    const token = await create(['agent']);
    const peer = await joiner();
    expect((await refused(peer, token, ['agent', 'coordinator'] as never)).reason).to.equal(
      'role-not-allowed',
    );
    auditLine(peer, 'role-not-allowed');
  });

  it("refuses an unknown peer's actor-protocol stream before any actor sees it, telling the peer why", async () => {
    const seen: unknown[] = [];
    a.system.spawn(
      Behaviors.receiveMessage<unknown>((message) => {
        seen.push(message);
        return Behaviors.same;
      }),
      { name: 'target' },
    );
    const stranger = await plainMesh();
    try {
      const before = await refusedCount();
      // The dial itself may resolve (negotiation succeeds before the handler resets the stream).
      await stranger.mesh.connect(a.address).catch(() => undefined);
      stranger.system.resolve({ node: a.mesh.peerId, path: '/user/target' }).tell('hello');
      await until(
        async () => ((await refusedCount()) > before ? true : undefined),
        5000,
        'the stream was refused',
      );
      await until(
        () =>
          stranger.mesh.node
            .getConnections()
            .flatMap((c) => c.streams)
            .every((stream) => stream.protocol !== '/cloudless/actor/1.0.0' || stream.status !== 'open') ||
          undefined,
        5000,
        "the stranger's actor-protocol streams were reset",
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(seen).to.deep.equal([]);
      expect(a.admission.isAdmitted(stranger.mesh.peerId)).to.equal(false);
      // The refusal frame reaches the stranger: an ask fails at once, with the reason, not at its deadline.
      const asked = performance.now();
      const refusal = await stranger.system
        .resolve<{ replyTo: unknown }>({ node: a.mesh.peerId, path: '/user/target' })
        .ask((replyTo) => ({ replyTo }), { timeoutMs: 10_000 })
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      expect(refusal).to.be.instanceOf(NotAdmittedError);
      expect(performance.now() - asked).to.be.below(3000);
      expect(seen).to.deep.equal([]);
    } finally {
      await stranger.stop();
      // A's end of the reset connection settles its libp2p timers on a later turn.
      await until(
        () =>
          a.mesh.node.getConnections().every((c) => c.remotePeer.toString() !== stranger.mesh.peerId) ||
          undefined,
        5000,
        'closed',
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  });

  it('admits a member to the actor protocol, and keeps it out once removed', async () => {
    const token = await create(['agent']);
    const b = await startEnrolledNode({ roles: ['agent'], join: a.address, token });
    try {
      await b.enrollment.enrolled;
      const peerId = b.mesh.peerId;
      expect(a.admission.isAdmitted(peerId)).to.equal(true);
      await b.mesh.connect(a.address);
      // nodes rm: delete the record and block the PeerId in one txn.
      await kv.txn({
        compare: [],
        success: [
          { type: 'delete', key: memberKey(peerId) },
          { type: 'put', key: blockedKey(peerId), value: JSON.stringify({ at: Date.now() }) },
        ],
        failure: [],
      });
      await until(() => a.admission.isBlocked(peerId) || undefined, 10_000, 'A blocked the removed node');
      await until(
        () => a.mesh.node.getConnections().every((c) => c.remotePeer.toString() !== peerId) || undefined,
        5000,
        'its connections closed',
      );
      await until(() => b.mesh.node.getConnections().length === 0 || undefined, 5000, "B's side closed too");
      expect(a.admission.admit(peerId)).to.equal(false);
      let error: unknown;
      try {
        await b.mesh.connect(a.address, { signal: AbortSignal.timeout(3000) });
      } catch (caught) {
        error = caught;
      }
      expect(error).to.be.instanceOf(UnavailableError);
    } finally {
      await b.stop();
      // libp2p settles the closed connection's timers on A a moment later.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  });

  it('admits a client with the admin credential, and refuses a wrong or missing one', async () => {
    const credential = (await readFile(path.join(a.dataDir, credentialFileName), 'utf8')).trim();
    const client = await KvClient.connect({ address: a.address, credential, timeoutMs: 1500 });
    try {
      await client.put('/app/x', '1');
      expect((await client.get('/app/x'))?.value).to.equal('1');
    } finally {
      await client.close();
    }
    let wrong: unknown;
    try {
      await KvClient.connect({ address: a.address, credential: generateToken().secret, timeoutMs: 1500 });
    } catch (error) {
      wrong = error;
    }
    expect(wrong).to.be.instanceOf(UnauthenticatedClientError);
    // Without the credential the node refuses the stream with a refusal frame: the call fails at
    // once, saying to pass the credential, instead of waiting for its deadline.
    let missing: unknown;
    let bare: KvClient | undefined;
    const started = performance.now();
    try {
      bare = await KvClient.connect({ address: a.address, timeoutMs: 10_000 });
      await bare.get('/app/x');
    } catch (error) {
      missing = error;
    } finally {
      await bare?.close();
    }
    const tookMs = performance.now() - started;
    expect(missing).to.be.instanceOf(UnauthenticatedClientError);
    expect((missing as UnauthenticatedClientError).code).to.equal('INVALID_REQUEST');
    expect((missing as Error).cause).to.be.instanceOf(NotAdmittedError);
    expect(tookMs, 'refused well before the 10 s call deadline').to.be.below(3000);
    expect(a.logs.some((l) => l.includes(credential))).to.equal(false);
    // A's link to the admitted client, which disconnected, counts down unreachableAfterMs (3 s).
    await new Promise((resolve) => setTimeout(resolve, 3100));
  });
});
