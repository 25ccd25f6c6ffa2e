// Issue 15.14: the agent's own add and remove times, published under its lease, also when etcd was unreachable at
// the time, and again under a new lease.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from '@jest/globals';
import type { Etcd3 } from 'etcd3';
import { realClock } from '../common/clock.js';
import { Keys } from '../common/keyspace.js';
import { silentLogger } from '../common/log.js';
import { PresenceRecord } from '../common/presence.js';
import type { HealthStore } from './health-publisher.js';
import { PresenceLog } from './presence.js';

class Store implements HealthStore {
  readonly data = new Map<string, { value: string; lease: string }>();
  failing = 0;
  async put(key: string, value: string, lease: string): Promise<void> {
    if (this.failing > 0) {
      this.failing--;
      throw new Error('14 UNAVAILABLE: etcd cut');
    }
    this.data.set(key, { value, lease });
  }
  async delete(key: string): Promise<void> {
    this.data.delete(key);
  }
}

function setup() {
  const keys = new Keys('/vw/');
  const store = new Store();
  const t = { mono: 50_000, wall: 1_700_000_000_000 };
  const lease = Object.assign(new EventEmitter(), { lease: '7' as string | undefined });
  const log = new PresenceLog({
    client: undefined as unknown as Etcd3,
    keys,
    node: 'node1',
    clock: { mono: () => t.mono, wall: () => t.wall, sleep: realClock.sleep },
    log: silentLogger(),
    lease: lease as never,
    store,
  });
  const read = () => PresenceRecord.parse(JSON.parse(store.data.get(keys.presence('web', 'node1'))?.value ?? 'null'));
  const settle = async () => {
    for (let i = 0; i < 100 && (store.failing > 0 || !store.data.size); i++) await realClock.sleep(20);
    await realClock.sleep(20);
  };
  return { keys, store, t, lease, log, read, settle };
}

describe('PresenceLog', () => {
  it('publishes each add and removal with wall and monotonic time, under presence/<node>/<group>', async () => {
    const s = setup();
    s.log.record('web', { kind: 'add', epoch: 5, reason: 'initial' });
    s.t.mono += 1500;
    s.t.wall += 1500;
    s.log.record('web', { kind: 'remove', epoch: 5, reason: 'unhealthy' });
    await s.settle();
    expect(s.read().changes).toEqual([
      { kind: 'add', epoch: 5, at: 1_700_000_000_000, mono: 50_000, reason: 'initial' },
      { kind: 'remove', epoch: 5, at: 1_700_000_001_500, mono: 51_500, reason: 'unhealthy' },
    ]);
    expect(s.store.data.get(s.keys.presence('web', 'node1'))?.lease).toBe('7');
  });

  it('a removal after the kernel lifetime ran out is dated at the lifetime end, and says so', async () => {
    const s = setup();
    s.log.record('web', { kind: 'remove', epoch: 5, reason: 'lease-not-confirmed', mono: 50_000 - 480 });
    await s.settle();
    expect(s.read().changes).toEqual([
      {
        kind: 'remove',
        epoch: 5,
        at: 1_700_000_000_000 - 480,
        mono: 49_520,
        reason: 'lease-not-confirmed',
        expired: true,
      },
    ]);
  });

  it('what happened while etcd was cut is published once it answers, and again under a new lease', async () => {
    const s = setup();
    s.store.failing = 3;
    s.log.record('web', { kind: 'remove', epoch: 5, reason: 'lease-not-confirmed' });
    s.log.record('web', { kind: 'add', epoch: 5 });
    await s.settle();
    expect(s.read().changes.map((c) => c.kind)).toEqual(['remove', 'add']);
    s.store.data.clear(); // the old lease ended and took the key
    s.lease.lease = '8';
    s.lease.emit('granted', '8');
    await s.settle();
    expect(s.store.data.get(s.keys.presence('web', 'node1'))).toMatchObject({ lease: '8' });
    expect(s.read().changes).toHaveLength(2);
  });

  it('keeps the newest changes only', async () => {
    const s = setup();
    for (let e = 1; e <= 20; e++) s.log.record('web', { kind: 'add', epoch: e });
    await s.settle();
    expect(s.read().changes.map((c) => c.epoch)).toEqual([13, 14, 15, 16, 17, 18, 19, 20]);
  });
});
