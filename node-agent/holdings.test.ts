// Safety 1-2 without root: Holdings with an injected exec (a fake kernel that keeps addresses and their lifetimes),
// a fake clock and a fake lease whose keepalive answers the test gives.
import { describe, expect, it } from '@jest/globals';
import type { Clock } from '../common/clock.js';
import { silentLogger } from '../common/log.js';
import { vipRef, type VipRef } from './addresses.js';
import { Holdings, type HoldingsDeps } from './holdings.js';
import { FakeKernel } from './testing/fake-kernel.js';
import { FakeLease } from './testing/fake-lease.js';

const TTL_MS = 5000;
const MARGIN_MS = 500;
const WINDOW_MS = 500;

class FakeClock implements Clock {
  t = 1_000_000;
  mono = () => this.t;
  wall = () => 1_700_000_000_000 + this.t;
  sleep = async (ms: number) => {
    this.t += ms;
  };
}

function setup(opts: { deadlineExec?: string; onLapsed?: HoldingsDeps['onLapsed'] } = {}) {
  const clock = new FakeClock();
  const lease = new FakeLease(clock, { ttlMs: TTL_MS, marginMs: MARGIN_MS, windowMs: WINDOW_MS });
  const kernel = new FakeKernel();
  const holdings = new Holdings({
    exec: kernel.exec,
    clock,
    lease,
    timing: { marginMs: MARGIN_MS, renewWindowMs: WINDOW_MS },
    log: silentLogger(),
    deadlineExec: opts.deadlineExec,
    onLapsed: opts.onLapsed,
  });
  return { clock, lease, kernel, holdings };
}

const web = [vipRef('198.18.0.100/24', 'eth0'), vipRef('2001:2::100/64', 'eth0')];
const db = [vipRef('198.18.0.200/24', 'eth0')];
const take = (group: string, refs: VipRef[], epoch = 10, lease = '1') => ({
  group,
  epoch,
  lease,
  specHash: 'h',
  refs,
});

describe('Holdings: adding (Safety 1-2)', () => {
  it('adds under a fresh keepalive, with a lifetime that ends before the lease can', async () => {
    const { lease, kernel, holdings } = setup();
    lease.answer(100);
    await expect(holdings.add(take('web', web))).resolves.toBe('added');
    // Answer sent 100 ms ago: the lease runs 4900 ms more, minus the 500 ms margin, in whole seconds.
    expect(web.map((v) => kernel.lifetimeOf(v))).toEqual([4, 4]);
    expect(holdings.plannerView().get('web')).toMatchObject({ epoch: 10 });
  });

  it('refuses to add when the last keepalive answer is stale, and runs no command', async () => {
    const { clock, lease, kernel, holdings } = setup();
    lease.answer();
    clock.t += WINDOW_MS + 1;
    await expect(holdings.add(take('web', web))).resolves.toBe('no-fresh-keepalive');
    expect(kernel.commands).toEqual([]);
    expect(holdings.get('web')).toBeUndefined();
  });

  it('refuses an assignment that names another lease (a restarted agent is not the old holder)', async () => {
    const { lease, kernel, holdings } = setup();
    lease.answer();
    await expect(holdings.add(take('web', web, 10, '7'))).resolves.toBe('not-our-lease');
    expect(kernel.commands).toEqual([]);
  });

  it('passes the answer fence to vw-before, and holds nothing when it refused to run the command', async () => {
    const { clock, lease, kernel, holdings } = setup({ deadlineExec: '/vw-before' });
    lease.answer(200);
    kernel.deadlineExit = 75;
    await expect(holdings.add(take('web', web))).resolves.toBe('not-covered');
    const first = kernel.commands[0]!;
    expect(first.argv.slice(0, 2)).toEqual(['/vw-before', String(Math.floor((clock.t - 200 + WINDOW_MS) * 1e6))]);
    expect(holdings.get('web')).toBeUndefined();
    expect(web.some((v) => kernel.has(v))).toBe(false);
  });

  it('a lost lease that comes in while the add command runs wins: nothing is left on the machine', async () => {
    const { lease, kernel, holdings } = setup();
    lease.answer();
    let open!: () => void;
    kernel.gate = new Promise((r) => (open = r));
    const adding = holdings.add(take('web', web));
    while (!holdings.get('web')) await Promise.resolve();
    const dropped = holdings.dropLease(() => true, 'lease-not-confirmed');
    expect(dropped).toHaveLength(1);
    kernel.gate = undefined;
    open();
    await expect(adding).resolves.toBe('superseded');
    await expect(dropped[0]!.removal).resolves.toBe(true);
    expect(web.some((v) => kernel.has(v))).toBe(false);
    expect(holdings.get('web')).toBeUndefined();
  });
});

/** web (epoch 10) taken under lease 1, then db (epoch 11) under lease 2, each with a keepalive answer. */
async function underTwoLeases() {
  const t = setup();
  t.lease.answer();
  await t.holdings.add(take('web', web, 10, '1'));
  t.lease.lease = '2';
  t.lease.answer();
  await t.holdings.add(take('db', db, 11, '2'));
  return t;
}

