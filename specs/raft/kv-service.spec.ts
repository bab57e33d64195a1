/**
 * The KV front door in one process, with scripted stand-ins for Raft members: it refuses
 * malformed requests before they reach a member, follows NOT_LEADER hints to the leader, retries a
 * write with the same (clientId, seq), and answers UNAVAILABLE when no leader turns up in time.
 */
import { expect } from 'chai';
import { kvService } from '../../actors/raft/kv-service.ts';
import type { KvServiceReply, KvServiceRequest } from '../../actors/raft/kv-service-protocol.ts';
import type {
  RaftMemberMessage,
  RaftProposeReply,
  RaftProposeRequest,
} from '../../actors/raft/raft-member.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { startTestSystem } from '../support/test-system.ts';

type Script = (message: RaftMemberMessage, seen: number) => 'ignore' | RaftProposeReply | undefined;

/** A stand-in member: records what it receives and answers proposals as `script` says. */
function fakeMember(system: ActorSystem, name: string, script: Script) {
  const received: RaftMemberMessage[] = [];
  const ref = system.spawn(
    Behaviors.receiveMessage<RaftMemberMessage>((message) => {
      received.push(message);
      const answer = script(message, received.length);
      if (answer !== undefined && answer !== 'ignore' && 'replyTo' in message) {
        (message.replyTo as ActorRef<unknown>).tell(answer);
      }
      return Behaviors.same;
    }),
    { name },
  );
  return { ref, received };
}

const applied: RaftProposeReply = {
  ok: true,
  result: { type: 'put', revision: 7 },
  duplicate: false,
  index: 9,
};

function notLeader(leaderHint?: string): RaftProposeReply {
  return { ok: false, error: { code: 'NOT_LEADER', message: 'not the leader' }, leaderHint };
}

function put(replyTo: ActorRef<KvServiceReply<unknown>>, timeoutMs = 2000): KvServiceRequest {
  return {
    type: 'command',
    command: { type: 'put', key: 'k', value: 'v' },
    clientId: 'client-1',
    seq: 1,
    timeoutMs,
    replyTo,
  };
}

