// Unit tests for common/lease.ts: the lifetime arithmetic of DESIGN.md Safety 2-3 and LeaseKeeper's bookkeeping,
// with a fake etcd lease client and jest's fake timers (Date.now() is the agent's monotonic clock here).
//
// Why an address set under isFresh() ends within addressOverhangMs of the lease's end
// ------------------------------------------------------------------------------------
// Let T be the lease TTL (ms), m the margin, w = renewWindowMs, k = kernelSlackMs, Lmax = maxLifetimeSeconds * 1000.
//  1. Every answer with TTL > 0 is matched to the send time s of its own keepalive (answers come back in order on
//     one stream; a stream whose order is in doubt is dropped with all its pending send times). The server renewed
//     the lease on receipt, at or after s, so the lease lives on the server until E >= s + T. Later renewals only
//     push E further, so E >= s* + T for s* = lastAnsweredSentAt, the latest answered send time. (After a re-grant,
//     s* may still be an answer of the old lease; it was sent before the grant request g, and the new lease lives
//     until E' >= g + T > s* + T, so the bound holds for the new lease too.)
//  2. isFresh() at time t means t - s* <= w (and the lease is safe: validUntil - m > t).
//  3. The lifetime set at t is L = lifetimeFor(validUntil - t, m). validUntil - t <= T (validUntil = s + T for some
//     s <= t), and lifetimeFor is non-decreasing in its first argument, so L <= lifetimeFor(T, m) = Lmax.
//  4. The kernel deletes the address by t + L + k <= s* + w + Lmax + k.
//  5. So the address outlives the lease end E by at most (s* + w + Lmax + k) - (s* + T) = Lmax + w + k - T,
//     and by nothing when that is negative: exactly addressOverhangMs. The controller sees the lease end at
//     goneAt >= E and waits until goneAt + addressOverhangMs before it moves the group (Safety 3).
// Assumptions the argument needs, outside this module: the agent's and the server's clocks run at the same rate
// over a few seconds; the etcd server never shortens a lease it renewed (it only grants TTL >= the request); and
// `k` covers both the kernel's lateness in deleting an expired address and the time from the isFresh() check to
// the kernel applying the lifetime (the `ip` command's run time).
import { describe, expect, jest, test } from '@jest/globals';
import type { Clock } from './clock.js';
import {
  addressOverhangMs,
  LeaseKeeper,
  lifetimeFor,
  maxLifetimeSeconds,
  type LeaseTiming,
  type Renewal,
} from './lease.js';
import { pino } from 'pino';
import { silentLogger } from './log.js';
import { fakeEtcd, useFakeLeaseTime } from './testing/fake-lease-etcd.js';

describe('lifetimeFor', () => {
  test.each([
    // remainingMs, marginMs, seconds
    [2000, 500, 1],
    [2499, 500, 1],
    [2500, 500, 2],
    [5000, 500, 4],
    [5500, 500, 5],
    [60_000, 1000, 59],
    // At least 1 s: the kernel has no shorter finite lifetime. Callers only use it while the lease is safe.
    [1000, 500, 1],
    [500, 500, 1],
    [0, 500, 1],
    [-1000, 500, 1],
  ])('%i ms left, margin %i -> %i s', (remaining, margin, want) => {
    expect(lifetimeFor(remaining, margin)).toBe(want);
  });
});

describe('maxLifetimeSeconds', () => {
  test.each([
    [1, 500, 1],
    [2, 500, 1],
    [3, 500, 2],
    [5, 500, 4],
    [5, 50, 4],
    [10, 1000, 9],
    [10, 1001, 8],
    [60, 500, 59],
  ])('TTL %i s, margin %i -> %i s', (ttlSeconds, marginMs, want) => {
    expect(maxLifetimeSeconds({ ttlSeconds, marginMs, keepaliveIntervalMs: 250, renewWindowMs: 500 })).toBe(want);
  });
});

