import { expect } from 'chai';
import type { KvEvent } from '../../actors/raft/kv-types.ts';
import type {
  RaftMemberMessage,
  RaftMembershipReply,
  RaftProposeReply,
  RaftQueryReply,
  RaftStatusReply,
  RaftTransferLeadershipReply,
  RaftWatchEvent,
} from '../../actors/raft/raft-member.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { RaftMembers } from '../support/raft-members.ts';
import { spawnProbe } from '../support/test-system.ts';

/**
 * The member actor growing and shrinking its group: bootstrap alone, add members (learner, then
 * voter), linearizable and serializable reads, watches, leadership transfer, removal, and log
 * compaction with a member that can only catch up by InstallSnapshot. Members live in one
 * system and address each other by path, as they would by remote ref over the mesh.
 */

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function status(ref: ActorRef<RaftMemberMessage>): Promise<RaftStatusReply> {
  return ref.ask<RaftStatusReply>((replyTo) => ({ type: 'status', replyTo }), { timeoutMs: 1000 });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function leaderOf(members: RaftMembers, ids: readonly string[]): Promise<string> {
  return until(`a leader among ${ids}`, async () => {
    for (const id of ids) {
      const s = await status(members.ref(id));
      if (s.role === 'leader' && s.commitIndex > 0) return id;
    }
    return undefined;
  });
}

let seq = 0;
function put(ref: ActorRef<RaftMemberMessage>, key: string, value: string): Promise<RaftProposeReply> {
  const mySeq = ++seq;
  return ref.ask<RaftProposeReply>(
    (replyTo) => ({
      type: 'propose',
      command: { type: 'put', key, value },
      clientId: 'spec',
      seq: mySeq,
      replyTo,
    }),
    { timeoutMs: 5000 },
  );
}

function query(
  ref: ActorRef<RaftMemberMessage>,
  key: string,
  consistency: 'linearizable' | 'serializable',
  prefix = false,
): Promise<RaftQueryReply> {
  return ref.ask<RaftQueryReply>((replyTo) => ({ type: 'query', key, prefix, consistency, replyTo }), {
    timeoutMs: 5000,
  });
}

function addMember(ref: ActorRef<RaftMemberMessage>, id: string): Promise<RaftMembershipReply> {
  return ref.ask<RaftMembershipReply>(
    (replyTo) => ({ type: 'add-member', id, addresses: [`/memory/${id}`], replyTo }),
    { timeoutMs: 20_000 },
  );
}

describe('raft member: membership, reads, watches, transfer and snapshots', function () {
  this.timeout(40_000);
  let members: RaftMembers;

  beforeEach(async () => {
    members = await RaftMembers.start();
  });

  afterEach(async () => {
    await members.close();
  });

  it('bootstraps alone, serves linearizable and serializable reads, and grows to three voters', async () => {
    const m1 = await members.spawn('m1');
    await leaderOf(members, ['m1']);
    expect((await put(m1, 'a', '1')).ok).to.equal(true);
    const read = await query(m1, 'a', 'linearizable');
    expect(read.ok && read.result.kvs[0]?.value).to.equal('1');

    await members.spawn('m2', { initialVoters: [] });
    await members.spawn('m3', { initialVoters: [] });
    const added = await addMember(m1, 'm2');
    expect(added.ok && added.membership.voters).to.deep.equal(['m1', 'm2']);
    const again = await addMember(m1, 'm3');
    expect(again.ok && [...again.membership.voters].sort()).to.deep.equal(['m1', 'm2', 'm3']);
    expect(again.ok && again.membership.addresses.m3).to.deep.equal(['/memory/m3']);

    const s3 = await until('m3 to know all three voters', async () => {
      const s = await status(members.ref('m3'));
      return s.membership.voters.length === 3 && s.appliedIndex >= s.commitIndex ? s : undefined;
    });
    expect(s3.leaderId).to.equal('m1');
    // A follower's serializable read sees the replicated write; a linearizable one is refused with a hint.
    const local = await until('m3 to apply a', async () => {
      const r = await query(members.ref('m3'), 'a', 'serializable');
      return r.ok && r.result.kvs.length === 1 ? r : undefined;
    });
    expect(local.ok && local.result.kvs[0]?.value).to.equal('1');
    const refused = await query(members.ref('m3'), 'a', 'linearizable');
    expect(!refused.ok && refused.error.code).to.equal('NOT_LEADER');
    expect(!refused.ok && refused.leaderHint).to.equal('m1');

    // Adding a member already present answers at once.
    const twice = await addMember(m1, 'm2');
    expect(twice.ok).to.equal(true);
  });

  it('adds two members asked for at the same moment, one change at a time', async () => {
    const m1 = await members.spawn('m1');
    await leaderOf(members, ['m1']);
    await members.spawn('m2', { initialVoters: [] });
    await members.spawn('m3', { initialVoters: [] });
    const [a, b] = await Promise.all([addMember(m1, 'm2'), addMember(m1, 'm3')]);
    expect(a.ok, JSON.stringify(a)).to.equal(true);
    expect(b.ok, JSON.stringify(b)).to.equal(true);
    const s = await status(m1);
    expect([...s.membership.voters].sort()).to.deep.equal(['m1', 'm2', 'm3']);
  });

  it('delivers watch history and live events in order, then transfers leadership and removes a member', async () => {
    const m1 = await members.spawn('m1');
    await leaderOf(members, ['m1']);
    await members.spawn('m2', { initialVoters: [] });
    await members.spawn('m3', { initialVoters: [] });
    await addMember(m1, 'm2');
    await addMember(m1, 'm3');
    await put(m1, 'w/1', 'a');

    const probe = spawnProbe<RaftWatchEvent>(members.system);
    members.ref('m2').tell({ type: 'watch', prefix: 'w/', fromRevision: 1, subscriber: probe.ref });
    const started = await probe.next(5000);
    expect(started.type).to.equal('watch-started');
    await put(m1, 'w/2', 'b');
    await put(m1, 'x', 'ignored');
    await put(m1, 'w/3', 'c');
    const seen: KvEvent[] = started.type === 'watch-started' ? [...started.history] : [];
    while (seen.length < 3) {
      const event = await probe.next(5000);
      if (event.type === 'watch-events') seen.push(...event.events);
    }
    expect(seen.map((e) => e.kv.key)).to.deep.equal(['w/1', 'w/2', 'w/3']);
    const revisions = seen.map((e) => e.kv.modRevision);
    expect(revisions).to.deep.equal([...revisions].sort((a, b) => a - b));

    const moved = await m1.ask<RaftTransferLeadershipReply>(
      (replyTo) => ({ type: 'transfer-leadership', to: 'm3', replyTo }),
      { timeoutMs: 10_000 },
    );
    expect(moved.ok && moved.leaderId).to.equal('m3');
    expect(await leaderOf(members, ['m1', 'm2', 'm3'])).to.equal('m3');

    const removed = await members
      .ref('m3')
      .ask<RaftMembershipReply>((replyTo) => ({ type: 'remove-member', id: 'm2', replyTo }), {
        timeoutMs: 10_000,
      });
    expect(removed.ok && [...removed.membership.voters].sort()).to.deep.equal(['m1', 'm3']);
    expect((await put(members.ref('m3'), 'after', 'removal')).ok).to.equal(true);
  });

  it('compacts its log into snapshots, restarts from one, and catches up a new member by InstallSnapshot', async () => {
    // Small chunks, so the snapshot travels in many pieces, as a large one would.
    const m1 = await members.spawn('m1', { snapshotEvery: 20, snapshotChunkBytes: 256 });
    await leaderOf(members, ['m1']);
    for (let i = 0; i < 60; i++) expect((await put(m1, `k/${i}`, `v${i}`)).ok).to.equal(true);
    const s1 = await status(m1);
    expect(s1.snapshotIndex).to.be.greaterThan(20);

    await members.spawn('m2', { initialVoters: [], snapshotEvery: 20 });
    const added = await addMember(m1, 'm2');
    expect(added.ok).to.equal(true);
    const s2 = await until('m2 to apply everything', async () => {
      const s = await status(members.ref('m2'));
      return s.appliedIndex >= s1.commitIndex ? s : undefined;
    });
    // m2's log starts at the snapshot it installed: it never saw the early entries.
    expect(s2.snapshotIndex).to.be.greaterThan(0);
    const all = await query(members.ref('m2'), 'k/', 'serializable', true);
    expect(all.ok && all.result.kvs.length).to.equal(60);

    // A restart rebuilds the store from the snapshot plus the log after it.
    await members.stop('m1');
    await members.stop('m2');
    await members.spawn('m1', { snapshotEvery: 20 });
    await members.spawn('m2', { initialVoters: [], snapshotEvery: 20 });
    const leader = await leaderOf(members, ['m1', 'm2']);
    const back = await query(members.ref(leader), 'k/', 'linearizable', true);
    expect(back.ok && back.result.kvs.map((kv) => kv.value)).to.include.members(['v0', 'v59']);
    expect(back.ok && back.result.kvs.length).to.equal(60);
  });
});
