import type { FailoverGroup } from '../../crds/failovergroup.js';
import type { GroupDecision } from '../planner.js';
import { eventFor, statusPatch, toSourceGroup, worthAPass, type FailoverGroupObject } from './kube-objects.js';

const NOW = Date.parse('2026-01-02T03:04:05.678Z');

function obj(spec: unknown, md: Partial<NonNullable<FailoverGroupObject['metadata']>> = {}): FailoverGroupObject {
  return {
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name: 'web', uid: 'u1', generation: 3, creationTimestamp: new Date('2026-01-01T00:00:00Z'), ...md },
    spec,
  };
}
const SPEC = { vips: [{ address: '198.18.0.100/24' }], nodes: [{ name: 'node1' }, { name: 'node2', priority: 50 }] };

describe('toSourceGroup', () => {
  test('a valid object: the parsed group, creation time, generation', () => {
    const s = toSourceGroup(obj(SPEC), undefined);
    expect(s).toMatchObject({
      name: 'web',
      generation: 3,
      createdAt: Date.parse('2026-01-01T00:00:00Z'),
      deleting: false,
    });
    expect(s.group?.spec.nodes.map((n) => n.priority)).toEqual([100, 50]);
    expect(s.error).toBeUndefined();
  });
  test('an invalid object keeps the last valid spec and carries the error', () => {
    const good = toSourceGroup(obj(SPEC), undefined).group as FailoverGroup;
    const s = toSourceGroup(obj({ ...SPEC, nodes: [] }), good);
    expect(s.group).toBe(good);
    expect(s.error?.message).toMatch(/spec\.nodes/);
  });
  test('a deletion timestamp means deleting', () => {
    expect(toSourceGroup(obj(SPEC, { deletionTimestamp: new Date(NOW) }), undefined).deleting).toBe(true);
  });
});

const decision = (over: Partial<GroupDecision> = {}): GroupDecision => ({
  group: 'web',
  phase: 'Active',
  holder: 'node1',
  epoch: 42,
  state: 'holding',
  message: 'held by node1',
  nodes: [
    { name: 'node1', live: true, healthy: true, eligible: true, priority: 100 },
    { name: 'node2', live: false, healthy: false, eligible: false, priority: 50, why: 'no lease' },
  ],
  ...over,
});

describe('statusPatch', () => {
  const source = toSourceGroup(obj(SPEC), undefined);
  test('a placed group: holder, epoch, nodes, conditions True, observedGeneration', () => {
    const s = statusPatch({ decision: decision(), source }, undefined, NOW);
    expect(s).toMatchObject({
      phase: 'Active',
      holder: 'node1',
      epoch: 42,
      vips: ['198.18.0.100/24'],
      observedGeneration: 3,
    });
    expect(s.nodes).toEqual([
      { name: 'node1', live: true, healthy: true, priority: 100 },
      { name: 'node2', live: false, healthy: false, priority: 50 },
    ]);
    expect(s.conditions).toEqual([
      expect.objectContaining({
        type: 'Accepted',
        status: 'True',
        reason: 'Valid',
        lastTransitionTime: '2026-01-02T03:04:05Z',
        observedGeneration: 3,
      }),
      expect.objectContaining({ type: 'Ready', status: 'True', reason: 'Active' }),
    ]);
  });
  test('failsafe: a Failsafe condition, True once the holder acknowledged the epoch, with its last keep', () => {
    const failsafe = (armed: boolean, lastKept?: { ms: number; at: number }) => ({
      mode: 'failsafe' as const,
      armed,
      ...(lastKept ? { lastKept } : {}),
    });
    const cond = (s: Record<string, unknown>) =>
      (s.conditions as { type: string; status: string; reason: string; message: string }[]).find(
        (c) => c.type === 'Failsafe',
      );
    expect(
      cond(statusPatch({ decision: decision(), source, failsafe: failsafe(false) }, undefined, NOW)),
    ).toMatchObject({ status: 'False', reason: 'NotArmed', message: expect.stringMatching(/epoch 42 yet/) });
    const armed = cond(
      statusPatch({ decision: decision(), source, failsafe: failsafe(true, { ms: 12_400, at: NOW }) }, undefined, NOW),
    );
    expect(armed).toMatchObject({ status: 'True', reason: 'Armed' });
    expect(armed?.message).toMatch(
      /node1 may keep .* epoch 42\); last kept through an arbiter outage for 12 s, at 2026-/,
    );
    // arbiterLoss: release, or no holder: no condition.
    const release = { mode: 'release' as const, armed: false };
    expect(cond(statusPatch({ decision: decision(), source, failsafe: release }, undefined, NOW))).toBeUndefined();
    const none = decision({ holder: null, phase: 'NoHealthyNode' });
    expect(cond(statusPatch({ decision: none, source, failsafe: failsafe(false) }, undefined, NOW))).toBeUndefined();
  });

  test('a condition keeps its transition time while its status does not change', () => {
    const prev = {
      conditions: [
        {
          type: 'Ready',
          status: 'True' as const,
          reason: 'Active',
          message: '',
          lastTransitionTime: '2025-12-31T00:00:00Z',
        },
      ],
    };
    const s = statusPatch({ decision: decision({ phase: 'Degraded' }), source }, prev, NOW) as {
      conditions: { type: string; lastTransitionTime: string }[];
    };
    expect(s.conditions.find((c) => c.type === 'Ready')?.lastTransitionTime).toBe('2025-12-31T00:00:00Z');
    const t = statusPatch({ decision: decision({ phase: 'NoHealthyNode', holder: null }), source }, prev, NOW) as {
      conditions: { type: string; lastTransitionTime: string; status: string }[];
      holder: unknown;
    };
    expect(t.conditions.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      lastTransitionTime: '2026-01-02T03:04:05Z',
    });
    expect(t.holder).toBeNull();
  });
  test('a VIP conflict: Invalid, Accepted False with the reason, no holder', () => {
    const s = statusPatch({ rejected: 'VIP 198.18.0.100 is already claimed by group other', source }, undefined, NOW);
    expect(s).toMatchObject({ phase: 'Invalid', holder: null, nodes: null });
    expect(s.conditions).toContainEqual(
      expect.objectContaining({
        type: 'Accepted',
        status: 'False',
        reason: 'VIPConflict',
        message: expect.stringMatching(/claimed by group other/),
      }),
    );
  });
  test('an invalid new spec while the last valid one runs: still placed, Accepted False InvalidSpec', () => {
    const good = source.group as FailoverGroup;
    const bad = toSourceGroup(obj({ ...SPEC, nodes: [] }), good);
    const s = statusPatch({ decision: decision(), rejected: bad.error?.message, source: bad }, undefined, NOW);
    expect(s).toMatchObject({ phase: 'Active', holder: 'node1' });
    expect(s.conditions).toContainEqual(
      expect.objectContaining({
        type: 'Accepted',
        status: 'False',
        reason: 'InvalidSpec',
        message: expect.stringMatching(/last valid spec stays in force/),
      }),
    );
  });
});

