// Table tests for the controller's pure planner (DESIGN.md "Safety", rule 3: a group moves away from its holder only
// once the holder released the current epoch, or its lease is gone and its longest address lifetime has run out).
import { describe, expect, test } from '@jest/globals';
import { fnv1a } from '../common/hash.js';
import { parseCidr } from '../common/ip.js';
import type * as K from '../common/keyspace.js';
import { parseFailoverGroup, type FailoverGroup, type FailoverGroupSpecInput } from '../crds/failovergroup.js';
import {
  checksHash,
  findConflicts,
  plan,
  planYielding,
  rankNodes,
  specHash,
  vipsOf,
  type Action,
  type CurrentAssignment,
  type GoneLease,
  type LiveNode,
  type PlanInput,
} from './planner.js';

const NOW = 1_000_000;
const LEADER = 'ctl-1';

function group(name: string, spec: Partial<FailoverGroupSpecInput> = {}): FailoverGroup {
  const r = parseFailoverGroup({
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name },
    spec: {
      vips: [{ address: '198.18.0.100/24' }],
      nodes: [
        { name: 'a', priority: 100 },
        { name: 'b', priority: 200 },
        { name: 'c', priority: 150 },
      ],
      checks: [{ name: 'web', type: 'tcp', tcp: { port: 80 } }],
      // The tables below are the behaviour without failsafe; what failsafe adds (the promise set, rule 5's wait)
      // is tested in failsafe.test.ts.
      arbiterLoss: 'release',
      ...spec,
    },
  });
  if (!r.ok) throw r.error;
  return r.group;
}

/** Lease ids: node "a" -> "1001", restarted -> "2001". */
const leaseOf = (node: string, gen = 1) => String(gen * 1000 + node.charCodeAt(0) - 96);

function live(...names: string[]): Map<string, LiveNode> {
  return new Map(names.map((n) => [n, { name: n, lease: leaseOf(n), ttlSeconds: 2, maxLifetimeSeconds: 1 }]));
}

function health(
  g: FailoverGroup,
  spec: Record<string, Partial<K.HealthRecord> | boolean>,
): Map<string, Map<string, K.HealthRecord>> {
  const m = new Map<string, K.HealthRecord>();
  for (const [node, h] of Object.entries(spec)) {
    const base: K.HealthRecord = {
      healthy: true,
      priorityDelta: 0,
      checks: [],
      checksHash: checksHash(g),
      at: NOW - 10_000,
    };
    m.set(node, typeof h === 'boolean' ? { ...base, healthy: h } : { ...base, ...h });
  }
  return new Map([[g.name, m]]);
}

function assignment(
  g: FailoverGroup,
  holder: string | null,
  epoch: number,
  fields: Partial<K.AssignmentRecord> = {},
): Map<string, CurrentAssignment> {
  const record: K.AssignmentRecord = {
    group: g.name,
    holder,
    holderLease: holder === null ? null : leaseOf(holder),
    vips: vipsOf(g),
    release: false,
    reason: 'initial',
    specHash: specHash(g),
    at: NOW - 60_000,
    leader: LEADER,
    ...fields,
  };
  return new Map([[g.name, { record, epoch }]]);
}

function input(g: FailoverGroup | undefined, over: Partial<PlanInput> = {}): PlanInput {
  const groups = new Map<string, FailoverGroup>(g ? [[g.name, g]] : []);
  return {
    now: NOW,
    leader: LEADER,
    groups,
    frozen: new Set(),
    nodes: new Map(),
    gone: new Map(),
    health: new Map(),
    assignments: new Map(),
    released: new Map(),
    drained: new Set(),
    pins: new Map(),
    // Seen long ago: the settle wait is over unless a test says otherwise.
    firstSeen: new Map(g ? [[g.name, NOW - 60_000]] : []),
    settleMs: 2000,
    ...over,
  };
}

function released(g: string, node: string, epoch: number, at: number, reason: K.ReleaseReason | null = 'unhealthy') {
  return new Map([[g, new Map([[node, { epoch, at, reason: reason ?? undefined }]])]]);
}

function onlyPut(actions: Action[]): Extract<Action, { type: 'put' }> {
  expect(actions).toHaveLength(1);
  const a = actions[0]!;
  if (a.type !== 'put') throw new Error(`expected a put, got ${a.type}`);
  return a;
}

/** Every action names the epoch the plan was computed from: the executor's txn compares it (Safety 4). */
function expectEpochs(inp: PlanInput, actions: Action[]): void {
  for (const a of actions) expect(a.expectEpoch).toBe(inp.assignments.get(a.group)?.epoch ?? 0);
}

function run(inp: PlanInput) {
  const p = plan(inp);
  expectEpochs(inp, p.actions);
  return p;
}

const G = group('web');
const allHealthy = health(G, { a: true, b: true, c: true });

