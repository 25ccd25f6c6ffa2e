import { defaultFenceWindowMs, FENCE_SLACK_MS, fenceOverhangMs, fenceTimingProblem } from '../../common/fence.js';
import type { Exec } from '../../common/exec.js';
import { silentLogger } from '../../common/log.js';
import { DeadlinePassedError, vipRef } from '../addresses.js';
import { fenceOptions, heartbeatPeriodMs, parseAgentConfig } from '../config.js';
import { resolveFence } from './auto.js';
import { DataplaneError, DeadlineExpiredError, type Dataplane } from '../dataplane.js';
import { NftFence } from './nft.js';
import { chunks, fenceRuleset } from './ruleset.js';

const fast = { ttlSeconds: 1, keepaliveIntervalMs: 100, marginMs: 150, renewWindowMs: 100 };

describe('fence timing', () => {
  it('defaults the window to what the lease proves, and then the controller waits nothing after the lease', () => {
    expect(defaultFenceWindowMs(fast)).toBe(850);
    expect(fenceOverhangMs({ ttlSeconds: 1, fenceWindowMs: 850 })).toBe(0);
    // A window past the lease: the wait is what it exceeds it by, plus the kernel's slack.
    expect(fenceOverhangMs({ ttlSeconds: 1, fenceWindowMs: 1200 })).toBe(200 + FENCE_SLACK_MS);
  });

  it.each([
    [851, /must not exceed/],
    [199, /at least renewWindowMs \+ keepaliveIntervalMs/],
    [200, undefined],
    [850, undefined],
  ])('window %p: %p', (w, problem) => {
    const p = fenceTimingProblem(w, fast);
    if (problem) expect(p).toMatch(problem);
    else expect(p).toBeUndefined();
  });
});

describe('agent.yaml fence', () => {
  const base = { node: 'n1', etcd: { endpoints: ['http://127.0.0.1:2379'] }, lease: { ttlSeconds: 1, marginMs: 150 } };
  it('is auto by default, with heartbeats every 50 ms (none with peer:); `fence: nftables` is short for { mode: nftables }', () => {
    expect(parseAgentConfig(base).fence).toEqual({ mode: 'auto' });
    expect(parseAgentConfig({ ...base, fence: 'auto' }).fence).toEqual({ mode: 'auto' });
    expect(parseAgentConfig({ ...base, fence: 'nftables' }).fence).toEqual({ mode: 'nftables' });
    expect(parseAgentConfig({ ...base, fence: 'off' }).fence).toEqual({ mode: 'off' });
    expect(heartbeatPeriodMs(parseAgentConfig(base))).toBe(50);
    expect(heartbeatPeriodMs(parseAgentConfig({ ...base, fence: { mode: 'nftables', heartbeatMs: 'off' } }))).toBe(
      undefined,
    );
    expect(heartbeatPeriodMs({ fence: { mode: 'nftables' }, peer: {} as never })).toBe(undefined);
    expect(heartbeatPeriodMs({ fence: { mode: 'nftables', heartbeatMs: 40 }, peer: {} as never })).toBe(40);
  });

  it('pairs heartbeats with a 1.15 s window (the wait after a revocation), never more than the lease proves', () => {
    const lease = { ttlSeconds: 2, marginMs: 500, keepaliveIntervalMs: 250, renewWindowMs: 500 };
    expect(defaultFenceWindowMs(lease)).toBe(1500);
    expect(defaultFenceWindowMs(lease, true)).toBe(1150);
    expect(defaultFenceWindowMs({ ...lease, ttlSeconds: 1, marginMs: 150 }, true)).toBe(850);
    // Slow keepalives: one answer may be missed without closing the fence.
    expect(
      defaultFenceWindowMs({ ttlSeconds: 10, marginMs: 500, keepaliveIntervalMs: 1000, renewWindowMs: 500 }, true),
    ).toBe(2500);
    const defaults = parseAgentConfig({
      node: 'n1',
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      fence: 'nftables',
    });
    expect(fenceOptions(defaults)).toEqual({ windowMs: 1150, heartbeatMs: 50 });
    const noBeats = parseAgentConfig({
      node: 'n1',
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      fence: { mode: 'nftables', heartbeatMs: 'off' },
    });
    expect(fenceOptions(noBeats)).toEqual({ windowMs: 1500 });
  });
  it('refuses a window the lease does not prove, also with auto', () => {
    expect(() => parseAgentConfig({ ...base, fence: { mode: 'nftables', windowMs: 900 } })).toThrow(/must not exceed/);
    expect(() => parseAgentConfig({ ...base, fence: { mode: 'auto', windowMs: 900 } })).toThrow(/must not exceed/);
  });
  it('unresolved auto runs no fence (main.ts resolves it first)', () => {
    expect(fenceOptions(parseAgentConfig({ ...base, fence: 'auto' }))).toBeUndefined();
  });
});

