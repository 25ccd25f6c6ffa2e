// Issue 15.6 (version skew): a candidate whose agent cannot parse a group's spec (nodes/<node>.specErrors) is not
// eligible, the group is placed on a node that understands it, a holder that cannot parse it is waited for (it lets
// go by itself), and the status carries a SpecNotUnderstood condition naming the nodes and why.
import { describe, expect, test } from '@jest/globals';
import type { AssignmentRecord, HealthRecord } from '../common/keyspace.js';
import type { FailoverGroup } from '../crds/failovergroup.js';
import { testGroup } from './testing/groups.js';
import { checksHash, plan, specHash, vipsOf, type LiveNode, type PlanInput } from './planner.js';
import { statusPatch, toSourceGroup } from './sources/kube-objects.js';

const NOW = 1_000_000;
const WHY = 'spec.checks.0.type: unknown check type "fromTheFuture"';

function group(): FailoverGroup {
  return testGroup('web', {
    nodes: [
      { name: 'a', priority: 200 },
      { name: 'b', priority: 100 },
    ],
  });
}
const G = group();
const lease = (n: string) => (n === 'a' ? '1001' : '1002');

function node(name: string, skew = false): [string, LiveNode] {
  return [
    name,
    {
      name,
      lease: lease(name),
      ttlSeconds: 2,
      maxLifetimeSeconds: 1,
      ...(skew ? { specErrorByGroup: new Map([['web', WHY]]) } : {}),
    },
  ];
}

function input(nodes: [string, LiveNode][], over: Partial<PlanInput> = {}): PlanInput {
  const h = (): HealthRecord => ({ healthy: true, priorityDelta: 0, checks: [], checksHash: checksHash(G), at: NOW });
  return {
    now: NOW,
    leader: 'ctl',
    groups: new Map([['web', G]]),
    frozen: new Set(),
    nodes: new Map(nodes),
    gone: new Map(),
    // Health that says healthy (left from before the spec changed): the spec error still wins.
    health: new Map([['web', new Map(nodes.map(([n]) => [n, h()]))]]),
    assignments: new Map(),
    released: new Map(),
    drained: new Set(),
    pins: new Map(),
    firstSeen: new Map([['web', NOW - 60_000]]),
    settleMs: 2000,
    ...over,
  };
}

function held(holder: string): PlanInput['assignments'] {
  const record: AssignmentRecord = {
    group: 'web',
    holder,
    holderLease: lease(holder),
    vips: vipsOf(G),
    release: false,
    reason: 'initial',
    specHash: specHash(G),
    at: NOW - 60_000,
    leader: 'ctl',
  };
  return new Map([['web', { record, epoch: 10 }]]);
}

describe('version skew: a node that cannot parse the spec', () => {
  test('is not eligible; the group is placed on the node that understands it, and the decision names why', () => {
    const p = plan(input([node('a', true), node('b')]));
    const d = p.decisions.get('web')!;
    expect(d.nodes.find((n) => n.name === 'a')).toMatchObject({ eligible: false, why: 'spec not understood' });
    expect(p.actions).toHaveLength(1);
    expect(p.actions[0]).toMatchObject({ type: 'put', record: { holder: 'b' } });
    expect(d.specErrors).toEqual([{ node: 'a', why: WHY }]);
  });

  test('the initial placement does not wait for its health (it will never report any)', () => {
    const p = plan(input([node('a', true), node('b')], { firstSeen: new Map([['web', NOW]]) }));
    expect(p.actions[0]).toMatchObject({ type: 'put', record: { holder: 'b' } });
  });

  test('as holder: the controller waits for it to let go (it does so by itself), then moves the group', () => {
    const waiting = plan(input([node('a', true), node('b')], { assignments: held('a') }));
    expect(waiting.actions).toEqual([]);
    expect(waiting.decisions.get('web')?.message).toMatch(/waiting for a to release \(spec not understood\)/);
    const released = new Map([
      ['web', new Map([['a', { epoch: 10, at: NOW, reason: 'spec-not-understood' as const }]])],
    ]);
    const moved = plan(input([node('a', true), node('b')], { assignments: held('a'), released }));
    expect(moved.actions[0]).toMatchObject({ type: 'put', record: { holder: 'b' } });
  });

  test('every node understands it: no spec errors in the decision', () => {
    expect(plan(input([node('a'), node('b')])).decisions.get('web')?.specErrors).toBeUndefined();
  });

  test('status: a SpecNotUnderstood condition (True) names the nodes and why; absent when all understand', () => {
    const source = toSourceGroup(
      {
        apiVersion: 'vipwarden.io/v1alpha1',
        kind: 'FailoverGroup',
        metadata: { name: 'web', generation: 2 },
        spec: { vips: [{ address: '198.18.0.100/24' }], nodes: [{ name: 'a' }, { name: 'b' }] },
      },
      undefined,
    );
    const d = plan(input([node('a', true), node('b')])).decisions.get('web');
    const s = statusPatch({ decision: d, source }, undefined, NOW) as { conditions: Record<string, unknown>[] };
    expect(s.conditions).toContainEqual(
      expect.objectContaining({
        type: 'SpecNotUnderstood',
        status: 'True',
        reason: 'AgentVersionSkew',
        message: expect.stringContaining(`a: ${WHY}`),
        observedGeneration: 2,
      }),
    );
    const ok = plan(input([node('a'), node('b')])).decisions.get('web');
    const t = statusPatch({ decision: ok, source }, undefined, NOW) as { conditions: { type: string }[] };
    expect(t.conditions.map((c) => c.type)).toEqual(['Accepted', 'Ready']);
  });
});