describe('initial placement', () => {
  test('goes to the highest priority eligible node, with the full record', () => {
    const inp = input(G, { nodes: live('a', 'b', 'c'), health: allHealthy });
    const p = run(inp);
    const put = onlyPut(p.actions);
    expect(put).toEqual({
      type: 'put',
      group: 'web',
      expectEpoch: 0,
      record: {
        group: 'web',
        holder: 'b',
        holderLease: leaseOf('b'),
        vips: [{ address: '198.18.0.100/24' }],
        release: false,
        reason: 'initial',
        specHash: specHash(G),
        at: NOW,
        leader: LEADER,
      },
      event: { from: null, to: 'b', reason: 'initial' },
    });
    expect(p.decisions.get('web')).toMatchObject({ phase: 'Active', holder: null, epoch: 0, state: 'none' });
    expect(p.requeueAt).toBeUndefined();
  });

  test.each([
    ['b unhealthy', { a: true, b: false, c: true }, 'c'],
    ['b and c unhealthy', { a: true, b: false, c: false }, 'a'],
  ])('skips ineligible nodes: %s', (_name, h, want) => {
    const p = run(input(G, { nodes: live('a', 'b', 'c'), health: health(G, h) }));
    expect(onlyPut(p.actions).record.holder).toBe(want);
    expect(p.decisions.get('web')?.phase).toBe('Degraded');
  });

  test('a drained node is not chosen', () => {
    const p = run(input(G, { nodes: live('a', 'b', 'c'), health: allHealthy, drained: new Set(['b']) }));
    expect(onlyPut(p.actions).record.holder).toBe('c');
  });

  describe('ties break by a stable hash, the same for every replica and input order', () => {
    const names = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const permutations = [names, [...names].reverse(), ['n3', 'n5', 'n1', 'n4', 'n2'], ['n2', 'n4', 'n1', 'n5', 'n3']];
    test.each(['web', 'db', 'mail', 'dns-1', 'ldap'])('group %s', (gname) => {
      const want = [...names].sort((x, y) => fnv1a(`${gname}/${y}`) - fnv1a(`${gname}/${x}`))[0];
      for (const order of permutations) {
        const g = group(gname, { nodes: order.map((n) => ({ name: n, priority: 100 })) });
        const hm = new Map<string, K.HealthRecord>();
        for (const n of [...order].reverse())
          hm.set(n, { healthy: true, priorityDelta: 0, checks: [], checksHash: checksHash(g), at: 0 });
        const nodes = new Map(
          [...order]
            .reverse()
            .map((n) => [n, { name: n, lease: `7${names.indexOf(n)}`, ttlSeconds: 2, maxLifetimeSeconds: 1 }]),
        );
        const inp = input(g, { nodes, health: new Map([[gname, hm]]) });
        expect(onlyPut(run(inp).actions).record.holder).toBe(want);
        expect(rankNodes(g, inp).map((n) => n.name)).toEqual(
          [...names].sort((x, y) => fnv1a(`${gname}/${y}`) - fnv1a(`${gname}/${x}`)),
        );
      }
    });

    test('different groups spread over tied nodes', () => {
      const holders = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const g = group(`g${i}`, { nodes: names.map((n) => ({ name: n })) });
        const hm = new Map(
          names.map((n): [string, K.HealthRecord] => [
            n,
            { healthy: true, priorityDelta: 0, checks: [], checksHash: checksHash(g), at: 0 },
          ]),
        );
        const inp = input(g, { nodes: live(...names), health: new Map([[g.name, hm]]) });
        holders.add(onlyPut(run(inp).actions).record.holder ?? '');
      }
      expect(holders.size).toBeGreaterThan(1);
    });
  });
});

describe('settle wait before the first placement', () => {
  const firstSeen = new Map([['web', NOW - 500]]);

  test.each([
    ['b has no health report', live('a', 'b', 'c'), health(G, { a: true, c: true }), 'b'],
    ['b has no lease yet', live('a', 'c'), health(G, { a: true, c: true }), 'b'],
    ['b reports for other checks', live('a', 'b', 'c'), health(G, { a: true, b: { checksHash: 'old' }, c: true }), 'b'],
  ])('waits while %s, then places after settleMs', (_name, nodes, h, waitingFor) => {
    const early = run(input(G, { nodes, health: h, firstSeen }));
    expect(early.actions).toEqual([]);
    expect(early.requeueAt).toBe(NOW - 500 + 2000);
    expect(early.decisions.get('web')).toMatchObject({
      phase: 'Pending',
      message: `waiting for health from ${waitingFor}`,
    });

    const late = run(input(G, { now: NOW - 500 + 2000, nodes, health: h, firstSeen }));
    expect(onlyPut(late.actions).record).toMatchObject({ holder: 'c', reason: 'initial', at: NOW + 1500 });
    expect(late.requeueAt).toBeUndefined();
  });

  test('places at once when every candidate has reported', () => {
    const p = run(input(G, { nodes: live('a', 'b', 'c'), health: allHealthy, firstSeen }));
    expect(onlyPut(p.actions).record.holder).toBe('b');
  });

  test('a candidate that reported unhealthy or is drained is not waited for', () => {
    const p = run(
      input(G, {
        nodes: live('a', 'b', 'c'),
        health: health(G, { a: true, b: false, c: true }),
        drained: new Set(['c']),
        firstSeen,
      }),
    );
    expect(onlyPut(p.actions).record.holder).toBe('a');
  });

  test('a group never seen before starts its settle time now', () => {
    const p = run(input(G, { nodes: live('a', 'c'), health: health(G, { a: true, c: true }), firstSeen: new Map() }));
    expect(p.actions).toEqual([]);
    expect(p.requeueAt).toBe(NOW + 2000);
  });

  test('the settle wait applies only to the first placement', () => {
    // Assignment exists with holder null (nobody was eligible): the next eligible node gets it at once.
    const p = run(
      input(G, {
        nodes: live('a', 'c'),
        health: health(G, { a: true, c: true }),
        firstSeen,
        assignments: assignment(G, null, 4, { reason: 'no-healthy-node' }),
      }),
    );
    const put = onlyPut(p.actions);
    expect(put.record).toMatchObject({ holder: 'c', reason: 'recovered' });
    expect(put.event).toEqual({ from: null, to: 'c', reason: 'recovered' });
  });
});

