// Issue 15.14: a history that says what clients saw. The holder is cut from etcd (its agent's packets to etcd are
// dropped) until it lets go and its lease ends; the group moves, the cut heals, the group fails back. The agents'
// own add and remove times (presence/<node>/<group>) become outage records (outages/<group>/...) whose gaps match
// what the sampler saw of the VIP being on no node, and `vipwarden events` lists them.
import { join } from 'node:path';
import { describe, expect, jest, test } from '@jest/globals';
import type { OutageRecord } from '../../common/presence.js';
import { decode } from '../../common/keyspace.js';
import { OutageRecord as OutageSchema } from '../../common/presence.js';
import { REPO, webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import { cutFromEtcd, restoreEtcd, type Sampler } from '../../hack/testbed/index.js';
import type { Interval } from '../../hack/testbed/sampler.js';
import { monoMs, run, waitUntil } from '../../hack/testbed/util.js';
import { useE2eCluster } from '../harness/e2e.js';
import { eventually } from '../harness/workloads.js';

jest.setTimeout(180_000);

/** The agents measure from their own add and remove; the sampler polls every 5 ms. Generous: it times nothing. */
const BOUND_MS = 400;

let c: Cluster;
let sampler: Sampler;
let vip: string;

// Heartbeats off: a holder revoked by the leader loses its presence keys with its lease, and its "let go" is then
// sometimes missing from the outage record (left open, docs/design.md "Outage history and the fence"); these tests
// check the records of a lease that ends by itself.
useE2eCluster({ name: 'outages', nodes: 3, agent: { fence: { mode: 'auto', heartbeatMs: 'off' } } }, async (f) => {
  ({ c, sampler } = f);
  vip = f.watch(c.tb.vip(0));
  c.applyGroup(webGroup({ vips: [`${vip}/24`] }));
  await sampler.waitForHolder(vip, 'node1', 30_000);
});

async function outages(): Promise<OutageRecord[]> {
  const vals = Object.values(await c.client.getAll().prefix(c.keys.outagesPrefix('web')).strings());
  return vals.map((v) => decode(OutageSchema, v)).filter((o): o is OutageRecord => o !== undefined);
}

/** What the sampler saw: the first time after `since` that `from` lost the VIP, until `to` had it. */
function sampledGap(from: string, to: string, since: number): number {
  const tl: Record<string, Interval[]> = sampler.timeline(vip);
  const lost = (tl[from] ?? []).find((i) => i.to !== null && i.to >= since);
  if (!lost || lost.to === null) throw new Error(`the sampler never saw ${from} lose ${vip}`);
  const got = (tl[to] ?? []).find((i) => i.from >= lost.to!);
  if (!got) throw new Error(`the sampler never saw ${to} take ${vip}`);
  return got.from - lost.to;
}

describe('outages: what clients saw', () => {
  test('a holder cut from etcd lets go; the move and the failback are outages with the gaps the sampler saw', async () => {
    const cutAt = monoMs();
    await cutFromEtcd(c.tb, c.etcd, 'node1');
    // Taken before the rule goes: on a loaded machine the failback may be over by the time the command returns.
    let healedAt = monoMs();
    try {
      await sampler.waitForHolder(vip, 'node2', 30_000);
    } finally {
      healedAt = monoMs();
      await restoreEtcd(c.tb, c.etcd, 'node1');
    }
    await sampler.waitForHolder(vip, 'node1', 30_000);

    let move: OutageRecord | undefined;
    let back: OutageRecord | undefined;
    await eventually(async () => {
      const all = await outages();
      // node1 said when it let go only once it reached etcd again: the record came after the cut healed.
      move = all.find((o) => o.from === 'node1' && o.to === 'node2');
      back = all.find((o) => o.from === 'node2' && o.to === 'node1');
      return move !== undefined && back !== undefined;
    }, 'the outage records of the move and of the failback');

    expect(move).toMatchObject({ group: 'web', reason: 'lease-expired', releaseReason: 'lease-not-confirmed' });
    expect(back).toMatchObject({ group: 'web', reason: 'failback', releaseReason: 'release-requested' });
    const sawMove = sampledGap('node1', 'node2', cutAt);
    const sawBack = sampledGap('node2', 'node1', healedAt);
    console.log(
      `outages: move measured ${move!.gapMs} ms (sampler ${Math.round(sawMove)} ms, expired ${move!.expired ?? false}),` +
        ` failback ${back!.gapMs} ms (sampler ${Math.round(sawBack)} ms)`,
    );
    expect(Math.abs(move!.gapMs! - sawMove)).toBeLessThan(BOUND_MS);
    expect(Math.abs(back!.gapMs! - sawBack)).toBeLessThan(BOUND_MS);

    // `vipwarden events` lists them after the transitions.
    const r = await run(
      [process.execPath, join(REPO, 'bin', 'vipwarden.js'), 'events', 'web', ...c.etcd.cliFlags({ user: 'cli' })],
      { allowFailure: true, timeoutMs: 30_000 },
    );
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const head = lines.findIndex((l) => l.startsWith('VIP ON NO NODE FROM'));
    expect(head).toBeGreaterThan(0);
    expect(lines.slice(head + 1)).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `\\sweb\\s+${move!.epoch}\\s+node1\\s+node2\\s+lease-expired \\(lease-not-confirmed\\)\\s+${Math.round(move!.gapMs!)}ms`,
        ),
      ),
    );
  });
  test('etcd down for a while: the holder lets go on its own; taking the same epoch back is a holder-let-go outage', async () => {
    const epochBefore = Number((await c.client.get(c.keys.assignment('web')).exec()).kvs[0]!.mod_revision);
    const downAt = monoMs();
    const downWall = Date.now();
    await c.etcd.kill(0, 'SIGKILL');
    try {
      // The agent lets go once its keepalive answers stop covering the lease (TTL - margin). Its fence closes
      // earlier (the window, 1150 ms with heartbeats, against 1500 ms): that is when the sampler sees no holder, but
      // the agent has not let go yet, and an etcd back by then would leave no record (docs/design.md, "Outage
      // history and the fence"). So also wait for the address to go.
      await sampler.waitForHolder(vip, null, 30_000);
      await waitUntil(
        async () => !(await c.tb.exec('node1', ['ip', '-o', 'addr', 'show'])).stdout.includes(` ${vip}/`),
        {
          timeoutMs: 30_000,
          intervalMs: 20,
          what: "node1's agent letting go of the VIP",
        },
      );
    } finally {
      await c.etcd.restart(0);
    }
    // A restarted etcd gives every lease a fresh TTL, so node1 normally takes the same epoch back. The controller
    // may have given up leading when its own lease went unconfirmed (it exits): start one that leads, bounded.
    let holder: string | undefined;
    for (const end = Date.now() + 45_000; Date.now() < end && !holder;) {
      const ctl = c.controllers[0];
      if (!ctl || ctl.exited) c.startController(0);
      await new Promise((r) => setTimeout(r, 500));
      holder = sampler.holders(vip)[0];
    }
    expect(holder).toBeDefined();
    let self: OutageRecord | undefined;
    await eventually(async () => {
      self = (await outages()).find((o) => o.from === 'node1' && (o.fromAt ?? 0) >= downWall - 1000);
      return self !== undefined;
    }, 'the outage record of the self-caused outage');
    const saw = sampledGap('node1', self!.to, downAt);
    console.log(
      `outages: etcd down, ${self!.reason} (${self!.releaseReason}) to ${self!.to} epoch ${self!.epoch}` +
        ` (was ${epochBefore}) measured ${self!.gapMs} ms (${self!.measured}), sampler ${Math.round(saw)} ms`,
    );
    expect(self!.releaseReason).toBe('lease-not-confirmed');
    // Its lease lived (the usual case): the same epoch came back on the same node, a holder-let-go outage.
    if (self!.to === 'node1' && self!.epoch === epochBefore) expect(self!.reason).toBe('holder-let-go');
    expect(Math.abs(self!.gapMs! - saw)).toBeLessThan(BOUND_MS);
  });
});
