// The testbed itself, end to end: namespaces, nginx, a VIP moved by hand with gratuitous ARP, the
// probe seeing who answers, and the sampler seeing (and not seeing) two holders at once.
// Needs root; without it every test fails with a clear message.
import { jest } from '@jest/globals';
import { existsSync } from 'node:fs';
import {
  type NginxHandle,
  type Probe,
  type Sampler,
  type Testbed,
  answeredBy,
  createTestbed,
  monoMs,
  outageAround,
  requireRoot,
  runsOf,
  sendGarp,
  sleep,
  startNginx,
  startProbe,
  startSampler,
} from '../harness/testbed.js';

jest.setTimeout(60_000);

describe('netns testbed', () => {
  let tb: Testbed | undefined;
  let nginx: NginxHandle[] = [];
  let sampler: Sampler | undefined;
  let probe: Probe | undefined;
  const must = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what} was not set up (see the first failure)`);
    return v;
  };

  beforeAll(async () => {
    requireRoot('test/integration/testbed.test.ts');
    tb = await createTestbed({ name: 'itest', nodes: 3, ipv6: true });
    nginx = await Promise.all(tb.nodes.map((n) => startNginx(must(tb, 'testbed'), n)));
    sampler = await startSampler(tb, { periodMs: 5, heartbeatMs: 250 });
    probe = await startProbe(tb, {
      target: tb.vip(0),
      port: 80,
      intervalMs: 10,
      timeoutMs: 100,
      maxDurationMs: 50_000,
    });
  });

  afterAll(async () => {
    await probe?.stop().catch(() => undefined);
    await sampler?.stop().catch(() => undefined);
    await tb?.destroy();
  });

  const ipIn = (node: string, ...args: string[]) => must(tb, 'testbed').exec(node, ['ip', ...args]);

  test('layout: names, addresses, interfaces', async () => {
    const t = must(tb, 'testbed');
    expect(t.subnet).toBe(`198.18.${t.id}.0/24`);
    expect(t.bridgeIp).toBe(`198.18.${t.id}.1`);
    expect(t.nodes.map((n) => n.ip)).toEqual([11, 12, 13].map((h) => `198.18.${t.id}.${h}`));
    expect(t.client.ip).toBe(`198.18.${t.id}.200`);
    expect(t.vip(0)).toBe(`198.18.${t.id}.100`);
    expect(t.vip6(0)).toBe(`2001:2:0:${t.id}::100`);
    for (const n of [...t.nodes, t.client]) {
      expect(n.netns.length).toBeLessThanOrEqual(15);
      expect(n.hostVeth.length).toBeLessThanOrEqual(15);
      const r = await ipIn(n.name, '-br', 'addr', 'show', 'dev', 'eth0');
      expect(r.stdout).toContain(`${n.ip}/24`);
      expect(r.stdout).toContain(`${n.ip6}/64`);
    }
  });

  test('the sampler polls at least every 20 ms', async () => {
    const s = must(sampler, 'sampler');
    const c0 = s.pollCount;
    const t0 = monoMs();
    await sleep(1200);
    const hb = s.heartbeats;
    const last = hb[hb.length - 1];
    const earlier = hb.find((h) => last && last.t - h.t >= 900);
    expect(last && earlier).toBeTruthy();
    if (!last || !earlier) return;
    const period = (last.t - earlier.t) / (last.polls - earlier.polls);
    expect(period).toBeLessThanOrEqual(20);
    expect(s.pollCount - c0).toBeGreaterThanOrEqual(Math.floor((monoMs() - t0 - 500) / 20));
  });

  test('a VIP added by hand on node1 is answered by node1', async () => {
    const t = must(tb, 'testbed');
    const vip = t.vip(0);
    await ipIn('node1', 'addr', 'add', `${vip}/32`, 'dev', 'eth0');
    await must(sampler, 'sampler').waitForHolder(vip, 'node1', 2000);
    const s = await must(probe, 'probe').waitFor((x) => x.ok && x.body === 'node1', 5000);
    expect(s.body).toBe('node1');
  });

  test('a clean move to node2 with gratuitous ARP: probe follows, no overlap', async () => {
    const t = must(tb, 'testbed');
    const smp = must(sampler, 'sampler');
    const prb = must(probe, 'probe');
    const vip = t.vip(0);
    await prb.waitFor((x) => x.ok && x.body === 'node1', 2000, { includePast: true });
    const fault = monoMs();
    await ipIn('node1', 'addr', 'del', `${vip}/32`, 'dev', 'eth0');
    await ipIn('node2', 'addr', 'add', `${vip}/32`, 'dev', 'eth0');
    await sendGarp(t, 'node2', vip, { count: 2, intervalMs: 20 });
    const got = await prb.waitFor((x) => x.ok && x.body === 'node2', 5000);
    expect(got.t).toBeGreaterThan(fault);
    await smp.waitForHolder(vip, 'node2', 2000);
    expect(smp.overlaps(vip).totalMs).toBe(0);
    expect(smp.overlaps(vip).intervals).toEqual([]);
    await sleep(100);
    const samples = prb.samples();
    const out = outageAround(samples, fault);
    expect(out.bodyBefore).toBe('node1');
    expect(out.bodyAfter).toBe('node2');
    expect(out.durationMs).toBeLessThan(2000);
    const runs = runsOf(samples.filter((x) => x.t >= fault));
    // after the move nobody but node2 answers again
    expect(runs.filter((r) => r.body === 'node1' && r.from > got.t)).toEqual([]);
    expect(answeredBy(samples)['node2']).toBeGreaterThan(0);
  });

  test('the sampler reports an overlap when the VIP is on two nodes at once', async () => {
    const t = must(tb, 'testbed');
    const smp = must(sampler, 'sampler');
    const vip = t.vip(0);
    const before = monoMs();
    await ipIn('node3', 'addr', 'add', `${vip}/32`, 'dev', 'eth0');
    await waitHolders(smp, vip, ['node2', 'node3']);
    await sleep(100);
    await ipIn('node3', 'addr', 'del', `${vip}/32`, 'dev', 'eth0');
    await smp.waitForHolder(vip, 'node2', 2000);
    const o = smp.overlaps(vip, { since: before });
    expect(o.intervals).toHaveLength(1);
    expect(o.intervals[0]?.holders).toEqual(['node2', 'node3']);
    expect(o.intervals[0]?.ongoing).toBe(false);
    expect(o.totalMs).toBeGreaterThanOrEqual(90);
    expect(o.totalMs).toBeLessThan(1000);
  });

  test('cutLink makes node2 unreachable, the sampler still sees its address; restoreLink heals', async () => {
    const t = must(tb, 'testbed');
    const smp = must(sampler, 'sampler');
    const prb = must(probe, 'probe');
    const vip = t.vip(0);
    await t.cutLink('node2');
    expect(t.isCut('node2')).toBe(true);
    await prb.waitFor((x) => !x.ok && x.error === 'timeout', 3000);
    // eth0 inside node2 is still up and still holds the address
    const link = await ipIn('node2', '-br', 'link', 'show', 'dev', 'eth0');
    expect(link.stdout).toMatch(/\bUP\b/);
    await sleep(50);
    expect(smp.holders(vip)).toEqual(['node2']);
    await t.restoreLink('node2');
    await prb.waitFor((x) => x.ok && x.body === 'node2', 5000);
  });

  test('nginx kill makes the service fail on the spot; start brings it back', async () => {
    const prb = must(probe, 'probe');
    const ng = nginx[1];
    expect(ng?.node.name).toBe('node2');
    if (!ng) return;
    await prb.waitFor((x) => x.ok && x.body === 'node2', 3000, { includePast: true });
    const tKill = monoMs();
    await ng.kill();
    expect(ng.running).toBe(false);
    const fail = await prb.waitFor((x) => !x.ok && x.t > tKill, 3000);
    expect(fail.error).toBe('ECONNREFUSED');
    await ng.start();
    await prb.waitFor((x) => x.ok && x.body === 'node2', 3000);
  });

  test('IPv6: the sampler sees an IPv6 VIP and the client reaches it', async () => {
    const t = must(tb, 'testbed');
    const smp = must(sampler, 'sampler');
    const vip6 = t.vip6(0);
    await ipIn('node3', '-6', 'addr', 'add', `${vip6}/128`, 'dev', 'eth0', 'nodad');
    await smp.waitForHolder(vip6, 'node3', 2000);
    const p6 = await startProbe(t, { target: vip6, port: 80, intervalMs: 10, timeoutMs: 100, maxDurationMs: 5000 });
    try {
      const s = await p6.waitFor((x) => x.ok, 3000);
      expect(s.body).toBe('node3');
    } finally {
      await p6.stop();
    }
    await ipIn('node3', '-6', 'addr', 'del', `${vip6}/128`, 'dev', 'eth0');
    await smp.waitForHolder(vip6, null, 2000);
  });

  test('destroy removes namespaces, links, processes and the working dir', async () => {
    const t = must(tb, 'testbed');
    const pids = [must(sampler, 'sampler'), ...nginx].length;
    expect(pids).toBe(4);
    const nginxPids = nginx.map((n) => n.pid).filter((p): p is number => p !== undefined);
    await must(probe, 'probe').stop();
    await t.destroy();
    await t.destroy(); // idempotent
    const ns = await listNetns();
    expect(ns.filter((n) => n.startsWith(`vw${t.id}-`))).toEqual([]);
    const links = await import('../../hack/testbed/cleanup.js').then((m) => m.listOurLinks());
    expect(links.filter((l) => l === t.bridge || t.nodes.some((n) => n.hostVeth === l))).toEqual([]);
    expect(existsSync(t.dir)).toBe(false);
    for (const p of nginxPids) expect(existsSync(`/proc/${p}`)).toBe(false);
    tb = undefined;
    sampler = undefined;
    probe = undefined;
  });
});

async function waitHolders(s: Sampler, vip: string, want: string[]): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const h = s.holders(vip);
    if (h.length === want.length && h.every((x, j) => x === want[j])) return;
    await sleep(10);
  }
  throw new Error(`holders of ${vip}: [${s.holders(vip).join(', ')}], wanted [${want.join(', ')}]`);
}

async function listNetns(): Promise<string[]> {
  const { listOurNetns } = await import('../../hack/testbed/cleanup.js');
  return listOurNetns();
}
