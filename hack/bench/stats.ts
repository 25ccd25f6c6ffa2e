// Pure statistics for the benchmark: percentiles and summaries of per-iteration figures.
// Percentiles interpolate linearly between the closest ranks (numpy's default, "type 7"): with few iterations
// p95 lies between the two largest values instead of jumping to the maximum.

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  max: number;
  mean: number;
}

/** The p-th percentile (0..100) of `values`; NaN for no values. Infinity (never recovered) sorts last. */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile: p must be in 0..100, got ${p}`);
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const rank = (p / 100) * (v.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = v[lo] as number;
  const b = v[hi] as number;
  if (lo === hi || a === b) return a;
  // Between a finite value and Infinity the answer is Infinity, not NaN.
  if (!Number.isFinite(a) || !Number.isFinite(b)) return b;
  return a + (b - a) * (rank - lo);
}

/** n, min, p50, p95, max and mean of the values that are numbers (NaN is left out); undefined when none. */
export function summarize(values: readonly number[]): Summary | undefined {
  const v = values.filter((x) => !Number.isNaN(x));
  if (v.length === 0) return undefined;
  const sum = v.reduce((s, x) => s + x, 0);
  return {
    n: v.length,
    min: Math.min(...v),
    p50: percentile(v, 50),
    p95: percentile(v, 95),
    max: Math.max(...v),
    mean: sum / v.length,
  };
}

/** The median of the defined values, or undefined when there are none. */
export function medianOf(values: readonly (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined && !Number.isNaN(x));
  return v.length ? percentile(v, 50) : undefined;
}

/** Rate per second of a counter sampled twice. */
export function ratePerSecond(before: number, after: number, elapsedMs: number): number {
  if (!(elapsedMs > 0)) throw new Error(`ratePerSecond: elapsed time must be positive, got ${elapsedMs}`);
  return ((after - before) * 1000) / elapsedMs;
}

/** Milliseconds for people: "850 ms", "2.41 s", "∞", "–" for nothing. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || Number.isNaN(ms)) return '–';
  if (!Number.isFinite(ms)) return '∞';
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Total length of the union of intervals (pure): where the two views overlap it counts once. */
export function unionMs(intervals: readonly { from: number; to: number }[]): number {
  const sorted = [...intervals].filter((i) => i.to > i.from).sort((a, b) => a.from - b.from);
  let total = 0;
  let end = -Infinity;
  for (const i of sorted) {
    if (i.to <= end) continue;
    total += i.to - Math.max(i.from, end);
    end = i.to;
  }
  return total;
}
