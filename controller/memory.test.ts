// The leader's memory of node leases (DESIGN.md Safety 3 and 6): a lease's end is asked of etcd, never inferred
// from a node record, and every wait runs on the monotonic clock.
import { afterEach, describe, expect, test } from '@jest/globals';
import type { Clock } from '../common/clock.js';
import type { Entry } from '../common/etcd.js';
import { FENCE_SLACK_MS } from '../common/fence.js';
import { addressOverhangMs } from '../common/lease.js';
import { AssignmentRecord, decode, Keys, MAX_RENEW_WINDOW_MS, NodeRecord } from '../common/keyspace.js';
import { silentLogger } from '../common/log.js';
import type { FailoverGroup } from '../crds/failovergroup.js';
import { testGroup } from './testing/groups.js';
import { HOLDER_POLL_MS, LeaderMemory, unknownOverhangMs, type LeaderMemoryOptions } from './memory.js';
import { checksHash, plan, specHash, vipsOf, type PlanInput } from './planner.js';

const keys = new Keys('/t/');
const SLACK = 400;

class JumpyClock implements Clock {
  m = 5_000_000.37; // the monotonic clock has fractions of a millisecond
  w = Date.parse('2026-12-01T12:00:00Z');
  mono = () => this.m;
  wall = () => this.w;
  sleep = async () => undefined;
  /** Time passes: both clocks move. */
  pass(ms: number): void {
    this.m += ms;
    this.w += ms;
  }
}

function nodeEntry(name: string, lease: string, over: Partial<NodeRecord> = {}, value?: string): Entry {
  const rec: NodeRecord = {
    name,
    lease,
    ttlSeconds: 1,
    maxLifetimeSeconds: 1,
    renewWindowMs: 500,
    addresses: [],
    interfaces: [],
    version: 't',
    startedAt: 0,
    ...over,
  };
  return { key: keys.node(name), value: value ?? JSON.stringify(rec), modRevision: 1, createRevision: 1, lease };
}

// release: these tests are about how a lease's end is learnt; failsafe's extra writes are in failsafe.test.ts.
const G: FailoverGroup = testGroup('web', {
  nodes: [{ name: 'a', priority: 200 }, { name: 'b' }],
  arbiterLoss: 'release',
});

function assignmentEntry(holder: string, lease: string): Entry {
  const rec: AssignmentRecord = {
    group: 'web',
    holder,
    holderLease: lease,
    vips: vipsOf(G),
    release: false,
    reason: 'initial',
    specHash: specHash(G),
    at: 0,
    leader: 'c',
  };
  return { key: keys.assignment('web'), value: JSON.stringify(rec), modRevision: 7, createRevision: 7, lease: '0' };
}

/** etcd's side: which leases exist. */
class FakeLeases {
  alive = new Set<string>();
  asked: string[] = [];
  ask = async (lease: string): Promise<number> => {
    this.asked.push(lease);
    return this.alive.has(lease) ? 1 : -1;
  };
}

const settle = () => new Promise((r) => setImmediate(r));

let memories: LeaderMemory[] = [];
afterEach(() => {
  for (const m of memories) m.stop();
  memories = [];
});

/** A memory on `clock` with this file's keys and slack, stopped after the test. */
function memoryWith(clock: Clock, opts: Pick<LeaderMemoryOptions, 'askLease' | 'listLeases'>): LeaderMemory {
  const memory = new LeaderMemory({ clock, log: silentLogger(), keys, kernelSlackMs: SLACK, ...opts });
  memories.push(memory);
  return memory;
}

