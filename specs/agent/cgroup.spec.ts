import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import {
  CgroupManager,
  cgroupName,
  cpuMaxValue,
  memoryMaxValue,
  plainDirCgroupFiles,
} from '../../actors/agent/cgroup.ts';

describe('agent cgroup v2 limits', () => {
  let root: string;

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'cloudless-cgroup-'));
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function fakeCgroup(controllers: string, subtree: string): Promise<void> {
    await mkdir(path.join(root, 'agent'), { recursive: true });
    await writeFile(path.join(root, 'agent', 'cgroup.controllers'), `${controllers}\n`);
    await writeFile(path.join(root, 'agent', 'cgroup.subtree_control'), `${subtree}\n`);
  }

  it('turns millicores into a cpu.max quota and bytes into memory.max', () => {
    expect(cpuMaxValue(1000)).to.equal('100000 100000');
    expect(cpuMaxValue(250)).to.equal('25000 100000');
    expect(cpuMaxValue(2500, 50_000)).to.equal('125000 50000');
    expect(cpuMaxValue(1)).to.equal('1000 100000'); // the kernel's minimum quota
    expect(cpuMaxValue(0)).to.equal('max 100000');
    expect(memoryMaxValue(128 * 1024 * 1024)).to.equal('134217728');
    expect(memoryMaxValue(0)).to.equal('max');
    expect(cgroupName('default/web/0#a1')).to.equal('cloudless-default_web_0_a1');
  });

  it('creates a child cgroup, writes the limits and the pid, and removes it', async () => {
    await fakeCgroup('cpu io memory pids', 'cpu memory pids');
    const manager = new CgroupManager({ root, agentCgroup: '/agent', files: plainDirCgroupFiles });
    expect(await manager.detect()).to.deep.equal({ available: true, parent: path.join(root, 'agent') });
    const cgroup = await manager.create('default/batch/2#x', {
      cpuMillicores: 1500,
      memoryBytes: 1024 * 1024,
    });
    expect(cgroup.path).to.equal(path.join(root, 'agent', 'cloudless-default_batch_2_x'));
    expect(await readFile(path.join(cgroup.path, 'cpu.max'), 'utf8')).to.equal('150000 100000');
    expect(await readFile(path.join(cgroup.path, 'memory.max'), 'utf8')).to.equal('1048576');
    await cgroup.addProcess(4242);
    expect(await readFile(path.join(cgroup.path, 'cgroup.procs'), 'utf8')).to.equal('4242');
    expect(await cgroup.oomKilled()).to.equal(false);
    await writeFile(path.join(cgroup.path, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
    expect(await cgroup.oomKilled()).to.equal(true);
    await cgroup.remove();
    expect(await stat(cgroup.path).catch(() => undefined)).to.equal(undefined);
  });

  it('says why when the controllers are missing, not delegated, or there is no cgroup v2 at all', async () => {
    await fakeCgroup('hugetlb', '');
    const missing = await new CgroupManager({ root, agentCgroup: '/agent' }).detect();
    expect(missing.available).to.equal(false);
    expect(!missing.available && missing.reason).to.match(/controllers cpu, memory are not available/);

    await fakeCgroup('cpu memory', 'pids');
    const disabled = await new CgroupManager({ root, agentCgroup: '/agent' }).detect();
    expect(!disabled.available && disabled.reason).to.match(/not enabled in .*cgroup.subtree_control/);

    const none = await new CgroupManager({ root, agentCgroup: '/not-there' }).detect();
    expect(!none.available && none.reason).to.match(/is not a cgroup v2 directory/);

    let error: unknown;
    try {
      await new CgroupManager({ root, agentCgroup: '/agent' }).create('a/b/0#c', {
        cpuMillicores: 100,
        memoryBytes: 1,
      });
    } catch (caught) {
      error = caught;
    }
    expect((error as Error).message).to.match(/not enabled/);
  });

  it('reports what this machine allows without pretending', async () => {
    const support = await new CgroupManager().detect();
    // Either way the answer is definite; on a host without delegation it carries the reason.
    if (support.available) expect(support.parent).to.be.a('string');
    else expect(support.reason).to.be.a('string').and.not.equal('');
  });
});