describe('nobody eligible', () => {
  test('no write when there never was a holder', () => {
    const p = run(input(G, { nodes: live('a', 'b', 'c'), health: health(G, { a: false, b: false, c: false }) }));
    expect(p.actions).toEqual([]);
    expect(p.decisions.get('web')).toMatchObject({ phase: 'NoHealthyNode', message: 'no eligible node' });
  });

  test('no write when the assignment already names nobody', () => {
    const p = run(
      input(G, {
        nodes: live('a'),
        health: health(G, { a: false }),
        assignments: assignment(G, null, 9, { reason: 'no-healthy-node' }),
      }),
    );
    expect(p.actions).toEqual([]);
  });

  test('no write when no candidate has a lease (after the settle wait)', () => {
    const p = run(input(G));
    expect(p.actions).toEqual([]);
    expect(p.decisions.get('web')?.nodes.map((n) => n.why)).toEqual(['no lease', 'no lease', 'no lease']);
  });

  test('a released holder with no successor: holder null, with an event', () => {
    const inp = input(G, {
      nodes: live('a', 'b'),
      health: health(G, { a: false, b: false }),
      assignments: assignment(G, 'b', 12),
      released: released('web', 'b', 12, NOW - 40),
    });
    const put = onlyPut(run(inp).actions);
    expect(put.record).toMatchObject({ holder: null, holderLease: null, reason: 'no-healthy-node', release: false });
    expect(put.event).toEqual({ from: 'b', to: null, reason: 'unhealthy', outageMs: 40 });
  });
});

describe('holder healthy', () => {
  test.each(['auto', 'manual'] as const)('stays, no action (failback %s)', (failback) => {
    const g = group('web', { failback });
    const p = run(
      input(g, {
        nodes: live('a', 'b', 'c'),
        health: health(g, { a: true, b: true, c: true }),
        assignments: assignment(g, 'b', 7),
      }),
    );
    expect(p.actions).toEqual([]);
    expect(p.decisions.get('web')).toMatchObject({
      phase: 'Active',
      holder: 'b',
      epoch: 7,
      state: 'holding',
      message: 'held by b',
    });
  });

  test('phase Degraded when another candidate is not eligible', () => {
    const p = run(
      input(G, { nodes: live('a', 'b'), health: health(G, { a: true, b: true }), assignments: assignment(G, 'b', 7) }),
    );
    expect(p.actions).toEqual([]);
    expect(p.decisions.get('web')?.phase).toBe('Degraded');
  });
});

describe('holder unhealthy: waits for its own release, then moves', () => {
  const base = { nodes: live('a', 'b', 'c'), assignments: assignment(G, 'b', 7) };

  test.each([
    ['unhealthy', health(G, { a: true, b: false, c: true })],
    ['no health report', health(G, { a: true, c: true })],
    ['health report for other checks', health(G, { a: true, b: { checksHash: 'other' }, c: true })],
  ])('%s: no release request, no move', (why, h) => {
    const p = run(input(G, { ...base, health: h }));
    expect(p.actions).toEqual([]);
    expect(p.decisions.get('web')).toMatchObject({ state: 'holding', message: `waiting for b to release (${why})` });
  });

  test('a release of an older epoch does not count', () => {
    const p = run(
      input(G, {
        ...base,
        health: health(G, { a: true, b: false, c: true }),
        released: released('web', 'b', 6, NOW - 100),
      }),
    );
    expect(p.actions).toEqual([]);
  });

  test.each<[K.ReleaseReason | null, string]>([
    ['unhealthy', 'unhealthy'],
    ['shutting-down', 'shutting-down'],
    ['release-requested', 'released'],
    [null, 'released'],
  ])('released the current epoch (%j): assigns the next node, reason %s', (said, reason) => {
    const inp = input(G, {
      ...base,
      health: health(G, { a: true, b: { healthy: false, failingSince: NOW - 300 }, c: true }),
      released: released('web', 'b', 7, NOW - 50, said),
    });
    const p = run(inp);
    const put = onlyPut(p.actions);
    expect(put).toEqual({
      type: 'put',
      group: 'web',
      expectEpoch: 7,
      record: {
        group: 'web',
        holder: 'c',
        holderLease: leaseOf('c'),
        vips: vipsOf(G),
        release: false,
        reason,
        specHash: specHash(G),
        at: NOW,
        leader: LEADER,
        detectedAt: NOW - 300,
      },
      // A health failure: detection from the first failed check to the release, outage from it to now.
      event: { from: 'b', to: 'c', reason, detectMs: 250, outageMs: 300 },
    });
    expect(p.decisions.get('web')?.state).toBe('released');
  });

  test('a holder that released is not offered the group again in the same breath, even if healthy and best', () => {
    const p = run(
      input(G, { ...base, health: allHealthy, released: released('web', 'b', 7, NOW - 5, 'shutting-down') }),
    );
    expect(onlyPut(p.actions).record).toMatchObject({ holder: 'c', reason: 'shutting-down' });
  });
});

