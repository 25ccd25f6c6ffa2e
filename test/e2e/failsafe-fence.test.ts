// Failsafe with the fast fence (issues 12 and 13): 3 nodes with the peer channel and `fence: nftables`, a failsafe
// group held by node1, a client probing it. etcd killed for 8 s, then started again. The keep by promises must renew
// the fence element as well as the address lifetime, to the same bound (docs/design.md "Failsafe", rule 4): without
// that, the element opened on the last keepalive answer ran out one window later (1.5 s with the default lease) and
// node1 stopped answering for the VIP while it still held the address, as with `arbiterLoss: release`.
import { expect, jest, test } from '@jest/globals';
import type { Cluster } from '../../hack/testbed/cluster.js';
import { startEtcdMembers, stopEtcdMembers } from '../../hack/testbed/etcd-faults.js';
import { monoMs, outageAround, sleep, startProbe, type Probe, type Sampler } from '../../hack/testbed/index.js';
import { expectHeldThroughout, useE2eCluster } from '../harness/e2e.js';
import { placeFailsafeWeb, waitArmed } from './failsafe-common.js';

jest.setTimeout(240_000);

let c: Cluster;
let sampler: Sampler;
let probe: Probe;
let vip: string;

/**
 * Client loss tolerated: probe noise, and a round or two in which the fence helper closed the element because its
 * send was slow (over 20 ms on a loaded machine; the next round, 250 ms later, opens it again: safe, by design,
 * docs/design.md "Fast fence"): 458 ms once in CI, 0-30 ms in other runs. Without the renewal the loss is the
 * whole outage after one window (over 6 s).
 */
const LOSS_MS = 1500;
const OUTAGE_MS = 8000;

useE2eCluster(
  { name: 'fsfence', nodes: 3, peer: true, agent: { fence: { mode: 'nftables' } }, start: false },
  async (f) => {
    ({ c, sampler } = f);
    vip = await placeFailsafeWeb(f);
    probe = await startProbe(c.tb, { target: vip, port: 80, intervalMs: 10, timeoutMs: 100, maxDurationMs: 200_000 });
    f.onTeardown(() => probe.stop());
    await probe.waitFor((s) => s.ok && s.body === 'node1', 20_000, { includePast: true });
  },
);

test('etcd down 8 s with the fast fence on: the keep renews the fence, node1 answers throughout', async () => {
  await waitArmed(c, 20_000);
  const t0 = monoMs();
  await stopEtcdMembers(c.etcd);
  await sleep(OUTAGE_MS - 2000);
  // Well past one fence window after the last keepalive answer: the element is still there, renewed by the keep.
  const live = await c.tb.exec('node1', ['nft', 'list', 'set', 'arp', 'vipwarden_fence', 'live4']);
  await sleep(2000);
  await startEtcdMembers(c.etcd);
  await sleep(5000);

  expect(live.stdout).toContain(vip);
  expectHeldThroughout(sampler, vip, 'node1', t0);
  expect(outageAround(probe.samples(), t0).durationMs).toBeLessThanOrEqual(LOSS_MS);
  const log = c.agents.get('node1')!.stdoutLog!;
  console.log(
    `failsafe-fence: probe loss ${outageAround(probe.samples(), t0).durationMs} ms over the ${OUTAGE_MS} ms outage (${log})`,
  );
});
