/**
 * The workload API for programs (the CLI, specs, benchmarks, embedders): deploy, scale, remove,
 * ps, explain and logs against any coordinator's front door (`/user/workloads`), over a
 * `KvClient`'s connection and credential. Errors come back as the classes the coordinator threw
 * (an invalid spec as `InvalidSpecError` with every problem, a denial as `PolicyViolationError`).
 */
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

export class WorkloadClient {
  readonly kv: KvClient;
  readonly #timeoutMs: number;

  private constructor(kv: KvClient, timeoutMs: number) {
    this.kv = kv;
    this.#timeoutMs = timeoutMs;
  }

  static async connect(init: KvClientInit): Promise<WorkloadClient> {
    return new WorkloadClient(await KvClient.connect(init), init.timeoutMs ?? 15_000);
  }

  /** Over an existing connection (the caller keeps closing it). */
  static over(kv: KvClient, timeoutMs = 15_000): WorkloadClient {
    return new WorkloadClient(kv, timeoutMs);
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
      },
    );
    if (!reply.ok) throw workloadErrorFromWire(reply.error);
    return reply.value;
  }
}
