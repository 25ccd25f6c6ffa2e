// A Mirror of one etcd key prefix: it lists, then watches from the listed revision; on a disconnect, compaction or
// error it lists again. Watches are hints: whoever uses the mirror reads its whole state on each pass
// (level-triggered).
import { EventEmitter } from 'node:events';
import { Range, type Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { redialAll } from './etcd-failover.js';
import type { Logger } from './log.js';

/**
 * Keys per list request. One answer for a whole prefix outgrew gRPC's 4 MiB message limit at 10,000 groups (4.5 MB:
 * RESOURCE_EXHAUSTED, and the mirror never became ready); pages of this many keys stay far below it for records of
 * the sizes the keyspace writes.
 */
export const LIST_PAGE_KEYS = 1000;

/**
 * Every key under `prefix` as of one revision, in pages of `pageKeys`: the first page's revision, and each further
 * page read at that revision, so that the pages add up to one snapshot (a compaction past it in between fails the
 * list; the caller tries again).
 */
export async function listPrefix(
  client: Etcd3,
  prefix: string,
  pageKeys = LIST_PAGE_KEYS,
): Promise<{ revision: number; kvs: IKeyValue[] }> {
  const { end } = Range.prefix(prefix);
  const kvs: IKeyValue[] = [];
  let start = Buffer.from(prefix);
  let revision: number | undefined;
  for (;;) {
    const q = client.getAll().inRange({ start, end }).limit(pageKeys);
    const res = await (revision === undefined ? q : q.revision(revision)).exec();
    revision ??= Number(res.header.revision);
    kvs.push(...res.kvs);
    const last = res.kvs.at(-1);
    if (!res.more || !last) return { revision, kvs };
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
}

/** How long a new watch may wait for etcd's confirmation before the mirror dials afresh and lists again. */
export const WATCH_CONFIRM_MS = 5000;

export interface Entry {
  key: string;
  value: string;
  modRevision: number;
  createRevision: number;
  lease: string;
}

export interface MirrorEvents {
  change: [keys: string[]];
  synced: [revision: number];
}

/**
 * An in-memory copy of every key under a prefix, kept current by list + watch.
 * `start(signal)` runs until the signal aborts; `ready` resolves after the first list.
 */
export class Mirror extends EventEmitter<MirrorEvents> {
  readonly entries = new Map<string, Entry>();
  revision = 0;
  private watcher: Watcher | undefined;
  private relistTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private resolveReady!: () => void;
  readonly ready: Promise<void> = new Promise((r) => (this.resolveReady = r));
  relists = 0;

  constructor(
    private readonly client: Etcd3,
    readonly prefix: string,
    private readonly log: Logger,
    private readonly opts: { resyncMs?: number; pageKeys?: number } = {},
  ) {
    super();
  }

  start(signal: AbortSignal): void {
    signal.addEventListener('abort', () => this.stop(), { once: true });
    void this.relist('start');
  }

  stop(): void {
    this.stopped = true;
    if (this.relistTimer) clearTimeout(this.relistTimer);
    void this.watcher?.cancel().catch(() => undefined);
    this.watcher = undefined;
  }

  get(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  /** Entries whose key starts with `sub` (a full key prefix). */
  *under(sub: string): Iterable<Entry> {
    for (const e of this.entries.values()) if (e.key.startsWith(sub)) yield e;
  }

  private scheduleRelist(why: string, delayMs: number): void {
    if (this.stopped || this.relistTimer) return;
    this.relistTimer = setTimeout(() => {
      this.relistTimer = undefined;
      void this.relist(why);
    }, delayMs);
  }

  private async relist(why: string): Promise<void> {
    if (this.stopped) return;
    const old = this.watcher;
    this.watcher = undefined;
    void old?.cancel().catch(() => undefined);
    try {
      const res = await listPrefix(this.client, this.prefix, this.opts.pageKeys);
      if (this.stopped) return;
      const rev = res.revision;
      const seen = new Set<string>();
      const changed: string[] = [];
      for (const kv of res.kvs) {
        const e = toEntry(kv);
        seen.add(e.key);
        const prev = this.entries.get(e.key);
        if (!prev || prev.modRevision !== e.modRevision) changed.push(e.key);
        this.entries.set(e.key, e);
      }
      for (const k of [...this.entries.keys()]) {
        if (!seen.has(k)) {
          this.entries.delete(k);
          changed.push(k);
        }
      }
      this.revision = rev;
      this.relists++;
      if (why !== 'start') this.log.info({ prefix: this.prefix, revision: rev, why }, 'etcd prefix listed again');
      // Announced now: if the watch below fails, the next list compares with these entries and finds nothing new.
      if (why !== 'start') this.emit('change', changed);
      await this.watchFrom(rev + 1);
      this.resolveReady();
      this.emit('synced', rev);
      if (why === 'start') this.emit('change', changed);
      if (this.opts.resyncMs) this.scheduleRelist('periodic resync', this.opts.resyncMs);
    } catch (err) {
      this.log.warn({ err, prefix: this.prefix }, 'etcd list failed; retrying');
      this.scheduleRelist('list failed', 500);
    }
  }

  private async watchFrom(rev: number): Promise<void> {
    const pending = this.client.watch().prefix(this.prefix).startRevision(String(rev)).withPreviousKV().create();
    let timer: NodeJS.Timeout | undefined;
    const w = await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          // The stream waits on a connection that does not come (a connect made during a partition hangs in SYN
          // retransmits after it healed): dial afresh, and list again. The list just done succeeded, so etcd answers.
          void pending.then((late) => late.cancel()).catch(() => undefined);
          redialAll(this.client);
          reject(new Error(`etcd did not confirm the watch within ${WATCH_CONFIRM_MS} ms`));
        }, WATCH_CONFIRM_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (this.stopped) {
      void w.cancel();
      return;
    }
    this.watcher = w;
    w.on('data', (res) => {
      if (this.watcher !== w) return;
      if (res.compact_revision && Number(res.compact_revision) > 0) {
        this.scheduleRelist('compacted', 0);
        return;
      }
      const changed: string[] = [];
      for (const ev of res.events) {
        const e = toEntry(ev.kv);
        const prev = this.entries.get(e.key);
        if (ev.type === 'Put') {
          if (prev && prev.modRevision >= e.modRevision) continue;
          this.entries.set(e.key, e);
        } else {
          if (prev && prev.modRevision > e.modRevision) continue;
          this.entries.delete(e.key);
        }
        changed.push(e.key);
      }
      const r = Number(res.header.revision);
      if (r > this.revision) this.revision = r;
      if (changed.length) this.emit('change', changed);
    });
    // etcd3 resumes a broken watch by itself, but we cannot see what it missed across a compaction: list again.
    w.on('disconnected', () => {
      if (this.watcher === w) this.scheduleRelist('watch disconnected', 200);
    });
    w.on('error', (err) => {
      if (this.watcher === w) {
        this.log.warn({ err, prefix: this.prefix }, 'etcd watch error');
        this.scheduleRelist('watch error', 200);
      }
    });
  }
}

function toEntry(kv: {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  create_revision: string;
  lease: string;
}): Entry {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    lease: String(kv.lease ?? '0'),
  };
}
