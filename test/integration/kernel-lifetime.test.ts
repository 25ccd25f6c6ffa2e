// How late this machine's kernel deletes an address whose lifetime ran out, with address churn at unlucky moments
// (issue 15, item 1; the argument is in docs/design.md, the bound in common/kernel-lifetime.ts). In a testbed
// namespace of its own (one node, addresses in 198.18.K.0/24 and 2001:2:0:K::/64 only), a VIP is set with
// valid_lft = preferred_lft = 1 s, other addresses are added at chosen moments, and `ip monitor` timestamps the
// kernel's RTM_NEWADDR / RTM_DELADDR messages with CLOCK_MONOTONIC. Lateness is measured from the moment the
// `ip addr replace` command was started (so it includes the command's own run time: an overestimate), and the test
// asserts it stays within the controller's kernelSlackMs default; a scenario one of whose deletions came past the
// bound is measured again (up to 3 runs; see scenario() below). Needs root.
// The bound assumes CPUs that wake (docs/design.md): the kernel's lifetime work is deferrable, and with NO_HZ_IDLE it
// waits on an idle CPU for that CPU's next wakeup (a quiet CI run saw 1846 ms for IPv6). A holder serving traffic
// wakes its CPUs all the time; here one waker per CPU (a timer every 5 ms, pinned with taskset) stands for that.
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { gunzipSync } from 'node:zlib';
import { KERNEL_SCHEDULING_ALLOWANCE_MS, KERNEL_SLACK_MS, kernelLatenessMs } from '../../common/kernel-lifetime.js';
import { createTestbed, monoMs, requireRoot, sleep, type Testbed } from '../harness/testbed.js';
import { run } from '../../hack/testbed/util.js';

jest.setTimeout(180_000);

interface MonEvent {
  t: number;
  kind: 'new' | 'del';
  address: string;
}

interface Measure {
  scenario: string;
  family: 4 | 6;
  address: string;
  /** Lateness from the start of the last `ip addr replace` (overestimate). */
  lateMs: number;
  /** Lateness from the kernel's own RTM_NEWADDR for that replace, as `ip monitor` saw it. */
  lateMonMs: number;
  /** Over the bound, and the scenario was measured again (a scheduling stall, not the kernel's code: see below). */
  superseded?: boolean;
}

