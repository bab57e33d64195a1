/**
 * The workload API for programs (the CLI, specs, benchmarks, embedders): deploy, scale, remove,
 * ps, explain and logs against any coordinator's front door (`/user/workloads`), over a
 * `KvClient`'s connection and credential. Errors come back as the classes the coordinator threw
 * (an invalid spec as `InvalidSpecError` with every problem, a denial as `PolicyViolationError`).
 */
import { DataCorruptError } from '../../runtime/errors.ts';
import { KvClient, type KvClientInit } from '../raft/kv-client.ts';
import type { ExplainReply } from './scheduler-shard.ts';
import { workloadErrorFromWire } from './workload-errors.ts';
import {
  type DeployResult,
  type LogsQuery,
  type LogsResult,
  type WorkloadReply,
  type WorkloadRequest,
  type WorkloadStatus,
  workloadServicePath,
} from './workload-service.ts';

/** A request without its `replyTo` (distributed over the union, so each keeps its own fields). */
type RequestBody = WorkloadRequest extends infer T
  ? T extends WorkloadRequest
    ? Omit<T, 'replyTo'>
    : never
  : never;

export interface WorkloadClientOptions {
  /** Deadline of each call; default 15 s. */
  readonly timeoutMs?: number;
  /** Aborts every call (e.g. Ctrl-C in the CLI). */
  readonly signal?: AbortSignal;
}

export class WorkloadClient {
  readonly kv: KvClient;
  /** Aborted when the caller's signal is (never, without one). */
  readonly interrupt: AbortSignal;
  readonly #timeoutMs: number;

  private constructor(kv: KvClient, options: WorkloadClientOptions) {
    this.kv = kv;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    this.interrupt = options.signal ?? new AbortController().signal;
  }

  static async connect(init: KvClientInit): Promise<WorkloadClient> {
    return new WorkloadClient(await KvClient.connect(init), { timeoutMs: init.timeoutMs ?? 15_000 });
  }

  /** Over an existing connection (the caller keeps closing it). */
  static over(kv: KvClient, options: WorkloadClientOptions = {}): WorkloadClient {
    return new WorkloadClient(kv, options);
  }

  /** Sends a spec (already validated or not: the coordinator validates it again). */
  deploy(spec: unknown): Promise<DeployResult> {
    return this.#ask({ type: 'deploy', spec });
  }

  scale(workloadId: string, replicas: number): Promise<DeployResult> {
    return this.#ask({ type: 'scale', workloadId, replicas });
  }

  remove(workloadId: string): Promise<{ readonly removed: boolean }> {
    return this.#ask({ type: 'remove', workloadId });
  }

  ps(workloadId?: string): Promise<readonly WorkloadStatus[]> {
    return this.#ask(workloadId === undefined ? { type: 'ps' } : { type: 'ps', workloadId });
  }

  explain(workloadId: string): Promise<ExplainReply> {
    return this.#ask({ type: 'explain', workloadId });
  }

  logs(query: LogsQuery): Promise<LogsResult> {
    return this.#ask({ type: 'logs', ...query });
  }

  close(): Promise<void> {
    return this.kv.close();
  }

  async #ask<TValue>(body: RequestBody): Promise<TValue> {
    const ref = this.kv.serviceRef<WorkloadRequest>(workloadServicePath);
    const reply = await ref.ask<WorkloadReply<TValue>>(
      (replyTo) => ({ ...body, replyTo }) as WorkloadRequest,
      {
        timeoutMs: this.#timeoutMs,
        signal: this.interrupt,
      },
    );
    if (typeof reply !== 'object' || reply === null || typeof reply.ok !== 'boolean')
      throw new DataCorruptError('the workload front door sent an answer this client cannot read');
    if (!reply.ok) throw workloadErrorFromWire(reply.error);
    return reply.value;
  }
}
