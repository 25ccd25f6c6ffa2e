// Table tests for the agent's pure planner (DESIGN.md "Safety", rule 1: hold a group only while the assignment
// names this node and this lease, the lease is known alive, the group is healthy here, and this process has not
// let go of that epoch already; rule 4: an assignment older than one acted on is ignored).
import { describe, expect, test } from '@jest/globals';
import type { AssignmentRecord } from '../common/keyspace.js';
import { planAgent, type AgentStep, type AgentView, type Held } from './planner.js';

const NODE = 'n1';
const LEASE = '7001';

function rec(fields: Partial<AssignmentRecord> = {}): AssignmentRecord {
  return {
    group: 'web',
    holder: NODE,
    holderLease: LEASE,
    vips: [{ address: '198.18.0.100/24' }],
    release: false,
    reason: 'initial',
    specHash: 'h1',
    at: 1,
    leader: 'ctl',
    ...fields,
  };
}

function view(over: Partial<AgentView> = {}): AgentView {
  return {
    node: NODE,
    lease: LEASE,
    leaseSafe: true,
    shuttingDown: false,
    assignments: new Map([['web', { record: rec(), epoch: 10 }]]),
    healthy: new Map([['web', true]]),
    held: new Map(),
    relinquishedEpoch: new Map(),
    releaseKeyEpoch: new Map(),
    newestEpoch: new Map(),
    ...over,
  };
}

const held = (epoch: number): Map<string, Held> =>
  new Map([['web', { epoch, vips: ['198.18.0.100/24'], specHash: 'h1' }]]);
const assigned = (epoch: number, fields: Partial<AssignmentRecord> = {}) =>
  new Map([['web', { record: rec(fields), epoch }]]);

describe('acquire', () => {
  test('when named with this lease, not release-flagged, healthy, lease safe, epoch not let go', () => {
    expect(planAgent(view())).toEqual([{ type: 'acquire', group: 'web', epoch: 10, record: rec() }]);
  });

  test('an epoch seen before (equal) is not stale', () => {
    expect(planAgent(view({ newestEpoch: new Map([['web', 10]]) }))).toEqual([
      { type: 'acquire', group: 'web', epoch: 10, record: rec() },
    ]);
  });

  test('a later epoch than the one let go of may be taken', () => {
    expect(
      planAgent(view({ relinquishedEpoch: new Map([['web', 9]]), releaseKeyEpoch: new Map([['web', 9]]) })),
    ).toEqual([{ type: 'acquire', group: 'web', epoch: 10, record: rec() }]);
  });

  // Each row breaks exactly one condition; none may acquire.
  test.each<[string, Partial<AgentView>, AgentStep[]]>([
    ['another node is named', { assignments: assigned(10, { holder: 'n2', holderLease: '7002' }) }, []],
    [
      'another lease of this node is named (restarted agent)',
      { assignments: assigned(10, { holderLease: '6999' }) },
      [],
    ],
    ['no lease yet', { lease: undefined }, []],
    ['holder null', { assignments: assigned(10, { holder: null, holderLease: null }) }, []],
    [
      'release-flagged',
      { assignments: assigned(10, { release: true, reason: 'move' }) },
      [{ type: 'ack', group: 'web', epoch: 10, reason: 'release-requested' }],
    ],
    [
      'unhealthy',
      { healthy: new Map([['web', false]]) },
      [{ type: 'ack', group: 'web', epoch: 10, reason: 'unhealthy' }],
    ],
    ['health unknown', { healthy: new Map() }, [{ type: 'ack', group: 'web', epoch: 10, reason: 'unhealthy' }]],
    ['shutting down', { shuttingDown: true }, [{ type: 'ack', group: 'web', epoch: 10, reason: 'shutting-down' }]],
    ['lease not safe', { leaseSafe: false }, []],
    [
      'epoch already let go',
      { relinquishedEpoch: new Map([['web', 10]]) },
      [{ type: 'ack', group: 'web', epoch: 10, reason: 'already-released' }],
    ],
    [
      'epoch already let go and acked',
      { relinquishedEpoch: new Map([['web', 10]]), releaseKeyEpoch: new Map([['web', 10]]) },
      [],
    ],
    ['stale assignment (epoch < seen)', { newestEpoch: new Map([['web', 11]]) }, []],
  ])('not when %s', (_name, over, want) => {
    expect(planAgent(view(over))).toEqual(want);
  });
});

