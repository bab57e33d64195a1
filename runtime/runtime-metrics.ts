/**
 * The kernel's Prometheus metrics, on the system's own registry. The hot path only bumps plain
 * counters on the kernel; these collectors read them when the registry is scraped, so a message
 * costs no prom-client call.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { deadLetterReasons, type Kernel } from './kernel.ts';

/** Sets a counter to an absolute total read from the kernel. */
function syncCounter(counter: Counter<string>, total: number, labels?: Record<string, string>): void {
  counter.reset();
  if (labels === undefined) counter.inc(total);
  else counter.inc(labels, total);
}

export function registerRuntimeMetrics(registry: Registry, kernel: Kernel): void {
  new Gauge({
    name: 'cloudless_actor_mailbox_depth_messages',
    help: 'Messages queued in all mailboxes of this actor system',
    registers: [registry],
    collect() {
      this.set(kernel.queued);
    },
  });
  new Gauge({
    name: 'cloudless_actor_mailbox_depth_max_messages',
    help: 'Deepest single mailbox in this actor system',
    registers: [registry],
    collect() {
      let max = 0;
      for (const cell of kernel.registry.values()) if (cell.mailboxSize > max) max = cell.mailboxSize;
      this.set(max);
    },
  });
  new Gauge({
    name: 'cloudless_actor_live_actors',
    help: 'Actors alive in this actor system',
    registers: [registry],
    collect() {
      this.set(kernel.registry.size);
    },
  });
  new Counter({
    name: 'cloudless_actor_messages_processed_total',
    help: 'Messages handled by actors',
    registers: [registry],
    collect() {
      syncCounter(this, kernel.processed);
    },
  });
  new Counter({
    name: 'cloudless_actor_spawned_total',
    help: 'Actors started',
    registers: [registry],
    collect() {
      syncCounter(this, kernel.spawned);
    },
  });
  new Counter({
    name: 'cloudless_actor_restarts_total',
    help: 'Actor restarts by a supervision strategy',
    registers: [registry],
    collect() {
      syncCounter(this, kernel.restarts);
    },
  });
  new Counter({
    name: 'cloudless_actor_dead_letters_total',
    help: 'Messages that could not be delivered, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of deadLetterReasons) this.inc({ reason }, kernel.deadLetters.get(reason) ?? 0);
    },
  });
  new Counter({
    name: 'cloudless_actor_ask_timeouts_total',
    help: 'Asks that got no reply within their timeout',
    registers: [registry],
    collect() {
      syncCounter(this, kernel.askTimeouts);
    },
  });
  new Gauge({
    name: 'cloudless_actor_pending_asks',
    help: 'Asks waiting for a reply',
    registers: [registry],
    collect() {
      this.set(kernel.pendingAsks.size);
    },
  });
}
