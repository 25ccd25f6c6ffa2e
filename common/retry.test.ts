import { describe, expect, test } from '@jest/globals';
import { Backoff, backoffDelay, retry, RetryStopped } from './retry.js';

const sleeps: number[] = [];
const clock = { sleep: async (ms: number) => void sleeps.push(ms) };

describe('backoff', () => {
  test('doubles from the initial delay up to the cap; reset starts again', () => {
    const b = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000 });
    expect([1, 2, 3, 4, 5].map(() => b.next())).toEqual([100, 200, 400, 800, 1000]);
    b.reset();
    expect(b.next()).toBe(100);
  });

  test('half jitter draws from [0.5, 1) of the step', () => {
    const p = { initialDelayMs: 500, maxDelayMs: 15_000, jitter: 'half' as const, random: () => 0 };
    expect([1, 2, 3, 4].map((a) => backoffDelay(a, p))).toEqual([250, 500, 1000, 2000]);
    expect(backoffDelay(1, { ...p, random: () => 0.999 })).toBe(500);
  });
});

describe('retry', () => {
  test('retries until it works, waiting the backoff between attempts', async () => {
    sleeps.length = 0;
    const seen: number[] = [];
    const out = await retry(
      async (attempt) => {
        seen.push(attempt);
        if (attempt < 3) throw new Error('not yet');
        return 'ok';
      },
      { backoff: { initialDelayMs: 10, maxDelayMs: 100 }, clock },
    );
    expect(out).toBe('ok');
    expect(seen).toEqual([1, 2, 3]);
    expect(sleeps).toEqual([10, 20]);
  });

  test('throws the last error when attempts are spent or the error is not retryable', async () => {
    await expect(
      retry(() => Promise.reject(new Error('down')), {
        backoff: { initialDelayMs: 1, maxDelayMs: 1 },
        clock,
        maxAttempts: 2,
      }),
    ).rejects.toThrow('down');
    let calls = 0;
    await expect(
      retry(
        () => {
          calls++;
          return Promise.reject(new Error('bad token'));
        },
        { backoff: { initialDelayMs: 1, maxDelayMs: 1 }, clock, retryable: () => false },
      ),
    ).rejects.toThrow('bad token');
    expect(calls).toBe(1);
  });

  test('a delay hint longer than the backoff wins, up to the cap', async () => {
    sleeps.length = 0;
    let n = 0;
    await retry(
      async () => {
        if (n++ < 2) throw new Error('429');
      },
      { backoff: { initialDelayMs: 10, maxDelayMs: 100 }, clock, delayHint: () => (n === 1 ? 50 : 500) },
    );
    expect(sleeps).toEqual([50, 100]);
  });

  test('stops with RetryStopped when the signal is aborted or stopped() says so', async () => {
    const ac = new AbortController();
    const p = retry(
      async () => {
        ac.abort();
        throw new Error('x');
      },
      { backoff: { initialDelayMs: 1, maxDelayMs: 1 }, clock, signal: ac.signal },
    );
    await expect(p).rejects.toEqual(new RetryStopped(1));
    await expect(
      retry(async () => 1, { backoff: { initialDelayMs: 1, maxDelayMs: 1 }, clock, stopped: () => true }),
    ).rejects.toBeInstanceOf(RetryStopped);
  });
});
