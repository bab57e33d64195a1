/**
 * The failure-detection core the coordinator leader runs: which member to mark suspect, down or
 * alive, and when. Pure: `step(input)` takes what happened (a heartbeat at t, a tick at t, a
 * leadership change, a record change seen through the watch, a write that settled) and returns
 * the writes to make; the shell (membership-actor.ts) performs each as a Raft txn with a compare
 * on the record's `modRevision`, and the record change that comes back through the watch is fed
 * in again. Time is whatever the caller passes (ms); no timers, no randomness.
 *
 * Rules (docs/cluster.md):
 * - only the leader judges; a follower's core only tracks records;
 * - a new leader starts every detector fresh and judges nobody for `leaderGraceMs`; at the end of
 *   the grace every member it has not heard from counts as just heard from, so a leader change
 *   never makes a burst of downs out of the heartbeats that went to the old leader;
 * - alive → suspect when phi ≥ `suspectPhi`; suspect → down after `downAfterMs` more without a
 *   heartbeat; a heartbeat from a suspect or down member → alive;
 * - `left` members are never judged (a graceful leave is not a failure), nor is the leader itself
 *   (a leader that finds its own record suspect or down, from an earlier leader, writes alive);
 * - one write in flight per member: the next decision about it waits for the record to change,
 *   the write to fail, or `writeTimeoutMs`;
 * - resources reported by heartbeats are written at most every `resourcesEveryMs` per member, and
 *   a step makes at most `maxWritesPerStep` writes (status changes first), so a mass failure or a
 *   big cluster never floods the log.
 */
import type { MemberStatus, Resources } from './member-record.ts';
import { PhiAccrualDetector, type PhiAccrualOptions } from './phi-accrual.ts';

export interface FailureDetectorInit extends PhiAccrualOptions {
  /** This node's id: never judged. */
  readonly self: string;
  /** phi at which an alive member becomes suspect; default 8 (Akka's default threshold). */
  readonly suspectPhi?: number;
  /** Time in suspect, without a heartbeat, before down; default 400 ms. */
  readonly downAfterMs?: number;
  /** A new leader judges nobody this long; default 2,000 ms (10 heartbeats at 200 ms). */
  readonly leaderGraceMs?: number;
  /** Least time between two resource writes of one member; default 10,000 ms. */
  readonly resourcesEveryMs?: number;
  /** A write with no record change or settle after this long is forgotten and decided again; default 5,000 ms. */
  readonly writeTimeoutMs?: number;
  /** Writes one step may return; default 256. */
  readonly maxWritesPerStep?: number;
}

export type FailureDetectorInput =
  | { readonly type: 'heartbeat'; readonly from: string; readonly at: number; readonly resources?: Resources }
  | { readonly type: 'tick'; readonly at: number }
  | { readonly type: 'became-leader'; readonly at: number }
  | { readonly type: 'lost-leadership'; readonly at: number }
  /** The record of `id` as the watch delivered it (created or changed). */
  | {
      readonly type: 'record';
      readonly id: string;
      readonly status: MemberStatus;
      readonly modRevision: number;
      readonly at: number;
    }
  | { readonly type: 'record-deleted'; readonly id: string; readonly at: number }
  /** A write this core asked for finished; `ok: false` when its compare failed or it did not commit. */
  | { readonly type: 'write-settled'; readonly id: string; readonly ok: boolean; readonly at: number };

export type WriteReason = 'phi' | 'down-after' | 'heartbeat' | 'self' | 'resources';

/** Write `status` (and `resources`, when given) into `id`'s record if its modRevision is still `expectedModRevision`. */
export interface FailureDetectorWrite {
  readonly type: 'write';
  readonly id: string;
  readonly expectedModRevision: number;
  readonly status: MemberStatus;
  readonly resources?: Resources;
  readonly reason: WriteReason;
}

interface Entry {
  status: MemberStatus;
  modRevision: number;
  detector: PhiAccrualDetector | undefined;
  /** A heartbeat came since this node became leader. */
  heard: boolean;
  /** When this leader started counting towards down. */
  suspectSince: number | undefined;
  pending: { readonly expected: number; readonly since: number } | undefined;
  resources: Resources | undefined;
  resourcesDirty: boolean;
  resourcesWrittenAt: number;
}

