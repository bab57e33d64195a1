import { expect } from 'chai';
import type { KeyValue, KvCommand, KvOpResponse, KvResult } from '../../actors/raft/kv-types.ts';
import { mulberry32 } from '../../actors/raft/mulberry32.ts';
import type {
  RaftMemberMessage,
  RaftMembershipReply,
  RaftProposeReply,
  RaftQueryReply,
  RaftStatusReply,
} from '../../actors/raft/raft-member.ts';
import { KvWorkload, type KvWorkloadClient } from '../../chaos/support/kv-history.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import { errorFromWire, UnavailableError } from '../../runtime/errors.ts';
import { kvModel } from '../support/kv-model.ts';
import { checkLinearizable } from '../support/linearizability.ts';
import { RaftMembers } from '../support/raft-members.ts';

/**
 * Recorded client histories of three real Raft members (real log stores with fsync, in one
 * process), checked for linearizability while the leader is stopped and started again. The
 * multi-process version with kill -9, SIGSTOP and partitions is chaos/raft-linearizability.ts.
 */

const ids = ['m1', 'm2', 'm3'];
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

type ErrorReply = {
  readonly ok: false;
  readonly error: { code: string; message: string };
  readonly leaderHint?: string;
};

/** A client of the members that follows NOT_LEADER hints, retrying a write with the same (clientId, seq). */
class MemberClient implements KvWorkloadClient {
  readonly #members: RaftMembers;
  readonly #clientId: string;
  #seq = 0;
  #leader = 'm1';

  constructor(members: RaftMembers, clientId: string) {
    this.#members = members;
    this.#clientId = clientId;
  }

  async #call<T extends { ok: boolean }>(
    make: (replyTo: ActorRef<T>) => RaftMemberMessage,
    timeoutMs: number,
  ): Promise<Exclude<T, ErrorReply>> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      let reply: T;
      try {
        reply = await this.#members.ref(this.#leader).ask<T>(make, { timeoutMs: 300 });
      } catch {
        this.#leader = ids[(ids.indexOf(this.#leader) + 1) % ids.length] as string;
        continue;
      }
      if (reply.ok) return reply as Exclude<T, ErrorReply>;
      const { error, leaderHint } = reply as unknown as ErrorReply;
      if (error.code !== 'NOT_LEADER' && error.code !== 'UNAVAILABLE') throw errorFromWire(error);
      this.#leader = leaderHint ?? (ids[(ids.indexOf(this.#leader) + 1) % ids.length] as string);
      await sleep(10);
    }
    throw new UnavailableError(`no answer within ${timeoutMs} ms`);
  }

  async #command(command: KvCommand, timeoutMs: number): Promise<KvResult> {
    const seq = ++this.#seq;
    const reply = await this.#call<RaftProposeReply>(
      (replyTo) => ({ type: 'propose', command, clientId: this.#clientId, seq, replyTo }),
      timeoutMs,
    );
    return reply.result;
  }

  async get(key: string, options: { timeoutMs?: number } = {}): Promise<KeyValue | undefined> {
    const reply = await this.#call<RaftQueryReply>(
      (replyTo) => ({ type: 'query', key, consistency: 'linearizable', replyTo }),
      options.timeoutMs ?? 2000,
    );
    return reply.result.kvs[0];
  }

  async put(key: string, value: string, options: { timeoutMs?: number } = {}) {
    const result = await this.#command({ type: 'put', key, value }, options.timeoutMs ?? 2000);
    return { revision: result.revision };
  }

  async delete(key: string, options: { timeoutMs?: number } = {}) {
    const result = await this.#command({ type: 'delete', key }, options.timeoutMs ?? 2000);
    return { revision: result.revision, deleted: result.type === 'delete' ? result.deleted : 0 };
  }

  async txn(
    txn: Pick<Extract<KvCommand, { type: 'txn' }>, 'compare' | 'success' | 'failure'>,
    options: { timeoutMs?: number } = {},
  ) {
    const result = await this.#command({ type: 'txn', ...txn }, options.timeoutMs ?? 2000);
    if (result.type !== 'txn') throw new UnavailableError('txn answered with another result');
    return {
      revision: result.revision,
      succeeded: result.succeeded,
      responses: result.responses as readonly KvOpResponse[],
    };
  }
}

describe('raft members: linearizable histories while the leader stops and restarts', function () {
  this.timeout(60_000);
  let members: RaftMembers;

  beforeEach(async () => {
    members = await RaftMembers.start();
  });

  afterEach(async () => {
    await members.close();
  });

  it('records gets, puts and compare-and-swaps from six clients and finds them linearizable', async () => {
    const m1 = await members.spawn('m1');
    await members.spawn('m2', { initialVoters: [] });
    await members.spawn('m3', { initialVoters: [] });
    for (const id of ['m2', 'm3']) {
      // m1 answers NOT_LEADER until it has elected itself.
      let added: RaftMembershipReply | undefined;
      for (let i = 0; i < 100 && added?.ok !== true; i++) {
        added = await m1.ask<RaftMembershipReply>(
          (replyTo) => ({ type: 'add-member', id, addresses: [], replyTo }),
          { timeoutMs: 20_000 },
        );
        if (!added.ok) await sleep(20);
      }
      expect(added?.ok, JSON.stringify(added)).to.equal(true);
    }
    const seed = Number(process.env.RAFT_SEED ?? 42);
    let rng = seed;
    const random = (): number => {
      const { value, next } = mulberry32(rng);
      rng = next;
      return value;
    };
    const workload = new KvWorkload({
      clients: Array.from({ length: 6 }, (_, i) => new MemberClient(members, `client-${i}`)),
      keys: ['a', 'b', 'c'],
      random,
      callTimeoutMs: 1500,
      thinkMs: 2,
    });
    workload.start();
    await sleep(1000);
    const statuses = await Promise.all(
      ids.map((id) =>
        members.ref(id).ask<RaftStatusReply>((replyTo) => ({ type: 'status', replyTo }), { timeoutMs: 1000 }),
      ),
    );
    const leader = statuses.find((s) => s.role === 'leader')?.id ?? 'm1';
    await members.stop(leader);
    await sleep(800);
    await members.spawn(leader, { initialVoters: [] });
    await sleep(1200);
    const result = await workload.stop();
    const finals = await workload.readAll(new MemberClient(members, 'final'), 10_000);
    expect(finals.size, 'every key read after the faults').to.equal(3);
    expect(result.counts.ok, JSON.stringify(result.counts)).to.be.greaterThan(100);
    const verdict = checkLinearizable(result.history, kvModel, { timeoutMs: 20_000 });
    expect(verdict.ok, verdict.ok === false ? verdict.description : 'checker timed out').to.equal(true);
  });
});
