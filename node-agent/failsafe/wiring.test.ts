// The agent's failsafe glue with fake time, fake holdings and the in-memory peer channel (no root, no etcd): a group
// is kept only once its promise set's acknowledgement was published; then an etcd outage keeps it (keptGroups, the
// lease-not-fresh path's filter), the peer's acquire waits while its promise binds, and the keep is reported.
import { describe, expect, test } from '@jest/globals';
import type { AssignmentRecord, NodeFailsafe } from '../../common/keyspace.js';
import { createLogger } from '../../common/log.js';
import { parseFailoverGroup } from '../../crds/failovergroup.js';
import { vipRef } from '../addresses.js';
import { DEFAULT_FAILSAFE_TIMING } from './rules.js';
import { MemoryPeerNetwork } from './transport.js';
import { AgentFailsafe, type FailsafeHoldings } from './wiring.js';

const spec = (() => {
  const r = parseFailoverGroup({
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name: 'web' },
    spec: { vips: [{ address: '198.18.0.100/24' }], nodes: [{ name: 'n0' }, { name: 'n1' }, { name: 'n2' }] },
  });
  if (!r.ok) throw r.error;
  return r.group.spec;
})();

function setup(o: { alsoHolds?: Set<string> } = {}) {
  const clock = { t: 1_000_000, mono: () => clock.t, wall: () => 1.7e12 + clock.t, sleep: async () => undefined };
  const net = new MemoryPeerNetwork();
  const log = createLogger({ name: 'test', level: 'silent' });
  const rec: AssignmentRecord = {
    group: 'web',
    holder: 'n0',
    holderLease: '7',
    vips: [{ address: '198.18.0.100/24' }],
    release: false,
    reason: 'initial',
    specHash: 'x',
    at: 0,
    leader: 'c',
    promiseSet: ['n0', 'n1', 'n2'].map((node) => ({ node, lease: '7' })),
  };
  const published: Record<string, NodeFailsafe[]> = {};
  const ends: Record<string, () => number> = {};
  const extended: number[] = [];
  const nodes = ['n0', 'n1', 'n2'].map((node) => {
    const lease = { lease: '7' as string | undefined, validUntil: clock.t + 2000, sentAt: clock.t };
    const leaseView = { ...lease, isFresh: () => clock.t - lease.sentAt <= 500 };
    Object.defineProperty(leaseView, 'validUntil', { get: () => lease.validUntil });
    let end = clock.t + 1000;
    ends[node] = () => end;
    const refs = [vipRef('198.18.0.100/24', 'eth0')];
    const holdings: FailsafeHoldings = {
      get: (g) =>
        (node === 'n0' || o.alsoHolds?.has(node)) && g === 'web' ? { epoch: 5, lease: '7', refs } : undefined,
      groups: () => (node === 'n0' ? ['web'] : []),
      leavingGroups: () => new Set(),
      firstLifetimeEnd: () => end,
      extendKept: async (_g, l, deadline) => {
        if (clock.t > deadline) return false;
        extended.push(l);
        end = clock.t + l * 1000;
        return true;
      },
    };
    const f = new AgentFailsafe({
      node,
      clock,
      log,
      lease: leaseView,
      timing: DEFAULT_FAILSAFE_TIMING,
      transport: net.transport(node),
      holdings,
      view: { assignment: () => ({ record: rec, epoch: 5 }), spec: () => spec },
      peerAddress: (n) => ({ node: n, address: '198.18.0.1', port: 1 }),
      publish: async (info) => void (published[node] ??= []).push(structuredClone(info)),
      kick: () => undefined,
    });
    f.keeper.serve();
    return { f, lease };
  });
  const answerAll = () => nodes.forEach((n) => ((n.lease.sentAt = clock.t), (n.lease.validUntil = clock.t + 2000)));
  return { clock, nodes, published, extended, answerAll, lifetimeEnd: () => ends['n0']!() };
}

describe('AgentFailsafe', () => {
  test('acknowledges first; keeps through an outage; the peer is bound; the keep is reported', async () => {
    const s = setup();
    const [h, p1] = s.nodes as [(typeof s.nodes)[0], (typeof s.nodes)[0]];
    await h.f.tick(); // fresh: learns the set of epoch 5 and publishes the acknowledgement
    expect(s.published['n0']?.at(-1)).toMatchObject({ windowMs: 5000, maxKeepMs: 120_000, acks: { web: 5 } });
    s.clock.t += 600; // nobody hears from etcd any more
    await h.f.tick();
    expect(s.extended).toEqual([3]);
    expect(h.f.keptGroups()).toEqual(new Set(['web']));
    expect(p1.f.blocksStep({ type: 'acquire', group: 'web', epoch: 9, record: {} as AssignmentRecord })).toBe(true);
    // Nor does it tell the controller it has nothing of web while bound (that would free what web's record claims).
    expect(p1.f.blocksStep({ type: 'ack', group: 'web', epoch: 9, reason: 'release-requested' })).toBe(true);
    expect(p1.f.blocksStep({ type: 'ack', group: 'other', epoch: 9, reason: 'release-requested' })).toBe(false);
    s.clock.t += 10_000;
    s.answerAll(); // etcd is back
    await h.f.tick();
    expect(h.f.keptGroups()).toEqual(new Set());
    expect(s.published['n0']?.at(-1)?.kept).toEqual([expect.objectContaining({ group: 'web', epoch: 5 })]);
  });

  test('no acknowledgement published yet: nothing is kept', async () => {
    const s = setup();
    const h = s.nodes[0]!;
    s.clock.t += 600;
    await h.f.tick();
    expect(s.extended).toEqual([]);
    expect(h.f.keptGroups()).toEqual(new Set());
  });

  /** n0 acknowledges, then keeps web through an outage; 1 s later the lease no longer covers. */
  async function keptThenLate(s: ReturnType<typeof setup>) {
    const h = s.nodes[0]!;
    await h.f.tick();
    s.clock.t += 600;
    await h.f.tick();
    expect(h.f.keptGroups()).toEqual(new Set(['web']));
    s.clock.t += 1000;
    return h;
  }

  test('peers reach etcd first and refuse: the kept VIP runs out instead of going at once', async () => {
    const s = setup();
    const h = await keptThenLate(s);
    // etcd is back for n1 and n2 (they refuse: reachesEtcd), not yet for n0.
    for (const p of s.nodes.slice(1)) {
      p.lease.sentAt = s.clock.t;
      p.lease.validUntil = s.clock.t + 2000;
    }
    await h.f.tick();
    expect(h.f.keeper.holder.endReason()).toMatch(/reachesEtcd/);
    // The extension's lifetime still runs: kept until its end (less the guard), then let go.
    expect(h.f.keptGroups()).toEqual(new Set(['web']));
    s.clock.t = s.lifetimeEnd() - 49;
    expect(h.f.keptGroups()).toEqual(new Set());
  });

  test('a peer says it holds the group: let go at once', async () => {
    const holds = new Set<string>();
    const s = setup({ alsoHolds: holds });
    const h = await keptThenLate(s);
    holds.add('n2');
    await h.f.tick();
    expect(h.f.keeper.holder.endReason()).toMatch(/holdsGroup/);
    expect(h.f.keptGroups()).toEqual(new Set());
  });
});
