// End to end (issue 12): a 3-member etcd with the documented timing (hack/testbed ETCD_TIMING, docs/etcd.md; agents
// and controllers as shipped), a VIP held by node1, a client probing it. SIGKILL of the etcd raft leader must cost nothing: the VIP never leaves node1 (one
// interval in the sampler's timeline), the client sees no loss beyond probe noise, the controller keeps leading (no
// new term, no second assignment), and no dual holder (the fixture checks that at the end).
// Before the fix the VIP went down for 1.3-2.5 s in every run and the controller exited.
import { expect, jest, test } from '@jest/globals';
import { webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import { monoMs, outageAround, sleep, startProbe, type Probe, type Sampler } from '../../hack/testbed/index.js';
import { expectHeldThroughout, logOf, useE2eCluster } from '../harness/e2e.js';

jest.setTimeout(240_000);

/** Client loss tolerated as probe noise on a loaded machine (an attempt times out after 100 ms). */
const NOISE_MS = 300;

let c: Cluster;
let sampler: Sampler;
let probe: Probe;
let vip: string;

useE2eCluster({ name: 'etcdleader', nodes: 3, etcdMembers: 3, controllerReplicas: 2 }, async (f) => {
  ({ c, sampler } = f);
  vip = f.watch(c.tb.vip(0));
  c.applyGroup(webGroup({ vips: [`${vip}/24`], failback: 'auto' }));
  await sampler.waitForHolder(vip, 'node1', 60_000);
  probe = await startProbe(c.tb, { target: vip, port: 80, intervalMs: 10, timeoutMs: 100, maxDurationMs: 200_000 });
  f.onTeardown(() => probe.stop());
  await probe.waitFor((s) => s.ok && s.body === 'node1', 20_000, { includePast: true });
});

test('SIGKILL of the etcd leader, twice: the VIP stays on node1, the controller keeps leading, no loss', async () => {
  for (let round = 1; round <= 2; round++) {
    const leaderBefore = await c.leaderIndex();
    expect(leaderBefore).toBeGreaterThanOrEqual(0);
    const eventsBefore = (await c.events('web')).length;
    const etcdLeader = await c.etcd.leader();
    expect(etcdLeader).toBeGreaterThanOrEqual(0);
    const t0 = monoMs();
    await c.etcd.kill(etcdLeader, 'SIGKILL');
    // The election (300-600 ms with the harness's ETCD_TIMING; 1-2 s with etcd's own defaults), then long enough
    // for a lease it cost to run out and the group to move (TTL 2 s + overhang).
    await sleep(8000);

    expectHeldThroughout(sampler, vip, 'node1', t0);
    const out = outageAround(probe.samples(), t0);
    expect(out.durationMs).toBeLessThanOrEqual(NOISE_MS);

    // The same controller leads, and no assignment was written for web (no gap, no new epoch).
    expect(await c.leaderIndex()).toBe(leaderBefore);
    expect((await c.events('web')).length).toBe(eventsBefore);
    for (const p of c.controllers) expect(p?.exited ?? false).toBe(false);
    const logs = [...c.agents.values()].map(logOf).join('\n');
    expect(logs).not.toContain('letting go of every VIP');
    expect(c.controllers.map(logOf).join('\n')).not.toContain('leadership lost');

    await c.etcd.restart(etcdLeader);
    await sleep(2000);
  }
});
