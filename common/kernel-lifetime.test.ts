// The kernel's lateness in deleting an expired address (common/kernel-lifetime.ts), checked against a model of the
// kernel's lifetime worker, and the controller's Safety-3 wait checked to cover it. With the old kernelSlackMs
// default of 400 ms the tests "the controller's default slack covers ..." and "the overhang covers ..." fail.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { parseControllerConfig } from '../controller/config.js';
import {
  deferrableLifetimeWorker,
  KERNEL_HZ_VALUES,
  KERNEL_SCHEDULING_ALLOWANCE_MS,
  KERNEL_SLACK_MS,
  kernelLatenessMs,
  kernelSlackForLifetimeMs,
  longLifetimeExtraMs,
  simulateKernelDeletionMs,
  timerGranularity,
} from './kernel-lifetime.js';
import { addressOverhangMs, lifetimeFor } from './lease.js';

const controllerDefaults = () =>
  parseControllerConfig({ etcd: { endpoints: ['http://127.0.0.1:2379'] }, source: { directory: '/etc/vipwarden' } });

/** Worst lateness the model shows for one churn time swept over every jiffy of the lifetime (plus quiet). */
function worstSwept(hz: number, lifetimeS: number, setAtMs = 10_000.0): number {
  let worst = simulateKernelDeletionMs({ hz, setAtMs, lifetimeS, churnAtMs: [] }) - setAtMs - lifetimeS * 1000;
  for (let c = setAtMs; c < setAtMs + lifetimeS * 1000 + 1000; c += 1000 / hz) {
    const del = simulateKernelDeletionMs({ hz, setAtMs, lifetimeS, churnAtMs: [c] });
    worst = Math.max(worst, del - setAtMs - lifetimeS * 1000);
  }
  return worst;
}

describe('timer wheel granularity', () => {
  test.each([
    [1, 1],
    [62, 1],
    [63, 8],
    [250, 8],
    [503, 8],
    [504, 64],
    [1000, 64],
    [4032, 512],
  ])('a timer %i jiffies ahead is late by up to %i jiffies', (delay, g) => {
    expect(timerGranularity(delay)).toBe(g);
  });
});

