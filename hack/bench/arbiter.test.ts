import { describe, expect, test } from '@jest/globals';
import { arbiterTable, splitModes, type ArbiterIteration } from './arbiter.js';

describe('arbiter modes', () => {
  test('splitModes separates the node fault modes from the arbiter modes', () => {
    expect(splitModes('link,etcd-down,etcd-cut')).toEqual({ nodeModes: 'link', arbiter: ['etcd-down', 'etcd-cut'] });
    expect(splitModes('etcd-leader')).toEqual({ nodeModes: '', arbiter: ['etcd-leader'] });
    expect(splitModes(undefined)).toEqual({ nodeModes: undefined, arbiter: [] });
  });

  test('the table: figures per mode with the targets, keepalived as not applicable', () => {
    const r = (mode: ArbiterIteration['mode'], over: Partial<ArbiterIteration>): ArbiterIteration => ({
      profile: 'vipwarden-default',
      mode,
      iteration: 1,
      outageMs: 0,
      dualMs: 0,
      holders: ['node1'],
      dropped: false,
      ...over,
    });
    const rows = arbiterTable([
      r('etcd-down', {}),
      r('etcd-down', { iteration: 2, outageMs: 1200, dropped: true }),
      r('etcd-cut', { outageMs: 3100, stepDownMs: 1050, holders: ['node1', 'node2'], dropped: true }),
      r('etcd-leader', { leaderlessMs: 420 }),
      { profile: 'keepalived-default', mode: 'etcd-down', iteration: 0, note: 'no arbiter: n/a' },
    ]).split('\n');
    expect(rows[2]).toBe(
      '| vipwarden-default | etcd-down | 2 | 0, 1200 | 0 | 1 of 2 | node1 | –, – | 0 ms outage: MISSED; 0 ms dual: met |',
    );
    expect(rows[3]).toBe(
      '| vipwarden-default | etcd-cut | 1 | 3100 | 0 | 1 of 1 | node1 node2 | 1050 | 0 ms dual: met; outage ≤ link cut: compare |',
    );
    expect(rows[4]).toBe('| vipwarden-default | etcd-leader | 1 | 0 | 0 | 0 of 1 | node1 | 420 | 0 ms outage: met |');
    expect(rows[5]).toBe('| keepalived-default | etcd-down | 0 | no arbiter: n/a | | | | | |');
  });
});