function setup() {
  const clock = new JumpyClock();
  const leases = new FakeLeases();
  const memory = new LeaderMemory({ clock, log: silentLogger(), keys, kernelSlackMs: SLACK, askLease: leases.ask });
  memories.push(memory);
  /** One pass: the holder "a" with lease L1, "b" alive and healthy. */
  const pass = (nodes: Entry[]) => {
    const assignments = [assignmentEntry('a', '1001')];
    memory.observe([...nodes, nodeEntry('b', '1002')], assignments);
    const inp: PlanInput = {
      now: clock.wall(),
      mono: clock.mono(),
      leader: 'c',
      groups: new Map([['web', G]]),
      frozen: new Set(),
      nodes: new Map(
        [...nodes, nodeEntry('b', '1002')]
          .map((e) => [e, decode(NodeRecord, e.value)] as const)
          .filter(([e, r]) => r && r.lease === e.lease && !memory.isGone(r.lease))
          .map(([, r]) => [r!.name, r!]),
      ),
      gone: memory.gone,
      unconfirmed: memory.unconfirmed,
      health: new Map([
        [
          'web',
          new Map([
            ['a', { healthy: true, priorityDelta: 0, checks: [], checksHash: checksHash(G), at: 0 }],
            ['b', { healthy: true, priorityDelta: 0, checks: [], checksHash: checksHash(G), at: 0 }],
          ]),
        ],
      ]),
      assignments: new Map([['web', { record: JSON.parse(assignments[0]!.value) as AssignmentRecord, epoch: 7 }]]),
      released: new Map(),
      drained: new Set(),
      pins: new Map(),
      firstSeen: new Map([['web', clock.mono() - 60_000]]),
      settleMs: 2000,
    };
    return plan(inp);
  };
  leases.alive.add('1001').add('1002');
  return { clock, leases, memory, pass };
}

describe("a lease's end is asked, not inferred", () => {
  test.each<[string, Entry[]]>([
    ['its node key was deleted (etcdctl del)', []],
    ['its node key names another lease (a second agent with that name)', [nodeEntry('a', '1009')]],
    ['its node record does not parse (schema skew)', [nodeEntry('a', '1001', {}, '{"name":"a","lease":"1001"')]],
    ['its node record names another lease than the key carries', [nodeEntry('a', '1001', { lease: '1003' })]],
  ])('%s: the group stays while etcd says the lease lives', async (_name, nodes) => {
    const { clock, leases, memory, pass } = setup();
    expect(pass([nodeEntry('a', '1001')]).actions).toEqual([]);
    await settle();
    pass(nodes);
    await settle();
    for (let i = 0; i < 10; i++) {
      clock.pass(30_000);
      const p = pass(nodes);
      await settle();
      expect(p.actions).toEqual([]);
      expect(p.decisions.get('web')).toMatchObject({ holder: 'a', state: 'unconfirmed' });
    }
    expect(memory.gone.has('1001')).toBe(false);
    // Now the lease really ends (etcd deletes what it carried): gone from the answer on; moves after the wait.
    leases.alive.delete('1001');
    const after = nodes.filter((e) => e.lease !== '1001');
    clock.pass(1000);
    pass(after);
    await settle();
    expect(memory.gone.get('1001')).toMatchObject({ goneAt: clock.mono() });
    const waitMs = memory.gone.get('1001')!.waitMs;
    clock.pass(waitMs - 1);
    expect(pass(after).actions).toEqual([]);
    clock.pass(1);
    expect(pass(after).actions).toEqual([
      expect.objectContaining({ record: expect.objectContaining({ reason: 'lease-expired' }) }),
    ]);
  });

  test('a lease the leader never saw a record for waits the largest overhang the schema allows', async () => {
    const { leases, memory, pass } = setup();
    leases.alive.delete('1001');
    pass([]);
    await settle();
    expect(memory.gone.get('1001')?.waitMs).toBe(unknownOverhangMs(SLACK));
    expect(unknownOverhangMs(SLACK)).toBeGreaterThanOrEqual(MAX_RENEW_WINDOW_MS + SLACK);
  });

  test('TTL 0 (under a second left, rounded down) is not an end', async () => {
    const { leases, memory, pass } = setup();
    leases.ask = async (): Promise<number> => 0;
    (memory as unknown as { opts: { askLease: (l: string) => Promise<number> } }).opts.askLease = leases.ask;
    pass([nodeEntry('a', '1001')]);
    await settle();
    pass([]);
    await settle();
    expect(memory.gone.has('1001')).toBe(false);
    expect(memory.unconfirmed.has('1001')).toBe(true);
  });
});

describe('a lease end is seen soon even when the node watch is behind (issue 15.15)', () => {
  test('etcd revoked the holder lease while the mirror still shows its key: seen within one poll', async () => {
    const { clock, leases, memory, pass } = setup();
    const stale = [nodeEntry('a', '1001')];
    pass(stale);
    await settle();
    leases.alive.delete('1001');
    clock.pass(HOLDER_POLL_MS);
    pass(stale);
    await settle();
    expect(memory.gone.get('1001')).toMatchObject({ goneAt: clock.mono() });
    clock.pass(memory.gone.get('1001')!.waitMs);
    const p = pass(stale);
    expect(p.actions).toEqual([
      expect.objectContaining({ record: expect.objectContaining({ holder: 'b', reason: 'lease-expired' }) }),
    ]);
    // What is written parses (whole milliseconds, though the monotonic clock has fractions).
    const a = p.actions[0]!;
    expect(a.type === 'put' && AssignmentRecord.safeParse(a.record).success).toBe(true);
  });
});

