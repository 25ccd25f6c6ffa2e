// Health publishing against a fake etcd store whose writes the test makes fail, hang or land: every guarantee with a
// store that puts one record at a time and with one that writes batches in transactions (putMany), and the batching.
import { describe, expect, it } from '@jest/globals';
import type { HealthRecord } from '../common/keyspace.js';
import { realClock } from '../common/clock.js';
import { silentLogger } from '../common/log.js';
import { HealthPublisher, MAX_BATCH_PUTS, type HealthStore, type StorePut } from './health-publisher.js';

const rec = (healthy: boolean, at: number): HealthRecord => ({
  healthy,
  priorityDelta: 0,
  checks: [],
  checksHash: 'c',
  at,
});

/**
 * A store whose next `failing` writes fail, and all writes while `down`; `holdNext` makes the next write wait until
 * released. It records what each key was tried with, and any key with two writes in flight at once (`overlaps`).
 */
class FakeStore implements HealthStore {
  readonly data = new Map<string, { value: HealthRecord; lease: string }>();
  readonly attempts: HealthRecord[] = [];
  failing = 0;
  /** Every write fails while true. */
  down = false;
  private held: (() => void)[] = [];
  holdNext = false;
  /** The `at` of every record tried, by key. */
  readonly tried = new Map<string, number[]>();
  private readonly writing = new Set<string>();
  readonly overlaps: string[] = [];
  async put(key: string, value: string, lease: string): Promise<void> {
    await this.write([{ key, value, lease }]);
  }
  /** One write: all of `items` land or none (a transaction). */
  protected async write(items: readonly StorePut[]): Promise<void> {
    for (const i of items) {
      if (this.writing.has(i.key)) this.overlaps.push(i.key);
      this.writing.add(i.key);
      const v = JSON.parse(i.value) as HealthRecord;
      this.attempts.push(v);
      this.tried.set(i.key, [...(this.tried.get(i.key) ?? []), v.at]);
    }
    try {
      if (this.holdNext) {
        this.holdNext = false;
        await new Promise<void>((r) => this.held.push(r));
      }
      if (this.down) throw new Error('14 UNAVAILABLE: etcd cut');
      if (this.failing > 0) {
        this.failing--;
        throw new Error('14 UNAVAILABLE: etcd cut');
      }
      for (const i of items) this.data.set(i.key, { value: JSON.parse(i.value) as HealthRecord, lease: i.lease });
    } finally {
      for (const i of items) this.writing.delete(i.key);
    }
  }
  async delete(key: string): Promise<void> {
    this.data.delete(key);
  }
  releaseHeld(): void {
    for (const r of this.held.splice(0)) r();
  }
  get heldCount(): number {
    return this.held.length;
  }
}

/** The same store with transactions: `batches` lists the keys of every putMany, `puts` counts single puts. */
class BatchStore extends FakeStore {
  readonly batches: string[][] = [];
  puts = 0;
  override async put(key: string, value: string, lease: string): Promise<void> {
    this.puts++;
    await super.put(key, value, lease);
  }
  async putMany(items: readonly StorePut[]): Promise<void> {
    expect(items.length).toBeLessThanOrEqual(MAX_BATCH_PUTS);
    this.batches.push(items.map((i) => i.key));
    await this.write(items);
  }
}

const tick = () => new Promise((r) => setImmediate(r));

const stores = [
  ['one put per record', () => new FakeStore()],
  ['transactions (putMany)', () => new BatchStore()],
] as const;

function setupWith<S extends FakeStore>(lease: { current: string | undefined }, store: S) {
  const pub = new HealthPublisher({
    store,
    keyOf: (g) => `/h/${g}/node1`,
    lease: () => lease.current,
    log: silentLogger(),
    clock: realClock,
    backoff: { initialDelayMs: 5, maxDelayMs: 20 },
  });
  return { store, pub, lease };
}

