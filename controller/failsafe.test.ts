// The controller's side of failsafe through the real planner (docs/design.md "Failsafe", rules 1 and 5): the
// promise set written with each assignment and refreshed when a node registers or a listed lease ends; after a
// failsafe holder's lease ended, the ordinary Safety 3 wait for nodes of the acknowledged set still on their listed
// lease, that wait + the holder's maxKeep for every other node. Release groups behave as before.
import { describe, expect, test } from '@jest/globals';
import type { AssignmentRecord, HealthRecord } from '../common/keyspace.js';
import type { FailoverGroup } from '../crds/failovergroup.js';
import { testGroup } from './testing/groups.js';
import { checksHash, plan, specHash, vipsOf, type GoneLease, type LiveNode, type PlanInput } from './planner.js';

const NOW = 5_000_000;

function group(arbiterLoss?: 'failsafe' | 'release'): FailoverGroup {
  return testGroup('web', {
    nodes: [
      { name: 'a', priority: 200 },
      { name: 'b', priority: 150 },
      { name: 'c', priority: 100 },
      { name: 'd', priority: 50 },
    ],
    ...(arbiterLoss ? { arbiterLoss } : {}),
  });
}

const lease = (node: string, gen = 1) => String(gen * 1000 + node.charCodeAt(0) - 96);

function nodes(...names: string[]): Map<string, LiveNode> {
  return new Map(
    names.map((n) => {
      const [name, gen] = n.split('@') as [string, string | undefined];
      return [name, { name, lease: lease(name, Number(gen ?? 1)), ttlSeconds: 2, maxLifetimeSeconds: 1 }];
    }),
  );
}

function healthy(g: FailoverGroup, names: string[]): Map<string, Map<string, HealthRecord>> {
  const rec: HealthRecord = { healthy: true, priorityDelta: 0, checks: [], checksHash: checksHash(g), at: NOW - 9000 };
  return new Map([[g.name, new Map(names.map((n) => [n, rec]))]]);
}

function assigned(g: FailoverGroup, holder: string, epoch: number, set?: string[]): PlanInput['assignments'] {
  const record: AssignmentRecord = {
    group: g.name,
    holder,
    holderLease: lease(holder),
    vips: vipsOf(g),
    release: false,
    reason: 'initial',
    specHash: specHash(g),
    at: NOW - 60_000,
    leader: 'ctl',
    ...(set ? { promiseSet: set.map((n) => ({ node: n, lease: lease(n) })) } : {}),
  };
  return new Map([[g.name, { record, epoch }]]);
}

function input(g: FailoverGroup, over: Partial<PlanInput>): PlanInput {
  return {
    now: NOW,
    mono: NOW,
    leader: 'ctl',
    groups: new Map([[g.name, g]]),
    frozen: new Set(),
    nodes: new Map(),
    gone: new Map(),
    health: healthy(g, ['a', 'b', 'c', 'd']),
    assignments: new Map(),
    released: new Map(),
    drained: new Set(),
    pins: new Map(),
    firstSeen: new Map([[g.name, NOW - 60_000]]),
    settleMs: 2000,
    ...over,
  };
}

/** Holder a's lease ended at `goneAt`; its record said maxKeep and acknowledged `ackEpoch` for web. */
function goneA(o: { goneAt?: number; waitMs?: number; maxKeepMs?: number; ackEpoch?: number } = {}) {
  const g: GoneLease = {
    lease: lease('a'),
    node: 'a',
    goneAt: o.goneAt ?? NOW - 1000,
    waitMs: o.waitMs ?? 700,
    ttlMs: 2000,
    maxKeepMs: o.maxKeepMs ?? 120_000,
    ...(o.ackEpoch !== undefined ? { acks: { web: o.ackEpoch } } : {}),
  };
  return new Map([[g.lease, g]]);
}

function put(p: ReturnType<typeof plan>) {
  expect(p.actions).toHaveLength(1);
  const a = p.actions[0]!;
  if (a.type !== 'put') throw new Error('expected a put');
  return a;
}

