/**
 * The short version of chaos/raft-linearizability.ts in `npm test`: three coordinator processes,
 * one SIGKILL of the leader, one SIGSTOP/SIGCONT, one partition, under concurrent clients; the
 * four properties must hold. The lost-write check is also run on made-up histories, so that it
 * is known to catch a loss. `RAFT_CHAOS_SEED=n` replays a seed's fault schedule.
 */
import { expect } from 'chai';
import { lostWrites, runRaftChaos } from '../../chaos/raft-linearizability.ts';
import type { KvOperation } from '../support/kv-model.ts';

function put(value: string, call: number, ret: number | undefined): KvOperation {
  return {
    clientId: 1,
    input: { type: 'put', key: 'k', value },
    output: ret === undefined ? { type: 'unknown' } : { type: 'put' },
    call,
    return: ret,
  };
}

function finalRead(value: string | null, call: number): KvOperation {
  return {
    clientId: 'final',
    input: { type: 'get', key: 'k' },
    output: { type: 'get', value },
    call,
    return: call + 1,
  };
}

describe('Raft chaos run (real processes)', function () {
  this.timeout(110_000);

  it('keeps the history linearizable, loses no acknowledged write, elects one leader per term and recovers, across a leader kill, a pause and a partition', async () => {
    const seed = Number(process.env.RAFT_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const lines: string[] = [];
    const { summary, violations } = await runRaftChaos({
      nodes: 3,
      seconds: 12,
      seed,
      faults: ['kill', 'pause', 'partition'],
      log: (line) => lines.push(line),
    });
    const context = `seed ${seed} (RAFT_CHAOS_SEED=${seed} replays it):\n${lines.join('\n')}\n${JSON.stringify(summary)}`;
    expect(violations, context).to.deep.equal([]);
    expect(summary.faults, context).to.deep.equal({ kills: 1, pauses: 1, partitions: 1 });
    expect(summary.linearizable, context).to.equal(true);
    expect(summary.lost_writes, context).to.equal(0);
    expect(summary.max_leaders_per_term, context).to.equal(1);
    expect(summary.recovery_ms, context).to.be.a('number');
    // The leader kill forces at least one election after the first.
    expect(summary.terms_seen, context).to.be.at.least(2);
    expect(summary.ok, context).to.be.greaterThan(50);
  });

  it('finds a lost write: an acknowledged write called after the final value was written, hidden by it', () => {
    const history = [put('v1', 0, 10), put('v2', 20, 30), finalRead('v1', 40)];
    const problems = lostWrites(history, new Map([['k', history[2] as KvOperation]]));
    expect(problems).to.have.length(1);
    expect(problems[0]).to.include('"v2" was acknowledged');
  });

  it('accepts a final value from a write concurrent with the last acknowledged one, or from an unknown one', () => {
    const concurrent = [put('v1', 0, 30), put('v2', 10, 20), finalRead('v1', 40)];
    expect(lostWrites(concurrent, new Map([['k', concurrent[2] as KvOperation]]))).to.deep.equal([]);
    const unknown = [put('v1', 0, 10), put('v2', 20, undefined), finalRead('v2', 40)];
    expect(lostWrites(unknown, new Map([['k', unknown[2] as KvOperation]]))).to.deep.equal([]);
  });

  it('finds a final value no write wrote, and a key found empty after an acknowledged write', () => {
    const invented = [put('v1', 0, 10), finalRead('v9', 40)];
    expect(lostWrites(invented, new Map([['k', invented[1] as KvOperation]]))[0]).to.include(
      'no write wrote',
    );
    const emptied = [put('v1', 0, 10), finalRead(null, 40)];
    expect(lostWrites(emptied, new Map([['k', emptied[1] as KvOperation]]))[0]).to.include('found nothing');
  });
});
