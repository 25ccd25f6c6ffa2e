// Health publishing against a fake etcd store whose writes the test makes fail, hang or land.
import { describe, expect, it } from '@jest/globals';
import type { HealthRecord } from '../common/keyspace.js';
import { realClock } from '../common/clock.js';
import { silentLogger } from '../common/log.js';
import { HealthPublisher, type HealthStore } from './health-publisher.js';

const rec = (healthy: boolean, at: number): HealthRecord => ({
  healthy,
  priorityDelta: 0,
  checks: [],
  checksHash: 'c',
  at,
});

/** A store whose puts fail while `failing` is true; `hold` makes the next put wait until released. */
class FakeStore implements HealthStore {
  readonly data = new Map<string, { value: HealthRecord; lease: string }>();
  readonly attempts: HealthRecord[] = [];
  failing = 0;
  private held: (() => void)[] = [];
  holdNext = false;
  async put(key: string, value: string, lease: string): Promise<void> {
    const v = JSON.parse(value) as HealthRecord;
    this.attempts.push(v);
    if (this.holdNext) {
      this.holdNext = false;
      await new Promise<void>((r) => this.held.push(r));
    }
    if (this.failing > 0) {
      this.failing--;
      throw new Error('14 UNAVAILABLE: etcd cut');
    }
    this.data.set(key, { value: v, lease });
  }
  async delete(key: string): Promise<void> {
    this.data.delete(key);
  }
  releaseHeld(): void {
    for (const r of this.held.splice(0)) r();
  }
}

function setup(lease: { current: string | undefined } = { current: '7' }) {
  const store = new FakeStore();
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

describe('HealthPublisher', () => {
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
    const store = new FakeStore();
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