describe('rule 1: the promise set goes with the assignment', () => {
  test('every registered node with its lease, not only the candidates', () => {
    const G = group();
    const p = plan(input(G, { nodes: nodes('a', 'b', 'x') }));
    expect(put(p).record).toMatchObject({
      holder: 'a',
      promiseSet: [
        { node: 'a', lease: lease('a') },
        { node: 'b', lease: lease('b') },
        { node: 'x', lease: lease('x') },
      ],
    });
  });

  test('a node registers: a new epoch, same holder, reason promise-set, no event', () => {
    const G = group();
    const p = plan(input(G, { nodes: nodes('a', 'b', 'c'), assignments: assigned(G, 'a', 7, ['a', 'b']) }));
    const a = put(p);
    expect(a).toMatchObject({
      expectEpoch: 7,
      record: { holder: 'a', holderLease: lease('a'), reason: 'promise-set' },
    });
    expect(a.record.promiseSet?.map((e) => e.node)).toEqual(['a', 'b', 'c']);
    expect(a.event).toBeUndefined();
  });

  test('a listed node restarts with a new lease (or its lease ends): a new epoch', () => {
    const G = group();
    const restarted = plan(input(G, { nodes: nodes('a', 'b@2'), assignments: assigned(G, 'a', 7, ['a', 'b']) }));
    expect(put(restarted).record.promiseSet).toEqual([
      { node: 'a', lease: lease('a') },
      { node: 'b', lease: lease('b', 2) },
    ]);
    const left = plan(input(G, { nodes: nodes('a'), assignments: assigned(G, 'a', 7, ['a', 'b']) }));
    expect(put(left).record.promiseSet).toEqual([{ node: 'a', lease: lease('a') }]);
  });

  test('the same set: nothing to write', () => {
    const G = group();
    const p = plan(input(G, { nodes: nodes('a', 'b'), assignments: assigned(G, 'a', 7, ['a', 'b']) }));
    expect(p.actions).toEqual([]);
  });

  test('release groups carry no set and are not rewritten for one', () => {
    const G = group('release');
    expect(put(plan(input(G, { nodes: nodes('a', 'b') }))).record.promiseSet).toBeUndefined();
    const p = plan(input(G, { nodes: nodes('a', 'b', 'c'), assignments: assigned(G, 'a', 7) }));
    expect(p.actions).toEqual([]);
  });
});

describe('rule 5: after the holder lease ends, listed nodes first, anyone else after maxKeep', () => {
  test('a listed node on its listed lease takes over after the ordinary wait', () => {
    const G = group();
    const p = plan(
      input(G, {
        nodes: nodes('b', 'c'),
        assignments: assigned(G, 'a', 7, ['a', 'b', 'c']),
        gone: goneA({ ackEpoch: 7 }),
      }),
    );
    expect(put(p).record).toMatchObject({ holder: 'b', reason: 'lease-expired' });
  });

  test('still inside the ordinary wait: nobody, as before', () => {
    const G = group();
    const p = plan(
      input(G, {
        nodes: nodes('b'),
        assignments: assigned(G, 'a', 7, ['a', 'b']),
        gone: goneA({ goneAt: NOW - 100, ackEpoch: 7 }),
      }),
    );
    expect(p.actions).toEqual([]);
    expect(p.decisions.get('web')?.state).toBe('gone-waiting');
  });

  test('only unlisted nodes (joined, or restarted): they wait the wait + maxKeep, and no holder: null is written', () => {
    const G = group();
    const inp = (mono: number) =>
      input(G, {
        mono,
        nodes: nodes('b@2', 'd'),
        assignments: assigned(G, 'a', 7, ['a', 'b']),
        gone: goneA({ goneAt: NOW - 1000, ackEpoch: 7 }),
      });
    const waiting = plan(inp(NOW));
    expect(waiting.actions).toEqual([]);
    expect(waiting.requeueAt).toBe(NOW - 1000 + 700 + 120_000);
    expect(waiting.decisions.get('web')?.message).toMatch(/may keep by promises/);
    expect(plan(inp(NOW - 1000 + 700 + 119_999)).actions).toEqual([]);
    expect(put(plan(inp(NOW - 1000 + 700 + 120_000))).record).toMatchObject({
      holder: 'b',
      holderLease: lease('b', 2),
    });
  });

  test('a listed node preferred over a better unlisted one while the keep may last', () => {
    const G = group();
    const p = plan(
      input(G, {
        nodes: nodes('b', 'c'),
        assignments: assigned(G, 'a', 7, ['a', 'c']),
        gone: goneA({ ackEpoch: 7 }),
      }),
    );
    expect(put(p).record.holder).toBe('c');
  });

  test('the holder acknowledged an older epoch: the current set is not trusted, everyone waits maxKeep', () => {
    const G = group();
    const p = plan(
      input(G, { nodes: nodes('b'), assignments: assigned(G, 'a', 9, ['a', 'b']), gone: goneA({ ackEpoch: 7 }) }),
    );
    expect(p.actions).toEqual([]);
    expect(p.requeueAt).toBe(NOW - 1000 + 700 + 120_000);
  });

  test('a holder that cannot keep (maxKeep 0: no peer channel) and release groups: the ordinary wait only', () => {
    const G = group();
    const p = plan(
      input(G, { nodes: nodes('d'), assignments: assigned(G, 'a', 7, ['a']), gone: goneA({ maxKeepMs: 0 }) }),
    );
    expect(put(p).record.holder).toBe('d');
    const R = group('release');
    const r = plan(input(R, { nodes: nodes('d'), assignments: assigned(R, 'a', 7), gone: goneA({}) }));
    expect(put(r).record.holder).toBe('d');
  });
});