describe('the model of check_lifetime / addrconf_verify', () => {
  // What issue 15 measured on this machine's kernel (HZ=250): a 1 s address lived 1.93-1.99 s when another address
  // was added 0.9 s in, 1.01-1.12 s with no other change.
  test('HZ=250: another address added 0.9 s in keeps a 1 s address until ~1.9 s', () => {
    const del = simulateKernelDeletionMs({ hz: 250, setAtMs: 0, lifetimeS: 1, churnAtMs: [900] });
    expect(del).toBeGreaterThanOrEqual(1900);
    expect(del).toBeLessThanOrEqual(1900 + 32 + 4);
  });

  test('HZ=250: a quiet interface deletes a 1 s address within a whole-second rounding', () => {
    for (let set = 0; set < 1000; set += 4) {
      const late = simulateKernelDeletionMs({ hz: 250, setAtMs: set, lifetimeS: 1, churnAtMs: [] }) - set - 1000;
      expect(late).toBeLessThanOrEqual(250 + 32 + 4);
    }
  });

  test('renewals every 100 ms then churn 0.9 s after the last one', () => {
    // Each renewal resets tstamp and runs the worker; only the last one counts.
    const last = 1000;
    const del = simulateKernelDeletionMs({ hz: 250, setAtMs: last, lifetimeS: 1, churnAtMs: [last + 900] });
    expect(del - last - 1000).toBeGreaterThanOrEqual(880);
  });

  test.each(KERNEL_HZ_VALUES.map((hz) => [hz]))('HZ=%i: the worst churn is one just before the deadline', (hz) => {
    const worst = worstSwept(hz, 1);
    expect(worst).toBeGreaterThan(900);
    expect(worst).toBeLessThanOrEqual(kernelLatenessMs(hz, 1));
  });

  test('property: any churn, any HZ, lifetimes 1-20 s: lateness within the derived bound', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...KERNEL_HZ_VALUES),
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.array(fc.integer({ min: 0, max: 25_000 }), { maxLength: 12 }),
        (hz, lifetimeS, setAtMs, offsets) => {
          const churnAtMs = offsets.map((o) => setAtMs + o);
          const del = simulateKernelDeletionMs({ hz, setAtMs, lifetimeS, churnAtMs });
          const late = del - setAtMs - lifetimeS * 1000;
          return late <= kernelLatenessMs(hz, lifetimeS) && late >= -1000 / hz - (Math.floor(hz / 50) * 1000) / hz;
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('churn can only bring the deletion forward once the deadline is near', () => {
    // A run at or after D - FUZZ_MINUS deletes the address: more churn late in the lifetime never delays it further.
    const one = simulateKernelDeletionMs({ hz: 250, setAtMs: 0, lifetimeS: 1, churnAtMs: [970] });
    const more = simulateKernelDeletionMs({ hz: 250, setAtMs: 0, lifetimeS: 1, churnAtMs: [970, 1500, 1900] });
    expect(more).toBeLessThanOrEqual(one);
    expect(more).toBe(1500);
  });
});

describe('the bound and the controller', () => {
  test('derived numbers', () => {
    expect(KERNEL_HZ_VALUES.map((hz) => kernelLatenessMs(hz, 1))).toEqual([1070, 1016, 1010, 1045]);
    expect(KERNEL_SLACK_MS).toBe(1070 + KERNEL_SCHEDULING_ALLOWANCE_MS);
    expect(longLifetimeExtraMs(1)).toBe(0);
    expect(longLifetimeExtraMs(13)).toBe(0);
    expect(longLifetimeExtraMs(59)).toBeGreaterThan(3000);
  });

  test("the controller's default slack covers the kernel's worst lateness with a 1 s lifetime on every HZ", () => {
    const slack = controllerDefaults().kernelSlackMs;
    for (const hz of KERNEL_HZ_VALUES) expect(worstSwept(hz, 1)).toBeLessThanOrEqual(slack);
    // 400 ms (the old default) does not: churn 0.9 s into a 1 s lifetime already costs ~900 ms.
    expect(slack).toBeGreaterThanOrEqual(kernelSlackForLifetimeMs(1));
  });

  // Safety 3 end to end for both benchmark profiles: keepalive sent at s, lease ends at E = s + TTL (earliest), the
  // agent sets the address at the last fresh moment s + w with the lifetime it computes, the kernel deletes it as
  // late as the worst churn makes it; the controller waits addressOverhangMs after it sees E.
  test.each([
    // profile, TTL s, renewWindow ms, margin ms
    ['vipwarden-default', 2, 500, 500],
    ['vipwarden-fast', 1, 100, 500],
    ['TTL 5 s', 5, 500, 500],
    ['TTL 30 s', 30, 500, 500],
  ])('%s: the overhang covers an address set at the end of the renew window', (_name, ttl, w, margin) => {
    const cfg = controllerDefaults();
    const maxLife = lifetimeFor(ttl * 1000, margin);
    const rec = { ttlSeconds: ttl, maxLifetimeSeconds: maxLife, renewWindowMs: w };
    const wait = addressOverhangMs(rec, cfg.kernelSlackMs + longLifetimeExtraMs(maxLife));
    for (const hz of KERNEL_HZ_VALUES) {
      const s = 50_000;
      const E = s + ttl * 1000;
      const setAt = s + w;
      const L = lifetimeFor(E - setAt, margin);
      let worstEnd = 0;
      for (let c = setAt; c < setAt + L * 1000 + 1000; c += 1000 / hz) {
        worstEnd = Math.max(worstEnd, simulateKernelDeletionMs({ hz, setAtMs: setAt, lifetimeS: L, churnAtMs: [c] }));
      }
      // Address gone by the time the controller may reassign (goneAt >= E).
      expect(worstEnd - E).toBeLessThanOrEqual(wait);
    }
  });
});

describe('deferrable lifetime workers (6.13 and later)', () => {
  test('recognised from os.release()', () => {
    expect(deferrableLifetimeWorker('6.18.44-fc-v1045')).toBe(true);
    expect(deferrableLifetimeWorker('6.13.0')).toBe(true);
    expect(deferrableLifetimeWorker('7.0.1-arch1')).toBe(true);
    expect(deferrableLifetimeWorker('6.12.48+deb13-amd64')).toBe(false);
    expect(deferrableLifetimeWorker('6.1.0-40-amd64')).toBe(false);
    expect(deferrableLifetimeWorker('5.15.0-144-generic')).toBe(false);
    expect(deferrableLifetimeWorker('weird')).toBe(false);
  });
});
