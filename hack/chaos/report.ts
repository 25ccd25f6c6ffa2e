// The chaos run's summary: dual-holder time (must be 0), outages per fault kind, iterations that did not converge.
import { formatMs, summarize } from '../bench/stats.js';
import type { ChaosResult } from './run.js';

export interface KindRow {
  kind: string;
  n: number;
  withChurn: number;
  dualMs: number;
  outageP50: number | undefined;
  outageMax: number | undefined;
  notConverged: number;
  /** Controllers/agents that exited on their own during these iterations (restarted by the supervisor). */
  restarts: number;
}

export function rowsByKind(r: ChaosResult): KindRow[] {
  const by = new Map<string, ChaosResult['iterations']>();
  for (const it of r.iterations) by.set(it.kind, [...(by.get(it.kind) ?? []), it]);
  return [...by.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, its]) => {
      const s = summarize(its.map((x) => x.outageMs));
      return {
        kind,
        n: its.length,
        withChurn: its.filter((x) => x.churn).length,
        dualMs: its.reduce((a, x) => a + x.dualMs, 0),
        outageP50: s?.p50,
        outageMax: s?.max,
        notConverged: its.filter((x) => !x.converged).length,
        restarts: its.reduce((a, x) => a + (x.restarts?.length ?? 0), 0),
      };
    });
}

export function totalDualMs(results: readonly ChaosResult[]): number {
  return results.reduce((a, r) => a + r.iterations.reduce((b, x) => b + x.dualMs, 0), 0);
}

/** True when the run shows what the issue asks for: no dual-holder time, every iteration converged, no error. */
export function chaosPassed(results: readonly ChaosResult[]): boolean {
  return results.every(
    (r) => !r.setupError && r.iterations.every((x) => x.dualMs === 0 && x.converged && x.error === undefined),
  );
}

export function formatReport(results: readonly ChaosResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(
      `profile ${r.profile}: ${r.iterations.length} iterations, seed ${r.seed}` +
        (r.skipped ? `, ${r.skipped} skipped (time bound)` : '') +
        (r.setupError ? `, SETUP FAILED: ${r.setupError}` : ''),
    );
    out.push('| fault kind | n | with churn | dual | outage p50 | outage max | not converged | unplanned restarts |');
    out.push('|---|---|---|---|---|---|---|---|');
    for (const k of rowsByKind(r))
      out.push(
        `| ${k.kind} | ${k.n} | ${k.withChurn} | ${k.dualMs} ms | ${formatMs(k.outageP50)} | ${formatMs(k.outageMax)} | ${k.notConverged} | ${k.restarts} |`,
      );
    const bad = r.iterations.filter((x) => x.dualMs > 0 || !x.converged || x.error);
    for (const x of bad)
      out.push(
        `  bad iteration ${x.i}: ${x.kind}${x.churn ? '+churn' : ''} on ${x.target}: dual ${x.dualMs} ms, ` +
          `${x.converged ? 'converged' : 'not converged'}${x.error ? `, ${x.error}` : ''}${x.logsKept ? `; logs: ${x.logsKept}` : ''}`,
      );
  }
  out.push(`dual-holder time: ${totalDualMs(results)} ms (must be 0)`);
  out.push(`seed: ${results[0]?.seed ?? '?'}  (replay: npm run chaos -- --seed ${results[0]?.seed ?? '?'})`);
  return out.join('\n');
}
