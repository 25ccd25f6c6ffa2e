// Unit tests for controller/election.ts on a fake etcd and jest's fake timers: a leader keeps its term through an
// etcd election (keepalives unanswered while its lease is still alive on the server), writes only while the last
// answer proves the lease, and loses the term only when the lease is known gone or another controller holds the key.
import { describe, expect, test } from '@jest/globals';
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { Keys } from '../common/keyspace.js';
import { silentLogger } from '../common/log.js';
import { fakeEtcd, useFakeLeaseTime } from '../common/testing/fake-lease-etcd.js';
import { Election } from './election.js';

const T0 = 1_000_000;
const clock: Clock = {
  mono: () => Date.now(),
  wall: () => Date.now(),
  sleep: (ms) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
};
const TIMING = { ttlSeconds: 2, keepaliveIntervalMs: 250, marginMs: 500 };

const time = useFakeLeaseTime(T0);
const advance = time.advance;

async function elected() {
  const etcd = fakeEtcd(TIMING.ttlSeconds);
  const watch = Object.assign(new EventEmitter(), { cancel: async () => undefined });
  let revision = 41;
  const client = Object.assign(etcd.client, {
    if: () => ({
      then: () => ({ commit: async () => ({ succeeded: true, header: { revision: String(++revision) } }) }),
    }),
    put: () => ({ value: () => ({ lease: () => ({}) }) }),
    watch: () => ({ key: () => ({ create: async () => watch }) }),
  }) as unknown as Etcd3;
  const e = new Election(client, new Keys('/t'), 'c0', 'test', TIMING, clock, silentLogger());
  const deposed: string[] = [];
  e.on('deposed', (why) => deposed.push(why));
  await e.start(time.signal());
  await advance(0);
  expect(e.term).toMatchObject({ id: 'c0', revision: 42, lease: '1' });
  return { etcd, e, deposed, watch };
}

describe('Election through an etcd election', () => {
  test('unanswered keepalives: writes pause once the proof runs out, the term stays, answers resume it', async () => {
    const { etcd, e, deposed } = await elected();
    expect(e.provable()).toBe(true);
    // No answer at all (every member leaderless): safe until grant + TTL - margin = T0+1500.
    await advance(1499);
    expect(e.provable()).toBe(true);
    await advance(2);
    expect(e.provable()).toBe(false);
    // Before the fix the deadline deposed the leader (and the controller exited): it must not.
    expect(deposed).toEqual([]);
    expect(e.term).toBeDefined();
    // The new etcd leader answers (the lease lives: a new leader extends every lease).
    await advance(500);
    const s = etcd.last();
    s.answer('1', 2);
    expect(e.provable()).toBe(true);
    expect(deposed).toEqual([]);
  });

  test('the lease is gone on the server (answer TTL 0): deposed', async () => {
    const { etcd, deposed } = await elected();
    await advance(250);
    etcd.last().answer('1', 0);
    expect(deposed).toEqual(['leader lease: lease expired on the server']);
  });

  test('the lease expired unnoticed, then TTL 0 once etcd is back: paused first, deposed then', async () => {
    const { etcd, e, deposed } = await elected();
    await advance(3000);
    expect(e.provable()).toBe(false);
    expect(deposed).toEqual([]);
    etcd.last().answer('1', 0);
    expect(deposed).toHaveLength(1);
  });

  test('another controller holds the leader key: deposed', async () => {
    const { watch, deposed } = await elected();
    watch.emit('put', { create_revision: '77' });
    expect(deposed).toEqual(['another controller holds the leader key']);
  });
});
