// Work by key (client-go's workqueue, cut down): an item pushed for a key is merged into what is already waiting for
// it, one run per key at a time, so an older item can never land after a newer one. A run that throws keeps its
// item (under anything newer) and is tried again after retryMs; the pushers of that run hear of the failure.
export interface KeyedQueueOptions<T> {
  work: (key: string, item: T) => Promise<void>;
  /** Folds a newer item into an older one still waiting (default: the newer one wins). */
  merge?: (older: T, newer: T) => T;
  retryMs: number;
  /** Nothing runs once this is aborted. */
  signal?: () => AbortSignal | undefined;
}

export class KeyedQueue<T> {
  private readonly pending = new Map<string, T>();
  private readonly runs = new Map<string, Promise<void>>();
  private readonly retries = new Map<string, NodeJS.Timeout>();

  constructor(private readonly opts: KeyedQueueOptions<T>) {}

  /** Queues an item; resolves once it (merged with others) has been worked off, rejects when that failed. */
  push(key: string, item: T): Promise<void> {
    const prev = this.pending.get(key);
    this.pending.set(key, prev === undefined ? item : (this.opts.merge?.(prev, item) ?? item));
    return this.run(key);
  }

  has(key: string): boolean {
    return this.pending.has(key) || this.runs.has(key);
  }

  private run(key: string): Promise<void> {
    let run = this.runs.get(key);
    if (!run) {
      run = this.drain(key).finally(() => this.runs.delete(key));
      this.runs.set(key, run);
    }
    return run;
  }

  private async drain(key: string): Promise<void> {
    for (let item = this.pending.get(key); item !== undefined; item = this.pending.get(key)) {
      if (this.opts.signal?.()?.aborted) return;
      this.pending.delete(key);
      try {
        await this.opts.work(key, item);
      } catch (err) {
        const newer = this.pending.get(key);
        this.pending.set(key, newer === undefined ? item : (this.opts.merge?.(item, newer) ?? newer));
        this.retryLater(key);
        throw err;
      }
    }
  }

  private retryLater(key: string): void {
    if (this.retries.has(key)) return;
    const t = setTimeout(() => {
      this.retries.delete(key);
      if (this.pending.has(key)) void this.run(key).catch(() => undefined);
    }, this.opts.retryMs);
    t.unref();
    this.retries.set(key, t);
  }

  /** Drops every retry timer (the source stops). */
  close(): void {
    for (const t of this.retries.values()) clearTimeout(t);
    this.retries.clear();
  }
}
