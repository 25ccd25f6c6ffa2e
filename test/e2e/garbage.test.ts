// Garbage under the etcd prefix (issue 10, item 6): values that are not JSON, JSON of the wrong shape, and an
// assignment that almost parses and names node1 with its real lease and a VIP. Every component logs what it
// ignores, acts on none of it (the sampler never sees the garbage's VIP), and keeps serving the valid group.
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { startCluster, TWO_NODES, webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import { requireRoot, startSampler, type Sampler } from '../../hack/testbed/index.js';
import { logOf } from '../harness/e2e.js';

jest.setTimeout(120_000);

let c: Cluster | undefined;
let sampler: Sampler | undefined;

beforeAll(async () => {
  requireRoot('the e2e tier');
  c = await startCluster({ name: 'garbage', nodes: 2 });
  sampler = await startSampler(c.tb, { periodMs: 5 });
}, 120_000);

afterAll(async () => {
  await sampler?.stop().catch(() => undefined);
  await c?.destroy();
});

test('garbage under the prefix is logged, ignored and acted on by nobody; the valid group keeps its holder', async () => {
  const cl = c!;
  const vip = cl.tb.vip(0);
  const bogusVip = cl.tb.vip(1);
  cl.applyGroup(
    webGroup({
      vips: [`${vip}/24`],
      nodes: TWO_NODES,
    }),
  );
  await sampler!.waitForHolder(vip, 'node1', 30_000);
  const node1 = JSON.parse((await cl.client.get(cl.keys.node('node1')).string())!) as { lease: string };

  const p = cl.prefix.endsWith('/') ? cl.prefix : `${cl.prefix}/`;
  const garbage: [string, string | Buffer][] = [
    [cl.keys.group('junk'), 'not json {'],
    [cl.keys.group('shape'), JSON.stringify({ name: 7, spec: 'x' })],
    [
      cl.keys.group('evil'),
      JSON.stringify({
        name: 'evil',
        checksHash: 'x',
        spec: { vips: [{ address: `${bogusVip}/24` }], nodes: 'node1' },
      }),
    ],
    // Almost an assignment: holder node1 with its real lease and a VIP, but no specHash, at or leader.
    [
      cl.keys.assignment('evil'),
      JSON.stringify({
        group: 'evil',
        holder: 'node1',
        holderLease: node1.lease,
        vips: [{ address: `${bogusVip}/24` }],
        reason: 'x',
      }),
    ],
    [cl.keys.assignment('binary'), Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x7b])],
    [cl.keys.node('ghost'), '{"name":"ghost","lease":"not-a-number"}'],
    [cl.keys.health('web', 'node2'), '[]'],
    [cl.keys.health('web', 'ghost'), '{"healthy":"yes"}'],
    [`${p}zzz/unknown/subtree`, 'whatever'],
    [`${p}groups/`, ''],
  ];
  for (const [k, v] of garbage) await cl.client.put(k).value(v);

  // Some passes go by (agents kick every second; the controller resyncs every second).
  await new Promise((r) => setTimeout(r, 4000));

  expect(await cl.holderOf('web')).toBe('node1');
  expect(sampler!.holders(vip)).toEqual(['node1']);
  expect(Object.keys(sampler!.timeline(bogusVip))).toEqual([]);
  expect(sampler!.overlaps(vip).intervals).toEqual([]);
  for (const name of ['node1', 'node2']) {
    const h = cl.agents.get(name)!;
    expect(h.exited).toBe(false);
    expect(logOf(h)).toMatch(/does not parse/);
  }
  const ctlLog = cl.controllers
    .filter((x) => x && !x.exited)
    .map((x) => logOf(x!))
    .join('\n');
  expect(ctlLog).toMatch(/does not parse/);
  expect(cl.controllers.some((x) => x && !x.exited)).toBe(true);

  // And it still serves: a second valid group is placed, garbage and all.
  const vip2 = cl.tb.vip(2);
  cl.applyGroup(
    webGroup({
      name: 'web2',
      vips: [`${vip2}/24`],
      nodes: [
        ['node2', 100],
        ['node1', 90],
      ],
    }),
  );
  await sampler!.waitForHolder(vip2, 'node2', 30_000);
});
