// The top-up (node-agent/renewal.ts) with fake time: Holdings and a fake kernel, a fake lease whose answers the test
// gives, the default timing (2 s lease, 500 ms margin and window).
import { describe, expect, it } from '@jest/globals';
import type { Clock } from '../common/clock.js';
import { silentLogger } from '../common/log.js';
import { vipRef } from './addresses.js';
import { Holdings } from './holdings.js';
import { Renewals, topUpGuardMs, type Schedule } from './renewal.js';
import { FakeKernel } from './testing/fake-kernel.js';
import { FakeLease } from './testing/fake-lease.js';

const TTL_MS = 2000;
const MARGIN_MS = 500;
const WINDOW_MS = 500;

class FakeTime implements Clock {
  t = 1_000_000;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  mono = () => this.t;
  wall = () => 1_700_000_000_000 + this.t;
  sleep = async (ms: number) => {
    this.t += ms;
  };
  schedule: Schedule = (fn, ms) => {
    const timer = { at: this.t + ms, fn, live: true };
    this.timers.push(timer);
    return () => {
      timer.live = false;
    };
  };
  pending(): number[] {
    return this.timers.filter((x) => x.live).map((x) => x.at);
  }
  /** Moves time to `to`, running the timers due on the way (and what they start, before time moves on). */
  async advance(to: number): Promise<void> {
    for (;;) {
      const next = this.timers.filter((x) => x.live && x.at <= to).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      next.live = false;
      this.t = next.at;
      next.fn();
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.t = to;
  }
}

const web = [vipRef('198.18.0.100/24', 'eth0')];

async function setup(opts: { topUps: boolean }) {
  const time = new FakeTime();
  const lease = new FakeLease(time, { ttlMs: TTL_MS, marginMs: MARGIN_MS, windowMs: WINDOW_MS });
  const kernel = new FakeKernel();
  const holdings = new Holdings({
    exec: kernel.exec,
    clock: time,
    lease,
    timing: { marginMs: MARGIN_MS, renewWindowMs: WINDOW_MS },
    log: silentLogger(),
  });
  const renewals = new Renewals({
    holdings,
    clock: time,
    windowMs: WINDOW_MS,
    log: silentLogger(),
    schedule: time.schedule,
  });
  /** A keepalive sent `rtt` ms ago was answered now. */
  const answer = async (rtt: number) => {
    lease.answerSentAt(time.t - rtt);
    if (opts.topUps) renewals.onAnswer(lease.lastAnsweredSentAt);
    else await holdings.renew(); // what the agent did before the top-up
    await holdings.idle();
  };
  lease.answerSentAt(time.t);
  await expect(holdings.add({ group: 'web', epoch: 1, lease: '1', specHash: 'h', refs: web })).resolves.toBe('added');
  return { time, lease, kernel, holdings, renewals, answer };
}

describe('Renewals: the top-up before an answer stops being fresh', () => {
  it('keeps the address 400 ms longer when answers stop (an etcd election): fails without the top-up', async () => {
    for (const topUps of [true, false]) {
      const { time, holdings, renewals, answer } = await setup({ topUps });
      // Steady state: answers every 250 ms, 10 ms round trip.
      let sentAt = 0;
      for (let i = 0; i < 4; i++) {
        await time.advance(time.t + 250);
        sentAt = time.t - 10;
        await answer(10);
      }
      // Then none: etcd lost its leader. The top-up is due at s + window - guard.
      await time.advance(sentAt + 2000);
      await holdings.idle();
      const end = holdings.lifetimeEnd(web)!;
      if (topUps) {
        expect(renewals.topUps).toBe(1);
        expect(end).toBe(sentAt + WINDOW_MS - topUpGuardMs(WINDOW_MS) + 1000);
      } else {
        expect(end).toBe(sentAt + 10 + 1000); // the kernel deleted it 990 ms after the answer
      }
      renewals.stop();
    }
  });

  it('costs nothing in steady state: each answer cancels the previous top-up', async () => {
    const { time, kernel, renewals, answer } = await setup({ topUps: true });
    const before = kernel.commands.length;
    for (let i = 0; i < 8; i++) {
      await time.advance(time.t + 250);
      await answer(20);
      expect(time.pending()).toEqual([time.t - 20 + WINDOW_MS - topUpGuardMs(WINDOW_MS)]);
    }
    expect(renewals.topUps).toBe(0);
    expect(kernel.commands.length - before).toBe(8); // one renewal per answer, no more
    renewals.stop();
    expect(time.pending()).toEqual([]);
  });

  it('schedules no top-up for a slow answer (too little to gain) nor after stop()', async () => {
    const { time, renewals, answer } = await setup({ topUps: true });
    await time.advance(time.t + 250);
    await answer(380); // due 20 ms from now
    expect(time.pending()).toEqual([]);
    renewals.stop();
    await time.advance(time.t + 250);
    await answer(10);
    expect(time.pending()).toEqual([]);
  });

  it('a top-up whose lease is no longer fresh sets nothing (Holdings.renew checks, as for every renewal)', async () => {
    const { time, lease, kernel, holdings, renewals, answer } = await setup({ topUps: true });
    await time.advance(time.t + 250);
    await answer(10);
    lease.lease = undefined; // the lease was lost before the top-up was due
    const before = kernel.commands.length;
    await time.advance(time.t + 1000);
    await holdings.idle();
    expect(renewals.topUps).toBe(1);
    expect(kernel.commands.length).toBe(before);
  });

  it('the guard leaves the command time to reach vw-before, and never exceeds half the window', () => {
    expect(topUpGuardMs(500)).toBe(100);
    expect(topUpGuardMs(100)).toBe(50);
    expect(topUpGuardMs(20)).toBe(10);
  });
});
