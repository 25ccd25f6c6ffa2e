// The bare-VM directory source: editing a manifest changes the group without moving unchanged VIPs, a bad file
// never stops the others, an invalid edit keeps the last valid spec, deleting the file removes the VIPs everywhere.
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { startCluster, webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import { requireRoot, startSampler, type Sampler } from '../../hack/testbed/index.js';

jest.setTimeout(120_000);

let c: Cluster;
let sampler: Sampler;
let vipA: string;
let vipB: string;

beforeAll(async () => {
  requireRoot('the e2e tier');
  c = await startCluster({ name: 'manifests' });
  sampler = await startSampler(c.tb, { periodMs: 5 });
  vipA = c.tb.vip(0);
  vipB = c.tb.vip(1);
});

afterAll(async () => {
  try {
    if (sampler) {
      const overlaps = [sampler.overlaps(vipA), sampler.overlaps(vipB)];
      await sampler.stop();
      expect(overlaps.map((o) => o.intervals)).toEqual([[], []]);
    }
  } finally {
    await c?.destroy();
  }
});

const nodes: [string, number][] = [
  ['node1', 100],
  ['node2', 90],
  ['node3', 80],
];

async function waitStatus(pred: (s: Awaited<ReturnType<Cluster['status']>>) => boolean, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await c.status();
    if (pred(s)) return s;
    if (Date.now() > end) throw new Error(`status not reached: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('manifests directory', () => {
  test('a group is placed from its file; a bad file next to it stops nothing', async () => {
    c.applyGroup(
      'apiVersion: vipwarden.io/v1alpha1\nkind: FailoverGroup\nmetadata: {name: broken}\nspec:\n  vips: [{address: 300.1.2.3/24}]\n  nodes: []\n',
      'broken.yaml',
    );
    c.applyGroup(webGroup({ vips: [`${vipA}/24`], nodes }));
    await sampler.waitForHolder(vipA, 'node1', 30_000);
    const s = await c.status();
    expect(s.groups.map((g) => g.group)).toEqual(['web']);
  });

  test('adding a VIP and changing a priority does not move the unchanged VIP', async () => {
    const before = sampler.events.filter((e) => e.address === vipA).length;
    c.applyGroup(
      webGroup({
        vips: [`${vipA}/24`, `${vipB}/24`],
        nodes: [
          ['node1', 100],
          ['node2', 95],
          ['node3', 80],
        ],
      }),
    );
    await sampler.waitForHolder(vipB, 'node1', 15_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(sampler.events.filter((e) => e.address === vipA).length).toBe(before);
    expect(sampler.holders(vipA)).toEqual(['node1']);
  });

  test('an invalid edit keeps the last valid spec running', async () => {
    const epoch = (await c.status()).groups[0]!.epoch;
    c.applyGroup(
      'apiVersion: vipwarden.io/v1alpha1\nkind: FailoverGroup\nmetadata: {name: web}\nspec:\n  vips: [{address: not-an-ip}]\n  nodes: [{name: node1}]\n',
      'web.yaml',
    );
    await new Promise((r) => setTimeout(r, 3000));
    const s = await c.status();
    expect(s.groups[0]!.epoch).toBe(epoch);
    expect(sampler.holders(vipA)).toEqual(['node1']);
    expect(sampler.holders(vipB)).toEqual(['node1']);
  });

  test('removing a VIP from the file removes only that address', async () => {
    c.applyGroup(webGroup({ vips: [`${vipA}/24`], nodes }));
    await sampler.waitForHolder(vipB, null, 15_000);
    expect(sampler.holders(vipA)).toEqual(['node1']);
  });

  test('deleting the file removes the group and its VIP from every node', async () => {
    c.deleteGroup('web');
    await sampler.waitForHolder(vipA, null, 15_000);
    await waitStatus((s) => s.groups.length === 0);
    // A deleted group has no assignment to wait for: wait for its event here.
    const deadline = Date.now() + 10_000;
    let evs = await c.events('web');
    while (evs.at(-1)?.reason !== 'deleted' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      evs = await c.events('web');
    }
    expect(evs.at(-1)!.reason).toBe('deleted');
  });
});