describe('release while holding', () => {
  test.each<[string, Partial<AgentView>, AgentStep]>([
    [
      'unhealthy',
      { healthy: new Map([['web', false]]) },
      { type: 'release', group: 'web', reason: 'unhealthy', ackEpoch: 10 },
    ],
    [
      'release requested',
      { assignments: assigned(10, { release: true, reason: 'drained' }) },
      { type: 'release', group: 'web', reason: 'release-requested', ackEpoch: 10 },
    ],
    ['shutting down', { shuttingDown: true }, { type: 'release', group: 'web', reason: 'shutting-down', ackEpoch: 10 }],
    [
      'release requested while shutting down: the request wins the reason',
      { shuttingDown: true, assignments: assigned(10, { release: true, reason: 'failback' }) },
      { type: 'release', group: 'web', reason: 'release-requested', ackEpoch: 10 },
    ],
    [
      'lease not confirmed: no ack',
      { leaseSafe: false },
      { type: 'release', group: 'web', reason: 'lease-not-confirmed', ackEpoch: undefined },
    ],
    [
      'assigned elsewhere: no ack',
      { assignments: assigned(11, { holder: 'n2', holderLease: '7002' }) },
      { type: 'release', group: 'web', reason: 'assigned-elsewhere', ackEpoch: undefined },
    ],
    [
      'assigned to an older lease of this node: no ack',
      { assignments: assigned(10, { holderLease: '6999' }) },
      { type: 'release', group: 'web', reason: 'assigned-elsewhere', ackEpoch: undefined },
    ],
    [
      'lease lost (undefined): no ack',
      { lease: undefined, leaseSafe: false },
      { type: 'release', group: 'web', reason: 'assigned-elsewhere', ackEpoch: undefined },
    ],
    [
      'assignment gone: no ack',
      { assignments: new Map() },
      { type: 'release', group: 'web', reason: 'assignment-gone', ackEpoch: undefined },
    ],
    [
      'holder null: no ack',
      { assignments: assigned(11, { holder: null, holderLease: null }) },
      { type: 'release', group: 'web', reason: 'assigned-elsewhere', ackEpoch: undefined },
    ],
  ])('%s', (_name, over, want) => {
    expect(planAgent(view({ held: held(10), newestEpoch: new Map([['web', 10]]), ...over }))).toEqual([want]);
  });

  test('unhealthy with the lease also unconfirmed: still acks (the addresses are removed before the key is written)', () => {
    expect(planAgent(view({ held: held(10), healthy: new Map([['web', false]]), leaseSafe: false }))).toEqual([
      { type: 'release', group: 'web', reason: 'unhealthy', ackEpoch: 10 },
    ]);
  });
});

describe('ack when named but not holding', () => {
  test('once per epoch', () => {
    const v = view({ healthy: new Map([['web', false]]) });
    expect(planAgent(v)).toEqual([{ type: 'ack', group: 'web', epoch: 10, reason: 'unhealthy' }]);
    expect(planAgent({ ...v, releaseKeyEpoch: new Map([['web', 10]]) })).toEqual([]);
    // A new epoch naming this node again: ack again.
    expect(planAgent({ ...v, releaseKeyEpoch: new Map([['web', 10]]), assignments: assigned(12) })).toEqual([
      { type: 'ack', group: 'web', epoch: 12, reason: 'unhealthy' },
    ]);
  });

  test('not while the lease is unconfirmed (that passes by itself)', () => {
    expect(planAgent(view({ leaseSafe: false, healthy: new Map([['web', false]]) }))).toEqual([
      { type: 'ack', group: 'web', epoch: 10, reason: 'unhealthy' },
    ]);
    expect(planAgent(view({ leaseSafe: false }))).toEqual([]);
  });

  test('not for an assignment naming someone else', () => {
    expect(
      planAgent(
        view({ healthy: new Map([['web', false]]), assignments: assigned(10, { holder: 'n2', holderLease: '7002' }) }),
      ),
    ).toEqual([]);
  });
});

