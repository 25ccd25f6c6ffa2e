// Issue 15.14: the periods a VIP was on no node, paired from the agents' own add and remove times.
import { describe, expect, test } from '@jest/globals';
import type { Entry } from '../common/etcd.js';
import { Keys } from '../common/keyspace.js';
import { silentLogger } from '../common/log.js';
import type { PresenceRecord } from '../common/presence.js';
import { pairOutages, type NodeChange } from './gaps.js';
import { OutageHistory } from './outages.js';

const add = (node: string, epoch: number, at: number, reason = 'initial', mono = at - 500): NodeChange => ({
  node,
  boot: 'b1',
  kind: 'add',
  epoch,
  at,
  mono,
  reason,
});
const rm = (node: string, epoch: number, at: number, reason: string, more: Partial<NodeChange> = {}): NodeChange => ({
  node,
  boot: 'b1',
  kind: 'remove',
  epoch,
  at,
  mono: at - 500,
  reason,
  ...more,
});

describe('pairOutages', () => {
  test('a holder that let go on a lost lease and took the same epoch back: holder-let-go, on its monotonic clock', () => {
    // The wall clock stepped 300 ms meanwhile: the monotonic figure is what clients saw.
    const out = pairOutages('web', [
      add('a', 5, 1000),
      rm('a', 5, 3000, 'lease-not-confirmed'),
      add('a', 5, 4850, 'initial', 4850 - 500 - 300),
    ]);
    expect(out).toEqual([
      {
        group: 'web',
        from: 'a',
        to: 'a',
        reason: 'holder-let-go',
        releaseReason: 'lease-not-confirmed',
        epoch: 5,
        fromAt: 3000,
        toAt: 4850,
        gapMs: 1550,
        measured: 'monotonic',
      },
    ]);
  });

  test('a move after a lease ended: from the old holder removal (its kernel lifetime ran out first) to the new add', () => {
    const out = pairOutages('web', [
      add('a', 5, 1000),
      rm('a', 5, 5000, 'lease-not-confirmed', { expired: true }),
      add('b', 9, 6234, 'lease-expired'),
    ]);
    expect(out).toEqual([
      expect.objectContaining({
        from: 'a',
        to: 'b',
        reason: 'lease-expired',
        releaseReason: 'lease-not-confirmed',
        epoch: 9,
        gapMs: 1234,
        measured: 'wall',
        expired: true,
      }),
    ]);
  });

  test('a planned failback: the release to the add, whichever order the nodes reported them in', () => {
    const changes = [
      add('b', 9, 6000, 'lease-expired'),
      add('a', 12, 7110, 'failback'),
      rm('b', 9, 7000, 'release-requested'),
    ];
    expect(pairOutages('web', changes)).toEqual([
      expect.objectContaining({
        from: 'b',
        to: 'a',
        reason: 'failback',
        releaseReason: 'release-requested',
        gapMs: 110,
      }),
    ]);
  });

  test('several outages in one history, each paired with the add that ended it', () => {
    const out = pairOutages('web', [
      add('a', 5, 1000),
      rm('a', 5, 2000, 'unhealthy'),
      add('b', 7, 2100, 'unhealthy'),
      rm('b', 7, 3000, 'lease-not-confirmed'),
      add('b', 7, 3400),
    ]);
    expect(out.map((o) => [o.from, o.to, o.reason, o.gapMs])).toEqual([
      ['a', 'b', 'unhealthy', 100],
      ['b', 'b', 'holder-let-go', 400],
    ]);
  });

  test('an old holder that never said it let go (killed): an outage without a start, naming it', () => {
    const out = pairOutages('web', [add('a', 5, 1000), add('b', 9, 4000, 'lease-expired')]);
    expect(out).toEqual([
      expect.objectContaining({ from: 'a', to: 'b', epoch: 9, toAt: 4000, message: expect.stringMatching(/killed/) }),
    ]);
    expect(out[0]!.gapMs).toBeUndefined();
  });

  test('a removal the clocks put after the new add is no outage; a first add or a removal not yet followed is none', () => {
    expect(
      pairOutages('web', [add('a', 5, 1000), add('b', 9, 4000, 'move'), rm('a', 5, 4010, 'release-requested')]),
    ).toEqual([]);
    expect(pairOutages('web', [add('a', 5, 1000)])).toEqual([]);
    expect(pairOutages('web', [add('a', 5, 1000), rm('a', 5, 2000, 'shutting-down')])).toEqual([]);
  });

  test('mono times of another boot (a restarted machine) are not compared: the wall clocks are', () => {
    const out = pairOutages('web', [
      rm('a', 5, 2000, 'shutting-down'),
      { ...add('a', 6, 9000, 'recovered', 10), boot: 'b2' },
    ]);
    expect(out[0]).toMatchObject({ gapMs: 7000, measured: 'wall', reason: 'recovered' });
  });
});

describe('OutageHistory', () => {
  const keys = new Keys('/vw/');
  const entry = (node: string, rec: PresenceRecord): Entry => ({
    key: keys.presence('web', node),
    value: JSON.stringify(rec),
    modRevision: 1,
    createRevision: 1,
    lease: '1',
  });
  const changes = (...c: NodeChange[]) => c.map(({ node: _n, boot: _b, ...rest }) => rest);

  test('keeps what an agent said after its key went with its lease, and writes each outage once', () => {
    const h = new OutageHistory({ keys, log: silentLogger() });
    expect([
      ...h.observe([
        entry('a', { boot: 'b1', changes: changes(add('a', 5, 1000), rm('a', 5, 5000, 'lease-not-confirmed')) }),
      ]),
    ]).toEqual(['web']);
    // a's key is gone (its lease ended); b took the group.
    const groups = h.observe([entry('b', { boot: 'b1', changes: changes(add('b', 9, 6200, 'lease-expired')) })]);
    const p = h.pending(groups);
    expect(p).toHaveLength(1);
    expect(p[0]!.key).toBe(keys.outage('web', 9, 'b', 6200));
    expect(p[0]!.record).toMatchObject({ from: 'a', to: 'b', gapMs: 1200 });
    h.wrote('web', p[0]!.key, p[0]!.json);
    expect(h.pending(['web'])).toEqual([]);
    // The same record again changes nothing.
    expect(h.observe([entry('b', { boot: 'b1', changes: changes(add('b', 9, 6200, 'lease-expired')) })]).size).toBe(0);
  });
});
