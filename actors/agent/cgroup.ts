/**
 * CPU and memory limits for process replicas through cgroup v2: one child cgroup
 * `<agent's cgroup>/cloudless-<replica>` per replica, with `cpu.max` and `memory.max`, the
 * replica's pid written to its `cgroup.procs`, removed after the replica ended.
 *
 * It works only where the agent may create child cgroups: a cgroup2 filesystem is mounted, the
 * agent's own cgroup (the `0::` line of /proc/self/cgroup) has the `cpu` and `memory`
 * controllers available (`cgroup.controllers`) and enabled for its children
 * (`cgroup.subtree_control`), and the agent can write there. Under systemd that means a unit with
 * `Delegate=yes` whose main process sits in a leaf cgroup (cgroup v2's "no internal processes"
 * rule keeps controllers from being enabled in a cgroup that holds processes). `detect()` says
 * which of these fails, and the driver then reports `enforced: false` with that reason.
 *
 * The cgroup root and the agent's cgroup can be injected, and so can the file operations, so a
 * spec can exercise the writes in a temporary directory.
 */
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UnavailableError } from '../../runtime/errors.ts';
import type { ResourceRequest } from '../coordinator/workload-spec.ts';

/** The file operations used on the cgroup tree (a real cgroupfs removes a cgroup with rmdir). */
export interface CgroupFiles {
  readFile(file: string): Promise<string>;
  writeFile(file: string, data: string): Promise<void>;
  mkdir(dir: string): Promise<void>;
  /** Removes an (empty of processes) cgroup directory. */
  removeDir(dir: string): Promise<void>;
  /** Rejects when the directory is not writable. */
  checkWritable(dir: string): Promise<void>;
}

export const nodeCgroupFiles: CgroupFiles = {
  readFile: (file) => readFile(file, 'utf8'),
  writeFile: (file, data) => writeFile(file, data),
  mkdir: async (dir) => {
    await mkdir(dir);
  },
  removeDir: (dir) => rmdir(dir),
  checkWritable: (dir) => access(dir, fsConstants.W_OK),
};

/** For specs on a plain directory: a fake cgroup directory holds files, so remove it whole. */
export const plainDirCgroupFiles: CgroupFiles = {
  ...nodeCgroupFiles,
  removeDir: (dir) => rm(dir, { recursive: true, force: true }),
};

export interface CgroupManagerInit {
  /** Where cgroup2 is mounted; default: found in /proc/self/mountinfo (`/sys/fs/cgroup` first). */
  readonly root?: string;
  /** The agent's cgroup relative to `root`; default: the `0::` line of /proc/self/cgroup. */
  readonly agentCgroup?: string;
  /** `cpu.max` period; default 100 000 µs. */
  readonly cpuPeriodUs?: number;
  readonly files?: CgroupFiles;
}

export type CgroupSupport =
  | { readonly available: true; readonly parent: string }
  | { readonly available: false; readonly reason: string };

const requiredControllers = ['cpu', 'memory'] as const;
/** The kernel refuses a `cpu.max` quota below 1 ms. */
const minCpuQuotaUs = 1000;

/** `cpu.max` for a CPU request: `<quota> <period>` in µs, `max <period>` for no limit (0). */
export function cpuMaxValue(cpuMillicores: number, periodUs = 100_000): string {
  if (!(cpuMillicores > 0)) return `max ${periodUs}`;
  const quota = Math.max(minCpuQuotaUs, Math.round((cpuMillicores / 1000) * periodUs));
  return `${quota} ${periodUs}`;
}

/** `memory.max` for a memory request: bytes, `max` for no limit (0). */
export function memoryMaxValue(memoryBytes: number): string {
  return memoryBytes > 0 ? String(Math.floor(memoryBytes)) : 'max';
}

/**
 * The cgroup directory name of a replica: `cloudless-` and the replica id with every character
 * outside `[A-Za-z0-9_.-]` as `_` (namespace and name are DNS-1123 labels, so `/` and `#` → `_`
 * cannot collide with a real `_`).
 */
export function cgroupName(replicaId: string): string {
  return `cloudless-${replicaId.replace(/[^A-Za-z0-9_.-]/g, '_')}`.slice(0, 200);
}

function errorText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const message = error instanceof Error ? error.message : String(error);
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
}

/** Finds where cgroup2 is mounted and which mounted directory is the agent's own cgroup. */
async function locate(
  files: CgroupFiles,
  init: CgroupManagerInit,
): Promise<{ parent: string } | { reason: string }> {
  let root = init.root;
  let mountRoot = '/';
  if (root === undefined) {
    let mountinfo: string;
    try {
      mountinfo = await files.readFile('/proc/self/mountinfo');
    } catch (error) {
      return { reason: `cannot read /proc/self/mountinfo (${errorText(error)})` };
    }
    const mounts: { point: string; root: string }[] = [];
    for (const line of mountinfo.split('\n')) {
      const [left, right] = line.split(' - ');
      if (right?.split(' ')[0] !== 'cgroup2') continue;
      const fields = left?.split(' ') ?? [];
      if (fields[4] !== undefined && fields[3] !== undefined) {
        mounts.push({ point: fields[4], root: fields[3] });
      }
    }
    const chosen = mounts.find((m) => m.point === '/sys/fs/cgroup') ?? mounts[0];
    if (chosen === undefined) return { reason: 'no cgroup2 filesystem is mounted' };
    root = chosen.point;
    mountRoot = chosen.root;
  }
  let own = init.agentCgroup;
  if (own === undefined) {
    let text: string;
    try {
      text = await files.readFile('/proc/self/cgroup');
    } catch (error) {
      return { reason: `cannot read /proc/self/cgroup (${errorText(error)})` };
    }
    const line = text.split('\n').find((l) => l.startsWith('0::'));
    if (line === undefined) return { reason: 'the agent is in no cgroup v2 group (/proc/self/cgroup)' };
    own = line.slice(3);
    if (mountRoot !== '/' && own.startsWith(mountRoot)) own = own.slice(mountRoot.length) || '/';
  }
  return { parent: path.join(root, own) };
}