describe('addressOverhangMs', () => {
  test.each([
    // ttl, maxLifetime, renewWindow, kernelSlack -> overhang
    [1, 1, 250, 400, 650],
    [2, 1, 500, 400, 0],
    [5, 4, 500, 400, 0],
    [2, 1, 500, 1000, 500],
    [1, 1, 20, 0, 20],
    [3, 3, 500, 400, 900], // an agent that published a lifetime as long as its TTL
    [10, 9, 500, 400, 0],
  ])('TTL %i s, L %i s, window %i, slack %i -> %i ms', (ttlSeconds, maxLife, renewWindowMs, slack, want) => {
    expect(addressOverhangMs({ ttlSeconds, maxLifetimeSeconds: maxLife, renewWindowMs }, slack)).toBe(want);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// LeaseKeeper with a fake etcd and fake time.

const fakeClock: Clock = {
  mono: () => Date.now(),
  wall: () => Date.now(),
  sleep: (ms) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
};

const T0 = 1_000_000;
const TIMING: LeaseTiming = { ttlSeconds: 2, keepaliveIntervalMs: 250, marginMs: 500, renewWindowMs: 500 };

const time = useFakeLeaseTime(T0);

async function started(timing: LeaseTiming = TIMING) {
  const etcd = fakeEtcd(timing.ttlSeconds);
  const keeper = new LeaseKeeper(etcd.client, timing, fakeClock, silentLogger());
  const events: (['granted', string] | ['renewed', Renewal] | ['lost', string, string])[] = [];
  keeper.on('granted', (l) => events.push(['granted', l]));
  keeper.on('renewed', (r) => events.push(['renewed', r]));
  keeper.on('lost', (l, why) => events.push(['lost', l, why]));
  await keeper.start(time.signal());
  return { etcd, keeper, events };
}

const advance = time.advance;

describe('LeaseKeeper', () => {
  test('grant: validUntil = send time of the grant + TTL', async () => {
    const { etcd, keeper, events } = await started();
    expect(keeper.lease).toBe('1');
    expect(etcd.grants).toEqual([T0]);
    expect(keeper.validUntil).toBe(T0 + 2000);
    expect(events).toEqual([['granted', '1']]);
    // A grant is no keepalive answer: nothing is fresh enough to set addresses yet.
    expect(keeper.isSafe()).toBe(true);
    expect(keeper.isFresh()).toBe(false);
  });

  test('answers are matched to send times in order; validUntil = sentAt + TTL', async () => {
    const { etcd, keeper, events } = await started();
    await advance(500); // keepalives at T0+250 (opens the stream) and T0+500
    const s = etcd.last();
    expect(s.sent).toEqual([
      { at: T0 + 250, id: '1' },
      { at: T0 + 500, id: '1' },
    ]);
    await advance(100);
    s.answer('1', 2);
    expect(keeper.validUntil).toBe(T0 + 250 + 2000);
    expect(keeper.lastAnsweredSentAt).toBe(T0 + 250);
    expect(keeper.lastRttMs).toBe(350);
    expect(events.at(-1)).toEqual([
      'renewed',
      { lease: '1', sentAt: T0 + 250, answeredAt: T0 + 600, validUntil: T0 + 2250, rttMs: 350 },
    ]);

    s.answer('1', 2);
    expect(keeper.validUntil).toBe(T0 + 500 + 2000);
    expect(keeper.lastAnsweredSentAt).toBe(T0 + 500);

    // An answer with nothing pending is not matched to anything (never to a later send time).
    s.answer('1', 2);
    expect(keeper.validUntil).toBe(T0 + 2500);
    await advance(50); // T0+650, no new send yet
    s.answer('1', 2);
    expect(keeper.validUntil).toBe(T0 + 2500);
    expect(events.filter((e) => e[0] === 'renewed')).toHaveLength(2);
  });

  test('validUntil never moves back (a later answer with a shorter TTL)', async () => {
    const { etcd, keeper } = await started();
    await advance(500);
    const s = etcd.last();
    s.answer('1', 2);
    s.answer('1', 1); // sent at T0+500: T0+1500 < T0+2250
    expect(keeper.validUntil).toBe(T0 + 2250);
    expect(keeper.lastAnsweredSentAt).toBe(T0 + 500);
  });

  test('an answer for another lease id uses up its send time but renews nothing', async () => {
    const { etcd, keeper } = await started();
    await advance(500);
    const s = etcd.last();
    s.answer('99', 2);
    expect(keeper.validUntil).toBe(T0 + 2000);
    s.answer('1', 2);
    expect(keeper.validUntil).toBe(T0 + 500 + 2000);
  });

  test("a deadline timer that fires while safe time is left is armed again: 'lost' still comes", async () => {
    // Node's timers run on the event loop's cached time, which can lag the monotonic clock by a few ms; with
    // the old code a timer that fired 0.5 ms early emitted nothing and was never armed again (issue 12: the
    // etcd gauge and 'lost' stayed silent through a whole etcd outage). Fails without the re-arm in armDeadline.
    let lag = 0;
    const laggingClock: Clock = { ...fakeClock, mono: () => Date.now() - lag };
    const etcd = fakeEtcd(TIMING.ttlSeconds);
    const keeper = new LeaseKeeper(etcd.client, TIMING, laggingClock, silentLogger());
    const lost: string[] = [];
    keeper.on('lost', (_l, why) => lost.push(why));
    await keeper.start(time.signal());
    await advance(250);
    etcd.last().answer('1', 2); // sent at T0+250: safe until T0+2250-500
    lag = 5; // from now on the monotonic clock reads 5 ms behind the timers' clock
    await advance(1499); // the timer fires at T0+1751 (timers' clock): 4 ms of safe time left by the monotonic clock
    expect(keeper.isSafe()).toBe(true);
    expect(lost).toEqual([]);
    await advance(10);
    expect(keeper.isSafe()).toBe(false);
    expect(lost).toEqual(['no keepalive answer in time']);
  });

  test("TTL 0 answer: 'lost', then a new grant", async () => {
    const { etcd, keeper, events } = await started();
    await advance(250);
    const s = etcd.last();
    await advance(50);
    s.answer('1', 0);
    expect(events).toContainEqual(['lost', '1', 'lease expired on the server']);
    expect(s.ended).toBe(true);
    await advance(0);
    expect(keeper.lease).toBe('2');
    expect(etcd.grants).toEqual([T0, T0 + 300]);
    expect(keeper.validUntil).toBe(T0 + 300 + 2000);
    expect(events.at(-1)).toEqual(['granted', '2']);
    // Keepalives go on for the new lease on a new stream, at the next tick of the keepalive interval.
    await advance(200);
    expect(etcd.streams).toHaveLength(2);
    expect(etcd.last().sent).toEqual([{ at: T0 + 500, id: '2' }]);
    // A late answer on the old stream is ignored.
    s.answer('1', 2);
    expect(keeper.validUntil).toBe(T0 + 2300);
  });

  test('logs name the lease: an agent\'s "node lease", the election\'s "controller lease"', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const etcd = fakeEtcd(2);
    await new LeaseKeeper(etcd.client, TIMING, fakeClock, log).start(time.signal());
    await new LeaseKeeper(etcd.client, TIMING, fakeClock, log, { what: 'controller lease' }).start(time.signal());
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual([
      'node lease granted',
      'controller lease granted',
    ]);
  });

  test('revoke revokes the lease; a grant in flight is waited for and its lease revoked, never announced', async () => {
    // The deb e2e flake: a lease lost during the graceful stop was re-granted while the stop revoked the old one;
    // the new lease was announced, the node record put under it, and it outlived the agent by a TTL.
    const { etcd, keeper, events } = await started();
    await keeper.revoke();
    expect(etcd.revoked).toEqual(['1']);

    const second = await started();
    await advance(250);
    const release = second.etcd.holdNextGrant();
    second.etcd.last().answer('1', 0); // lost: a new grant starts and is held on the server
    await advance(0);
    expect(second.etcd.grants).toHaveLength(2);
    const revoking = second.keeper.revoke();
    release();
    await revoking;
    expect(second.etcd.revoked).toEqual(['2']);
    expect(second.keeper.lease).toBeUndefined();
    expect(second.events.filter((e) => e[0] === 'granted')).toEqual([['granted', '1']]);
    expect(events).toEqual([['granted', '1']]);
  });

  test('a failed revoke is tried again', async () => {
    const { etcd, keeper } = await started();
    etcd.failNextRevokes(2);
    const done = keeper.revoke();
    await advance(100);
    await advance(200);
    await done;
    expect(etcd.revoked).toEqual(['1']);
  });

  test('a failed grant is retried with backoff', async () => {
    const timing = TIMING;
    const etcd = fakeEtcd(2);
    etcd.failNextGrants(2);
    const keeper = new LeaseKeeper(etcd.client, timing, fakeClock, silentLogger());
    const done = keeper.start(time.signal());
    await advance(100);
    expect(keeper.lease).toBeUndefined();
    await advance(200);
    await done;
    expect(etcd.grants).toEqual([T0, T0 + 100, T0 + 300]);
    expect(keeper.lease).toBe('1');
    expect(keeper.validUntil).toBe(T0 + 300 + 2000);
  });

  test('a stuck stream is replaced at once, never matching its answers to later sends', async () => {
    // Issue 12: a stream on a dead, frozen or leaderless etcd member used to be replaced only after 8 unanswered
    // sends (2 s, longer than the address lifetime); now once its oldest send is older than the renew window and
    // one interval (750 ms), and the new stream sends at once.
    const { etcd, keeper } = await started();
    await advance(1000); // 4 unanswered sends, T0+250..T0+1000 (the oldest 750 ms old: not yet stuck)
    const s1 = etcd.last();
    expect(s1.sent).toHaveLength(4);
    expect(s1.ended).toBe(false);
    await advance(250); // T0+1250: the oldest is 1000 ms old: dropped, a new stream sends right away
    expect(s1.ended).toBe(true);
    expect(s1.sent).toHaveLength(4);
    const s2 = etcd.last();
    expect(s2).not.toBe(s1);
    expect(s2.sent).toEqual([{ at: T0 + 1250, id: '1' }]);
    s1.answer('1', 2); // the old stream's late answer: ignored
    expect(keeper.validUntil).toBe(T0 + 2000);
    s2.answer('1', 2);
    expect(keeper.validUntil).toBe(T0 + 1250 + 2000);
    expect(keeper.lastAnsweredSentAt).toBe(T0 + 1250);
  });

  test('streams that stay stuck are given twice as long each time (up to 4 s); an answer resets that', async () => {
    const { etcd } = await started();
    await advance(1250); // s1 stuck at T0+1250 (oldest 1000 ms > 750)
    const s2 = etcd.last();
    expect(s2.sent[0]?.at).toBe(T0 + 1250);
    await advance(1500); // s2 may go 1500 ms unanswered: replaced at the first tick after T0+2750
    expect(s2.ended).toBe(false);
    await advance(250);
    expect(s2.ended).toBe(true);
    const s3 = etcd.last();
    expect(s3.sent[0]?.at).toBe(T0 + 3000);
    s3.answer('1', 2);
    await advance(1000); // sends at +3250..+4000 unanswered; the oldest 750 ms old at +4000
    expect(s3.ended).toBe(false);
    await advance(250);
    expect(s3.ended).toBe(true);
  });

  test('a failed write drops the stream and its pending send times', async () => {
    const { etcd, keeper } = await started();
    await advance(250);
    const s1 = etcd.last();
    s1.failWrites = true;
    await advance(250);
    expect(s1.ended).toBe(true);
    s1.answer('1', 2); // answer to the T0+250 send, arriving on a dropped stream
    expect(keeper.validUntil).toBe(T0 + 2000);
    await advance(250);
    const s2 = etcd.last();
    expect(s2.sent).toEqual([{ at: T0 + 750, id: '1' }]);
    s2.answer('1', 2);
    expect(keeper.validUntil).toBe(T0 + 2750);
  });

  test("no answer in time: 'lost' once validUntil - margin has passed", async () => {
    const { keeper, events } = await started();
    await advance(1499);
    expect(keeper.isSafe()).toBe(true);
    await advance(1); // T0+1500 = validUntil - margin: no time left
    expect(keeper.isSafe()).toBe(false);
    await advance(1);
    expect(events).toContainEqual(['lost', '1', 'no keepalive answer in time']);
  });

  test('an answer re-arms the deadline', async () => {
    const { etcd, keeper, events } = await started();
    await advance(1000);
    etcd.last().answer('1', 2); // sent at T0+250: valid until T0+2250, safe until T0+1750
    await advance(749);
    expect(keeper.isSafe()).toBe(true);
    await advance(2);
    expect(keeper.isSafe()).toBe(false);
    expect(events.filter((e) => e[0] === 'lost')).toEqual([['lost', '1', 'no keepalive answer in time']]);
  });

  test('isFresh: true while the answered keepalive was sent at most renewWindowMs ago', async () => {
    const { etcd, keeper } = await started();
    await advance(250);
    await advance(30);
    etcd.last().answer('1', 2); // sent at T0+250
    expect(keeper.isFresh()).toBe(true);
    await advance(500 - 30); // now T0+750 = sentAt + renewWindow
    expect(keeper.isFresh()).toBe(true);
    await advance(1);
    expect(keeper.isFresh()).toBe(false);
    expect(keeper.isSafe()).toBe(true);
  });

  test('isFresh is false when the lease is not safe, however recent the answer', async () => {
    const timing: LeaseTiming = { ttlSeconds: 1, keepaliveIntervalMs: 100, marginMs: 900, renewWindowMs: 250 };
    const { etcd, keeper } = await started(timing);
    await advance(100);
    etcd.last().answer('1', 1); // sent at T0+100: safe until T0+200
    expect(keeper.isFresh()).toBe(true);
    jest.setSystemTime(T0 + 200);
    expect(keeper.isFresh()).toBe(false);
  });

  test('ensureFresh: sends a keepalive at once and resolves on its answer', async () => {
    const { etcd, keeper } = await started();
    await advance(250);
    const s = etcd.last();
    expect(keeper.isFresh()).toBe(false);
    await advance(100); // T0+350, between ticks
    const p = keeper.ensureFresh();
    expect(s.sent.map((x) => x.at)).toEqual([T0 + 250, T0 + 350]);
    // The answer to the T0+250 send is already fresh: it resolves.
    s.answer('1', 2);
    await expect(p).resolves.toBe(true);
    expect(keeper.isFresh()).toBe(true);
  });

  test('ensureFresh: an old answer does not satisfy it; the fresh one does', async () => {
    const { etcd, keeper } = await started();
    await advance(250);
    const s = etcd.last();
    await advance(600); // T0+850: sends at +250, +500, +750 pending
    const p = keeper.ensureFresh(1000); // sends at T0+850
    let result: boolean | undefined;
    void p.then((r) => (result = r));
    s.answer('1', 2); // T0+250: 600 ms old, not fresh
    await advance(0);
    expect(result).toBeUndefined();
    s.answer('1', 2); // T0+500: 350 ms old, fresh
    await advance(0);
    expect(result).toBe(true);
  });

  test('ensureFresh: false after the timeout without an answer', async () => {
    const { keeper } = await started();
    await advance(250);
    const p = keeper.ensureFresh(300);
    let result: boolean | undefined;
    void p.then((r) => (result = r));
    await advance(299);
    expect(result).toBeUndefined();
    await advance(1);
    expect(result).toBe(false);
  });

  test('ensureFresh: true at once when fresh, false at once without a lease', async () => {
    const { etcd, keeper } = await started();
    await advance(250);
    etcd.last().answer('1', 2);
    await expect(keeper.ensureFresh()).resolves.toBe(true);
    await keeper.revoke();
    expect(keeper.lease).toBeUndefined();
    await expect(keeper.ensureFresh()).resolves.toBe(false);
  });

  // The argument at the top of this file, checked numerically against the keeper itself: the keepalive sent at s
  // is answered, the server's lease ends at the earliest possible time E = s + TTL, and the agent sets an address at
  // every millisecond t at which isFresh() holds, with the lifetime the agent computes. Defaults of agent.yaml
  // (margin 500 ms, renewWindow = min(500, TTL/4)) and of the controller (kernelSlack 400 ms).
  test.each([
    // ttl s, renewWindow, maxLifetime s, overhang ms, latest address end relative to E
    [1, 250, 1, 650, 650],
    [2, 500, 1, 0, -100],
    [5, 500, 4, 0, -100],
  ])(
    'TTL %i s: addresses set under isFresh() end within addressOverhangMs of the lease end',
    async (ttl, renewWindowMs, wantMaxLife, wantOverhang, wantWorst) => {
      const kernelSlackMs = 400;
      const timing: LeaseTiming = { ttlSeconds: ttl, keepaliveIntervalMs: 250, marginMs: 500, renewWindowMs };
      const maxLife = maxLifetimeSeconds(timing);
      const overhang = addressOverhangMs(
        { ttlSeconds: ttl, maxLifetimeSeconds: maxLife, renewWindowMs },
        kernelSlackMs,
      );
      expect([maxLife, overhang]).toEqual([wantMaxLife, wantOverhang]);

      const { etcd, keeper } = await started(timing);
      await advance(250);
      const s = T0 + 250;
      expect(etcd.last().sent).toEqual([{ at: s, id: '1' }]);
      etcd.last().answer('1', ttl);
      const leaseEnd = s + ttl * 1000;

      let worst = -Infinity;
      let lastFresh = 0;
      for (let t = s; t <= s + renewWindowMs + 50; t++) {
        jest.setSystemTime(t); // moves the clock without running timers
        if (!keeper.isFresh()) continue;
        lastFresh = t;
        const lifetime = lifetimeFor(keeper.validUntil - t, timing.marginMs); // as node-agent/agent.ts computes it
        expect(lifetime).toBeLessThanOrEqual(maxLife);
        const addressEnd = t + lifetime * 1000 + kernelSlackMs;
        worst = Math.max(worst, addressEnd - leaseEnd);
      }
      expect(lastFresh).toBe(s + renewWindowMs);
      expect(worst).toBe(wantWorst);
      expect(worst).toBeLessThanOrEqual(overhang);
      // The bound is tight: the overhang is exactly the worst case (or 0 when addresses always end first).
      expect(Math.max(0, worst)).toBe(overhang);
    },
  );
});
