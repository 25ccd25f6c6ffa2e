import { expect, test } from '@jest/globals';
import { longestLoss, outageAround, type Sample } from './probe.js';

const s = (t: number, ok: boolean): Sample => ({ seq: t, t, tEnd: t + 1, ok, ...(ok ? { body: 'node1' } : {}) });

test('longestLoss: the longest run without an answer after t0, not the first one (outageAround)', () => {
  const samples = [s(0, true), s(10, false), s(20, true), s(30, false), s(40, false), s(90, true), s(100, true)];
  expect(outageAround(samples, 5).durationMs).toBe(20);
  expect(longestLoss(samples, 5)).toBe(70);
  // A run that ended before t0 does not count; one still going counts to the last attempt.
  expect(longestLoss(samples, 95)).toBe(0);
  expect(longestLoss([s(0, true), s(10, false), s(50, false)], 5)).toBe(50);
  expect(longestLoss([s(0, true), s(10, true)], 5)).toBe(0);
});
