// Benchmark summaries: per mode and profile, the outage and dual-holder figures and where the time goes (the step
// breakdown). Pure; report.ts gathers these with the targets, the tables and the chart.
import { medianOf, summarize, type Summary } from './stats.js';
import { MODES, PROFILES, type IterationResult, type Mode, type Profile, type StepOffsets } from './types.js';

export interface CellSummary {
  profile: Profile;
  mode: Mode;
  /** Iterations that ran (setup failures left out). */
  n: number;
  errors: number;
  /** Outage; an iteration the client never recovered in counts as Infinity. */
  outage?: Summary;
  dual?: Summary;
  /** Iterations where the VIP was still on two nodes when the observation ended. */
  dualOngoing: number;
  /** Iterations with any dual-holder time (fault or recovery). */
  dualIterations: number;
  recoveryDualMax: number;
  endedOnOneHealthy: number;
  /** Medians of the step times (ms after the fault). */
  steps: StepOffsets;
  /** Medians of the per-iteration segments (ms). */
  segments: Segments;
}

/** Where the time goes, per iteration: consecutive steps of a failover (ms). */
export interface Segments {
  detection?: number;
  release?: number;
  reassign?: number;
  watchToAcquire?: number;
  addAddress?: number;
  announce?: number;
  clientReconnect?: number;
}

/**
 * Splits one iteration's step times into consecutive segments (pure; missing steps leave gaps).
 * The group is freed by the old holder's release (service failure, graceful stop) or by the end of its lease
 * (hard failures: the controller then also waits out the address lifetime, DESIGN.md Safety 3).
 */
export function segmentsOf(s: StepOffsets, mode: Mode): Segments {
  const d = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined ? Math.round((a - b) * 10) / 10 : undefined;
  const soft = mode === 'service' || mode === 'graceful';
  const freed = soft ? s.released : s.leaseEnded;
  const added = s.added ?? s.acquired;
  const out: Segments = {
    detection: s.detect,
    release: soft ? d(s.released, s.detect) : undefined,
    reassign: d(s.assigned, freed ?? s.detect),
    watchToAcquire: d(s.acquireStart, s.assigned),
    addAddress: d(added, s.acquireStart),
    announce: d(s.arp, added),
    clientReconnect: d(s.firstOkAfter, s.arp ?? added),
  };
  for (const k of Object.keys(out) as (keyof Segments)[]) if (out[k] === undefined) delete out[k];
  return out;
}

export const STEP_KEYS: (keyof StepOffsets)[] = [
  'lastOkBefore',
  'detect',
  'released',
  'leaseEnded',
  'removed',
  'assigned',
  'acquireStart',
  'acquired',
  'added',
  'arp',
  'firstOkAfter',
];
export const SEGMENT_KEYS: (keyof Segments)[] = [
  'detection',
  'release',
  'reassign',
  'watchToAcquire',
  'addAddress',
  'announce',
  'clientReconnect',
];

export function summarizeCells(results: readonly IterationResult[]): CellSummary[] {
  const out: CellSummary[] = [];
  for (const profile of PROFILES) {
    for (const mode of MODES) {
      const all = results.filter((r) => r.profile === profile && r.mode === mode);
      if (all.length === 0) continue;
      const rs = all.filter((r) => r.error === undefined);
      const steps: StepOffsets = {};
      for (const k of STEP_KEYS) {
        const m = medianOf(rs.map((r) => r.steps[k]));
        if (m !== undefined) steps[k] = Math.round(m);
      }
      const segs = rs.map((r) => segmentsOf(r.steps, r.mode));
      const segments: Segments = {};
      for (const k of SEGMENT_KEYS) {
        const m = medianOf(segs.map((x) => x[k]));
        if (m !== undefined) segments[k] = Math.round(m);
      }
      out.push({
        profile,
        mode,
        n: rs.length,
        errors: all.length - rs.length,
        outage: summarize(rs.map((r) => (r.outageMs === null ? Infinity : r.outageMs))),
        dual: summarize(rs.map((r) => r.dualMs)),
        dualOngoing: rs.filter((r) => r.dualOngoing).length,
        dualIterations: rs.filter((r) => r.dualMs > 0 || r.recoveryDualMs > 0).length,
        recoveryDualMax: Math.max(0, ...rs.map((r) => r.recoveryDualMs)),
        endedOnOneHealthy: rs.filter((r) => r.endedOnOneHealthy).length,
        steps,
        segments,
      });
    }
  }
  return out;
}
