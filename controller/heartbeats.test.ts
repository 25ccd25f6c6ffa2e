// Unit tests for controller/heartbeats.ts without etcd: the suspicion is fed by hand and check() called directly
// (the watch is exercised by test/e2e/heartbeat.test.ts).
import { describe, expect, test } from '@jest/globals';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { Keys } from '../common/keyspace.js';
import { silentLogger } from '../common/log.js';
import { HeartbeatMonitor, type Revocable } from './heartbeats.js';

function setup(over: { leading?: () => boolean; fail?: boolean } = {}) {
  let now = 0;
  const clock: Clock = { mono: () => now, wall: () => now, sleep: async () => undefined };
  const nodes: Revocable[] = [
    { node: 'n1', lease: 'L1', heartbeatMs: 50, holds: true },
    { node: 'n2', lease: 'L2', heartbeatMs: 50, holds: false },
    { node: 'n3', lease: 'L3', heartbeatMs: 50, holds: true },
  ];
  const revoked: string[] = [];
  const told: [string, string][] = [];
  const m = new HeartbeatMonitor({
    client: {} as Etcd3,
    keys: new Keys('/t/'),
    clock,
    log: silentLogger(),
    misses: 3,
    nodes: () => nodes,
    leading: over.leading ?? (() => true),
    onRevoked: (lease, node) => told.push([lease, node]),
    revoke: async (lease) => {
      revoked.push(lease);
      if (over.fail) throw new Error('unavailable');
    },
  });
  m.suspicion.restart(0, ['n1', 'n2', 'n3']);
  /** Beats `who` every 50 ms up to `to`, then checks. */
  const run = async (who: string[], from: number, to: number) => {
    for (let t = from; t < to; t += 50) {
      now = t;
      for (const n of who) m.suspicion.beat(n, t, `L${n.slice(1)}`);
      m.check();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { m, revoked, told, run };
}

describe('HeartbeatMonitor', () => {
  test('revokes a silent holder once, and tells the memory', async () => {
    const { revoked, told, run } = setup();
    await run(['n1', 'n2', 'n3'], 0, 500);
    await run(['n2', 'n3'], 500, 1500);
    expect(revoked).toEqual(['L1']);
    expect(told).toEqual([['L1', 'n1']]);
  });

  test('a silent node that holds nothing is left alone', async () => {
    const { revoked, run } = setup();
    await run(['n1', 'n2', 'n3'], 0, 500);
    await run(['n1', 'n3'], 500, 1500);
    expect(revoked).toEqual([]);
  });

  test('only while leading', async () => {
    let leading = false;
    const { revoked, run } = setup({ leading: () => leading });
    await run(['n1', 'n2', 'n3'], 0, 500);
    await run(['n2', 'n3'], 500, 1000);
    expect(revoked).toEqual([]);
    leading = true;
    await run(['n2', 'n3'], 1000, 1100);
    expect(revoked).toEqual(['L1']);
  });

  test('a failed revocation is not retried and tells nobody (the TTL still ends the lease)', async () => {
    const { revoked, told, run } = setup({ fail: true });
    await run(['n1', 'n2', 'n3'], 0, 500);
    await run(['n2', 'n3'], 500, 1500);
    expect(revoked).toEqual(['L1']);
    expect(told).toEqual([]);
  });
});
