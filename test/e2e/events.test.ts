// Failure history: every transition is kept in etcd (bounded per group), logged by the controller with pino, and
// listed by `vipwarden events [group]`. A transition records from, to, reason, and the detection and outage figures.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, jest, test } from '@jest/globals';
import type { EventRecord } from '../../common/keyspace.js';
import { REPO, webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import type { Sampler } from '../../hack/testbed/index.js';
import { useE2eCluster } from '../harness/e2e.js';
import { run } from '../../hack/testbed/util.js';
import { eventually } from '../harness/workloads.js';

jest.setTimeout(180_000);

const KEEP = 4;
let c: Cluster;
let sampler: Sampler;
let vip: string;

useE2eCluster({ name: 'events', nodes: 3, controller: { eventsPerGroup: KEEP } }, async (f) => {
  ({ c, sampler } = f);
  vip = f.watch(c.tb.vip(0));
  c.applyGroup(
    webGroup({
      vips: [`${vip}/24`],
    }),
  );
  await sampler.waitForHolder(vip, 'node1', 30_000);
});

/** The vipwarden CLI as an operator runs it (bin/vipwarden.js, built code), against the test's etcd. */
async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  const r = await run(
    [process.execPath, join(REPO, 'bin', 'vipwarden.js'), ...args, ...c.etcd.cliFlags({ user: 'cli' })],
    { allowFailure: true, timeoutMs: 30_000 },
  );
  return { code: r.exitCode, out: r.stdout };
}

describe('failure history', () => {
  test('a failover leaves an event with from, to, reason and figures; the controller logs it; vipwarden events lists it', async () => {
    await c.nginx.get('node1')!.kill();
    await sampler.waitForHolder(vip, 'node2', 30_000);
    let ev: EventRecord | undefined;
    await eventually(async () => {
      ev = (await c.events('web')).find((e) => e.to === 'node2');
      return ev !== undefined;
    }, 'the failover event in etcd');
    expect(ev).toMatchObject({ group: 'web', from: 'node1', to: 'node2', reason: 'unhealthy' });
    // Detection: from the first failed check to node1's release; outage: from the first failed check to the new
    // assignment (controller/planner.ts, eventFigures). Bounds here only catch nonsense, they time nothing.
    expect(ev!.detectMs).toEqual(expect.any(Number));
    expect(ev!.outageMs).toEqual(expect.any(Number));
    expect(ev!.detectMs!).toBeGreaterThan(0);
    expect(ev!.outageMs!).toBeGreaterThanOrEqual(ev!.detectMs!);
    expect(ev!.outageMs!).toBeLessThan(60_000);

    const table = await cli('events', 'web');
    expect(table.code).toBe(0);
    const lines = table.out.trim().split('\n');
    expect(lines[0]!.split(/\s+/)).toEqual(['TIME', 'GROUP', 'EPOCH', 'FROM', 'TO', 'REASON', 'DETECT', 'OUTAGE']);
    const row = lines.find((l) => l.includes(` ${ev!.epoch} `))!.split(/\s+/);
    expect(row.slice(1)).toEqual([
      'web',
      String(ev!.epoch),
      'node1',
      'node2',
      'unhealthy',
      `${Math.round(ev!.detectMs!)}ms`,
      `${Math.round(ev!.outageMs!)}ms`,
    ]);
    const json = await cli('events', 'web', '-o', 'json');
    expect(JSON.parse(json.out)).toEqual(await c.events('web'));
    // Every group's history without a name.
    expect((await cli('events')).out).toContain(' unhealthy ');

    // The controller logged it (pino JSON on stdout).
    const leader = c.controllers[await c.leaderIndex()]!;
    const logged = readFileSync(leader.stdoutLog!, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"msg":"failover"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged).toContainEqual(
      expect.objectContaining({
        group: 'web',
        epoch: ev!.epoch,
        from: 'node1',
        to: 'node2',
        reason: 'unhealthy',
        detectMs: ev!.detectMs,
        outageMs: ev!.outageMs,
      }),
    );
    await c.nginx.get('node1')!.start();
    await sampler.waitForHolder(vip, 'node1', 30_000);
  });

  test(`history stays bounded: the newest ${KEEP} transitions are kept`, async () => {
    // Planned moves: each one is a transition with reason "move".
    for (const to of ['node2', 'node3', 'node2', 'node3']) {
      expect((await cli('move', 'web', to)).code).toBe(0);
      await sampler.waitForHolder(vip, to, 30_000);
    }
    expect((await cli('move', 'web', '--unpin')).code).toBe(0);
    await sampler.waitForHolder(vip, 'node1', 30_000);
    await eventually(
      async () => (await c.events('web')).at(-1)?.to === 'node1' && (await c.events('web')).length === KEEP,
      `${KEEP} newest events`,
    );
    const kept = await c.events('web');
    expect(kept.map((e) => [e.from, e.to, e.reason])).toEqual([
      ['node2', 'node3', 'move'],
      ['node3', 'node2', 'move'],
      ['node2', 'node3', 'move'],
      ['node3', 'node1', 'failback'],
    ]);
    expect(kept.map((e) => e.epoch)).toEqual([...kept.map((e) => e.epoch)].sort((a, b) => a - b));
    const keys = await c.client.getAll().prefix(c.keys.eventsPrefix('web')).keys();
    expect(keys).toHaveLength(KEEP);
  });
});
