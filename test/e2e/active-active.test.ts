// Active-active: two groups preferring different nodes, each the other's standby. Both nodes serve while healthy;
// when one fails, the other serves both VIPs; when it recovers, its VIP comes back (failback auto).
import { describe, expect, jest, test } from '@jest/globals';
import { webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import { startProbe, type Probe, type Sampler } from '../../hack/testbed/index.js';
import { useE2eCluster } from '../harness/e2e.js';

jest.setTimeout(180_000);

let c: Cluster;
let sampler: Sampler;
let vipA: string;
let vipB: string;
const probes: Probe[] = [];

useE2eCluster({ name: 'active-active', nodes: 2 }, async (f) => {
  ({ c, sampler } = f);
  vipA = f.watch(c.tb.vip(0));
  vipB = f.watch(c.tb.vip(1));
  f.onTeardown(async () => {
    for (const p of probes) await p.stop();
  });
  c.applyGroup(
    webGroup({
      name: 'web-a',
      vips: [`${vipA}/24`],
      nodes: [
        ['node1', 100],
        ['node2', 50],
      ],
    }),
  );
  c.applyGroup(
    webGroup({
      name: 'web-b',
      vips: [`${vipB}/24`],
      nodes: [
        ['node1', 50],
        ['node2', 100],
      ],
    }),
  );
});

async function probe(vip: string): Promise<Probe> {
  const p = await startProbe(c.tb, { target: vip, port: 80, intervalMs: 50, timeoutMs: 200, maxDurationMs: 150_000 });
  probes.push(p);
  return p;
}

/** The sampler sees `vip` on `node` (30 s at the most), then the probe gets an answer from it (20 s at the most). */
async function movedTo(vip: string, p: Probe, node: string): Promise<void> {
  await sampler.waitForHolder(vip, node, 30_000);
  await p.waitFor((s) => s.ok && s.body === node, 20_000);
}

describe('active-active on the netns testbed', () => {
  test('each group on its preferred node; each fails over to the other and comes back', async () => {
    await sampler.waitForHolder(vipA, 'node1', 30_000);
    await sampler.waitForHolder(vipB, 'node2', 30_000);
    const pa = await probe(vipA);
    const pb = await probe(vipB);
    await pa.waitFor((s) => s.ok && s.body === 'node1', 20_000, { includePast: true });
    await pb.waitFor((s) => s.ok && s.body === 'node2', 20_000, { includePast: true });

    // node1 fails: node2 serves both.
    await c.nginx.get('node1')!.kill();
    await movedTo(vipA, pa, 'node2');
    expect(sampler.holders(vipB)).toEqual(['node2']);

    // node1 recovers: web-a goes home, web-b never moved.
    await c.nginx.get('node1')!.start();
    await movedTo(vipA, pa, 'node1');
    expect(Object.keys(sampler.timeline(vipB))).toEqual(['node2']);

    // node2 fails: node1 serves both.
    await c.nginx.get('node2')!.kill();
    await movedTo(vipB, pb, 'node1');
    expect(sampler.holders(vipA)).toEqual(['node1']);
    await c.nginx.get('node2')!.start();
    await sampler.waitForHolder(vipB, 'node2', 30_000);

    const a = (await c.events('web-a')).map((e) => [e.from, e.to, e.reason]);
    const b = (await c.events('web-b')).map((e) => [e.from, e.to, e.reason]);
    expect(a).toEqual([
      [null, 'node1', 'initial'],
      ['node1', 'node2', 'unhealthy'],
      ['node2', 'node1', 'failback'],
    ]);
    expect(b).toEqual([
      [null, 'node2', 'initial'],
      ['node2', 'node1', 'unhealthy'],
      ['node1', 'node2', 'failback'],
    ]);
  });
});
