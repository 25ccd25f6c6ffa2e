// Moving a VIP between groups by editing specs is fenced (issue 15.2): the address goes to the other group only
// after the old holder acknowledged letting go of it (a release of the epoch that still names it), or its lease
// ended and the Safety 3 wait ran out. Passes of selectGroups + plan over a small fake etcd.
import { describe, expect, test } from '@jest/globals';
import type { Entry } from '../common/etcd.js';
import type { AssignmentRecord } from '../common/keyspace.js';
import type { FailoverGroup } from '../crds/failovergroup.js';
import { testGroup } from './testing/groups.js';
import { addressOf } from './conflicts.js';
import { selectGroups } from './input.js';
import { checksHash, plan, type Action, type GoneLease, type PlanInput, type ReleasedSeen } from './planner.js';
import type { SourceGroup } from './sources/types.js';

const NOW = 1_000_000;

function group(name: string, vips: string[]): FailoverGroup {
  return testGroup(name, {
    vips: vips.map((address) => ({ address })),
    nodes: [{ name: 'a', priority: 200 }, { name: 'b' }],
  });
}

const X = '198.18.0.10/24';
const Y = '198.18.0.11/24';

class World {
  rev = 100;
  readonly assignments = new Map<string, { record: AssignmentRecord; epoch: number }>();
  readonly released = new Map<string, Map<string, ReleasedSeen>>();
  readonly gone = new Map<string, GoneLease>();
  nodes = new Map([
    ['a', { name: 'a', lease: '1', ttlSeconds: 2, maxLifetimeSeconds: 1 }],
    ['b', { name: 'b', lease: '2', ttlSeconds: 2, maxLifetimeSeconds: 1 }],
  ]);
  /** Every put that gave X to a holder, with the group. */
  readonly xGiven: { group: string; holder: string }[] = [];
  mono = NOW;

  entries(): Entry[] {
    return [...this.assignments].map(([g, a]) => ({
      key: `/t/assignments/${g}`,
      value: JSON.stringify(a.record),
      modRevision: a.epoch,
      createRevision: 1,
      lease: '0',
    }));
  }

  pass(groups: FailoverGroup[]): { actions: Action[]; rejected: Map<string, string> } {
    const sources: SourceGroup[] = groups.map((g, i) => ({ name: g.name, group: g, createdAt: i }));
    const sel = selectGroups(sources, this.entries());
    const health = new Map(
      groups.map((g) => [
        g.name,
        new Map(
          ['a', 'b'].map((n) => [n, { healthy: true, priorityDelta: 0, checks: [], checksHash: checksHash(g), at: 0 }]),
        ),
      ]),
    );
    const inp: PlanInput = {
      now: NOW,
      mono: this.mono,
      leader: 'c',
      groups: sel.groups,
      frozen: sel.frozen,
      contested: sel.contested,
      nodes: this.nodes,
      gone: this.gone,
      health,
      assignments: this.assignments,
      released: this.released,
      drained: new Set(),
      pins: new Map(),
      firstSeen: new Map(groups.map((g) => [g.name, NOW - 60_000])),
      settleMs: 0,
    };
    const p = plan(inp);
    for (const a of p.actions) {
      if (a.type !== 'put') continue;
      this.assignments.set(a.group, { record: a.record, epoch: ++this.rev });
      if (a.record.holder && !a.record.release && a.record.vips.some((v) => addressOf(v.address) === addressOf(X)))
        this.xGiven.push({ group: a.group, holder: a.record.holder });
    }
    return { actions: p.actions, rejected: sel.rejected };
  }

  /** The holder's agent lets go of the group's current epoch (release: true), after removing its addresses. */
  ack(groupName: string, node: string): void {
    const epoch = this.assignments.get(groupName)!.epoch;
    this.released.set(groupName, new Map([[node, { epoch, at: NOW, reason: 'release-requested' }]]));
  }
}

describe('a VIP moved from one group to another by editing both specs', () => {
  const before = [group('g1', [X, Y])];
  const after = [group('g1', [Y]), group('g2', [X])];

  function placed(): World {
    const w = new World();
    w.pass(before);
    expect(w.assignments.get('g1')?.record.holder).toBe('a');
    w.xGiven.length = 0;
    return w;
  }

  test('goes to the new group only after the old holder acknowledged letting go', () => {
    const w = placed();
    // Many passes with the old holder silent (a slow hook of another group holds up its pass): X stays with g1.
    for (let i = 0; i < 5; i++) {
      const { rejected } = w.pass(after);
      expect(rejected.get('g2')).toMatch(/claimed by group g1/);
      expect(w.xGiven).toEqual([]);
    }
    const g1 = w.assignments.get('g1')!.record;
    expect(g1).toMatchObject({ holder: 'a', release: true, reason: 'spec-changed' });
    expect(g1.retiring?.map((v) => v.address)).toEqual([X]);
    // The holder lets go; g1 comes back to it without X, and only then does g2 get X.
    w.ack('g1', 'a');
    w.pass(after);
    expect(w.assignments.get('g1')!.record).toMatchObject({ holder: 'a', release: false, vips: [{ address: Y }] });
    expect(w.assignments.get('g1')!.record.retiring).toBeUndefined();
    expect(w.xGiven).toEqual([]);
    w.pass(after);
    expect(w.xGiven).toEqual([{ group: 'g2', holder: 'a' }]);
  });

  test("or once the old holder's lease ended and the wait ran out", () => {
    const w = placed();
    w.pass(after);
    w.pass(after);
    w.nodes = new Map([['b', { name: 'b', lease: '2', ttlSeconds: 2, maxLifetimeSeconds: 1 }]]);
    w.gone.set('1', { lease: '1', node: 'a', goneAt: w.mono, waitMs: 900 });
    w.pass(after);
    expect(w.xGiven).toEqual([]);
    w.mono += 900;
    w.pass(after);
    expect(w.assignments.get('g1')!.record).toMatchObject({ holder: 'b', vips: [{ address: Y }] });
    expect(w.xGiven).toEqual([]);
    w.pass(after);
    expect(w.xGiven).toEqual([{ group: 'g2', holder: 'b' }]);
  });

  test('a VIP removed from a group and wanted by no other stays a quiet update (no release)', () => {
    const w = placed();
    w.pass([group('g1', [Y])]);
    expect(w.assignments.get('g1')!.record).toMatchObject({ holder: 'a', release: false, reason: 'spec-changed' });
    w.pass([group('g1', [Y])]);
    expect(w.assignments.get('g1')!.record.release).toBe(false);
  });
});
