import { describe, expect, test } from '@jest/globals';
import { formatMs, medianOf, percentile, ratePerSecond, summarize, unionMs } from './stats.js';

describe('percentile', () => {
  test.each([
    [[5], 50, 5],
    [[5], 95, 5],
    [[1, 2, 3, 4], 50, 2.5],
    [[4, 1, 3, 2], 0, 1],
    [[4, 1, 3, 2], 100, 4],
    [[10, 20, 30], 95, 29],
    [[0, 100], 95, 95],
  ])('%j p%d = %d', (values, p, want) => {
    expect(percentile(values, p)).toBeCloseTo(want, 9);
  });

  test('no values gives NaN; NaN values are left out', () => {
    expect(percentile([], 50)).toBeNaN();
    expect(percentile([NaN, 3], 50)).toBe(3);
  });

  test('Infinity (never recovered) sorts last and is not turned into NaN', () => {
    expect(percentile([1, 2, Infinity], 95)).toBe(Infinity);
    expect(percentile([1, 2, Infinity], 50)).toBe(2);
    expect(percentile([Infinity, Infinity], 50)).toBe(Infinity);
  });

  test('p out of range is an error', () => {
    expect(() => percentile([1], 101)).toThrow();
    expect(() => percentile([1], -1)).toThrow();
  });
});

describe('summarize', () => {
  test('all figures', () => {
    expect(summarize([300, 100, 200])).toEqual({ n: 3, min: 100, p50: 200, p95: 290, max: 300, mean: 200 });
  });
  test('nothing to summarize', () => {
    expect(summarize([])).toBeUndefined();
    expect(summarize([NaN])).toBeUndefined();
  });
});

test('medianOf skips undefined', () => {
  expect(medianOf([undefined, 4, 2, undefined])).toBe(3);
  expect(medianOf([undefined])).toBeUndefined();
});

test('ratePerSecond', () => {
  expect(ratePerSecond(100, 400, 1500)).toBe(200);
  expect(() => ratePerSecond(0, 1, 0)).toThrow();
});

test('formatMs', () => {
  expect(formatMs(12.4)).toBe('12 ms');
  expect(formatMs(2412)).toBe('2.41 s');
  expect(formatMs(Infinity)).toBe('∞');
  expect(formatMs(undefined)).toBe('–');
});

describe('unionMs', () => {
  test.each([
    [[], 0],
    [[{ from: 0, to: 10 }], 10],
    [[{ from: 5, to: 5 }], 0],
    [[{ from: 10, to: 5 }], 0],
    [
      [
        { from: 0, to: 10 },
        { from: 5, to: 15 },
      ],
      15,
    ],
    [
      [
        { from: 20, to: 30 },
        { from: 0, to: 10 },
      ],
      20,
    ],
    [
      [
        { from: 0, to: 100 },
        { from: 10, to: 20 },
        { from: 90, to: 120 },
      ],
      120,
    ],
  ])('%j = %d', (intervals, want) => {
    expect(unionMs(intervals)).toBe(want);
  });
});