describe("holder's lease gone", () => {
  const gone = (waitMs: number, goneAt = NOW - 1000): Map<string, GoneLease> =>
    new Map([[leaseOf('b'), { lease: leaseOf('b'), node: 'b', goneAt, waitMs, ttlMs: 2000 }]]);
  const base = { health: health(G, { a: true, c: true }), assignments: assignment(G, 'b', 7) };

  test('waits until goneAt + waitMs (requeueAt set), then assigns with reason lease-expired', () => {
    const waiting = run(input(G, { ...base, nodes: live('a', 'c'), gone: gone(3000) }));
    expect(waiting.actions).toEqual([]);
    expect(waiting.requeueAt).toBe(NOW + 2000);
    expect(waiting.decisions.get('web')).toMatchObject({ state: 'gone-waiting', holder: 'b' });

    // One millisecond early: still waiting.
    const almost = run(input(G, { ...base, now: NOW + 1999, nodes: live('a', 'c'), gone: gone(3000) }));
    expect(almost.actions).toEqual([]);

    const p = run(input(G, { ...base, now: NOW + 2000, nodes: live('a', 'c'), gone: gone(3000) }));
    const put = onlyPut(p.actions);
    expect(put.expectEpoch).toBe(7);
    // The node was last heard from about one TTL before its lease was seen gone.
    expect(put.record).toMatchObject({
      holder: 'c',
      holderLease: leaseOf('c'),
      reason: 'lease-expired',
      release: false,
      detectedAt: NOW - 1000 - 2000,
    });
    expect(put.event).toEqual({ from: 'b', to: 'c', reason: 'lease-expired', detectMs: 2000, outageMs: 3000 + 2000 });
    expect(p.requeueAt).toBeUndefined();
  });

  test('waitMs 0: moves as soon as the lease is seen gone', () => {
    const p = run(input(G, { ...base, nodes: live('a', 'c'), gone: gone(0, NOW) }));
    expect(onlyPut(p.actions).record.reason).toBe('lease-expired');
  });

  test('a lease that is gone but not recorded in `gone` (controller restart) is treated as waiting', () => {
    const p = run(input(G, { ...base, nodes: live('a', 'c') }));
    expect(p.actions).toEqual([]);
    expect(p.decisions.get('web')?.state).toBe('gone-waiting');
    expect(p.requeueAt).toBe(NOW);
  });

  test('a node restarted with a new lease is not the holder: the old lease counts as gone', () => {
    const nodes = new Map([
      ...live('a', 'c'),
      ['b', { name: 'b', lease: leaseOf('b', 2), ttlSeconds: 2, maxLifetimeSeconds: 1 }],
    ]);
    const h = health(G, { a: true, b: true, c: true });
    const waiting = run(input(G, { ...base, health: h, nodes }));
    expect(waiting.actions).toEqual([]);
    expect(waiting.decisions.get('web')?.state).toBe('gone-waiting');

    const stillWaiting = run(input(G, { ...base, health: h, nodes, gone: gone(3000) }));
    expect(stillWaiting.actions).toEqual([]);
    expect(stillWaiting.requeueAt).toBe(NOW + 2000);

    // After the wait, b (best priority) may hold it again, but under its new lease.
    const p = run(input(G, { ...base, now: NOW + 2000, health: h, nodes, gone: gone(3000) }));
    expect(onlyPut(p.actions).record).toMatchObject({
      holder: 'b',
      holderLease: leaseOf('b', 2),
      reason: 'lease-expired',
    });
  });

  test('a released key does not shortcut the wait once the lease is gone', () => {
    const p = run(
      input(G, { ...base, nodes: live('a', 'c'), gone: gone(3000), released: released('web', 'b', 7, NOW - 1500) }),
    );
    expect(p.actions).toEqual([]);
  });

  test('requeueAt is the earliest of several waiting groups', () => {
    const g2 = group('db');
    const groups = new Map([
      ['web', G],
      ['db', g2],
    ]);
    const assignments = new Map([...assignment(G, 'b', 7), ...assignment(g2, 'a', 8)]);
    const goneMap = new Map<string, GoneLease>([
      [leaseOf('b'), { lease: leaseOf('b'), node: 'b', goneAt: NOW - 1000, waitMs: 3000 }],
      [leaseOf('a'), { lease: leaseOf('a'), node: 'a', goneAt: NOW - 1000, waitMs: 1500 }],
    ]);
    const p = run(
      input(G, {
        groups,
        assignments,
        nodes: live('c'),
        gone: goneMap,
        firstSeen: new Map([
          ['web', 0],
          ['db', 0],
        ]),
      }),
    );
    expect(p.actions).toEqual([]);
    expect(p.requeueAt).toBe(NOW + 500);
  });
});