describe('fence: auto', () => {
  const base = { node: 'n1', etcd: { endpoints: ['http://127.0.0.1:2379'] }, lease: { ttlSeconds: 1, marginMs: 150 } };
  const run = async (o: { helper?: string; nftFails?: boolean; raw?: Record<string, unknown> }) => {
    const calls: string[][] = [];
    const exec: Exec = async (argv) => {
      calls.push([...argv]);
      if (o.nftFails) throw new Error('nft: Error: Could not process rule: Operation not supported\nmore');
      return { stdout: '', stderr: '', exitCode: 0 };
    };
    const config = await resolveFence(parseAgentConfig({ ...base, fence: 'auto', ...o.raw }), {
      exec,
      helper: 'helper' in o ? o.helper : '/usr/lib/vipwarden/vipwarden-dataplane',
      log: silentLogger(),
    });
    return { mode: config.fence.mode, calls, options: fenceOptions(config) };
  };
  it('runs the fence where the table loads and the helper is there', async () => {
    const r = await run({});
    expect(r.mode).toBe('nftables');
    expect(r.options).toEqual({ windowMs: 850, heartbeatMs: 50 });
    expect(r.calls).toEqual([['nft', '-f', '-']]);
  });
  it('falls back to off when nft cannot load the table, or without the helper', async () => {
    expect((await run({ nftFails: true })).mode).toBe('off');
    const noHelper = await run({ helper: undefined });
    expect(noHelper.mode).toBe('off');
    expect(noHelper.calls).toEqual([]);
  });
  it('leaves an explicit mode alone', async () => {
    expect((await run({ raw: { fence: 'off' } })).mode).toBe('off');
    const on = await run({ raw: { fence: 'nftables' }, nftFails: true });
    expect(on.mode).toBe('nftables'); // the agent then fails loudly when it cannot open the fence
    expect(on.calls).toEqual([]);
  });
});

describe('fenceRuleset', () => {
  const text = fenceRuleset('t1');
  it('drops ARP, traffic to and traffic from (after SNAT) a gated VIP without a live element', () => {
    expect(text).toContain('add rule arp t1 input arp daddr ip @gated4 arp daddr ip != @live4 counter drop');
    expect(text).toContain('add rule arp t1 output arp saddr ip @gated4 arp saddr ip != @live4 counter drop');
    expect(text).toContain('add rule inet t1 input ip6 daddr @gated6 ip6 daddr != @live6 counter drop');
    expect(text).toMatch(/chain postrouting \{ type filter hook postrouting priority 110;/);
    expect(text).toContain('set live4 { type ipv4_addr; flags timeout; }');
  });
  it('flushes its chains before adding rules (safe to load again) and refuses odd table names', () => {
    expect(text.indexOf('flush chain inet t1 input')).toBeLessThan(text.indexOf('add rule inet t1 input'));
    expect(() => fenceRuleset('t;flush ruleset')).toThrow(/invalid/);
  });
  it('chunks', () => {
    expect(chunks([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
  });
});

describe('NftFence', () => {
  const vips = [vipRef('198.18.5.100/24', 'eth0'), vipRef('2001:2:0:5::100/64', 'eth0')];
  function setup(fenceSet: (t: string, a: readonly string[], o: object) => Promise<unknown>) {
    const calls: string[][] = [];
    const exec: Exec = async (argv, opts) => {
      calls.push([...argv, opts?.input?.split('\n')[0] ?? '']);
      return { exitCode: 0, stdout: '', stderr: '' };
    };
    const dels: string[][] = [];
    const dp = {
      fenceSet,
      fenceDel: async (_t: string, a: readonly string[]) => void dels.push([...a]),
    } as unknown as Dataplane;
    return { f: new NftFence(exec, dp, silentLogger(), { windowMs: 850 }), calls, dels };
  }

  it('loads the table once, then sets elements ending at the send time + window with the deadline', async () => {
    const seen: object[] = [];
    const { f, calls } = setup(async (t, a, o) => seen.push({ t, a, o }));
    await f.open(vips, { sentAt: 1000, deadlineMs: 1100 });
    await f.open(vips, { sentAt: 1200, deadlineMs: 1300 });
    expect(calls).toEqual([['nft', '-f', '-', 'table inet vipwarden_fence {']]);
    expect(seen[1]).toEqual({
      t: 'vipwarden_fence',
      a: ['198.18.5.100', '2001:2:0:5::100'],
      o: { expiresMs: 2050, deadlineMs: 1300 },
    });
  });

  it('a refused deadline is DeadlinePassedError (nothing acted); a missing table is loaded again', async () => {
    const late = setup(async () => {
      throw new DeadlineExpiredError('fence', 5n);
    });
    await expect(late.f.open(vips, { sentAt: 0, deadlineMs: 1 })).rejects.toBeInstanceOf(DeadlinePassedError);
    let n = 0;
    const flushed = setup(async () => {
      if (n++ === 0) throw new DataplaneError('fence', 2, 'NEWSETELEM: No such file or directory');
    });
    await flushed.f.open(vips, { sentAt: 0, deadlineMs: 1 });
    expect(flushed.calls).toHaveLength(2);
  });

  it('openUntil (a failsafe keep): the element ends at the given bound, not at a send time + window', async () => {
    const seen: object[] = [];
    const { f } = setup(async (_t, _a, o) => seen.push(o));
    await f.openUntil(vips, { expiresMs: 7450, deadlineMs: 3000 });
    expect(seen).toEqual([{ expiresMs: 7450, deadlineMs: 3000 }]);
  });

  it('close deletes every address once, never throws', async () => {
    const { f, dels } = setup(async () => undefined);
    await f.close([...vips, vips[0]!]);
    expect(dels).toEqual([['198.18.5.100', '2001:2:0:5::100']]);
  });
});
