// Health records in etcd (health/<node>/<group>, under the node lease), and any other per-group record an agent keeps
// under its lease the same way (presence/<node>/<group>: RecordPublisher). One writer per group at a time, so that etcd
// sees them in order; a failed write is retried with backoff (common/retry.ts, cockatiel's) and every attempt writes the newest record,
// so an older record is never retried once a newer one exists (newer wins). Every record is written again on a
// timer and whenever the lease changes, so that a write lost in any way (etcd cut, a key deleted by hand) heals.
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { retry, type BackoffPolicy } from '../common/retry.js';
import type { HealthRecord } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';

/** Where health records go: etcd in production, a fake in unit tests. */
export interface HealthStore {
  put(key: string, value: string, lease: string): Promise<void>;
  delete(key: string): Promise<void>;
}

export function etcdHealthStore(client: Etcd3): HealthStore {
  return {
    put: async (key, value, lease) => {
      await client.put(key).value(value).lease(lease).exec();
    },
    delete: async (key) => {
      await client.delete().key(key).exec();
    },
  };
}

export interface HealthPublisherOptions {
  store: HealthStore;
  /** What the records are, for the logs (default "health"). */
  what?: string;
  /** health/<group>/<node> for a group. */
  keyOf: (group: string) => string;
  /** The current node lease, or undefined while there is none (records are then written once it is granted). */
  lease: () => string | undefined;
  log: Logger;
  clock: Pick<Clock, 'sleep'>;
  /** Every record is written again this often (ms). */
  republishMs?: number;
  backoff?: BackoffPolicy;
}

interface Wanted<T> {
  record: T;
  seq: number;
}

export class RecordPublisher<T> {
  private readonly wanted = new Map<string, Wanted<T>>();
  /** Per group: the sequence number and lease of the newest record etcd confirmed. */
  private readonly written = new Map<string, { seq: number; lease: string }>();
  private readonly writers = new Map<string, Promise<void>>();
  private readonly backoff: BackoffPolicy;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly ac = new AbortController();

  constructor(private readonly o: HealthPublisherOptions) {
    this.backoff = o.backoff ?? { initialDelayMs: 100, maxDelayMs: 2000, jitter: 'half' };
  }

  start(signal: AbortSignal): void {
    signal.addEventListener('abort', () => this.stop(), { once: true });
    this.timer = setInterval(() => this.republishAll(), this.o.republishMs ?? 15_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.ac.abort();
  }

  /** Publishes a group's record (newer than any set before); resolves once etcd has it or a newer one. */
  publish(group: string, record: T): Promise<void> {
    this.wanted.set(group, { record, seq: ++this.seq });
    return this.drive(group);
  }

  /**
   * Records that a transaction of the caller's own (the release with its health) wrote `record`: it becomes the
   * newest, so that no older record in flight or retrying wins over it.
   */
  wroteElsewhere(group: string, record: T, lease: string): void {
    const seq = ++this.seq;
    this.wanted.set(group, { record, seq });
    // A write in flight may land after the transaction: its writer then writes this record once more.
    if (!this.writers.has(group)) this.written.set(group, { seq, lease });
  }

  /** The newest record for a group, as last published. */
  latest(group: string): T | undefined {
    return this.wanted.get(group)?.record;
  }

  /** Forgets a group and deletes its record (best effort: the lease ends it at the latest). */
  async forget(group: string): Promise<void> {
    this.wanted.delete(group);
    this.written.delete(group);
    await this.o.store.delete(this.o.keyOf(group)).catch(() => undefined);
  }

  /** Writes every record again (lease granted, timer). */
  republishAll(): Promise<void> {
    this.written.clear();
    return Promise.all([...this.wanted.keys()].map((g) => this.drive(g))).then(() => undefined);
  }

  /** Resolves when etcd has confirmed the newest record of every group. */
  async flushed(): Promise<void> {
    while (this.writers.size > 0) await Promise.all([...this.writers.values()]);
  }

  /** One writer per group; it runs until etcd confirmed the newest record under the current lease. */
  private drive(group: string): Promise<void> {
    const running = this.writers.get(group);
    if (running) return running;
    const w = this.writeUntilCurrent(group).finally(() => {
      this.writers.delete(group);
      // Forgotten while a write was in flight: that write may have landed after the delete.
      if (!this.wanted.has(group)) void this.o.store.delete(this.o.keyOf(group)).catch(() => undefined);
    });
    this.writers.set(group, w);
    return w;
  }

  private pending(group: string): { want: Wanted<T>; lease: string } | undefined {
    const want = this.wanted.get(group);
    const lease = this.o.lease();
    const done = this.written.get(group);
    if (!want || !lease || this.ac.signal.aborted) return undefined;
    if (done && done.seq >= want.seq && done.lease === lease) return undefined;
    return { want, lease };
  }

  private async writeUntilCurrent(group: string): Promise<void> {
    while (this.pending(group)) {
      try {
        await retry(
          async () => {
            // Each attempt writes the newest record under the current lease: an older one is never retried.
            const p = this.pending(group);
            if (!p) return;
            await this.o.store.put(this.o.keyOf(group), JSON.stringify(p.want.record), p.lease);
            const done = this.written.get(group);
            if (!done || done.seq < p.want.seq || done.lease !== p.lease)
              this.written.set(group, { seq: p.want.seq, lease: p.lease });
          },
          {
            backoff: this.backoff,
            clock: this.o.clock,
            signal: this.ac.signal,
            onRetry: ({ err, attempt, delayMs }) =>
              this.o.log.warn(
                { err, group, attempt, retryInMs: delayMs },
                `could not publish ${this.o.what ?? 'health'}; retrying`,
              ),
          },
        );
      } catch (err) {
        if (!this.ac.signal.aborted) this.o.log.error({ err, group }, `${this.o.what ?? 'health'} publishing stopped`);
        return;
      }
    }
  }
}

export class HealthPublisher extends RecordPublisher<HealthRecord> {}