/** Detects cgroup v2 delegation once and creates one child cgroup per replica. */
export class CgroupManager {
  readonly #init: CgroupManagerInit;
  readonly #files: CgroupFiles;
  #support: Promise<CgroupSupport> | undefined;

  constructor(init: CgroupManagerInit = {}) {
    this.#init = init;
    this.#files = init.files ?? nodeCgroupFiles;
  }

  /** Whether child cgroups with cpu and memory limits can be made; checked once, then cached. */
  detect(): Promise<CgroupSupport> {
    this.#support ??= this.#detect();
    return this.#support;
  }

  async #detect(): Promise<CgroupSupport> {
    const files = this.#files;
    const located = await locate(files, this.#init);
    if ('reason' in located) return { available: false, reason: located.reason };
    const parent = located.parent;
    let controllers: string[];
    try {
      controllers = (await files.readFile(path.join(parent, 'cgroup.controllers'))).trim().split(/\s+/);
    } catch (error) {
      return {
        available: false,
        reason: `${parent} is not a cgroup v2 directory (no cgroup.controllers: ${errorText(error)})`,
      };
    }
    const missing = requiredControllers.filter((c) => !controllers.includes(c));
    if (missing.length > 0) {
      const has = controllers.filter((c) => c !== '').join(' ') || 'none';
      return {
        available: false,
        reason:
          `controllers ${missing.join(', ')} are not available in ${parent} (has: ${has}); on a ` +
          'hybrid or cgroup v1 host they belong to v1 hierarchies, which this agent does not use',
      };
    }
    let enabled: string[];
    try {
      enabled = (await files.readFile(path.join(parent, 'cgroup.subtree_control'))).trim().split(/\s+/);
    } catch (error) {
      return {
        available: false,
        reason: `cannot read ${parent}/cgroup.subtree_control (${errorText(error)})`,
      };
    }
    const disabled = requiredControllers.filter((c) => !enabled.includes(c));
    if (disabled.length > 0) {
      return {
        available: false,
        reason:
          `controllers ${disabled.join(', ')} are not enabled in ${parent}/cgroup.subtree_control; ` +
          'delegate them to the agent (systemd Delegate=yes) and run the agent in a leaf cgroup',
      };
    }
    try {
      await files.checkWritable(parent);
    } catch (error) {
      return { available: false, reason: `no write access to ${parent} (${errorText(error)})` };
    }
    return { available: true, parent };
  }

  /**
   * Creates `<parent>/cloudless-<replica>` with the limits of `resources`. Rejects with the
   * reason when cgroups are unavailable or the writes fail (nothing is left behind then).
   */
  async create(replicaId: string, resources: ResourceRequest): Promise<ReplicaCgroup> {
    const support = await this.detect();
    if (!support.available) throw new UnavailableError(support.reason);
    const dir = path.join(support.parent, cgroupName(replicaId));
    const files = this.#files;
    try {
      await files.mkdir(dir);
    } catch (error) {
      throw new UnavailableError(`cannot create cgroup ${dir} (${errorText(error)})`, { cause: error });
    }
    const cgroup = new ReplicaCgroup(dir, files);
    try {
      await files.writeFile(
        path.join(dir, 'cpu.max'),
        cpuMaxValue(resources.cpuMillicores, this.#init.cpuPeriodUs),
      );
      await files.writeFile(path.join(dir, 'memory.max'), memoryMaxValue(resources.memoryBytes));
      // Without this a replica could page past memory.max into swap; absent without swap accounting.
      if (resources.memoryBytes > 0) {
        await files.writeFile(path.join(dir, 'memory.swap.max'), '0').catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        });
      }
    } catch (error) {
      await cgroup.remove().catch(() => {});
      throw new UnavailableError(`cannot set limits in cgroup ${dir} (${errorText(error)})`, {
        cause: error,
      });
    }
    return cgroup;
  }
}

/** One replica's cgroup. */
export class ReplicaCgroup {
  readonly path: string;
  readonly #files: CgroupFiles;

  constructor(dir: string, files: CgroupFiles) {
    this.path = dir;
    this.#files = files;
  }

  /** Moves a process (and so its future children) into this cgroup. */
  async addProcess(pid: number): Promise<void> {
    await this.#files.writeFile(path.join(this.path, 'cgroup.procs'), String(pid));
  }

  /** Whether the kernel's OOM killer killed something in here (`memory.events` oom_kill). */
  async oomKilled(): Promise<boolean> {
    try {
      const events = await this.#files.readFile(path.join(this.path, 'memory.events'));
      const match = /^oom_kill (\d+)$/m.exec(events);
      return match !== null && Number(match[1]) > 0;
    } catch {
      return false; // no memory.events (not a real cgroup): nothing known
    }
  }

  /**
   * Kills whatever is still in the cgroup (`cgroup.kill`, Linux ≥ 5.14, where present) and
   * removes it, retrying briefly while the killed processes leave.
   */
  async remove(): Promise<void> {
    await this.#files.writeFile(path.join(this.path, 'cgroup.kill'), '1').catch(() => {});
    let lastError: unknown;
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await this.#files.removeDir(this.path);
        return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return;
        lastError = error;
        if (code !== 'EBUSY') break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
    throw new UnavailableError(`cannot remove cgroup ${this.path} (${errorText(lastError)})`, {
      cause: lastError,
    });
  }
}
