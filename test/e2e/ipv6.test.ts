// Addresses: a group with two IPv4 VIPs and one IPv6 VIP, moved together; the IPv6 VIP added with nodad and
// announced with unsolicited neighbour advertisements (vipwarden-ndsend), so that the client's neighbour cache
// follows it to the new node. The client keeps neighbour entries REACHABLE for minutes here, so without the
// advertisement it would go on sending to the old node's MAC address: the second test shows exactly that, with
// the helper turned off.
import { afterEach, describe, expect, jest, test } from '@jest/globals';
import { startCluster, TWO_NODES, webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import { monoMs, requireRoot, startProbe, startSampler, type Probe, type Sampler } from '../../hack/testbed/index.js';
import { realExec } from '../../common/exec.js';
import { buildNdsend } from '../../node-agent/ndsend.js';
import { macOf, neighbour, sleep } from '../harness/workloads.js';

jest.setTimeout(180_000);

interface Bed {
  c: Cluster;
  sampler: Sampler;
  probe?: Probe;
  vips: string[];
}
let bed: Bed | undefined;

afterEach(async () => {
  const b = bed;
  bed = undefined;
  if (!b) return;
  try {
    await b.probe?.stop();
    const overlaps = b.vips.map((v) => b.sampler.overlaps(v).intervals);
    await b.sampler.stop();
    expect(overlaps).toEqual(b.vips.map(() => []));
  } finally {
    await b.c.destroy();
  }
});

async function setUp(name: string, agent: Record<string, unknown>): Promise<Bed> {
  requireRoot('the e2e tier');
  const c = await startCluster({ name, nodes: 2, ipv6: true, agent });
  try {
    const vips = [c.tb.vip(0), c.tb.vip(1), c.tb.vip6(0)];
    const sampler = await startSampler(c.tb, { periodMs: 5 });
    bed = { c, sampler, vips };
    // Neighbour entries stay REACHABLE for 150..450 s after a confirmation: only an advertisement moves them soon.
    await c.tb.exec('client', [
      'sysctl',
      '-qw',
      'net.ipv6.neigh.eth0.base_reachable_time_ms=300000',
      'net.ipv6.neigh.eth0.delay_first_probe_time=30',
    ]);
    c.applyGroup(
      webGroup({
        vips: [`${vips[0]}/24`, `${vips[1]}/24`, `${vips[2]}/64`],
        nodes: TWO_NODES,
      }),
    );
    for (const v of vips) await sampler.waitForHolder(v, 'node1', 30_000);
    return bed;
  } catch (err) {
    bed = undefined;
    await c.destroy();
    throw err;
  }
}

/** A probe of the VIP over HTTP every 50 ms, once node1 has answered it. */
async function probeUntilNode1(tb: Parameters<typeof startProbe>[0], vip: string): Promise<Probe> {
  const probe = await startProbe(tb, { target: vip, port: 80, intervalMs: 50, timeoutMs: 200, maxDurationMs: 120_000 });
  await probe.waitFor((s) => s.ok && s.body === 'node1', 20_000, { includePast: true });
  return probe;
}

describe('several VIPs and IPv6 on the netns testbed', () => {
  test('IPv4 and IPv6 VIPs move together, and the client neighbour cache follows the IPv6 VIP', async () => {
    const b = await setUp('ipv6', {});
    const vip6 = b.vips[2]!;
    const mac1 = await macOf(b.c.tb, 'node1');
    const mac2 = await macOf(b.c.tb, 'node2');
    b.probe = await probeUntilNode1(b.c.tb, vip6);
    expect((await neighbour(b.c.tb, 'client', vip6))?.lladdr).toBe(mac1);
    // Added with nodad: never tentative.
    const addr = await b.c.tb.exec('node1', ['ip', '-6', '-j', 'addr', 'show', 'dev', 'eth0', 'to', `${vip6}/128`]);
    expect(addr.stdout).toContain('"nodad":true');

    const t = monoMs();
    await b.c.nginx.get('node1')!.kill();
    for (const v of b.vips) await b.sampler.waitForHolder(v, 'node2', 30_000);
    // Together: node1 let go of every VIP before node2 had any of them.
    const lastGone = Math.max(...b.vips.map((v) => b.sampler.timeline(v)['node1']!.at(-1)!.to!));
    const firstCame = Math.min(...b.vips.map((v) => b.sampler.timeline(v)['node2']!.at(-1)!.from));
    expect(lastGone).toBeLessThanOrEqual(firstCame);

    const answer = await b.probe.waitFor((s) => s.ok && s.body === 'node2', 20_000, { includePast: true });
    expect((await neighbour(b.c.tb, 'client', vip6))?.lladdr).toBe(mac2);
    // A repeat still in flight on the old node must not point the client back: the helper refuses to advertise an
    // address that is not (any more) configured on its node.
    const late = await b.c.tb.exec('node1', [await buildNdsend(realExec), '-i', 'eth0', '-c', '1', vip6], {
      allowFailure: true,
    });
    expect([late.exitCode, late.stderr]).toEqual([1, expect.stringContaining('not a usable address of this node')]);
    expect((await neighbour(b.c.tb, 'client', vip6))?.lladdr).toBe(mac2);
    console.log(`IPv6 VIP: first answer from node2 ${Math.round(answer.t - t)} ms after nginx was killed on node1`);
  });

  test('control: without the neighbour advertisement the client keeps sending to the old node', async () => {
    const b = await setUp('ipv6-nona', { announce: { ndsend: 'off' } });
    const vip6 = b.vips[2]!;
    const mac1 = await macOf(b.c.tb, 'node1');
    b.probe = await probeUntilNode1(b.c.tb, vip6);
    await b.c.nginx.get('node1')!.kill();
    const moved = await b.sampler.waitForHolder(vip6, 'node2', 30_000);
    await sleep(3000);
    expect((await neighbour(b.c.tb, 'client', vip6))?.lladdr).toBe(mac1);
    expect(b.probe.samples().filter((s) => s.t > moved && s.ok)).toEqual([]);
  });
});