describe('failback', () => {
  // a (100) holds; b (200) is back and healthy.
  const base = { nodes: live('a', 'b', 'c'), health: allHealthy, assignments: assignment(G, 'a', 20) };

  test('auto: asks the holder to release for a strictly higher priority node', () => {
    const put = onlyPut(run(input(G, base)).actions);
    expect(put).toMatchObject({
      expectEpoch: 20,
      record: { holder: 'a', holderLease: leaseOf('a'), release: true, reason: 'failback' },
    });
    expect(put.event).toBeUndefined();
  });

  test('auto: once asked, waits without writing again', () => {
    const p = run(input(G, { ...base, assignments: assignment(G, 'a', 21, { release: true, reason: 'failback' }) }));
    expect(p.actions).toEqual([]);
    expect(p.decisions.get('web')?.message).toBe('waiting for a to release (failback)');
  });

  test('auto: after the release, the preferred node gets it with reason failback', () => {
    const p = run(
      input(G, {
        ...base,
        assignments: assignment(G, 'a', 21, { release: true, reason: 'failback' }),
        released: released('web', 'a', 21, NOW - 3, 'release-requested'),
      }),
    );
    const put = onlyPut(p.actions);
    expect(put.record).toMatchObject({ holder: 'b', holderLease: leaseOf('b'), reason: 'failback', release: false });
    expect(put.event).toEqual({ from: 'a', to: 'b', reason: 'failback', outageMs: 3 });
  });

  test('auto: ties do not move', () => {
    const g = group('web', {
      nodes: [
        { name: 'a', priority: 100 },
        { name: 'b', priority: 100 },
        { name: 'c', priority: 100 },
      ],
    });
    const h = health(g, { a: true, b: true, c: true });
    for (const holder of ['a', 'b', 'c']) {
      const p = run(input(g, { nodes: live('a', 'b', 'c'), health: h, assignments: assignment(g, holder, 5) }));
      expect(p.actions).toEqual([]);
    }
  });

  test('manual: the holder keeps it', () => {
    const g = group('web', { failback: 'manual' });
    const p = run(
      input(g, {
        nodes: live('a', 'b', 'c'),
        health: health(g, { a: true, b: true, c: true }),
        assignments: assignment(g, 'a', 20),
      }),
    );
    expect(p.actions).toEqual([]);
  });

  test('auto: priorityDelta counts for the comparison', () => {
    // a 100 + 150 = 250 beats b 200: no failback.
    const p = run(input(G, { ...base, health: health(G, { a: { priorityDelta: 150 }, b: true, c: true }) }));
    expect(p.actions).toEqual([]);
  });
});

describe('release requests (release: true)', () => {
  const base = { nodes: live('a', 'b', 'c'), health: allHealthy, assignments: assignment(G, 'b', 30) };

  test.each<[string, Partial<PlanInput>, FailoverGroup | undefined, K.TransitionReason]>([
    ['drain', { drained: new Set(['b']) }, G, 'drained'],
    ['node removed from the spec', {}, group('web', { nodes: [{ name: 'a' }, { name: 'c' }] }), 'node-removed'],
    ['pin (vipwarden move)', { pins: new Map<string, K.MoveRecord>([['web', { to: 'a', at: NOW - 1 }]]) }, G, 'move'],
    ['group deleted', {}, undefined, 'deleted'],
  ])('%s', (_name, over, g, reason) => {
    const p = run(input(g, { ...base, ...over }));
    const put = onlyPut(p.actions);
    expect(put).toMatchObject({
      group: 'web',
      expectEpoch: 30,
      record: { holder: 'b', holderLease: leaseOf('b'), release: true, reason, vips: vipsOf(G) },
    });
    expect(put.event).toBeUndefined();
    // Asked once: the next pass waits.
    const again = run(input(g, { ...base, ...over, assignments: assignment(G, 'b', 31, { release: true, reason }) }));
    expect(again.actions).toEqual([]);
  });

  test('a deleted group keeps the VIPs and specHash of its last assignment in the request', () => {
    const p = run(
      input(undefined, {
        ...base,
        assignments: assignment(G, 'b', 30, {
          specHash: 'kept',
          vips: [{ address: '198.18.0.7/24', interface: 'eth1' }],
        }),
      }),
    );
    expect(onlyPut(p.actions).record).toMatchObject({
      release: true,
      reason: 'deleted',
      specHash: 'kept',
      vips: [{ address: '198.18.0.7/24', interface: 'eth1' }],
    });
  });

  test('pin: after the release, the pinned node gets it with reason move', () => {
    const pins = new Map<string, K.MoveRecord>([['web', { to: 'a', at: NOW - 1 }]]);
    const p = run(
      input(G, {
        ...base,
        pins,
        assignments: assignment(G, 'b', 31, { release: true, reason: 'move' }),
        released: released('web', 'b', 31, NOW - 2, 'release-requested'),
      }),
    );
    const put = onlyPut(p.actions);
    expect(put.record).toMatchObject({ holder: 'a', reason: 'move' });
    expect(put.event).toEqual({ from: 'b', to: 'a', reason: 'move', outageMs: 2 });
  });

  test('pin to an ineligible node is ignored', () => {
    const pins = new Map<string, K.MoveRecord>([['web', { to: 'a', at: NOW - 1 }]]);
    const p = run(input(G, { ...base, pins, health: health(G, { a: false, b: true, c: true }) }));
    expect(p.actions).toEqual([]);
  });

  test('drain: after the release, the next node gets it', () => {
    const p = run(
      input(G, {
        ...base,
        drained: new Set(['b']),
        assignments: assignment(G, 'b', 31, { release: true, reason: 'drained' }),
        released: released('web', 'b', 31, NOW - 2, 'release-requested'),
      }),
    );
    expect(onlyPut(p.actions).record).toMatchObject({ holder: 'c', reason: 'drained' });
  });

  test('the request is written again when the reason changed', () => {
    const p = run(
      input(G, {
        ...base,
        drained: new Set(['b']),
        assignments: assignment(G, 'b', 31, { release: true, reason: 'failback' }),
      }),
    );
    expect(onlyPut(p.actions).record).toMatchObject({ release: true, reason: 'drained' });
  });
});

