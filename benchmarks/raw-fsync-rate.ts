import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * The disk's raw durable-write rate: a 64-byte write then fsync, one after another, on a plain
 * file in a fresh directory under `parent` (the OS temp dir by default, where the benchmarks put
 * their data). Every durable-storage benchmark reports its figures beside this one, measured in
 * the same run, since the fsync rate bounds them and differs a lot between machines.
 */
export async function rawFsyncsPerSecond(seconds: number, parent: string = os.tmpdir()): Promise<number> {
  const dir = await mkdtemp(path.join(parent, 'cloudless-bench-fsync-'));
  const handle = await open(path.join(dir, 'f'), 'w');
  try {
    const bytes = new Uint8Array(64);
    let count = 0;
    const deadline = performance.now() + seconds * 1000;
    const started = performance.now();
    while (performance.now() < deadline) {
      await handle.write(bytes);
      await handle.sync();
      count++;
    }
    return (count / (performance.now() - started)) * 1000;
  } finally {
    await handle.close();
    await rm(dir, { recursive: true, force: true });
  }
}
