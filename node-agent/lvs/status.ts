// What the director reports per real server (status, metrics, `vipwarden status`): its view, the check's message
// and, on the holder, the IPVS counters.
import { destKey, serviceKey, statsOf, type DestStats } from './ipvs.js';
import type { DesiredService, RealServerView } from './planner.js';

export interface RealServerStatus extends RealServerView {
  message?: string;
  /** From the IPVS table of the holder; absent on a standby. */
  stats?: DestStats;
}

/** Counters by service key and destination key, as parseListing gives them. */
type Listing = Map<string, Map<string, number[]>>;

/** Each view with its check message and, where a held service has it, its counters (pure). */
export function withStats(
  views: readonly RealServerView[],
  held: readonly DesiredService[],
  conns: Listing,
  stats: Listing,
  message: (id: string) => string | undefined,
): RealServerStatus[] {
  return views.map((v) => {
    const svc = held.find((s) => s.group === v.group && s.name === v.service);
    const k = svc && serviceKey(svc);
    const d = destKey(v);
    const out: RealServerStatus = { ...v, message: message(v.id) };
    if (k && (conns.get(k)?.has(d) || stats.get(k)?.has(d)))
      out.stats = statsOf(conns.get(k)?.get(d), stats.get(k)?.get(d));
    return out;
  });
}