describe('kv service (front door)', () => {
  let system: ActorSystem;

  beforeEach(async () => {
    system = await startTestSystem();
  });

  afterEach(async () => {
    await system.stop();
  });

  function frontDoor(
    member: ActorRef<RaftMemberMessage>,
    peers: Record<string, ActorRef<RaftMemberMessage>> = {},
  ): ActorRef<KvServiceRequest> {
    return system.spawn(
      kvService({
        member,
        peerRef: (id) => peers[id] ?? system.resolve({ node: system.nodeId, path: `/user/missing-${id}` }),
        attemptTimeoutMs: 200,
        retry: { minMs: 10, maxMs: 50 },
      }),
      { name: 'kv' },
    ) as ActorRef<KvServiceRequest>;
  }

  it('answers INVALID_REQUEST for malformed requests and passes none of them to the member', async () => {
    const member = fakeMember(system, 'member', () => applied);
    const kv = frontDoor(member.ref);
    const malformed: ((replyTo: ActorRef<KvServiceReply<unknown>>) => unknown)[] = [
      (replyTo) => ({
        type: 'command',
        command: { type: 'put', key: '', value: 'v' },
        clientId: 'c',
        seq: 1,
        replyTo,
      }),
      (replyTo) => ({
        type: 'command',
        command: { type: 'put', key: 'k', value: 'v' },
        clientId: 'c',
        seq: 0,
        replyTo,
      }),
      (replyTo) => ({
        type: 'command',
        command: { type: 'put', key: 'k'.repeat(2000), value: 'v' },
        clientId: 'c',
        seq: 1,
        replyTo,
      }),
      (replyTo) => ({ type: 'command', command: { type: 'drop-table' }, clientId: 'c', seq: 1, replyTo }),
      (replyTo) => ({ type: 'query', key: 'k', consistency: 'eventual', replyTo }),
      (replyTo) => ({ type: 'query', key: 'k', prefix: true, limit: 0, replyTo }),
      (replyTo) => ({ type: 'join', id: 'not-a-peer-id', addresses: ['/ip4/127.0.0.1/tcp/1'], replyTo }),
      (replyTo) => ({ type: 'join', id: system.nodeId, addresses: [], replyTo }),
      (replyTo) => ({ type: 'status', timeoutMs: 10_000_000, replyTo }),
      (replyTo) => ({ type: 'shutdown', replyTo }),
    ];
    for (const build of malformed) {
      const reply = await kv.ask<KvServiceReply<unknown>>((replyTo) => build(replyTo) as KvServiceRequest, {
        timeoutMs: 2000,
      });
      expect(reply.ok, JSON.stringify(build.toString())).to.equal(false);
      expect((reply as { error: { code: string } }).error.code).to.equal('INVALID_REQUEST');
    }
    expect(member.received).to.deep.equal([]);
  });

  it('follows a NOT_LEADER hint to the leader and answers with its result', async () => {
    const leader = fakeMember(system, 'leader', () => applied);
    const follower = fakeMember(system, 'follower', () => notLeader('leader-id'));
    const kv = frontDoor(follower.ref, { 'leader-id': leader.ref });
    const reply = await kv.ask<KvServiceReply<unknown>>((replyTo) => put(replyTo), { timeoutMs: 3000 });
    expect(reply).to.deep.equal({ ok: true, value: { result: applied.result, duplicate: false, index: 9 } });
    expect(follower.received).to.have.length(1);
    expect(leader.received).to.have.length(1);
  });

  it('retries a write whose leader did not answer with the same (clientId, seq)', async () => {
    // The first try is lost (the leader never answers it); the retry goes through the member again.
    const leader = fakeMember(system, 'leader', (_message, seen) => (seen === 1 ? 'ignore' : applied));
    const follower = fakeMember(system, 'follower', () => notLeader('leader-id'));
    const kv = frontDoor(follower.ref, { 'leader-id': leader.ref });
    const reply = await kv.ask<KvServiceReply<unknown>>((replyTo) => put(replyTo, 3000), { timeoutMs: 4000 });
    expect(reply.ok).to.equal(true);
    const proposals = leader.received as RaftProposeRequest[];
    expect(proposals).to.have.length(2);
    expect(proposals.map(({ clientId, seq }) => ({ clientId, seq }))).to.deep.equal([
      { clientId: 'client-1', seq: 1 },
      { clientId: 'client-1', seq: 1 },
    ]);
  });

  it('answers UNAVAILABLE, naming the missing leader, when none turns up before the deadline', async () => {
    const member = fakeMember(system, 'member', () => notLeader(undefined));
    const kv = frontDoor(member.ref);
    const started = performance.now();
    const reply = await kv.ask<KvServiceReply<unknown>>((replyTo) => put(replyTo, 300), { timeoutMs: 3000 });
    expect(reply.ok).to.equal(false);
    expect((reply as { error: { code: string } }).error.code).to.equal('UNAVAILABLE');
    expect(performance.now() - started).to.be.lessThan(2000);
    expect(member.received.length).to.be.greaterThan(1);
  });

  it('passes a refusal that is not about leadership straight back', async () => {
    const member = fakeMember(system, 'member', () => ({
      ok: false,
      error: { code: 'INVALID_REQUEST', message: 'stale seq' },
    }));
    const kv = frontDoor(member.ref);
    const reply = await kv.ask<KvServiceReply<unknown>>((replyTo) => put(replyTo), { timeoutMs: 3000 });
    expect(reply).to.deep.equal({ ok: false, error: { code: 'INVALID_REQUEST', message: 'stale seq' } });
    expect(member.received).to.have.length(1);
  });
});
