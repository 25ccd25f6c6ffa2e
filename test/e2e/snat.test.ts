// SNAT: connections from the holder to the group's SNAT destinations leave with the VIP as their source, over IPv4
// and IPv6; after a failover they leave from the new holder, and the old one keeps no rule. A server in the client
// namespace tells each connection the source address it saw. Stale rules (agent killed) are removed at start.
import { describe, expect, jest, test } from '@jest/globals';
import { TWO_NODES, webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import type { Sampler } from '../../hack/testbed/index.js';
import { useE2eCluster } from '../harness/e2e.js';
import { connectFrom, eventually, startWhoami, type WhoamiServer } from '../harness/workloads.js';

jest.setTimeout(180_000);

const PORT = 8080;
let c: Cluster;
let sampler: Sampler;
let whoami: WhoamiServer;
let vip: string;
let vip6: string;

useE2eCluster({ name: 'snat', nodes: 2, ipv6: true }, async (f) => {
  ({ c, sampler } = f);
  vip = f.watch(c.tb.vip(0));
  vip6 = f.watch(c.tb.vip6(0));
  whoami = await startWhoami(c.tb, 'client', PORT);
  f.onTeardown(() => whoami.stop());
  const client = c.tb.client;
  c.applyGroup(
    webGroup({
      vips: [`${vip}/24`, `${vip6}/64`],
      nodes: TWO_NODES,
      extra: {
        snat: [
          { destination: `${client.ip}/32`, protocol: 'tcp', ports: [PORT] },
          { destination: `${client.ip6}/128`, protocol: 'tcp', ports: [PORT] },
        ],
      },
    }),
  );
  await sampler.waitForHolder(vip, 'node1', 30_000);
});

/** vipwarden's SNAT rules on a node, as iptables / ip6tables list them. */
async function rules(node: string, family: 4 | 6 = 4): Promise<string[]> {
  const r = await c.tb.exec(node, [family === 6 ? 'ip6tables' : 'iptables', '-w', '5', '-t', 'nat', '-S'], {
    allowFailure: true,
  });
  return r.stdout.split('\n').filter((l) => l.startsWith('-A VIPWARDEN-SNAT'));
}

const sourceSeenFrom = (node: string, family: 4 | 6 = 4) =>
  connectFrom(c.tb, node, family === 6 ? c.tb.client.ip6! : c.tb.client.ip, PORT);

describe('SNAT on the netns testbed', () => {
  test('connections from the holder arrive from the VIP; from another node, from its own address', async () => {
    await eventually(async () => (await sourceSeenFrom('node1')) === vip, 'node1 connections to come from the VIP');
    expect(await sourceSeenFrom('node1', 6)).toBe(vip6);
    expect(await sourceSeenFrom('node2')).toBe(c.tb.node('node2').ip);
    expect(await rules('node1')).toEqual([
      `-A VIPWARDEN-SNAT -d ${c.tb.client.ip}/32 -p tcp -m multiport --dports ${PORT} -m comment --comment "vipwarden:web" -j SNAT --to-source ${vip}`,
    ]);
    expect(await rules('node1', 6)).toHaveLength(1);
    // vipwarden's chain is jumped to first in POSTROUTING.
    const post = await c.tb.exec('node1', ['iptables', '-w', '5', '-t', 'nat', '-S', 'POSTROUTING']);
    expect(post.stdout.split('\n').filter((l) => l.startsWith('-A'))[0]).toBe('-A POSTROUTING -j VIPWARDEN-SNAT');
    expect(await rules('node2')).toEqual([]);
  });

  test('after a failover, connections leave from the new holder with the VIP, and the old holder has no rule', async () => {
    await c.nginx.get('node1')!.kill();
    await sampler.waitForHolder(vip, 'node2', 30_000);
    await eventually(async () => (await sourceSeenFrom('node2')) === vip, 'node2 connections to come from the VIP');
    expect(await sourceSeenFrom('node2', 6)).toBe(vip6);
    await eventually(
      async () => (await rules('node1')).length === 0 && (await rules('node1', 6)).length === 0,
      'node1 rules removed',
    );
    expect(await sourceSeenFrom('node1')).toBe(c.tb.node('node1').ip);
  });

  test('rules left by a killed agent are removed when it starts again', async () => {
    // node1 may serve again; failback is automatic, so stop node2's agent hard while node2 holds nothing else.
    await c.nginx.get('node1')!.start();
    await sampler.waitForHolder(vip, 'node1', 30_000);
    await eventually(async () => (await rules('node2')).length === 0, 'node2 rules removed after failback');
    // Make node2 the holder again, then kill its agent with SIGKILL: nothing removes its rules.
    await c.nginx.get('node1')!.kill();
    await sampler.waitForHolder(vip, 'node2', 30_000);
    await eventually(async () => (await rules('node2')).length === 1, 'node2 rule installed');
    await c.nginx.get('node1')!.start();
    c.agents.get('node2')!.kill('SIGKILL');
    await c.agents.get('node2')!.done;
    // The VIP leaves node2 by its kernel lifetime and goes back to node1; the rule on node2 stays behind.
    await sampler.waitForHolder(vip, 'node1', 30_000);
    expect(await rules('node2')).toHaveLength(1);
    expect(await rules('node2', 6)).toHaveLength(1);
    await c.startAgent('node2');
    await eventually(
      async () => (await rules('node2')).length === 0 && (await rules('node2', 6)).length === 0,
      'stale rules removed at agent start',
    );
    await eventually(async () => (await sourceSeenFrom('node1')) === vip, 'node1 connections to come from the VIP');
  });
});
