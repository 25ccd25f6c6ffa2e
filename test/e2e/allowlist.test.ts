// The node-side allowlist on the netns testbed: a node whose agent.yaml does not allow a group's VIP range refuses
// it (the next node takes it, and status says why); a group whose check points outside every node's allowed
// targets is held by nobody, its checks never run, and status names the check.
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { startCluster, TWO_NODES, webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import { requireRoot, startSampler, type Sampler } from '../../hack/testbed/index.js';

jest.setTimeout(120_000);

let c: Cluster | undefined;
let sampler: Sampler | undefined;

beforeAll(async () => {
  requireRoot('the e2e tier');
  c = await startCluster({
    name: 'allowlist',
    nodes: 2,
    // node1 may hold only a range the test's VIPs are not in.
    agentFor: (node) => (node === 'node1' ? { vipRanges: ['198.19.250.0/24'] } : {}),
  });
  sampler = await startSampler(c.tb, { periodMs: 5 });
}, 120_000);

afterAll(async () => {
  await sampler?.stop().catch(() => undefined);
  await c?.destroy();
});

async function nodeStatus(group: string, node: string) {
  const s = await c!.status();
  return s.groups.find((g) => g.group === group)?.nodes.find((n) => n.name === node);
}

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test("a VIP outside a node's vipRanges: that node refuses it, the next one holds it, status says why", async () => {
  const vip = c!.tb.vip(0);
  c!.applyGroup(
    webGroup({
      vips: [`${vip}/24`],
      nodes: TWO_NODES,
    }),
  );
  await sampler!.waitForHolder(vip, 'node2', 30_000);
  const n1 = await eventually('node1 to report the refusal', async () => {
    const n = await nodeStatus('web', 'node1');
    return n?.checks.some((x) => x.name === 'allowlist') ? n : undefined;
  });
  expect(n1.healthy).toBe(false);
  expect(n1.checks.find((x) => x.name === 'allowlist')!.message).toMatch(/vips\[0\].*outside this node's vipRanges/);
  expect(await c!.holderOf('web')).toBe('node2');
  expect(Object.keys(sampler!.timeline(vip))).toEqual(['node2']);
  expect(sampler!.overlaps(vip).intervals).toEqual([]);
  c!.deleteGroup('web');
});

test('a check target no node allows: nobody holds the group, and the check never runs', async () => {
  const vip = c!.tb.vip(1);
  c!.applyGroup(
    webGroup({
      name: 'remote',
      vips: [`${vip}/24`],
      nodes: TWO_NODES,
      // TEST-NET-1: outside the testbed's allowed targets; never contacted.
      checks: [{ name: 'far', type: 'tcp', tcp: { port: 3306, host: '192.0.2.1' }, intervalMs: 100, timeoutMs: 100 }],
    }),
  );
  const n2 = await eventually('node2 to report the refusal', async () => {
    const n = await nodeStatus('remote', 'node2');
    return n?.checks.some((x) => x.name === 'allowlist') ? n : undefined;
  });
  expect(n2.healthy).toBe(false);
  expect(n2.checks.map((x) => x.name)).toEqual(['allowlist']);
  expect(n2.checks[0]!.message).toMatch(/checks\[0\] \(far\): target 192\.0\.2\.1 is not local/);
  await new Promise((r) => setTimeout(r, 1500));
  expect(await c!.holderOf('remote')).toBeNull();
  expect(Object.keys(sampler!.timeline(vip))).toEqual([]);
});
