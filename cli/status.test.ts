// `vipwarden status` for issue 15.6 (version skew): a node whose agent cannot parse a group's spec shows SPEC in the
// node column and a line with why, the SpecNotUnderstood condition as etcd shows it; `vipwarden events` lists the
// periods a VIP was on no node (issue 15.14).
import { describe, expect, it } from '@jest/globals';
import type { EventRecord } from '../common/keyspace.js';
import type { OutageRecord } from '../common/presence.js';
import { renderEvents, renderOutages, renderStatus, type GroupStatus } from './status.js';

const web: GroupStatus = {
  group: 'web',
  vips: ['198.18.0.100/24'],
  holder: 'node2',
  epoch: 42,
  pending: null,
  failback: 'auto',
  pinnedTo: null,
  nodes: [
    {
      name: 'node1',
      priority: 100,
      live: true,
      healthy: null,
      drained: false,
      specError: 'spec.checks.0.type: unknown check type "fromTheFuture"',
      checks: [],
    },
    { name: 'node2', priority: 90, live: true, healthy: true, drained: false, checks: [] },
  ],
};

describe('renderStatus: version skew', () => {
  it('marks the node SPEC and lists why it cannot parse the spec', () => {
    const lines = renderStatus({ leader: 'c', groups: [web] });
    expect(lines[2]).toContain('node1(100,up,SPEC) node2(90,up,ok)');
    const head = lines.findIndex((l) => l.includes('SPEC NOT UNDERSTOOD'));
    expect(head).toBeGreaterThan(2);
    expect(lines[head + 1]).toMatch(/^web\s+node1\s+spec\.checks\.0\.type: unknown check type "fromTheFuture"$/);
  });
  it('shows no such table when every node understands the spec', () => {
    const lines = renderStatus({ leader: 'c', groups: [{ ...web, nodes: [web.nodes[1]!] }] });
    expect(lines.some((l) => l.includes('SPEC NOT UNDERSTOOD'))).toBe(false);
  });
});

describe('renderEvents: the outages the agents measured (issue 15.14)', () => {
  const at = Date.UTC(2026, 11, 2, 1, 0, 0, 0);
  const outage = (o: Partial<OutageRecord> = {}): OutageRecord => ({
    group: 'web',
    from: 'node1',
    to: 'node1',
    reason: 'holder-let-go',
    releaseReason: 'lease-not-confirmed',
    epoch: 12,
    fromAt: at,
    toAt: at + 1530,
    gapMs: 1529.6,
    measured: 'monotonic',
    ...o,
  });
  const ev: EventRecord = { group: 'web', from: null, to: 'node1', reason: 'initial', at, epoch: 12 };

  it('lists them after the transitions: from, until, nodes, reason with why the holder let go, the gap', () => {
    const lines = renderEvents(
      [ev],
      [outage(), outage({ from: 'node1', to: 'node2', reason: 'lease-expired', epoch: 15, expired: true })],
    );
    expect(lines[0]).toMatch(/^TIME\s+GROUP\s+EPOCH/);
    expect(lines[2]).toBe('');
    expect(lines[3]).toMatch(/^VIP ON NO NODE FROM\s+UNTIL\s+GROUP\s+EPOCH\s+FROM\s+TO\s+REASON\s+GAP$/);
    expect(lines[4]).toMatch(
      /^2026-12-02T01:00:00\.000Z\s+2026-12-02T01:00:01\.530Z\s+web\s+12\s+node1\s+node1\s+holder-let-go \(lease-not-confirmed\)\s+1530ms$/,
    );
    expect(lines[5]).toMatch(/\slease-expired \(lease-not-confirmed\)\s+1530ms \(lifetime ran out first\)$/);
  });

  it('an outage whose start nobody reported shows ? and why; no outages: the table as before', () => {
    const lines = renderOutages([outage({ fromAt: undefined, gapMs: undefined, message: 'node1 did not say' })]);
    expect(lines[1]).toMatch(/^\?\s+2026-12-02T01:00:01\.530Z\s.*\s\? \(node1 did not say\)$/);
    expect(renderEvents([], [])).toEqual(['no events']);
    expect(renderEvents([ev])).toHaveLength(2);
  });
});