describe('waits run on the monotonic clock', () => {
  /** Node a (lease 1001) seen once, then its lease gone and the node absent: the Safety 3 wait has begun. */
  async function leaseGone() {
    const t = setup();
    t.pass([nodeEntry('a', '1001')]);
    await settle();
    t.leases.alive.delete('1001');
    t.pass([]);
    await settle();
    return t;
  }

  test('a wall clock that jumps forward by five minutes does not end the Safety 3 wait early', async () => {
    const { clock, memory, pass } = await leaseGone();
    const waitMs = memory.gone.get('1001')!.waitMs;
    expect(waitMs).toBeGreaterThan(0);
    clock.w += 300_000; // an NTP step, or an operator's `date -s`
    expect(pass([]).actions).toEqual([]);
    expect(pass([]).decisions.get('web')?.state).toBe('gone-waiting');
    clock.m += waitMs;
    expect(pass([]).actions).toHaveLength(1);
  });

  test('a wall clock that jumps back does not stretch it either, and requeueAt is monotonic', async () => {
    const { clock, memory, pass } = await leaseGone();
    const goneAt = memory.gone.get('1001')!.goneAt;
    const waitMs = memory.gone.get('1001')!.waitMs;
    clock.w -= 3_600_000;
    expect(pass([]).requeueAt).toBe(goneAt + waitMs);
    clock.m += waitMs;
    expect(pass([]).actions).toHaveLength(1);
  });
});

describe('a fenced holder\'s wait (docs/design.md "Fast fence")', () => {
  const overhang = addressOverhangMs({ ttlSeconds: 1, maxLifetimeSeconds: 1, renewWindowMs: 500 }, SLACK);
  test.each<[string, Partial<NodeRecord>, number]>([
    ['no fence in its record: the address overhang', {}, overhang],
    ['fenced, window within the lease: nothing after the lease', { fence: { kind: 'nftables', windowMs: 500 } }, 0],
    [
      'fenced, window past the lease: the excess + slack',
      { fence: { kind: 'nftables', windowMs: 1100 } },
      100 + FENCE_SLACK_MS,
    ],
  ])('%s', async (_name, over, want) => {
    const { clock, leases, memory, pass } = setup();
    pass([nodeEntry('a', '1001', over)]);
    await settle();
    leases.alive.delete('1001');
    clock.pass(1000);
    pass([]);
    await settle();
    expect(memory.gone.get('1001')?.waitMs).toBe(want);
  });
});

describe('a revocable holder\'s wait (heartbeats; docs/design.md "Fast fence")', () => {
  const revocableRec: Partial<NodeRecord> = { fence: { kind: 'nftables', windowMs: 150, heartbeatMs: 30 } };

  test.each<[string, Partial<NodeRecord>, number]>([
    ['heartbeats: the whole window + slack, though the window is within the lease', revocableRec, 150 + FENCE_SLACK_MS],
    [
      'heartbeats but failsafe keeps (never revoked): as without heartbeats',
      { ...revocableRec, failsafe: { windowMs: 1000, maxKeepMs: 5000, acks: {}, kept: [] } },
      0,
    ],
  ])('%s', async (_name, over, want) => {
    const { clock, leases, memory, pass } = setup();
    pass([nodeEntry('a', '1001', over)]);
    await settle();
    leases.alive.delete('1001');
    clock.pass(1000);
    pass([]);
    await settle();
    expect(memory.gone.get('1001')?.waitMs).toBe(want);
  });

  test("revoked by this leader: gone from the revocation's answer; a poll answered after it changes nothing", async () => {
    const clock = new JumpyClock();
    // A poll of the holder lease is under way when the revocation is answered; its "not found" comes after.
    let answerPoll: (ttl: number) => void = () => undefined;
    const slow = memoryWith(clock, { askLease: () => new Promise<number>((r) => (answerPoll = r)) });
    slow.observe([nodeEntry('a', '1001', revocableRec)], [assignmentEntry('a', '1001')]);
    clock.pass(HOLDER_POLL_MS);
    slow.observe([nodeEntry('a', '1001', revocableRec)], [assignmentEntry('a', '1001')]); // the poll starts
    const revokedAt = clock.mono();
    slow.revoked('1001');
    expect(slow.gone.get('1001')).toMatchObject({ goneAt: revokedAt, waitMs: 150 + FENCE_SLACK_MS, node: 'a' });
    clock.pass(5);
    answerPoll(-1);
    await settle();
    // Before, the second end took the unknown lease's wait (its record forgotten by the first): 10 s, not 200 ms.
    expect(slow.gone.get('1001')).toMatchObject({ goneAt: revokedAt, waitMs: 150 + FENCE_SLACK_MS });
  });
});

