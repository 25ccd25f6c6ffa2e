import { backoffMs, parseRetryAfter, retryableStatus } from './provider.js';

describe('retry arithmetic', () => {
  const p = { maxAttempts: 10, initialDelayMs: 500, maxDelayMs: 30_000 };
  it('doubles from the initial delay up to the cap, with jitter in [0.5, 1)', () => {
    expect([1, 2, 3, 4].map((a) => backoffMs(a, p, () => 0))).toEqual([250, 500, 1000, 2000]);
    expect(backoffMs(1, p, () => 0.999)).toBe(500);
    expect(backoffMs(20, p, () => 0)).toBe(15_000);
  });
  it('reads Retry-After as seconds or as a date', () => {
    expect(parseRetryAfter('3', 0)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:05 GMT', 1000)).toBe(4000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(null, 0)).toBeUndefined();
  });
  it.each([
    [429, true],
    [500, true],
    [503, true],
    [422, true],
    [401, false],
    [403, false],
    [404, false],
    [400, false],
  ])('HTTP %i retryable: %s', (status, want) => expect(retryableStatus(status)).toBe(want));
});