describe.each(stores)('HealthPublisher, %s', (_name, makeStore) => {
  const setup = (lease: { current: string | undefined } = { current: '7' }) => setupWith(lease, makeStore());

  it('retries a failed write with backoff until etcd has it (issue 15 item 5)', async () => {
    const { store, pub } = setup();
    store.failing = 3;
    await pub.publish('web', rec(true, 1));
    expect(store.attempts).toHaveLength(4);
    expect(store.data.get('/h/web/node1')).toEqual({ value: rec(true, 1), lease: '7' });
  });

  it('newer wins: once a newer record exists, the older one is never retried and the newer one lands last', async () => {
    const { store, pub } = setup();
    store.holdNext = true;
    store.failing = 1;
    const first = pub.publish('web', rec(true, 1)); // hangs, then fails
    await new Promise((r) => setTimeout(r, 5));
    const second = pub.publish('web', rec(false, 2));
    store.releaseHeld();
    await Promise.all([first, second]);
    expect(store.attempts.map((a) => a.at)).toEqual([1, 2]);
    expect(store.data.get('/h/web/node1')?.value).toEqual(rec(false, 2));
  });

  it('a write of the release transaction is not overwritten by an older write still in flight', async () => {
    const { store, pub } = setup();
    store.holdNext = true;
    const older = pub.publish('web', rec(true, 1));
    await new Promise((r) => setTimeout(r, 5));
    // The release transaction wrote rec(false, 2) itself; then the held older write lands.
    store.data.set('/h/web/node1', { value: rec(false, 2), lease: '7' });
    pub.wroteElsewhere('web', rec(false, 2), '7');
    store.releaseHeld();
    await older;
    await pub.flushed();
    expect(store.data.get('/h/web/node1')?.value).toEqual(rec(false, 2));
  });

  it('a newer record published while the release transaction ran wins over the one the transaction wrote', async () => {
    const { store, pub } = setup();
    await pub.publish('web', rec(false, 1));
    // The release reads the failing record and reserves its place, then its transaction is slow (etcd stalled).
    const seq = pub.reserve();
    // Meanwhile the check passes again: the healthy record is published and lands.
    await pub.publish('web', rec(true, 2));
    expect(store.data.get('/h/web/node1')?.value).toEqual(rec(true, 2));
    // Then the transaction lands, with the failing record it read, and returns.
    store.data.set('/h/web/node1', { value: rec(false, 1), lease: '7' });
    pub.wroteElsewhere('web', rec(false, 1), '7', seq);
    await pub.flushed();
    // Without the reserved sequence the stale record became the newest and stayed (republished every 15 s).
    expect(store.data.get('/h/web/node1')?.value).toEqual(rec(true, 2));
    expect(pub.latest('web')).toEqual(rec(true, 2));
  });

  it('writes nothing without a lease, and everything once one is granted (republishAll)', async () => {
    const lease = { current: undefined as string | undefined };
    const { store, pub } = setup(lease);
    await pub.publish('web', rec(true, 1));
    await pub.publish('db', rec(false, 1));
    expect(store.attempts).toEqual([]);
    lease.current = '9';
    await pub.republishAll();
    expect([...store.data.values()].map((d) => d.lease)).toEqual(['9', '9']);
  });

  it('republishing heals a record deleted behind its back, under the current lease', async () => {
    const { store, pub, lease } = setup();
    await pub.publish('web', rec(true, 1));
    store.data.delete('/h/web/node1');
    lease.current = '8';
    await pub.republishAll();
    expect(store.data.get('/h/web/node1')).toEqual({ value: rec(true, 1), lease: '8' });
  });

  it('republishes on its timer', async () => {
    const store = makeStore();
    const pub = new HealthPublisher({
      store,
      keyOf: (g) => `/h/${g}`,
      lease: () => '7',
      log: silentLogger(),
      clock: realClock,
      republishMs: 30,
    });
    const ac = new AbortController();
    pub.start(ac.signal);
    await pub.publish('web', rec(true, 1));
    store.data.clear();
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    expect(store.data.get('/h/web')?.value).toEqual(rec(true, 1));
  });

  it('forgetting a group deletes its record and stops writing it', async () => {
    const { store, pub } = setup();
    await pub.publish('web', rec(true, 1));
    await pub.forget('web');
    await pub.republishAll();
    expect(store.data.size).toBe(0);
  });
});

