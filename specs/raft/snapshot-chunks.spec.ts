import { expect } from 'chai';
import type { InstallSnapshot } from '../../actors/raft/raft-types.ts';
import { chunkSnapshot, SnapshotAssembler } from '../../actors/raft/snapshot-chunks.ts';
import { InvalidRequestError } from '../../runtime/errors.ts';

function install(bytes: number, index = 10): InstallSnapshot & { data: Uint8Array } {
  const data = new Uint8Array(bytes).map((_, i) => i % 251);
  return {
    type: 'install-snapshot',
    from: 'leader',
    to: 'follower',
    term: 3,
    readSeq: 0,
    snapshot: { index, term: 2, membership: { voters: ['leader', 'follower'], learners: [], addresses: {} } },
    data,
  };
}

describe('snapshot chunks', () => {
  it('splits a snapshot into ordered chunks and reassembles the same bytes', () => {
    const whole = install(10_000);
    const chunks = chunkSnapshot(whole, 1024);
    expect(chunks).to.have.length(10);
    const assembler = new SnapshotAssembler(1 << 20);
    const results = chunks.map((chunk) => assembler.add(chunk));
    expect(results.slice(0, -1).every((r) => r === undefined)).to.equal(true);
    expect(results.at(-1)?.data).to.deep.equal(whole.data);
    expect(results.at(-1)?.snapshot).to.deep.equal(whole.snapshot);
    expect(assembler.inProgress).to.equal(0);
  });

  it('carries an empty snapshot in one chunk', () => {
    const chunks = chunkSnapshot(install(0), 1024);
    expect(chunks).to.have.length(1);
    expect(new SnapshotAssembler(10).add(chunks[0] as (typeof chunks)[0])?.data).to.have.length(0);
  });

  it('drops an assembly when a chunk is missing or another snapshot starts, and completes the resend', () => {
    const assembler = new SnapshotAssembler(1 << 20);
    const chunks = chunkSnapshot(install(4096), 1024);
    assembler.add(chunks[0] as (typeof chunks)[0]);
    expect(assembler.add(chunks[2] as (typeof chunks)[0])).to.equal(undefined);
    expect(assembler.inProgress).to.equal(0);
    // A chunk of a snapshot that is not being assembled is ignored.
    expect(assembler.add(chunks[3] as (typeof chunks)[0])).to.equal(undefined);
    // The leader's resend starts again from offset 0 and completes.
    const resent = chunks.map((chunk) => assembler.add(chunk));
    expect(resent.at(-1)?.data).to.have.length(4096);
  });

  it('refuses a snapshot over the size limit and a malformed chunk', () => {
    const assembler = new SnapshotAssembler(1000);
    const chunks = chunkSnapshot(install(4096), 1024);
    expect(() => assembler.add(chunks[0] as (typeof chunks)[0])).to.throw(InvalidRequestError);
    const bad = { ...(chunks[0] as (typeof chunks)[0]), bytes: 'nope' as unknown as Uint8Array, total: 10 };
    expect(() => new SnapshotAssembler(1 << 20).add(bad)).to.throw(InvalidRequestError);
  });
});