describe('deleted group', () => {
  test('holder released: delete action with an event', () => {
    const inp = input(undefined, {
      nodes: live('a', 'b'),
      assignments: assignment(G, 'b', 40, { release: true, reason: 'deleted' }),
      released: released('web', 'b', 40, NOW - 25, 'release-requested'),
    });
    const p = run(inp);
    expect(p.actions).toEqual([
      {
        type: 'delete',
        group: 'web',
        expectEpoch: 40,
        event: { from: 'b', to: null, reason: 'deleted', outageMs: 25 },
      },
    ]);
    expect(p.decisions.get('web')?.phase).toBe('NoHealthyNode');
  });

  test('holder lease gone and waited out: delete', () => {
    // Without ttlMs (a lease the controller never saw alive), the figures count from goneAt.
    const gone = new Map<string, GoneLease>([
      [leaseOf('b'), { lease: leaseOf('b'), node: 'b', goneAt: NOW - 5000, waitMs: 1000 }],
    ]);
    const p = run(input(undefined, { assignments: assignment(G, 'b', 40), gone }));
    expect(p.actions).toEqual([
      {
        type: 'delete',
        group: 'web',
        expectEpoch: 40,
        event: { from: 'b', to: null, reason: 'deleted', detectMs: 0, outageMs: 5000 },
      },
    ]);
  });

  test('holder lease gone, still waiting: nothing', () => {
    const gone = new Map<string, GoneLease>([
      [leaseOf('b'), { lease: leaseOf('b'), node: 'b', goneAt: NOW - 500, waitMs: 1000 }],
    ]);
    const p = run(input(undefined, { assignments: assignment(G, 'b', 40), gone }));
    expect(p.actions).toEqual([]);
    expect(p.requeueAt).toBe(NOW + 500);
  });

  test('assignment without a holder: delete', () => {
    const p = run(input(undefined, { assignments: assignment(G, null, 41, { reason: 'no-healthy-node' }) }));
    expect(p.actions).toEqual([
      { type: 'delete', group: 'web', expectEpoch: 41, event: { from: null, to: null, reason: 'deleted' } },
    ]);
  });
});

describe('same holder, record refreshed', () => {
  test('spec change (VIPs): put with reason spec-changed and the same holderLease', () => {
    const g2 = group('web', {
      vips: [{ address: '198.18.0.100/24' }, { address: '2001:2::100/64', interface: 'eth1' }],
    });
    const inp = input(g2, {
      nodes: live('a', 'b', 'c'),
      health: health(g2, { a: true, b: true, c: true }),
      assignments: assignment(G, 'b', 50),
    });
    const put = onlyPut(run(inp).actions);
    expect(put).toEqual({
      type: 'put',
      group: 'web',
      expectEpoch: 50,
      record: {
        group: 'web',
        holder: 'b',
        holderLease: leaseOf('b'),
        vips: [{ address: '198.18.0.100/24' }, { address: '2001:2::100/64', interface: 'eth1' }],
        release: false,
        reason: 'spec-changed',
        specHash: specHash(g2),
        at: NOW,
        leader: LEADER,
      },
    });
    expect(specHash(g2)).not.toBe(specHash(G));
  });

  test('a change of checks alone is not a spec change for the holder', () => {
    const g2 = group('web', { checks: [{ name: 'web', type: 'tcp', tcp: { port: 8080 } }] });
    expect(specHash(g2)).toBe(specHash(G));
    const p = run(
      input(g2, {
        nodes: live('a', 'b', 'c'),
        health: health(g2, { a: true, b: true, c: true }),
        assignments: assignment(G, 'b', 50),
      }),
    );
    expect(p.actions).toEqual([]);
  });

  test('release cancelled when the reason vanished (drain lifted)', () => {
    const inp = input(G, {
      nodes: live('a', 'b', 'c'),
      health: allHealthy,
      assignments: assignment(G, 'b', 51, { release: true, reason: 'drained' }),
    });
    const put = onlyPut(run(inp).actions);
    expect(put).toMatchObject({
      expectEpoch: 51,
      record: { holder: 'b', holderLease: leaseOf('b'), release: false, reason: 'release-cancelled' },
    });
    expect(put.event).toBeUndefined();
  });

  test('release cancelled when the pin is removed', () => {
    const p = run(
      input(G, {
        nodes: live('a', 'b', 'c'),
        health: allHealthy,
        assignments: assignment(G, 'b', 52, { release: true, reason: 'move' }),
      }),
    );
    expect(onlyPut(p.actions).record).toMatchObject({ release: false, reason: 'release-cancelled' });
  });
});