export const failureDetectorDefaults = {
  suspectPhi: 8,
  downAfterMs: 400,
  leaderGraceMs: 2000,
  resourcesEveryMs: 10_000,
  writeTimeoutMs: 5000,
  maxWritesPerStep: 256,
} as const;

export class FailureDetectorCore {
  readonly #init: FailureDetectorInit;
  readonly #suspectPhi: number;
  readonly #downAfterMs: number;
  readonly #graceMs: number;
  readonly #resourcesEveryMs: number;
  readonly #writeTimeoutMs: number;
  readonly #maxWrites: number;
  readonly #entries = new Map<string, Entry>();
  #leader = false;
  #judgeFrom = 0;
  #graceDone = false;

  constructor(init: FailureDetectorInit) {
    this.#init = init;
    this.#suspectPhi = init.suspectPhi ?? failureDetectorDefaults.suspectPhi;
    this.#downAfterMs = init.downAfterMs ?? failureDetectorDefaults.downAfterMs;
    this.#graceMs = init.leaderGraceMs ?? failureDetectorDefaults.leaderGraceMs;
    this.#resourcesEveryMs = init.resourcesEveryMs ?? failureDetectorDefaults.resourcesEveryMs;
    this.#writeTimeoutMs = init.writeTimeoutMs ?? failureDetectorDefaults.writeTimeoutMs;
    this.#maxWrites = init.maxWritesPerStep ?? failureDetectorDefaults.maxWritesPerStep;
    if (!(this.#suspectPhi > 0)) throw new RangeError(`suspectPhi must be positive, got ${this.#suspectPhi}`);
    for (const [name, value] of [
      ['downAfterMs', this.#downAfterMs],
      ['leaderGraceMs', this.#graceMs],
      ['resourcesEveryMs', this.#resourcesEveryMs],
      ['writeTimeoutMs', this.#writeTimeoutMs],
    ] as const) {
      if (!(value >= 0) || !Number.isFinite(value))
        throw new RangeError(`${name} must be a non-negative number of ms, got ${value}`);
    }
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** The status this core last saw for `id` (from the records). */
  statusOf(id: string): MemberStatus | undefined {
    return this.#entries.get(id)?.status;
  }

  /** phi of `id` at `now` on this leader (0 when not leader or unknown). */
  phi(id: string, now: number): number {
    return this.#entries.get(id)?.detector?.phi(now) ?? 0;
  }

  step(input: FailureDetectorInput): FailureDetectorWrite[] {
    switch (input.type) {
      case 'record':
        return this.#record(input.id, input.status, input.modRevision, input.at);
      case 'record-deleted':
        this.#entries.delete(input.id);
        return [];
      case 'write-settled': {
        const entry = this.#entries.get(input.id);
        // A success is settled by the record change the watch brings (it carries the new
        // modRevision); a failure means no change is coming.
        if (entry !== undefined && !input.ok) entry.pending = undefined;
        return [];
      }
      case 'became-leader':
        this.#leader = true;
        this.#judgeFrom = input.at + this.#graceMs;
        this.#graceDone = false;
        for (const entry of this.#entries.values()) {
          entry.detector = new PhiAccrualDetector(this.#init);
          entry.heard = false;
          entry.suspectSince = undefined;
          entry.pending = undefined;
        }
        return [];
      case 'lost-leadership':
        this.#leader = false;
        for (const entry of this.#entries.values()) {
          entry.detector = undefined;
          entry.pending = undefined;
        }
        return [];
      case 'heartbeat':
        return this.#heartbeat(input.from, input.at, input.resources);
      case 'tick':
        return this.#tick(input.at);
    }
  }

  #record(id: string, status: MemberStatus, modRevision: number, at: number): FailureDetectorWrite[] {
    let entry = this.#entries.get(id);
    if (entry === undefined) {
      entry = {
        status,
        modRevision,
        detector: undefined,
        heard: false,
        suspectSince: undefined,
        pending: undefined,
        resources: undefined,
        resourcesDirty: false,
        resourcesWrittenAt: at,
      };
      this.#entries.set(id, entry);
      if (this.#leader) {
        entry.detector = new PhiAccrualDetector(this.#init);
        // A member that appears now is judged from now, as one just heard from.
        if (this.#graceDone) entry.detector.heartbeat(at);
      }
      return [];
    }
    if (modRevision < entry.modRevision) return [];
    if (entry.pending !== undefined && modRevision > entry.pending.expected) entry.pending = undefined;
    if (status !== entry.status) {
      // Counted from this leader's own decision when it made it, else from when it saw the change.
      entry.suspectSince = status === 'suspect' ? (entry.suspectSince ?? at) : undefined;
      if (status === 'alive' && this.#leader && this.#graceDone && entry.detector !== undefined) {
        // Back from down or left (a restart): its silence while away says nothing about its rhythm.
        if (entry.status === 'down' || entry.status === 'left') {
          entry.detector = new PhiAccrualDetector(this.#init);
          entry.detector.heartbeat(at);
        }
      }
    }
    entry.status = status;
    entry.modRevision = modRevision;
    return [];
  }

  #heartbeat(from: string, at: number, resources: Resources | undefined): FailureDetectorWrite[] {
    const entry = this.#entries.get(from);
    if (!this.#leader || entry === undefined || entry.status === 'left') return [];
    if (entry.detector === undefined) entry.detector = new PhiAccrualDetector(this.#init);
    if (entry.status === 'down') {
      entry.detector = new PhiAccrualDetector(this.#init);
    }
    entry.detector.heartbeat(at);
    entry.heard = true;
    if (resources !== undefined) {
      entry.resources = resources;
      entry.resourcesDirty = true;
    }
    if ((entry.status === 'suspect' || entry.status === 'down') && entry.pending === undefined) {
      return [this.#write(from, entry, 'alive', 'heartbeat', at)];
    }
    return [];
  }

  #tick(at: number): FailureDetectorWrite[] {
    if (!this.#leader || at < this.#judgeFrom) return [];
    if (!this.#graceDone) {
      this.#graceDone = true;
      for (const entry of this.#entries.values()) {
        entry.detector ??= new PhiAccrualDetector(this.#init);
        if (!entry.heard) entry.detector.heartbeat(this.#judgeFrom);
      }
    }
    const writes: FailureDetectorWrite[] = [];
    const resourceWrites: string[] = [];
    for (const [id, entry] of this.#entries) {
      if (writes.length >= this.#maxWrites) break;
      if (entry.pending !== undefined) {
        if (at - entry.pending.since < this.#writeTimeoutMs) continue;
        entry.pending = undefined;
      }
      if (id === this.#init.self) {
        if (entry.status === 'suspect' || entry.status === 'down')
          writes.push(this.#write(id, entry, 'alive', 'self', at));
        continue;
      }
      switch (entry.status) {
        case 'left':
        case 'down':
          break;
        case 'alive': {
          const detector = entry.detector as PhiAccrualDetector;
          const last = detector.lastHeartbeatAt ?? at;
          // Most members are well within their rhythm: skip them without computing phi.
          if (at - last > detector.quietMs && detector.phi(at) >= this.#suspectPhi) {
            entry.suspectSince = at;
            writes.push(this.#write(id, entry, 'suspect', 'phi', at));
          } else if (entry.resourcesDirty && at - entry.resourcesWrittenAt >= this.#resourcesEveryMs) {
            resourceWrites.push(id);
          }
          break;
        }
        case 'suspect':
          entry.suspectSince ??= at;
          if (at - entry.suspectSince >= this.#downAfterMs)
            writes.push(this.#write(id, entry, 'down', 'down-after', at));
          break;
      }
    }
    for (const id of resourceWrites) {
      if (writes.length >= this.#maxWrites) break;
      const entry = this.#entries.get(id) as Entry;
      writes.push(this.#write(id, entry, entry.status, 'resources', at));
    }
    return writes;
  }

  #write(
    id: string,
    entry: Entry,
    status: MemberStatus,
    reason: WriteReason,
    at: number,
  ): FailureDetectorWrite {
    entry.pending = { expected: entry.modRevision, since: at };
    const withResources = entry.resourcesDirty && entry.resources !== undefined;
    if (withResources) {
      entry.resourcesDirty = false;
      entry.resourcesWrittenAt = at;
    }
    return {
      type: 'write',
      id,
      expectedModRevision: entry.modRevision,
      status,
      ...(withResources ? { resources: entry.resources as Resources } : {}),
      reason,
    };
  }
}