function kernelHz(): number | undefined {
  try {
    const cfg = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
    const m = /^CONFIG_HZ=(\d+)$/m.exec(cfg);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

describe('kernel address lifetime: deletion lateness under churn', () => {
  let tb: Testbed | undefined;
  let mon: ChildProcess | undefined;
  const events: MonEvent[] = [];
  const results: Measure[] = [];
  let ns = '';
  let churnSeq = 0;
  const wakers: ChildProcess[] = [];

  const must = () => {
    if (!tb) throw new Error('testbed not set up (see the first failure)');
    return tb;
  };

  beforeAll(async () => {
    requireRoot('test/integration/kernel-lifetime.test.ts');
    tb = await createTestbed({ name: 'klife', nodes: 1, ipv6: true });
    ns = tb.nodes[0]!.netns;
    const cpus = Number(readFileSync('/sys/devices/system/cpu/online', 'utf8').trim().split('-').at(-1) ?? 0) + 1;
    for (let cpu = 0; cpu < cpus; cpu++) {
      // Bounded: each waker exits by itself after 170 s, whatever happens to this test.
      const w = spawn(
        'taskset',
        [
          '-c',
          String(cpu),
          process.execPath,
          '-e',
          'setInterval(() => {}, 5); setTimeout(() => process.exit(0), 170000)',
        ],
        { stdio: 'ignore' },
      );
      wakers.push(w);
    }
    mon = spawn('ip', ['-n', ns, '-o', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const rl = createInterface({ input: mon.stdout! });
    rl.on('line', (line) => {
      const t = monoMs();
      const m = /\binet6?\s+([0-9a-f.:]+)\//i.exec(line);
      if (!m) return;
      events.push({ t, kind: line.startsWith('Deleted') ? 'del' : 'new', address: m[1]!.toLowerCase() });
    });
    await sleep(300);
  });

  afterAll(async () => {
    mon?.kill('SIGKILL');
    for (const w of wakers) w.kill('SIGKILL');
    if (results.length) {
      const hz = kernelHz();
      console.log(
        `kernel ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()} HZ=${hz ?? '?'}; derived bound ` +
          `${hz ? kernelLatenessMs(hz, 1) : '?'} ms + ${KERNEL_SCHEDULING_ALLOWANCE_MS} ms allowance; slack ${KERNEL_SLACK_MS} ms\n` +
          results
            .map(
              (r) =>
                `${r.scenario.padEnd(34)} v${r.family} ${r.address.padEnd(22)} late ${r.lateMs.toFixed(1).padStart(7)} ms` +
                ` (from RTM_NEWADDR ${r.lateMonMs.toFixed(1)} ms)${r.superseded ? ' superseded: measured again' : ''}`,
            )
            .join('\n'),
      );
    }
    await tb?.destroy();
  });

  const ip = (...args: string[]) => run(['ip', '-n', ns, ...args], { timeoutMs: 5000 });
  const vip = (family: 4 | 6, i: number) => (family === 4 ? `${must().vip(i)}/32` : `${must().vip6(i)}/128`);
  const bare = (a: string) => a.split('/')[0]!.toLowerCase();
  const extra = (family: 4 | 6) => {
    const j = 200 + (churnSeq++ % 50);
    const k = must().id;
    return family === 4 ? `198.18.${k}.${j}/32` : `2001:2:0:${k}::${j}/128`;
  };
  const v6flags = (family: 4 | 6) => (family === 6 ? ['nodad'] : []);

  /** Sets (or renews) `addr` with a 1 s lifetime; resolves with the time the command was started. */
  async function setLifetime(addr: string, family: 4 | 6): Promise<number> {
    const t = monoMs();
    await ip('addr', 'replace', addr, 'dev', 'eth0', 'valid_lft', '1', 'preferred_lft', '1', ...v6flags(family));
    return t;
  }

  /** Another (permanent) address on the same interface: what DHCP or SLAAC does on a real host. */
  async function churn(family: 4 | 6): Promise<void> {
    const a = extra(family);
    await ip('addr', 'add', a, 'dev', 'eth0', ...v6flags(family));
    // Removing it again does not run the lifetime worker; it only keeps the interface tidy.
    void ip('addr', 'del', a, 'dev', 'eth0').catch(() => undefined);
  }

  async function deletedAt(address: string, after: number, timeoutMs = 5000): Promise<number> {
    const end = monoMs() + timeoutMs;
    for (;;) {
      const e = events.find((x) => x.kind === 'del' && x.address === address && x.t > after);
      if (e) return e.t;
      if (monoMs() > end) throw new Error(`${address} was not deleted within ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  function record(scenario: string, family: 4 | 6, addr: string, setStart: number, del: number): Measure {
    const a = bare(addr);
    const mon = events.filter((x) => x.kind === 'new' && x.address === a && x.t >= setStart && x.t <= del).pop();
    const m: Measure = {
      scenario,
      family,
      address: a,
      lateMs: del - setStart - 1000,
      lateMonMs: mon ? del - mon.t - 1000 : NaN,
    };
    results.push(m);
    return m;
  }

  /**
   * The bound this test holds the kernel to: its code's bound for this machine's HZ plus the scheduling allowance
   * (the slack itself when HZ is unknown).
   */
  const bound = (() => {
    const hz = kernelHz();
    return hz ? kernelLatenessMs(hz, 1) + KERNEL_SCHEDULING_ALLOWANCE_MS : KERNEL_SLACK_MS;
  })();

  /**
   * Runs a scenario; when one of its deletions came later than the bound, runs it again, up to 3 times in all, and
   * asserts on the last run. Every run is printed. The scenarios are built to hit the kernel code's worst case every
   * time, so what varies between runs is scheduling: on the 2-core CI VM single deletions came up to 389 ms past the
   * code's bound, and a run of the same scenario after them was within it. No wait can be sized for stalls of any
   * length (docs/design.md, "How late the kernel deletes an expired address"); lateness that repeats fails.
   */
  async function scenario(run: () => Promise<Measure[]>): Promise<Measure[]> {
    for (let attempt = 1; ; attempt++) {
      const ms = await run();
      if (attempt === 3 || ms.every((m) => m.lateMs <= bound)) return ms;
      for (const m of ms) m.superseded = true;
    }
  }

  const families: (4 | 6)[] = [4, 6];

  const expectWithinSlack = (ms: Measure[]) => {
    for (const m of ms) expect(m.lateMs).toBeLessThanOrEqual(KERNEL_SLACK_MS);
  };

  test.each(families)('IPv%i: quiet interface', async (family) => {
    for (let i = 0; i < 2; i++) {
      const ms = await scenario(async () => {
        const a = vip(family, 0);
        const t = await setLifetime(a, family);
        const del = await deletedAt(bare(a), t);
        return [record('quiet', family, a, t, del)];
      });
      expectWithinSlack(ms);
    }
  });

  test.each(families)('IPv%i: another address added 0.5-0.97 s in', async (family) => {
    for (const at of [500, 700, 900, 950, 970]) {
      const ms = await scenario(async () => {
        const a = vip(family, 1);
        const t = await setLifetime(a, family);
        await sleep(Math.max(0, t + at - monoMs()));
        const c = monoMs();
        await churn(family);
        const del = await deletedAt(bare(a), t);
        return [record(`churn at ${at} ms (landed ${Math.round(c - t)})`, family, a, t, del)];
      });
      expectWithinSlack(ms);
    }
  });

  test.each(families)('IPv%i: renewals every 100 ms, then churn 0.9 s after the last', async (family) => {
    const ms = await scenario(async () => {
      const a = vip(family, 2);
      let t = 0;
      for (let i = 0; i < 10; i++) {
        t = await setLifetime(a, family);
        await sleep(Math.max(0, t + 100 - monoMs()));
      }
      await sleep(Math.max(0, t + 900 - monoMs()));
      await churn(family);
      const del = await deletedAt(bare(a), t);
      return [record('renewals every 100 ms, churn 900', family, a, t, del)];
    });
    expectWithinSlack(ms);
  });

  test.each(families)('IPv%i: several VIPs on one interface, each add churning the others', async (family) => {
    // Four VIPs set 230 ms apart: each set runs the worker for all of them; then churn 0.93 s after the last.
    const ms = await scenario(async () => {
      const set: { a: string; t: number }[] = [];
      for (let i = 0; i < 4; i++) {
        const a = vip(family, 3 + i);
        set.push({ a, t: await setLifetime(a, family) });
        await sleep(230);
      }
      const last = set[set.length - 1]!.t;
      await sleep(Math.max(0, last + 930 - monoMs()));
      await churn(family);
      const out: Measure[] = [];
      for (const { a, t } of set)
        out.push(record('four VIPs 230 ms apart, churn', family, a, t, await deletedAt(bare(a), t)));
      return out;
    });
    expectWithinSlack(ms);
  });

  test.each(families)('IPv%i: churn every 300 ms all the time', async (family) => {
    // Frequent churn brings deletion forward: a run at or after the deadline deletes the address.
    const ms = await scenario(async () => {
      const a = vip(family, 8);
      const t = await setLifetime(a, family);
      let done = false;
      const loop = (async () => {
        while (!done) {
          await churn(family);
          await sleep(300);
        }
      })();
      const del = await deletedAt(bare(a), t);
      done = true;
      await loop;
      return [record('churn every 300 ms', family, a, t, del)];
    });
    expectWithinSlack(ms);
  });

  test('the measured lateness stays within the bound derived for this kernel', () => {
    expect(results.length).toBeGreaterThan(20);
    for (const r of results.filter((x) => !x.superseded)) expect(r.lateMs).toBeLessThanOrEqual(bound);
  });
});
