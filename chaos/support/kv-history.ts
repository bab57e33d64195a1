/**
 * A client workload for chaos runs of the Raft store, recorded as a history the linearizability
 * checker reads. Each worker loops over a few keys doing linearizable gets, puts of values never
 * written before, and compare-and-swaps on the version, with a deadline per call. An operation
 * whose outcome the client did not learn (a timeout, an UNAVAILABLE, a dropped connection) is
 * recorded as unknown: it may or may not have taken effect, and the checker allows both.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KvClient } from '../../actors/raft/kv-client.ts';

import { CloudlessError } from '../../runtime/errors.ts';
import type { KvModelInput, KvModelOutput, KvOperation } from '../../specs/support/kv-model.ts';

/** What the workload calls: a `KvClient`, or anything with the same four methods (specs use an in-process one). */
export type KvWorkloadClient = Pick<KvClient, 'get' | 'put' | 'delete' | 'txn'>;

export interface KvWorkloadInit {
  /** One client per worker (they may talk to different nodes). */
  readonly clients: readonly KvWorkloadClient[];
  readonly keys: readonly string[];
  /** Random source in [0, 1) (seeded by the caller). */
  readonly random: () => number;
  readonly callTimeoutMs: number;
  /** Pause between a worker's operations; default 0. Bounds the history a checker must search. */
  readonly thinkMs?: number;
  /**
   * Pause after a failed or unknown operation; default 100. Without it a worker whose node is
   * down spins on calls that fail at once, flooding the history with unknown writes.
   */
  readonly failureBackoffMs?: number;
}

export interface KvWorkloadResult {
  readonly history: KvOperation[];
  /** Puts and CASes acknowledged as applied, with the value they wrote. */
  readonly acknowledgedWrites: { readonly key: string; readonly value: string }[];
  readonly counts: { ok: number; failed: number; unknown: number };
}

/**
 * Errors that prove the operation did not happen (refused before it could reach the log). Not
 * NOT_LEADER: a client that retried may get it after an earlier attempt reached a log.
 */
function definitelyNotApplied(error: unknown): boolean {
  return error instanceof CloudlessError && error.code === 'INVALID_REQUEST';
}

export class KvWorkload {
  readonly #init: KvWorkloadInit;
  readonly #history: KvOperation[] = [];
  readonly #acknowledged: { key: string; value: string }[] = [];
  readonly #counts = { ok: 0, failed: 0, unknown: 0 };
  #stopping = false;
  #nextValue = 0;
  #workers: Promise<void>[] = [];

  constructor(init: KvWorkloadInit) {
    this.#init = init;
  }

  start(): void {
    this.#workers = this.#init.clients.map((client, i) => this.#worker(client, i));
  }

  async stop(): Promise<KvWorkloadResult> {
    this.#stopping = true;
    await Promise.all(this.#workers);
    return { history: this.#history, acknowledgedWrites: this.#acknowledged, counts: this.#counts };
  }

  /**
   * One more linearizable read of every key (after the faults, to pin down the final state),
   * recorded in the history. A read that fails is tried again until `deadlineMs` has passed;
   * resolves with each key's recorded read (absent for a key that could not be read in time).
   */
  async readAll(client: KvWorkloadClient, deadlineMs: number): Promise<Map<string, KvOperation>> {
    const deadline = performance.now() + deadlineMs;
    const reads = new Map<string, KvOperation>();
    for (const key of this.#init.keys) {
      while (performance.now() < deadline) {
        const op = await this.#record(client, 'final', { type: 'get', key });
        if (op !== undefined) {
          reads.set(key, op);
          break;
        }
        await sleep(this.#init.failureBackoffMs ?? 100);
      }
    }
    return reads;
  }

  async #worker(client: KvWorkloadClient, index: number): Promise<void> {
    const { keys, random } = this.#init;
    while (!this.#stopping) {
      const key = keys[Math.floor(random() * keys.length)] as string;
      const roll = random();
      let input: KvModelInput;
      if (roll < 0.5) input = { type: 'get', key };
      else if (roll < 0.8) input = { type: 'put', key, value: `v${++this.#nextValue}` };
      else {
        const version = Math.floor(random() * 4);
        input = {
          type: 'txn',
          compare: [{ key, target: 'version', op: '=', value: version }],
          success: [{ type: 'put', key, value: `v${++this.#nextValue}` }],
          failure: [{ type: 'get', key }],
        };
      }
      const op = await this.#record(client, index, input);
      const failed = op === undefined || op.return === undefined;
      const pauseMs = failed ? (this.#init.failureBackoffMs ?? 100) : (this.#init.thinkMs ?? 0);
      if (pauseMs > 0) await sleep(pauseMs);
    }
  }

  /** Performs and records one operation; resolves with the recorded entry (undefined: left out). */
  async #record(
    client: KvWorkloadClient,
    clientId: string | number,
    input: KvModelInput,
  ): Promise<KvOperation | undefined> {
    const call = performance.now();
    const timeoutMs = this.#init.callTimeoutMs;
    try {
      const output = await this.#perform(client, input, timeoutMs);
      const op: KvOperation = { clientId, input, output, call, return: performance.now() };
      this.#history.push(op);
      this.#counts.ok++;
      if (input.type === 'put') this.#acknowledged.push({ key: input.key, value: input.value });
      if (input.type === 'txn' && output.type === 'txn' && output.succeeded) {
        const put = input.success[0];
        if (put?.type === 'put') this.#acknowledged.push({ key: put.key, value: put.value });
      }
      return op;
    } catch (error) {
      if (definitelyNotApplied(error) || input.type === 'get') {
        // A failed read changed nothing, and a refused write never reached the log: leave it out.
        this.#counts.failed++;
        return undefined;
      }
      const op: KvOperation = { clientId, input, output: { type: 'unknown' }, call, return: undefined };
      this.#history.push(op);
      this.#counts.unknown++;
      return op;
    }
  }

  async #perform(client: KvWorkloadClient, input: KvModelInput, timeoutMs: number): Promise<KvModelOutput> {
    switch (input.type) {
      case 'get': {
        const kv = await client.get(input.key, { timeoutMs, consistency: 'linearizable' });
        return { type: 'get', value: kv?.value ?? null, version: kv?.version ?? 0 };
      }
      case 'put':
        await client.put(input.key, input.value, { timeoutMs });
        return { type: 'put' };
      case 'delete': {
        const result = await client.delete(input.key, { timeoutMs });
        return { type: 'delete', deleted: result.deleted };
      }
      case 'txn': {
        const result = await client.txn(input, { timeoutMs });
        return {
          type: 'txn',
          succeeded: result.succeeded,
          responses: result.responses.map((r) =>
            r.type === 'get'
              ? { type: 'get', value: r.kvs[0]?.value ?? null, version: r.kvs[0]?.version ?? 0 }
              : r.type === 'put'
                ? { type: 'put' }
                : { type: 'delete', deleted: r.deleted },
          ),
        };
      }
    }
  }
}