describe('rankNodes', () => {
  test('priorityDelta from health changes the ranking', () => {
    const inp = input(G, {
      nodes: live('a', 'b', 'c'),
      health: health(G, { a: { priorityDelta: 150 }, b: true, c: { priorityDelta: -100 } }),
    });
    expect(rankNodes(G, inp).map((n) => [n.name, n.priority])).toEqual([
      ['a', 250],
      ['b', 200],
      ['c', 50],
    ]);
    expect(onlyPut(run(inp).actions).record.holder).toBe('a');
  });

  test('health for another checksHash is not eligible and its delta does not count', () => {
    const inp = input(G, {
      nodes: live('a', 'b', 'c'),
      health: health(G, { a: { priorityDelta: 500, checksHash: 'other' }, b: { checksHash: 'other' }, c: true }),
    });
    const ranked = rankNodes(G, inp);
    expect(ranked.map((n) => [n.name, n.eligible, n.priority, n.why])).toEqual([
      ['c', true, 150, undefined],
      ['b', false, 200, 'health report for other checks'],
      ['a', false, 100, 'health report for other checks'],
    ]);
    expect(onlyPut(run(inp).actions).record.holder).toBe('c');
  });

  test.each<[string, Partial<PlanInput>, string | undefined, boolean, boolean]>([
    ['no lease', { nodes: live('a') }, 'no lease', false, true],
    ['drained', { drained: new Set(['b']) }, 'drained', true, true],
    ['no health report', { health: new Map() }, 'no health report', true, false],
    ['unhealthy', { health: health(G, { b: false }) }, 'unhealthy', true, false],
    ['eligible', {}, undefined, true, true],
  ])('why: %s', (_name, over, why, isLive, healthy) => {
    const inp = input(G, { nodes: live('a', 'b', 'c'), health: allHealthy, ...over });
    const b = rankNodes(G, inp).find((n) => n.name === 'b');
    expect(b).toEqual({ name: 'b', live: isLive, healthy, eligible: why === undefined, priority: 200, why });
  });

  test('eligible nodes come first whatever their priority', () => {
    const inp = input(G, { nodes: live('a', 'b', 'c'), health: health(G, { a: true, b: false, c: false }) });
    expect(rankNodes(G, inp).map((n) => n.name)).toEqual(['a', 'b', 'c']);
  });
});

describe('frozen groups are untouched', () => {
  test.each<[string, Partial<PlanInput>]>([
    ['no assignment yet', { nodes: live('a', 'b', 'c'), health: allHealthy }],
    [
      'holder unhealthy and released',
      {
        nodes: live('a', 'b', 'c'),
        health: health(G, { b: false }),
        assignments: assignment(G, 'b', 3),
        released: released('web', 'b', 3, NOW),
      },
    ],
    [
      'holder lease gone long ago',
      {
        assignments: assignment(G, 'b', 3),
        gone: new Map([[leaseOf('b'), { lease: leaseOf('b'), node: 'b', goneAt: 0, waitMs: 0 }]]),
      },
    ],
    [
      'drained holder',
      { nodes: live('a', 'b', 'c'), health: allHealthy, assignments: assignment(G, 'b', 3), drained: new Set(['b']) },
    ],
  ])('%s', (_name, over) => {
    const p = run(input(G, { ...over, frozen: new Set(['web']) }));
    expect(p.actions).toEqual([]);
    expect(p.decisions.has('web')).toBe(false);
    expect(p.requeueAt).toBeUndefined();
  });

  test('a frozen group that is no longer in groups (invalid) is not deleted', () => {
    const p = run(input(undefined, { assignments: assignment(G, 'b', 3), frozen: new Set(['web']) }));
    expect(p.actions).toEqual([]);
  });
});

describe('every assignment action expects the current epoch', () => {
  test('over a mix of groups in one plan', () => {
    const gs = ['g1', 'g2', 'g3', 'g4'].map((n) => group(n));
    const groups = new Map(gs.map((g) => [g.name, g]));
    const h = new Map(
      gs.map((g) => [
        g.name,
        new Map(
          ['a', 'b', 'c'].map((n): [string, K.HealthRecord] => [
            n,
            { healthy: n !== 'b', priorityDelta: 0, checks: [], checksHash: checksHash(g), at: 0 },
          ]),
        ),
      ]),
    );
    const assignments = new Map<string, CurrentAssignment>([
      ...assignment(gs[1]!, 'b', 101), // unhealthy holder released -> move
      ...assignment(gs[2]!, 'c', 102, { specHash: 'old' }), // spec-changed
      ...assignment(group('gone-group'), 'a', 103), // deleted -> release request
    ]);
    const inp = input(undefined, {
      groups,
      health: h,
      nodes: live('a', 'b', 'c'),
      assignments,
      released: released('g2', 'b', 101, NOW),
      firstSeen: new Map(gs.map((g) => [g.name, 0])),
    });
    const p = run(inp);
    expect(p.actions.map((a) => [a.group, a.expectEpoch])).toEqual([
      ['g1', 0],
      ['g2', 101],
      ['g3', 102],
      ['g4', 0],
      ['gone-group', 103],
    ]);
  });
});