describe('stale and changed assignments', () => {
  test('a stale assignment (epoch < seen) is ignored while holding', () => {
    // Even one that names someone else or asks for release: the newer epoch already acted on stands.
    for (const fields of [{}, { holder: 'n2', holderLease: '7002' }, { release: true, reason: 'move' as const }]) {
      expect(
        planAgent(view({ held: held(12), newestEpoch: new Map([['web', 12]]), assignments: assigned(11, fields) })),
      ).toEqual([]);
    }
  });

  // Safety 4: letting go of an epoch (release with ack, or ack) is acting on it. Should an older assignment that
  // names this node show up again afterwards (a view that went back in time), the controller may already have
  // given the group to another node on the strength of that release: it must not be taken.
  test('an assignment older than an epoch let go of is not taken', () => {
    // The view after this node let go of epoch `letGo` (relinquished and its release key written), showing `shown`.
    const afterLetGo = (letGo: number, shown: number, over: Partial<AgentView> = {}) =>
      planAgent(
        view({
          relinquishedEpoch: new Map([['web', letGo]]),
          releaseKeyEpoch: new Map([['web', letGo]]),
          assignments: assigned(shown),
          ...over,
        }),
      );
    // Held 10; released 11 on request (ackEpoch 11 -> letGo 11); the view then shows epoch 10 again.
    expect(afterLetGo(11, 10, { newestEpoch: new Map([['web', 10]]) })).toEqual([]);
    // Never held; acked 12 while unhealthy; the view then shows epoch 11 naming this node, and it is healthy now.
    expect(afterLetGo(12, 11)).toEqual([]);
    // Newer epochs are taken as before.
    expect(afterLetGo(12, 13)).toEqual([{ type: 'acquire', group: 'web', epoch: 13, record: rec() }]);
  });

  test('a stale assignment is ignored when not holding', () => {
    expect(
      planAgent(
        view({ newestEpoch: new Map([['web', 12]]), assignments: assigned(11), healthy: new Map([['web', false]]) }),
      ),
    ).toEqual([]);
  });

  test('update when the epoch changes for a held group', () => {
    const r = rec({ reason: 'spec-changed', specHash: 'h2', vips: [{ address: '198.18.0.101/24' }] });
    expect(
      planAgent(
        view({
          held: held(10),
          newestEpoch: new Map([['web', 10]]),
          assignments: new Map([['web', { record: r, epoch: 13 }]]),
        }),
      ),
    ).toEqual([{ type: 'update', group: 'web', epoch: 13, record: r }]);
  });

  test('nothing when holding the current epoch', () => {
    expect(planAgent(view({ held: held(10), newestEpoch: new Map([['web', 10]]) }))).toEqual([]);
  });

  test('a release cancelled at a new epoch while still holding is an update', () => {
    expect(planAgent(view({ held: held(10), assignments: assigned(11, { reason: 'release-cancelled' }) }))).toEqual([
      { type: 'update', group: 'web', epoch: 11, record: rec({ reason: 'release-cancelled' }) },
    ]);
  });
});

describe('several groups', () => {
  test('each planned on its own, in name order', () => {
    const v = view({
      assignments: new Map([
        ['c', { record: rec({ group: 'c' }), epoch: 3 }],
        ['a', { record: rec({ group: 'a' }), epoch: 1 }],
        ['b', { record: rec({ group: 'b', holder: 'n2', holderLease: '7002' }), epoch: 2 }],
      ]),
      healthy: new Map([
        ['a', true],
        ['b', true],
        ['c', false],
      ]),
      held: new Map([['b', { epoch: 1, vips: [], specHash: '' }]]),
    });
    expect(planAgent(v)).toEqual([
      { type: 'acquire', group: 'a', epoch: 1, record: rec({ group: 'a' }) },
      { type: 'release', group: 'b', reason: 'assigned-elsewhere', ackEpoch: undefined },
      { type: 'ack', group: 'c', epoch: 3, reason: 'unhealthy' },
    ]);
  });
});
