/**
 * The chaos harness (chaos/support/node-cluster.ts) with real `cloudless start` processes: two
 * nodes without --join, partitioned and healed over IPC, killed, restarted, paused and resumed,
 * and stopped, checking the processes' states as the OS reports them.
 */
import { access, readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { mulberry32 } from '../../actors/raft/mulberry32.ts';
import { NodeCluster } from '../../chaos/support/node-cluster.ts';
import { UnavailableError } from '../../runtime/errors.ts';
import type { FaultAck } from '../../transport/mesh-fault-ipc.ts';

/** The process state letter of /proc/<pid>/stat (R, S, T for stopped, …), or 'gone'. */
async function osState(pid: number | undefined): Promise<string> {
  if (pid === undefined) return 'gone';
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X' ? 'gone' : state;
  } catch {
    return 'gone';
  }
}

function partitioned(ack: FaultAck | undefined): string[] | undefined {
  return ack?.ok === true ? ack.partitioned : undefined;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

describe('NodeCluster (chaos harness)', function () {
  this.timeout(90_000);
  let cluster: NodeCluster | undefined;

  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('partitions, heals, kills, restarts, pauses, resumes and stops real nodes, with an IPC ack for every fault command', async () => {
    const lines: string[] = [];
    cluster = await NodeCluster.start({ size: 2, seed: 1234, log: (line) => lines.push(line) });
    expect(lines[0]).to.include('seed 1234');
    expect(cluster.random()).to.equal(mulberry32(1234).value);
    const [n0, n1] = cluster.nodes;
    if (n0 === undefined || n1 === undefined) throw new Error('two nodes expected');
    expect(n0.peerId).to.match(/^12D3KooW/);
    expect(n0.peerId).not.to.equal(n1.peerId);
    expect(n0.address).to.match(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${n0.peerId}$`));
    expect(await osState(n0.pid)).to.be.oneOf(['R', 'S']);

    const cut = await cluster.partition([[0], [1]]);
    expect(cut.map(partitioned)).to.deep.equal([[n1.peerId], [n0.peerId]]);
    const healed = await cluster.heal();
    expect(healed.map(partitioned)).to.deep.equal([[], []]);

    // Paused: the command waits in the pipe and is answered once the node runs again.
    cluster.pause(1);
    expect(n1.state).to.equal('paused');
    expect(await osState(n1.pid)).to.equal('T');
    const whilePaused = await cluster.partition([[0], [1]]);
    expect(whilePaused.map(partitioned), 'only the running node answers at once').to.deep.equal([
      [n1.peerId],
    ]);
    await cluster.resume(1);
    expect(await osState(n1.pid)).to.be.oneOf(['R', 'S']);
    expect(partitioned(await cluster.command(1, { type: 'fault:status' }))).to.deep.equal([n0.peerId]);

    // kill -9, then a restart on the same data dir and port: same PeerId and address, and the
    // partition it was in is applied again.
    const oldPid = n0.pid;
    const { address, peerId } = n0;
    const exit = await cluster.kill(0);
    expect(exit.signal).to.equal('SIGKILL');
    expect(n0.state).to.equal('killed');
    expect(await osState(oldPid)).to.equal('gone');
    await rejectsWith(cluster.command(0, { type: 'fault:status' }), UnavailableError);
    await cluster.restart(0);
    expect(n0.pid).not.to.equal(oldPid);
    expect(n0.state).to.equal('running');
    expect(n0.peerId).to.equal(peerId);
    expect(n0.address).to.equal(address);
    expect(partitioned(await cluster.command(0, { type: 'fault:status' }))).to.deep.equal([n1.peerId]);
    expect((await cluster.heal()).map(partitioned)).to.deep.equal([[], []]);

    cluster.pause(0);
    const pids = [n0.pid, n1.pid];
    const rootDir = cluster.rootDir;
    await cluster.stop();
    for (const pid of pids) expect(await osState(pid)).to.equal('gone');
    expect(n0.state).to.equal('stopped');
    expect(await exists(rootDir), 'the data dirs are removed').to.equal(false);
    expect(lines.filter((line) => line.includes('exited by itself'))).to.deep.equal([]);
  });

  it('leaves no process or directory behind when a node cannot start', async () => {
    const lines: string[] = [];
    const failure = await NodeCluster.start({
      size: 1,
      args: ['--no-such-flag'],
      log: (line) => lines.push(line),
    }).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failure).to.be.instanceOf(UnavailableError);
    const rootDir = /in (\S+)$/.exec(lines[0] ?? '')?.[1];
    expect(rootDir).to.be.a('string');
    expect(await exists(rootDir as string)).to.equal(false);
  });
});

async function rejectsWith(promise: Promise<unknown>, type: new (...args: never[]) => Error): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (thrown: Error) => thrown,
  );
  expect(error).to.be.instanceOf(type);
}