describe('findConflicts', () => {
  const canon = (cidr: string) => {
    const c = parseCidr(cidr);
    if (typeof c === 'string') throw new Error(c);
    return c.address;
  };

  test.each<[string, { name: string; vips: string[]; createdAt?: number }[], [string, string[]][], [string, string][]]>(
    [
      [
        'no overlap',
        [
          { name: 'x', vips: ['10.0.0.1'] },
          { name: 'y', vips: ['10.0.0.2'] },
        ],
        [],
        [],
      ],
      [
        'the group holding an assignment with the VIP keeps it, even if younger',
        [
          { name: 'old', vips: ['10.0.0.1'], createdAt: 1 },
          { name: 'young', vips: ['10.0.0.1'], createdAt: 2 },
        ],
        [['young', ['10.0.0.1']]],
        [['old', 'VIP 10.0.0.1 is already claimed by group young']],
      ],
      [
        'else the older createdAt',
        [
          { name: 'b-young', vips: ['10.0.0.1'], createdAt: 2 },
          { name: 'z-old', vips: ['10.0.0.1'], createdAt: 1 },
        ],
        [],
        [['b-young', 'VIP 10.0.0.1 is already claimed by group z-old']],
      ],
      [
        'else name order',
        [
          { name: 'beta', vips: ['10.0.0.1'], createdAt: 5 },
          { name: 'alpha', vips: ['10.0.0.1'], createdAt: 5 },
        ],
        [],
        [['beta', 'VIP 10.0.0.1 is already claimed by group alpha']],
      ],
      [
        'an assignment keeps its VIP claimed even if its group no longer names it',
        [
          { name: 'x', vips: ['10.0.0.2'], createdAt: 1 },
          { name: 'y', vips: ['10.0.0.1'], createdAt: 2 },
        ],
        [['x', ['10.0.0.1']]],
        [['y', 'VIP 10.0.0.1 is already claimed by group x']],
      ],
      [
        'a rejected group claims none of its other VIPs',
        [
          { name: 'g1', vips: ['10.0.0.1'], createdAt: 1 },
          { name: 'g2', vips: ['10.0.0.1', '10.0.0.2'], createdAt: 2 },
          { name: 'g3', vips: ['10.0.0.2'], createdAt: 3 },
        ],
        [],
        [['g2', 'VIP 10.0.0.1 is already claimed by group g1']],
      ],
      [
        'IPv6, compared canonically by the caller',
        [
          { name: 'v6a', vips: [canon('2001:2::1/64')], createdAt: 1 },
          { name: 'v6b', vips: [canon('2001:2:0::1/64')], createdAt: 2 },
          { name: 'v6c', vips: [canon('2001:0002:0000:0000:0000:0000:0000:0001/128')], createdAt: 3 },
        ],
        [],
        [
          ['v6b', 'VIP 2001:2::1 is already claimed by group v6a'],
          ['v6c', 'VIP 2001:2::1 is already claimed by group v6a'],
        ],
      ],
    ],
  )('%s', (_name, groups, assigned, want) => {
    expect([...findConflicts(groups, new Map(assigned))].sort()).toEqual(want);
    // Input order does not matter.
    expect([...findConflicts([...groups].reverse(), new Map([...assigned].reverse()))].sort()).toEqual(want);
  });
});

describe('planYielding', () => {
  test('the same plan as plan(), with turns of the event loop between groups', async () => {
    const groups = Array.from({ length: 1200 }, (_, i) => group(`g${String(i).padStart(4, '0')}`));
    const inp = input(undefined, {
      groups: new Map(groups.map((g) => [g.name, g])),
      nodes: live('a', 'b', 'c'),
      // Every third group without health from b: a mix of placements and phases.
      health: new Map(groups.map((g, i) => [g.name, health(g, { a: true, b: i % 3 !== 0, c: true }).get(g.name)!])),
      firstSeen: new Map(groups.map((g) => [g.name, NOW - 60_000])),
      assignments: new Map(groups.slice(0, 600).flatMap((g, i) => [...assignment(g, i % 2 ? 'a' : 'c', 10 + i)])),
    });
    // Without a turn of the event loop, planYielding would resolve in microtasks, before this immediate.
    let turned = false;
    setImmediate(() => (turned = true));
    const p = await planYielding(inp);
    expect(turned).toBe(true);
    expect(p).toEqual(plan(inp));
    expect(p.actions.length).toBeGreaterThan(0);
  });

  test("the groups of a holder whose lease ended are planned first and handed to `urgent` before the others' turn", async () => {
    const groups = Array.from({ length: 1200 }, (_, i) => group(`g${String(i).padStart(4, '0')}`));
    const goneB = { lease: leaseOf('b'), node: 'b', goneAt: NOW - 1000, waitMs: 0, ttlMs: 2000 };
    const inp = input(undefined, {
      groups: new Map(groups.map((g) => [g.name, g])),
      nodes: live('a', 'c'),
      health: new Map(groups.map((g) => [g.name, health(g, { a: true, c: true }).get(g.name)!])),
      firstSeen: new Map(groups.map((g) => [g.name, NOW - 60_000])),
      // The last groups (by name) are b's: planned last in name order, first here. The others have no holder yet.
      assignments: new Map(groups.slice(1190).flatMap((g, i) => [...assignment(g, 'b', 10 + i)])),
      gone: new Map([[goneB.lease, goneB]]),
    });
    let urgent: readonly Action[] | undefined;
    let turnedBefore: boolean | undefined;
    let turned = false;
    setImmediate(() => (turned = true));
    const p = await planYielding(inp, {
      urgent: (actions) => {
        urgent = actions;
        turnedBefore = turned;
      },
    });
    expect(turnedBefore).toBe(false);
    expect(urgent?.map((a) => a.group)).toEqual(groups.slice(1190).map((g) => g.name));
    expect(urgent?.every((a) => a.type === 'put' && a.record.reason === 'lease-expired')).toBe(true);
    // The plan is the same, in name order, with those actions in it.
    expect(p).toEqual(plan(inp));
    expect(p.actions.map((a) => a.group)).toEqual(groups.map((g) => g.name));
  });
});
