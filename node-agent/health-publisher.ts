// Health records in etcd (health/<node>/<group>, under the node lease), and any other per-group record an agent keeps
// under its lease the same way (presence/<node>/<group>: RecordPublisher). One writer per group at a time, so that etcd
// sees them in order; a failed write is retried with backoff (common/retry.ts, cockatiel's) and every attempt writes the newest record,
// so an older record is never retried once a newer one exists (newer wins). Every record is written again on a
// timer and whenever the lease changes, so that a write lost in any way (etcd cut, a key deleted by hand) heals.
// Writes coalesce: the records whose writes start in the same tick, or while an earlier batch of this publisher is in
// flight, go to etcd in one transaction (at most MAX_BATCH_PUTS puts), when the store can do that (putMany). 100
// agents placing 1,000 groups each wrote 30 records one put at a time (docs/benchmarks.md, "Scale").
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { retry, type BackoffPolicy } from '../common/retry.js';
import type { HealthRecord } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';

/** Puts per transaction: etcd refuses more than --max-txn-ops (128 by default) operations in one. */
export const MAX_BATCH_PUTS = 64;

export interface StorePut {
  key: string;
  value: string;
  lease: string;
}

/** Where health records go: etcd in production, a fake in unit tests. */
export interface HealthStore {
  put(key: string, value: string, lease: string): Promise<void>;
  /** Up to MAX_BATCH_PUTS puts in one transaction: all land or none. Without it, every record is a put of its own. */
  putMany?(items: readonly StorePut[]): Promise<void>;
  delete(key: string): Promise<void>;
}

export function etcdHealthStore(client: Etcd3): Required<HealthStore> {
  return {
    put: async (key, value, lease) => {
      await client.put(key).value(value).lease(lease).exec();
    },
    putMany: async (items) => {
      // A transaction with no comparison: its puts always apply, together (client.if() needs one, and a comparison
      // on a key is a read the role must be allowed). kv.txn goes through the pool like any call (deadline, hosts).
      const success = await Promise.all(items.map((i) => client.put(i.key).value(i.value).lease(i.lease).op()));
      await client.kv.txn({ compare: [], success, failure: [] });
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

/** A group waiting for the next batch: its writer's attempt, settled when the transaction that carried it did. */
interface Queued {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class RecordPublisher<T> {
  private readonly wanted = new Map<string, Wanted<T>>();
  /** Per group: the sequence number and lease of the newest record etcd confirmed. */
  private readonly written = new Map<string, { seq: number; lease: string }>();
  private readonly writers = new Map<string, Promise<void>>();
  /** Groups whose newest record must be written again whatever `written` says (a transaction may have covered it). */
  private readonly rewrite = new Set<string>();
  private readonly backoff: BackoffPolicy;
  /** Groups whose writer's attempt goes in the next batch (putMany stores only). */
  private readonly queued = new Map<string, Queued>();
  /** The transactions of the batch in flight; the next batch starts when they have all settled. */
  private inFlight: Promise<void> | undefined;
  private flushScheduled = false;
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

  /** A sequence number for a record the caller read to write in a transaction of its own (see wroteElsewhere). */
  reserve(): number {
    return ++this.seq;
  }

  /**
   * Records that a transaction of the caller's own (the release with its health) wrote `record`, read when `seq` was
   * reserved: it becomes the newest, so that no older record in flight or retrying wins over it. If a newer record
   * was published while the transaction ran, the transaction may have landed after it: that one is written again
   * (a stale unhealthy record once stayed in etcd for minutes this way, republished every 15 s: chaos run, fast
   * profile, iterations 34-38).
   */
  wroteElsewhere(group: string, record: T, lease: string, seq = ++this.seq): void {
    const want = this.wanted.get(group);
    if (want && want.seq > seq) {
      this.rewrite.add(group);
      void this.drive(group);
      return;
    }
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
    this.rewrite.delete(group);
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
    if (done && done.seq >= want.seq && done.lease === lease && !this.rewrite.has(group)) return undefined;
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
            if (this.o.store.putMany) return this.join(group);
            this.rewrite.delete(group);
            await this.o.store.put(this.o.keyOf(group), JSON.stringify(p.want.record), p.lease);
            this.confirm(group, p);
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

  private confirm(group: string, p: { want: Wanted<T>; lease: string }): void {
    const done = this.written.get(group);
    if (!done || done.seq < p.want.seq || done.lease !== p.lease)
      this.written.set(group, { seq: p.want.seq, lease: p.lease });
  }

  /**
   * One attempt of a group's writer, in the next batch. Only the group's own writer calls this, one attempt at a
   * time, so a group is in at most one batch, queued or in flight: the batch is that group's one write in flight.
   */
  private join(group: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queued.set(group, { resolve, reject });
      this.schedule();
    });
  }

  /** The next batch starts after this tick's I/O and timers (setImmediate), and never beside one in flight. */
  private schedule(): void {
    if (this.flushScheduled || this.inFlight) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.inFlight = this.flush().finally(() => {
        this.inFlight = undefined;
        if (this.queued.size > 0) this.schedule();
      });
    });
  }

  /**
   * Sends every queued group's newest record under the current lease, MAX_BATCH_PUTS per transaction. The record
   * is read now, not when the group was queued: a record published meanwhile goes instead of the older one.
   *
   * A failed transaction wrote none of its puts, and the attempt of each of its groups fails: every group goes back
   * to its own retry loop and backoff, exactly as with one put per record (same attempts, same logs, a forgotten
   * group drops out, a newer record is what the next attempt takes), and the attempts that come due in the same tick
   * or while a batch is in flight go in one transaction again: after an etcd outage the groups' backoffs are close
   * together, so the retries batch too. Retrying the failed batch as a whole would need a second backoff beside the
   * groups' and would tie the groups' retries to each other; splitting it into one put per group would give up the
   * batching just when every record is due at once, as etcd comes back.
   */
  private async flush(): Promise<void> {
    const items: { group: string; p: { want: Wanted<T>; lease: string }; q: Queued }[] = [];
    for (const [group, q] of this.queued) {
      // Nothing to write (forgotten, made current by a transaction elsewhere, no lease, stopped): the writer sees it.
      const p = this.pending(group);
      if (p) items.push({ group, p, q });
      else q.resolve();
    }
    this.queued.clear();
    const sends: Promise<void>[] = [];
    for (let i = 0; i < items.length; i += MAX_BATCH_PUTS) {
      const chunk = items.slice(i, i + MAX_BATCH_PUTS);
      for (const it of chunk) this.rewrite.delete(it.group);
      const puts = chunk.map((it) => ({
        key: this.o.keyOf(it.group),
        value: JSON.stringify(it.p.want.record),
        lease: it.p.lease,
      }));
      sends.push(
        Promise.resolve()
          .then(() => this.o.store.putMany!(puts))
          .then(
            () => {
              for (const it of chunk) {
                this.confirm(it.group, it.p);
                it.q.resolve();
              }
            },
            (err: unknown) => {
              for (const it of chunk) it.q.reject(err);
            },
          ),
      );
    }
    await Promise.all(sends);
  }
}

export class HealthPublisher extends RecordPublisher<HealthRecord> {}
