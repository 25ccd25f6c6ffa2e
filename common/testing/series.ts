// The metrics tests' check: every listed sample line is in the registry's text exposition.
import { expect } from '@jest/globals';

export function expectSeries(text: string, samples: readonly string[]): void {
  expect(samples.filter((s) => !text.includes(s))).toEqual([]);
}
