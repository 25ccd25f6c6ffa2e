// `vipwarden status` for issue 15.6 (version skew): a node whose agent cannot parse a group's spec shows SPEC in the
// node column and a line with why, the SpecNotUnderstood condition as etcd shows it.
import { describe, expect, it } from '@jest/globals';
import { renderStatus, type GroupStatus } from './status.js';

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
