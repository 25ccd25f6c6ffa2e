// vipwarden_etcd_up tells what /readyz tells (issue 12: in about one etcd kill in five it stayed 1 on agents and a
// standby controller for a whole outage while /readyz said 503). The gauge is read from the bound check at each
// scrape, so no lost or late lease event can leave it stale. Fake etcd, jest's fake timers as the injected clock.
import { describe, expect, test } from '@jest/globals';
import type { Clock } from './clock.js';
import { LeaseKeeper, type LeaseTiming } from './lease.js';
import { silentLogger } from './log.js';
import { fakeEtcd, useFakeLeaseTime } from './testing/fake-lease-etcd.js';
import { PromAgentMetrics } from '../node-agent/prom-metrics.js';
import { PromControllerMetrics } from '../controller/prom-metrics.js';

const T0 = 2_000_000;
const TIMING: LeaseTiming = { ttlSeconds: 2, keepaliveIntervalMs: 250, marginMs: 500, renewWindowMs: 500 };

const time = useFakeLeaseTime(T0);

const gauge = async (m: { registry: { metrics(): Promise<string> } }) =>
  /^vipwarden_etcd_up (\d)$/m.exec(await m.registry.metrics())?.[1];

describe('vipwarden_etcd_up', () => {
  test.each([
    ['agent', () => new PromAgentMetrics({ node: 'n1', leaseTtlSeconds: 2, processMetrics: false })],
    ['controller', () => new PromControllerMetrics({ id: 'c0', processMetrics: false })],
  ])('%s: follows the lease proof at each scrape, whatever events came', async (_what, make) => {
    let lag = 0;
    const clock: Clock = {
      mono: () => Date.now() - lag,
      wall: () => Date.now(),
      sleep: (ms) => new Promise<void>((r) => setTimeout(r, ms)),
    };
    const etcd = fakeEtcd(2);
    const keeper = new LeaseKeeper(etcd.client, TIMING, clock, silentLogger());
    const m = make();
    // Wired the way agent.ts and controller.ts wire it: events set it, and the bound check decides.
    keeper.on('renewed', () => m.etcdUp(true));
    keeper.on('lost', () => m.etcdUp(false));
    m.bindEtcdUp(() => keeper.isSafe());
    await keeper.start(time.signal());
    expect(await gauge(m)).toBe('1');
    await time.advance(250);
    etcd.last().answer('1', 2); // safe until T0+1750
    m.etcdUp(true);
    // etcd goes silent; the monotonic clock lags the timers' clock (the case that left the deadline unarmed).
    lag = 5;
    await time.advance(1499);
    expect(keeper.isSafe()).toBe(true);
    expect(await gauge(m)).toBe('1');
    await time.advance(10);
    // An event that says the opposite does not matter: the scrape asks the lease.
    m.etcdUp(true);
    expect(keeper.isSafe()).toBe(false);
    expect(await gauge(m)).toBe('0');
    etcd.last().answer('1', 2);
    expect(keeper.isSafe()).toBe(true);
    expect(await gauge(m)).toBe('1');
  });

  test('before a check is bound, etcdUp() sets it (the metrics server starts before the component)', async () => {
    const m = new PromAgentMetrics({ node: 'n1', leaseTtlSeconds: 2, processMetrics: false });
    expect(await gauge(m)).toBe('0');
    m.etcdUp(true);
    expect(await gauge(m)).toBe('1');
  });
});
