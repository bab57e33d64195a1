import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { CgroupManager, plainDirCgroupFiles } from '../../actors/agent/cgroup.ts';
import type { ReplicaLaunch } from '../../actors/agent/driver.ts';
import { readLogs } from '../../actors/agent/log-files.ts';
import { ProcessDriver } from '../../actors/agent/process-driver.ts';
import { ReplicaStartError } from '../../actors/agent/replica-start-error.ts';

/** A cgroup manager that finds no cgroup v2 (the agent runs without limits). */
function noCgroups(): CgroupManager {
  return new CgroupManager({ root: '/nonexistent-cgroup-root', agentCgroup: '/' });
}

async function processAlive(pid: number): Promise<boolean> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = text.slice(text.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('agent ProcessDriver', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cloudless-process-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function launch(command: string, args: string[], extra: Partial<ReplicaLaunch> = {}): ReplicaLaunch {
    return {
      replicaId: 'default/web/0#a1',
      driver: { type: 'process', command, args, env: { SPEC_VAR: 'from-spec' } },
      resources: { cpuMillicores: 500, memoryBytes: 64 * 1024 * 1024 },
      dir: path.join(dir, 'replica'),
      env: { CLOUDLESS_REPLICA: 'default/web/0' },
      ...extra,
    };
  }

  it('runs the command with a minimal env and its cwd, captures stdout and stderr, reports the exit code', async () => {
    const driver = new ProcessDriver(
      { cgroups: noCgroups(), agentEnv: { PATH: process.env.PATH, HOME: '/home/agent', SECRET: 'x' } },
      {},
    );
    const script =
      'console.log(JSON.stringify({ cwd: process.cwd(), env: process.env })); console.error("oops"); process.exit(3)';
    const handle = await driver.start(launch('node', ['-e', script]));
    expect(handle.pid).to.be.a('number');
    expect(handle.limits.enforced).to.equal(false);
    expect(handle.limits.detail).to.match(/^cgroup v2 not writable: /);
    const exit = await handle.exited;
    expect(exit).to.deep.equal({ code: 3, signal: undefined, reason: 'exited with code 3' });
    const out = JSON.parse((await readLogs(launch('', []).dir, { stream: 'stdout' })).data) as {
      cwd: string;
      env: Record<string, string>;
    };
    expect(out.cwd).to.equal(path.join(dir, 'replica'));
    expect(out.env.SPEC_VAR).to.equal('from-spec');
    expect(out.env.CLOUDLESS_REPLICA).to.equal('default/web/0');
    expect(out.env.HOME).to.equal('/home/agent');
    expect(out.env).not.to.have.property('SECRET');
    expect((await readLogs(path.join(dir, 'replica'), { stream: 'stderr' })).data).to.equal('oops\n');
  });

  it('uses and creates the spec workingDir', async () => {
    const driver = new ProcessDriver({ cgroups: noCgroups() });
    const workingDir = path.join(dir, 'work', 'here');
    const spec = launch('pwd', []);
    const handle = await driver.start({
      ...spec,
      driver: { type: 'process', command: 'pwd', args: [], env: {}, workingDir },
    });
    expect((await handle.exited).code).to.equal(0);
    expect((await readLogs(spec.dir, { stream: 'stdout' })).data).to.equal(`${workingDir}\n`);
  });

  it('stops with SIGTERM within the grace', async () => {
    const driver = new ProcessDriver({ cgroups: noCgroups() });
    const handle = await driver.start(launch('sleep', ['30']));
    const exit = await handle.stop(5000);
    expect(exit.signal).to.equal('SIGTERM');
    expect(exit.code).to.equal(undefined);
    expect(exit.reason).to.equal('killed by SIGTERM (stopped)');
  });

  it('sends SIGKILL after the grace when SIGTERM is ignored', async () => {
    const driver = new ProcessDriver({ cgroups: noCgroups() });
    const handle = await driver.start(
      launch('node', ['-e', "process.on('SIGTERM',()=>{}); console.log('ready'); setInterval(()=>{},1000)"]),
    );
    await waitFor(
      async () => (await readLogs(path.join(dir, 'replica'), { stream: 'stdout' })).data !== '',
      10_000,
    );
    const started = Date.now();
    const exit = await handle.stop(300);
    expect(Date.now() - started).to.be.at.least(290);
    expect(exit.signal).to.equal('SIGKILL');
    expect(exit.reason).to.match(/SIGKILL \(did not stop within 300 ms\)/);
  });

  it('kills the whole process group on stop, grandchildren included', async () => {
    const driver = new ProcessDriver({ cgroups: noCgroups() });
    const pidFile = path.join(dir, 'grandchild.pid');
    // The grandchild ignores SIGTERM, so only the group SIGKILL after the grace ends it.
    const handle = await driver.start(
      launch('sh', ['-c', `trap '' TERM; sleep 30 & echo $! > ${pidFile}; wait`]),
    );
    await waitFor(async () => (await stat(pidFile).catch(() => undefined))?.size !== undefined, 5000);
    await waitFor(async () => (await readFile(pidFile, 'utf8')).trim() !== '', 5000);
    const grandchild = Number((await readFile(pidFile, 'utf8')).trim());
    expect(await processAlive(grandchild)).to.equal(true);
    await handle.stop(200);
    expect(await processAlive(grandchild)).to.equal(false);
  });

  it('kills what is left of the group when the main process exits by itself', async () => {
    const driver = new ProcessDriver({ cgroups: noCgroups() });
    const pidFile = path.join(dir, 'orphan.pid');
    const handle = await driver.start(
      launch('sh', ['-c', `sleep 30 > /dev/null 2>&1 & echo $! > ${pidFile}`]),
    );
    const exit = await handle.exited;
    expect(exit.code).to.equal(0);
    const orphan = Number((await readFile(pidFile, 'utf8')).trim());
    expect(await processAlive(orphan)).to.equal(false);
  });

  it('rejects start with a clear error when the command does not exist or is not executable', async () => {
    const driver = new ProcessDriver({ cgroups: noCgroups() });
    let error: unknown;
    try {
      await driver.start(launch('cloudless-no-such-command', []));
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(ReplicaStartError);
    expect((error as ReplicaStartError).failure).to.equal('command-not-found');
    expect((error as Error).message).to.contain('cloudless-no-such-command');

    error = undefined;
    const notExecutable = path.join(dir, 'not-executable.sh');
    await writeFile(notExecutable, 'echo hi\n', { mode: 0o644 });
    try {
      await driver.start(launch(notExecutable, []));
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(ReplicaStartError);
    expect((error as ReplicaStartError).failure).to.equal('permission-denied');
  });

  it('puts the replica in its own cgroup with cpu.max and memory.max before the command runs', async () => {
    const root = path.join(dir, 'cgroup');
    await mkdir(path.join(root, 'agent.slice'), { recursive: true });
    await writeFile(path.join(root, 'agent.slice', 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    await writeFile(path.join(root, 'agent.slice', 'cgroup.subtree_control'), 'cpu memory\n');
    const cgroups = new CgroupManager({ root, agentCgroup: '/agent.slice', files: plainDirCgroupFiles });
    const driver = new ProcessDriver({ cgroups });
    const cgroupDir = path.join(root, 'agent.slice', 'cloudless-default_web_0_a1');
    // The command reads its own cgroup files: they were written before it ran.
    const handle = await driver.start(
      launch('sh', [
        '-c',
        `for f in cpu.max memory.max cgroup.procs; do cat ${cgroupDir}/$f; echo; done; echo $$`,
      ]),
    );
    expect(handle.limits).to.deep.equal({ enforced: true, detail: `cgroup v2 ${cgroupDir}` });
    expect((await handle.exited).code).to.equal(0);
    const lines = (await readLogs(path.join(dir, 'replica'), { stream: 'stdout' })).data.trim().split('\n');
    expect(lines.slice(0, 3)).to.deep.equal(['50000 100000', String(64 * 1024 * 1024), String(handle.pid)]);
    // The gate shell exec'd the command: same pid.
    expect(lines[3]).to.equal(String(handle.pid));
    expect(await stat(cgroupDir).catch(() => undefined)).to.equal(undefined);
  });
});