describe('answers: a pass waits for etcd on leases whose keys vanished', () => {
  test('resolves with the answer, so that the same pass sees the lease gone; bounded when etcd does not answer', async () => {
    const clock = new JumpyClock();
    let answer: ((ttl: number) => void) | undefined;
    const memory = memoryWith(clock, { askLease: () => new Promise<number>((r) => (answer = r)) });
    // Nothing asked: nothing to wait for.
    await memory.answers(10_000);
    // The holder's node key is gone: its lease is asked about at once.
    memory.observe([], [assignmentEntry('a', '1001')]);
    expect(answer).toBeDefined();
    const waited = memory.answers(10_000);
    answer!(-1);
    await waited;
    expect(memory.isGone('1001')).toBe(true);
    // etcd silent: the wait ends by itself.
    memory.observe([], [assignmentEntry('a', '1001'), { ...assignmentEntry('b', '1003'), key: keys.assignment('x') }]);
    const t0 = Date.now();
    await memory.answers(30);
    expect(memory.isGone('1003')).toBe(false);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});

describe("the holder poll reads etcd's lease list once, and asks only about the leases it lacks", () => {
  /** Holders g0..g4 (leases 2000..2004), each carried by its node key. */
  function holders(n: number) {
    const nodes = Array.from({ length: n }, (_, i) => nodeEntry(`n${i}`, String(2000 + i)));
    const assignments = nodes.map((e, i) => ({
      ...assignmentEntry(`n${i}`, e.lease),
      key: keys.assignment(`g${i}`),
    }));
    return { nodes, assignments };
  }

  function setupListed(list: () => Promise<ReadonlySet<string>>) {
    const clock = new JumpyClock();
    const leases = new FakeLeases();
    let lists = 0;
    const memory = memoryWith(clock, { askLease: leases.ask, listLeases: () => (lists++, list()) });
    return { clock, leases, memory, lists: () => lists };
  }

  test('one list per period instead of one LeaseTimeToLive per holder; a lease the list lacks ends only on "not found"', async () => {
    const { nodes, assignments } = holders(5);
    // The member's list lacks 2003 (its revocation applied) and 2004 (a stale member: the lease is alive).
    const listed = new Set(['2000', '2001', '2002']);
    const t = setupListed(async () => listed);
    for (const e of nodes) t.leases.alive.add(e.lease);
    t.leases.alive.delete('2003');
    t.memory.observe(nodes, assignments);
    await settle();
    expect(t.lists()).toBe(1);
    expect(t.leases.asked.sort()).toEqual(['2003', '2004']);
    expect(t.memory.isGone('2003')).toBe(true);
    // Absent from the list is no answer: etcd said 2004 lives, so it does.
    expect(t.memory.isGone('2004')).toBe(false);
    // The next period: one list again.
    t.clock.pass(HOLDER_POLL_MS);
    t.memory.observe(nodes, assignments);
    await settle();
    expect(t.lists()).toBe(2);
  });

  test('a list that fails: every due holder lease is asked about, as without it', async () => {
    const { nodes, assignments } = holders(4);
    const t = setupListed(async () => {
      throw new Error('permission denied');
    });
    for (const e of nodes) t.leases.alive.add(e.lease);
    t.leases.alive.delete('2001');
    t.memory.observe(nodes, assignments);
    await settle();
    await settle();
    expect(t.leases.asked.sort()).toEqual(['2000', '2001', '2002', '2003']);
    expect(t.memory.isGone('2001')).toBe(true);
  });
});
