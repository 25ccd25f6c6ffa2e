// The outside ARP view (hack/testbed/arpwatch): from the client namespace it sees which nodes answer ARP for a
// VIP, counts two answers to one request as a dual holder, sees a node whose ARP for the VIP is dropped by
// nftables (the fast fence's effect) as not answering although its address is there, and leaves the client's own
// neighbour table alone. Needs root; without it every test fails with a clear message.
import { jest } from '@jest/globals';
import { type ArpWatch, type Testbed, createTestbed, requireRoot, sleep, startArpWatch } from '../harness/testbed.js';

jest.setTimeout(60_000);

describe('outside ARP view', () => {
  let tb: Testbed | undefined;
  let watch: ArpWatch | undefined;
  const macs = new Map<string, string>();
  const must = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what} was not set up (see the first failure)`);
    return v;
  };

  beforeAll(async () => {
    requireRoot('test/integration/arpwatch.test.ts');
    tb = await createTestbed({ name: 'arpwatch', nodes: 2 });
    for (const n of tb.nodes) {
      const r = await tb.exec(n, ['cat', `/sys/class/net/${n.iface}/address`]);
      macs.set(r.stdout.trim().toLowerCase(), n.name);
    }
    watch = await startArpWatch(tb, { vips: [tb.vip(0), tb.vip(1)], periodMs: 5, waitMs: 50, maxDurationS: 120 });
  });

  afterAll(async () => {
    await watch?.stop().catch(() => undefined);
    await tb?.destroy();
  });

  const answering = (vip: string) =>
    must(watch, 'watch')
      .answering(vip)
      .map((m) => macs.get(m) ?? m)
      .sort();
  /** Waits (bounded: 40 rounds of 50 ms) until the view shows `want` answering for `vip`. */
  async function until(vip: string, want: string[]): Promise<void> {
    for (let i = 0; i < 40; i++) {
      if (JSON.stringify(answering(vip)) === JSON.stringify(want)) return;
      await sleep(50);
    }
    expect(answering(vip)).toEqual(want);
  }
  const addr = (node: string, op: 'add' | 'del', vip: string) =>
    must(tb, 'testbed').exec(node, ['ip', 'addr', op, `${vip}/24`, 'dev', 'eth0']);

  test('no holder, one holder, two holders, one again', async () => {
    const t = must(tb, 'testbed');
    const w = must(watch, 'watch');
    const vip = t.vip(0);
    await until(vip, []);
    await addr('node1', 'add', vip);
    await until(vip, ['node1']);
    const before = w.duals(vip).totalMs;
    expect(before).toBe(0);
    await addr('node2', 'add', vip);
    await until(vip, ['node1', 'node2']);
    await sleep(200);
    await addr('node1', 'del', vip);
    await until(vip, ['node2']);
    const d = w.duals(vip);
    expect(d.intervals).toHaveLength(1);
    expect(d.intervals[0]!.ongoing).toBe(false);
    expect(d.intervals[0]!.macs.map((m) => macs.get(m)).sort()).toEqual(['node1', 'node2']);
    // both held it for at least the 200 ms sleep; bounded above only to catch a runaway
    expect(d.totalMs).toBeGreaterThanOrEqual(150);
    expect(d.totalMs).toBeLessThan(10_000);
    // the other VIP was never answered
    expect(w.answers.filter((a) => a.vip === t.vip(1) && a.macs.length > 0)).toEqual([]);
    await addr('node2', 'del', vip);
    await until(vip, []);
  });

  test('a node whose ARP for the VIP is dropped (a closed fence) does not answer, its address stays', async () => {
    const t = must(tb, 'testbed');
    const vip = t.vip(1);
    await addr('node1', 'add', vip);
    await addr('node2', 'add', vip);
    await until(vip, ['node1', 'node2']);
    const rules = `table arp vw_arpwatch_test { chain input { type filter hook input priority 0; policy accept; arp daddr ip ${vip} drop; }; }`;
    await t.exec('node2', ['nft', rules]);
    await until(vip, ['node1']);
    const shown = await t.exec('node2', ['ip', '-o', 'addr', 'show', 'dev', 'eth0']);
    expect(shown.stdout).toContain(`${vip}/24`);
    await t.exec('node2', ['nft', 'delete', 'table', 'arp', 'vw_arpwatch_test']);
    await until(vip, ['node1', 'node2']);
    await addr('node1', 'del', vip);
    await addr('node2', 'del', vip);
    await until(vip, []);
  });

  test("the client's neighbour table is not touched, and the watcher keeps its period", async () => {
    const t = must(tb, 'testbed');
    const w = must(watch, 'watch');
    const neigh = await t.exec('client', ['ip', '-o', 'neigh', 'show', 'dev', 'eth0']);
    expect(neigh.stdout).not.toContain(t.vip(0));
    expect(neigh.stdout).not.toContain(t.vip(1));
    // A heartbeat comes every second; a fast run can reach here before the first (bounded wait: 3 s).
    for (let i = 0; i < 30 && w.heartbeats.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(w.heartbeats.length).toBeGreaterThan(0);
    const hb = w.heartbeats[w.heartbeats.length - 1]!;
    // 5 ms rounds: at least a third of the nominal rate over the run (only catches a stuck loop)
    expect(hb.rounds).toBeGreaterThan(((hb.t - w.answers[0]!.t) / 5) * 0.33);
  });
});
