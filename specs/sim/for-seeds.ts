/**
 * Runs a simulation body once per seed. A failure names its seed so that it can be replayed alone
 * with `RAFT_SEED=<seed>` in the environment, which also restricts every scenario to that seed.
 * `RAFT_SEEDS=<count>` overrides the number of seeds, for a longer soak run.
 */
export function forSeeds(count: number, body: (seed: number) => void, firstSeed = 1): void {
  const only = process.env.RAFT_SEED;
  const seeds =
    only !== undefined && only !== ''
      ? [Number(only)]
      : Array.from({ length: Number(process.env.RAFT_SEEDS ?? '') || count }, (_, i) => firstSeed + i);
  for (const seed of seeds) {
    try {
      body(seed);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      console.error(`simulation failed with seed ${seed}; replay with RAFT_SEED=${seed}`);
      throw new Error(`seed ${seed} (replay with RAFT_SEED=${seed}): ${message}`, { cause: error });
    }
  }
}