describe('HealthPublisher batching', () => {
  const setup = () => setupWith({ current: '7' }, new BatchStore());
  const groups = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `g${from + i}`);

  it('records published in one tick go to etcd in one transaction, under the current lease', async () => {
    const { store, pub } = setup();
    await Promise.all(groups(30).map((g) => pub.publish(g, rec(true, 1))));
    expect(store.batches).toEqual([groups(30).map((g) => `/h/${g}/node1`)]);
    expect(store.puts).toBe(0);
    expect(store.data.size).toBe(30);
    expect([...store.data.values()].every((d) => d.lease === '7')).toBe(true);
  });

  it(`at most ${MAX_BATCH_PUTS} puts per transaction`, async () => {
    const { store, pub } = setup();
    await Promise.all(groups(150).map((g) => pub.publish(g, rec(true, 1))));
    expect(store.batches.map((b) => b.length)).toEqual([64, 64, 22]);
    expect(store.data.size).toBe(150);
  });

  it('records published while a batch is in flight go together in the next one', async () => {
    const { store, pub } = setup();
    store.holdNext = true;
    const first = Promise.all(groups(3).map((g) => pub.publish(g, rec(true, 1))));
    await tick();
    expect(store.heldCount).toBe(1);
    // Published in different ticks, all while the first batch is in flight.
    const later: Promise<void>[] = [];
    for (const g of groups(5, 3)) {
      later.push(pub.publish(g, rec(true, 1)));
      await tick();
    }
    expect(store.batches).toHaveLength(1);
    store.releaseHeld();
    await Promise.all([first, ...later]);
    expect(store.batches.map((b) => b.length)).toEqual([3, 5]);
    expect(store.data.size).toBe(8);
  });

  it('a record published while its group is in a batch in flight goes in the next batch, and wins', async () => {
    const { store, pub } = setup();
    store.holdNext = true;
    const first = Promise.all(groups(4).map((g) => pub.publish(g, rec(true, 1))));
    await tick();
    const newer = pub.publish('g2', rec(false, 2));
    store.releaseHeld();
    await Promise.all([first, newer]);
    expect(store.batches).toEqual([groups(4).map((g) => `/h/${g}/node1`), ['/h/g2/node1']]);
    expect(store.data.get('/h/g2/node1')?.value).toEqual(rec(false, 2));
    expect(store.overlaps).toEqual([]);
  });

  it('a failed transaction: each group is retried with its newest record only, one write in flight per group', async () => {
    const { store, pub } = setup();
    store.holdNext = true;
    store.down = true;
    const all = groups(10);
    const first = all.map((g) => pub.publish(g, rec(true, 1))); // held, then fails
    await tick();
    // Newer records for half the groups while the doomed batch is in flight.
    const newer = all.slice(0, 5).map((g) => pub.publish(g, rec(false, 2)));
    store.releaseHeld();
    while (store.batches.length < 3) await new Promise((r) => setTimeout(r, 1));
    store.down = false;
    await Promise.all([...first, ...newer]);
    await pub.flushed();
    for (const [i, g] of all.entries()) {
      const [firstTry, ...retries] = store.tried.get(`/h/${g}/node1`) ?? [];
      expect(firstTry).toBe(1);
      // Once the newer record existed, only it was tried.
      expect(retries.length).toBeGreaterThan(0);
      expect(new Set(retries)).toEqual(new Set([i < 5 ? 2 : 1]));
      expect(store.data.get(`/h/${g}/node1`)?.value).toEqual(i < 5 ? rec(false, 2) : rec(true, 1));
    }
    // The groups' retries, on the same backoff, went to etcd in transactions together again.
    expect(store.batches.slice(1).some((b) => b.length > 1)).toBe(true);
    expect(store.overlaps).toEqual([]);
    expect(store.puts).toBe(0);
  });

  it('a record the release transaction wrote is not overwritten by an older one in a batch in flight', async () => {
    const { store, pub } = setup();
    store.holdNext = true;
    const older = Promise.all(groups(3).map((g) => pub.publish(g, rec(true, 1))));
    await tick();
    store.data.set('/h/g1/node1', { value: rec(false, 2), lease: '7' });
    pub.wroteElsewhere('g1', rec(false, 2), '7');
    store.releaseHeld();
    await older;
    await pub.flushed();
    expect(store.data.get('/h/g1/node1')?.value).toEqual(rec(false, 2));
    expect(store.batches).toEqual([groups(3).map((g) => `/h/${g}/node1`), ['/h/g1/node1']]);
  });

  it('republishAll and a lease change write every record again in batches; forgotten groups are left out', async () => {
    const { store, pub, lease } = setup();
    await Promise.all(groups(70).map((g) => pub.publish(g, rec(true, 1))));
    await pub.forget('g0');
    lease.current = '8';
    await pub.republishAll();
    expect(store.batches.map((b) => b.length)).toEqual([64, 6, 64, 5]);
    expect(store.data.has('/h/g0/node1')).toBe(false);
    expect([...store.data.values()].every((d) => d.lease === '8')).toBe(true);
  });
});
