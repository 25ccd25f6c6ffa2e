// Issue 15.6 (version skew), the controller's side against a real etcd: a node whose agent says in its node record
// that it cannot parse a group's spec (nodes/<node>.specErrors) is not given the group, even as the preferred node
// with healthy health; the status the controller reports carries a SpecNotUnderstood condition naming the node and
// why (the Kubernetes status patch of controller/sources/kube-objects.ts), and `vipwarden status` shows it.
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import type { Etcd3 } from 'etcd3';
import { collectStatus, renderStatus } from '../../cli/status.js';
import { realClock } from '../../common/clock.js';
import { connectEtcd } from '../../common/etcd.js';
import { Keys, type NodeRecord } from '../../common/keyspace.js';
import { silentLogger } from '../../common/log.js';
import { parseControllerConfig } from '../../controller/config.js';
import { Controller } from '../../controller/controller.js';
import { checksHash } from '../../controller/planner.js';
import { statusPatch } from '../../controller/sources/kube-objects.js';
import type { GroupReport, GroupSource, SourceGroup, StatusSink } from '../../controller/sources/types.js';
import { parseFailoverGroup, type FailoverGroup } from '../../crds/failovergroup.js';
import { startEtcd, type EtcdCluster } from '../harness/etcd.js';

jest.setTimeout(60_000);

const WHY = 'spec.checks.0.type: Invalid input (a check type this agent does not know)';
let etcd: EtcdCluster;
beforeAll(async () => {
  etcd = await startEtcd({ members: 1 });
});
afterAll(async () => {
  await etcd?.stop();
});

/** The group: n1 preferred. */
function skewGroup(): FailoverGroup {
  const vips = [{ address: '198.18.250.120/24' }];
  const nodes = [{ name: 'n1', priority: 200 }, { name: 'n2' }];
  const obj = { apiVersion: 'vipwarden.io/v1alpha1', kind: 'FailoverGroup', metadata: { name: 'skew', generation: 4 } };
  const r = parseFailoverGroup({ ...obj, spec: { vips, nodes } });
  if (r.ok) return r.group;
  throw r.error;
}

/** A node as its agent registers it: node record and health under its own lease. */
async function fakeAgent(c: Etcd3, keys: Keys, name: string, hash: string, specErrors?: NodeRecord['specErrors']) {
  const lease = await c.lease(10, { autoKeepAlive: true }).grant();
  const rec: NodeRecord = {
    name,
    lease,
    ttlSeconds: 10,
    maxLifetimeSeconds: 9,
    renewWindowMs: 500,
    addresses: [],
    interfaces: [],
    version: 'skew-test',
    startedAt: Date.now(),
    ...(specErrors ? { specErrors } : {}),
  };
  await c.put(keys.node(name)).value(JSON.stringify(rec)).lease(lease);
  // Healthy for the group's checks (what it said before the spec changed): the spec error must still win.
  const health = { healthy: true, checksHash: hash, at: Date.now() };
  await c.put(keys.health('skew', name)).value(JSON.stringify(health)).lease(lease);
}

test('the preferred node cannot parse the spec: the group goes to the other node, with a SpecNotUnderstood condition', async () => {
  const keys = new Keys('/skew/');
  const c = connectEtcd(etcd.clientConfig());
  const g = skewGroup();
  const source: SourceGroup = { name: 'skew', group: g, generation: 4, createdAt: 1 };
  const groups: GroupSource = { kind: 'test', start: async () => undefined, list: () => [source] };
  const reports: GroupReport[] = [];
  const status: StatusSink = {
    report: async (_g, r) => void reports.push(r),
    event: async () => undefined,
    finalize: async () => undefined,
  };
  await fakeAgent(c, keys, 'n1', checksHash(g), [{ group: 'skew', why: WHY }]);
  await fakeAgent(c, keys, 'n2', checksHash(g));
  const ctl = new Controller({
    config: parseControllerConfig({
      id: 'skew',
      etcd: { ...etcd.clientConfig(), prefix: keys.prefix },
      source: { directory: '/nonexistent' },
      settleMs: 0,
    }),
    client: connectEtcd(etcd.clientConfig()),
    source: groups,
    status,
    clock: realClock,
    log: silentLogger(),
    onDeposed: () => undefined,
  });
  try {
    await ctl.start();
    const deadline = Date.now() + 15_000;
    let holder: unknown;
    while (Date.now() < deadline) {
      holder = JSON.parse((await c.get(keys.assignment('skew')).string()) ?? '{}').holder;
      if (holder !== undefined && reports.some((r) => r.decision?.holder === 'n2')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(holder).toBe('n2');
    const last = reports.at(-1)!;
    expect(last.decision?.specErrors).toEqual([{ node: 'n1', why: WHY }]);
    expect(last.decision?.nodes.find((n) => n.name === 'n1')).toMatchObject({
      eligible: false,
      why: 'spec not understood',
    });
    const patch = statusPatch(last, undefined, Date.now()) as { conditions: Record<string, unknown>[] };
    expect(patch.conditions).toContainEqual(
      expect.objectContaining({
        type: 'SpecNotUnderstood',
        status: 'True',
        message: expect.stringContaining(`n1: ${WHY}`),
        observedGeneration: 4,
      }),
    );
    const lines = renderStatus(await collectStatus(c, keys));
    expect(lines.join('\n')).toContain('n1(200,up,SPEC)');
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^skew\\s+n1\\s+${WHY.replace(/[()]/g, '\\$&')}$`)));
  } finally {
    await ctl.stop();
    c.close();
  }
});