describe('Holdings: renewing', () => {
  it('extends the lifetime after each answer, bounded by that answer', async () => {
    const { clock, lease, kernel, holdings } = setup();
    lease.answer();
    await holdings.add(take('web', web));
    clock.t += 2000;
    lease.answer(300);
    await expect(holdings.renew()).resolves.toBe(true);
    expect(kernel.lifetimeOf(web[0]!)).toBe(4); // floor((5000 - 300 - 500) / 1000)
  });

  it('does not renew with a stale answer', async () => {
    const { clock, lease, kernel, holdings } = setup();
    lease.answer();
    await holdings.add(take('web', web));
    const before = kernel.commands.length;
    clock.t += 1000;
    await expect(holdings.renew()).resolves.toBe(false);
    expect(kernel.commands.length).toBe(before);
  });

  it('never renews addresses held under an earlier lease', async () => {
    // The process was frozen, its lease ended and it was granted another: answers for lease 2 prove nothing for 1.
    const { kernel, holdings } = await underTwoLeases();
    const before = kernel.commands.length;
    await holdings.renew();
    const renewed = kernel.commands.slice(before).map((c) => c.input);
    expect(renewed.join('')).toContain('198.18.0.200/24');
    expect(renewed.join('')).not.toContain('198.18.0.100/24');
  });
});

describe('Holdings: letting go', () => {
  it('a replaced lease drops every group held under the old one, at once, and keeps the others', async () => {
    const { kernel, holdings } = await underTwoLeases();
    const dropped = holdings.dropLease((l) => l !== '2', 'earlier-lease');
    expect(dropped.map((d) => d.holding.group)).toEqual(['web']);
    expect(holdings.get('web')).toBeUndefined(); // before the command has even run
    expect(dropped[0]!.holding.ac.signal.aborted).toBe(true);
    await expect(dropped[0]!.removal).resolves.toBe(true);
    expect(web.some((v) => kernel.has(v))).toBe(false);
    expect(kernel.has(db[0]!)).toBe(true);
    expect(holdings.groups()).toEqual(['db']);
  });

  it('a failed `ip addr del` is not gone: the group stays leaving, is never renewed, and is let go once removed', async () => {
    const { lease, kernel, holdings } = setup();
    lease.answer();
    await holdings.add(take('web', web));
    kernel.failDelete = true;
    const r = await holdings.release('web', { reason: 'unhealthy', ackEpoch: 10 });
    expect(r?.gone).toBe(false);
    expect(kernel.has(web[0]!)).toBe(true);
    expect([...holdings.leavingGroups()]).toEqual(['web']);
    expect(holdings.allRefs()).toEqual(web); // still in the state file
    // A keepalive answer does not extend what is leaving: the kernel lifetime runs out by itself.
    const before = kernel.commands.length;
    lease.answer();
    await expect(holdings.renew()).resolves.toBe(false);
    expect(kernel.commands.length).toBe(before);
    // Nor can it be taken again until it is gone.
    await expect(holdings.add(take('web', web, 12))).resolves.toBe('superseded');
    await expect(holdings.retryLeaving('web')).resolves.toBeUndefined();
    kernel.failDelete = false;
    const done = await holdings.retryLeaving('web');
    expect(done).toMatchObject({ reason: 'unhealthy', ackEpoch: 10 });
    expect(kernel.has(web[0]!)).toBe(false);
    expect(holdings.leavingGroups().size).toBe(0);
  });

  it('an update removes the addresses the group no longer has and renews the rest', async () => {
    const { lease, kernel, holdings } = setup();
    lease.answer();
    await holdings.add(take('web', web));
    const u = await holdings.update('web', { epoch: 12, specHash: 'h2', refs: [web[0]!] });
    expect(u?.removed).toEqual([web[1]]);
    expect(u?.specChanged).toBe(true);
    expect(kernel.has(web[0]!)).toBe(true);
    expect(kernel.has(web[1]!)).toBe(false);
    expect(holdings.plannerView().get('web')?.epoch).toBe(12);
  });
});

describe('Holdings: lapsed lifetimes (the history, issue 15.14)', () => {
  it('a renewal that finds the addresses gone after their lifetime ran out sets them again and says so', async () => {
    const lapsed: [string, number, number][] = [];
    const { clock, lease, kernel, holdings } = setup({ onLapsed: (g, e, end) => void lapsed.push([g, e, end]) });
    lease.answer();
    const t0 = clock.t;
    await holdings.add(take('web', web));
    await holdings.add(take('db', db, 11));
    // An ordinary renewal: nothing ran out, nothing is listed.
    clock.t += 100;
    lease.answer();
    await holdings.renew();
    expect(kernel.commands.filter((c) => c.argv.join(' ') === 'ip -j addr show')).toEqual([]);
    const end = t0 + 100 + 4000; // the 4 s lifetime of that renewal
    // etcd gone: no answers; the kernel deletes web's addresses at the lifetime's end (db's it has not yet).
    clock.t = end + 300;
    for (const v of web) kernel.addrs.delete(`${v.iface}|${v.address}`);
    // etcd back before the agent's own deadline: an answer, a renewal; web's addresses are set again.
    lease.answer();
    await expect(holdings.renew()).resolves.toBe(true);
    expect(web.every((v) => kernel.has(v))).toBe(true);
    expect(lapsed).toEqual([['web', 10, end]]);
  });
});