describe('eventFor', () => {
  const opts = { namespace: 'default', instance: 'ctl-1', now: NOW };
  test('a move is a Failover with the figures; the name is unique per epoch', () => {
    const e = eventFor(
      'web',
      'u1',
      {
        group: 'web',
        from: 'node1',
        to: 'node2',
        reason: 'unhealthy',
        at: NOW,
        epoch: 255,
        detectMs: 210,
        outageMs: 240,
      },
      opts,
    );
    expect(e).toMatchObject({
      reason: 'Failover',
      type: 'Normal',
      metadata: { name: 'web.ff', namespace: 'default' },
      involvedObject: { kind: 'FailoverGroup', name: 'web', uid: 'u1' },
    });
    expect(e.message).toBe('VIPs moved from node1 to node2 (unhealthy; detected in 210 ms, outage 240 ms, epoch 255)');
  });
  test('first placement, no node left, deletion', () => {
    expect(
      eventFor('web', 'u1', { group: 'web', from: null, to: 'node1', reason: 'initial', at: NOW, epoch: 1 }, opts),
    ).toMatchObject({ reason: 'Assigned', type: 'Normal' });
    expect(
      eventFor(
        'web',
        'u1',
        { group: 'web', from: 'node1', to: null, reason: 'lease-expired', at: NOW, epoch: 2 },
        opts,
      ),
    ).toMatchObject({ reason: 'NoHealthyNode', type: 'Warning' });
    expect(
      eventFor('web', 'u1', { group: 'web', from: 'node1', to: null, reason: 'deleted', at: NOW, epoch: 3 }, opts),
    ).toMatchObject({ reason: 'Released', type: 'Normal' });
  });
});

describe('worthAPass (GenerationChangedPredicate)', () => {
  const base = obj(SPEC, { resourceVersion: '10', finalizers: ['vipwarden.io/release'] });
  test('a status patch of our own (same generation, new resourceVersion and status) is not', () => {
    const next: FailoverGroupObject = {
      ...base,
      metadata: { ...base.metadata, resourceVersion: '11' },
      status: { phase: 'Active', holder: 'node1' },
    };
    expect(worthAPass(base, next)).toBe(false);
  });
  test.each<[string, Partial<NonNullable<FailoverGroupObject['metadata']>>]>([
    ['a spec change (generation bumped)', { generation: 4 }],
    ['a deletion', { deletionTimestamp: new Date(NOW) }],
    ['a finalizer change', { finalizers: [] }],
    ['a new object under the same name', { uid: 'u2' }],
  ])('%s is', (_name, md) => {
    expect(worthAPass(base, { ...base, metadata: { ...base.metadata, ...md } })).toBe(true);
  });
  test('the first sight of an object, or one without a generation, is', () => {
    expect(worthAPass(undefined, base)).toBe(true);
    expect(worthAPass(base, { ...base, metadata: { ...base.metadata, generation: undefined } })).toBe(true);
  });
});