describe('rule 5 holds whatever the spec says now (the holder keeps by the spec it saw)', () => {
  // The holder a acknowledged epoch 7 of a failsafe group, was cut from etcd, and its lease ended 1 s ago (wait
  // 700 ms: the ordinary wait ran out). Meanwhile an operator changed the group. a, cut off, never saw the change and
  // may keep its addresses by the promises of a and b until the wait + maxKeep.
  const allUntil = NOW - 1000 + 700 + 120_000;
  const FS = group();

  test('edited to release (and a VIP added) while held: the rewritten record keeps the set of the tenure', () => {
    // (arbiterLoss alone is not in the spec hash: that edit rewrites nothing, and the record keeps its set anyway.)
    const R = testGroup('web', {
      ...group('release').spec,
      vips: [{ address: '198.18.0.100/24' }, { address: '198.18.0.102/24' }],
    });
    const a = put(plan(input(R, { nodes: nodes('a', 'b'), assignments: assigned(FS, 'a', 7, ['a', 'b']) })));
    expect(a.record).toMatchObject({ holder: 'a', reason: 'spec-changed' });
    expect(a.record.promiseSet?.map((e) => e.node)).toEqual(['a', 'b']);
    // Another holder (or a new lease) starts clean: the set is for the holder that may act on it.
    const moved = put(plan(input(R, { nodes: nodes('b', 'd'), assignments: assigned(R, 'a', 7), gone: goneA() })));
    expect(moved.record.holder).toBe('b');
    expect(moved.record.promiseSet).toBeUndefined();
  });

  test('now release, the lease ended: an unlisted node still waits the wait + maxKeep', () => {
    const R = group('release');
    const inp = (mono: number) =>
      input(R, {
        mono,
        nodes: nodes('d'),
        assignments: assigned(FS, 'a', 7, ['a', 'b']),
        gone: goneA({ ackEpoch: 7 }),
      });
    expect(plan(inp(NOW)).actions).toEqual([]);
    expect(plan(inp(NOW)).requeueAt).toBe(allUntil);
    expect(put(plan(inp(allUntil))).record.holder).toBe('d');
  });

  test('deleted: the record stays until the wait + maxKeep, so that a group of the same name is not placed', () => {
    const inp = (mono: number, groups: Map<string, FailoverGroup>) => ({
      ...input(FS, { mono, nodes: nodes('d'), assignments: assigned(FS, 'a', 7, ['a', 'b']), gone: goneA() }),
      groups,
    });
    const waiting = plan(inp(NOW, new Map()));
    expect(waiting.actions).toEqual([]);
    expect(waiting.requeueAt).toBe(allUntil);
    expect(waiting.decisions.get('web')?.message).toMatch(/record of the deleted group stays/);
    // Created again (as release, even) before then: the record is still there, and rule 5 applies to it.
    const again = plan(inp(NOW + 5000, new Map([['web', group('release')]])));
    expect(again.actions).toEqual([]);
    const done = plan(inp(allUntil, new Map()));
    expect(done.actions).toMatchObject([{ type: 'delete', group: 'web' }]);
  });

  test('an address moved out of the group: no early takeover, the record keeps claiming it', () => {
    const two = testGroup('web', {
      nodes: [{ name: 'a' }, { name: 'b' }],
      vips: [{ address: '198.18.0.100/24' }, { address: '198.18.0.101/24' }],
    });
    const one = testGroup('web', { nodes: [{ name: 'a' }, { name: 'b' }] });
    const inp = (mono: number) =>
      input(one, {
        mono,
        nodes: nodes('b'),
        assignments: assigned(two, 'a', 7, ['a', 'b']),
        gone: goneA({ ackEpoch: 7 }),
      });
    expect(plan(inp(NOW)).actions).toEqual([]);
    expect(plan(inp(NOW)).requeueAt).toBe(allUntil);
    expect(put(plan(inp(allUntil))).record).toMatchObject({ holder: 'b', vips: vipsOf(one) });
    // Without the edit, b (listed, on its lease) takes over after the ordinary wait, as before.
    const same = input(two, {
      nodes: nodes('b'),
      assignments: assigned(two, 'a', 7, ['a', 'b']),
      gone: goneA({ ackEpoch: 7 }),
    });
    expect(put(plan(same)).record.holder).toBe('b');
  });
});
