// The chaos run's pure parts: the seeded PRNG replays, the summary counts what it should.
import { describe, expect, test } from '@jest/globals';
import { Rng } from './faults.js';
import { chaosPassed, formatReport, rowsByKind, totalDualMs } from './report.js';
import type { ChaosResult, IterationResult } from './run.js';

const it = (o: Partial<IterationResult>): IterationResult => ({
  i: 0,
  kind: 'agent-kill',
  target: 'node1',
  churn: false,
  holdMs: 1000,
  dualMs: 0,
  outageMs: 0,
  outages: {},
  converged: true,
  convergeMs: 500,
  restarts: [],
  ...o,
});

describe('Rng', () => {
  test('the same seed gives the same sequence', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 20 }, () => a.int(0, 1000));
    expect(Array.from({ length: 20 }, () => b.int(0, 1000))).toEqual(xs);
    expect(new Set(xs).size).toBeGreaterThan(10);
    for (const x of xs) expect(x >= 0 && x <= 1000).toBe(true);
  });
});

describe('report', () => {
  const r: ChaosResult = {
    profile: 'fast',
    seed: 7,
    skipped: 0,
    iterations: [
      it({ i: 0, outageMs: 900, churn: true }),
      it({ i: 1, outageMs: 1100 }),
      it({ i: 2, kind: 'spec-move', dualMs: 30, logsKept: '/tmp/x' }),
      it({ i: 3, kind: 'etcd-cut', converged: false }),
    ],
  };

  test('rows by kind, dual total, pass/fail', () => {
    const rows = rowsByKind(r);
    expect(rows.map((x) => [x.kind, x.n, x.withChurn, x.dualMs, x.notConverged])).toEqual([
      ['agent-kill', 2, 1, 0, 0],
      ['etcd-cut', 1, 0, 0, 1],
      ['spec-move', 1, 0, 30, 0],
    ]);
    expect(rows[0]!.outageMax).toBe(1100);
    expect(totalDualMs([r])).toBe(30);
    expect(chaosPassed([r])).toBe(false);
    expect(chaosPassed([{ ...r, iterations: [it({})] }])).toBe(true);
    const text = formatReport([r]);
    expect(text).toContain('dual-holder time: 30 ms');
    expect(text).toContain('bad iteration 2');
    expect(text).toContain('--seed 7');
  });
});
