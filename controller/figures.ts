// The figures an event records (DESIGN.md: every transition keeps detection and outage).
import type { CurrentAssignment, HolderState, PlanInput } from './planner.js';

export interface Figures {
  detectMs?: number;
  outageMs?: number;
  /** Wall-clock time of the failure that led here, for the record's detectedAt. */
  failureAt?: number;
}

/**
 *  - health failure: detectMs from the first failed check to the holder's release; outageMs from the first failed
 *    check to this assignment;
 *  - lease end: detectMs is the lease TTL (the node was last heard from about then); outageMs from then to now;
 *  - planned release: outageMs from the holder removing its addresses to this assignment.
 * The new holder adds the addresses a few ms later (the agent measures that part).
 */
export function eventFigures(
  input: PlanInput,
  group: string,
  cur: CurrentAssignment | undefined,
  state: HolderState,
): Figures {
  const holder = cur?.record.holder;
  if (!cur || !holder) return {};
  if (state === 'released') {
    const rel = input.released.get(group)?.get(holder);
    // The release carries it (health and release arrive on different watches, in either order).
    const failingSince = rel?.failingSince ?? input.health.get(group)?.get(holder)?.failingSince;
    if (failingSince !== undefined && !cur.record.release) {
      return {
        ...(rel ? { detectMs: Math.max(0, rel.at - failingSince) } : {}),
        outageMs: Math.max(0, input.now - failingSince),
        failureAt: failingSince,
      };
    }
    return rel ? { outageMs: Math.max(0, input.now - rel.at) } : {};
  }
  if (state === 'gone' && cur.record.holderLease) {
    const g = input.gone.get(cur.record.holderLease);
    if (!g) return {};
    const ttlMs = g.ttlMs ?? 0;
    // goneAt is on the monotonic clock of the waits; the wall-clock figures are counted back from now.
    // (Whole ms: the monotonic clock has fractions, and records hold integers.)
    const sinceGone = Math.round(Math.max(0, (input.mono ?? input.now) - g.goneAt));
    return { detectMs: ttlMs, outageMs: sinceGone + ttlMs, failureAt: input.now - sinceGone - ttlMs };
  }
  return {};
}
