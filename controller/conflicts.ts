// Which group may use a VIP. An address stays claimed by the group whose assignment names it, among its VIPs or
// among the addresses a spec change took away that its holder may still have (`retiring`), until the holder has
// acknowledged letting go or its lease ended and the Safety 3 wait ran out (the planner then rewrites the record).
import { parseCidr } from '../common/ip.js';
import type { AssignmentRecord } from '../common/keyspace.js';

/** The bare address of a VIP ("198.18.0.100/24" -> "198.18.0.100"). */
export function addressOf(cidr: string): string {
  const c = parseCidr(cidr);
  return typeof c === 'string' ? cidr : c.address;
}

/** Every address an assignment claims: its VIPs, then those it is still retiring. */
export function claimedBy(record: AssignmentRecord): { vips: string[]; retiring: string[] } {
  return {
    vips: record.vips.map((v) => addressOf(v.address)),
    retiring: (record.retiring ?? []).map((v) => addressOf(v.address)),
  };
}

/**
 * Two groups claiming one VIP: the group that already holds an assignment with it keeps it, then the older one
 * (creation order as given), then the smaller name. Returns the rejected groups with the reason.
 */
export function findConflicts(
  groups: readonly { name: string; vips: string[]; createdAt?: number }[],
  assigned: ReadonlyMap<string, string[]>,
): Map<string, string> {
  return conflicts(groups, assigned).rejected;
}

/** findConflicts, also naming for each rejected group the group whose claim it ran into. */
export function conflicts(
  groups: readonly { name: string; vips: string[]; createdAt?: number }[],
  assigned: ReadonlyMap<string, string[]>,
): { rejected: Map<string, string>; blockedBy: Map<string, { address: string; owner: string }> } {
  const rejected = new Map<string, string>();
  const blockedBy = new Map<string, { address: string; owner: string }>();
  const order = [...groups].sort((a, b) => {
    const aa = assigned.has(a.name) ? 0 : 1;
    const bb = assigned.has(b.name) ? 0 : 1;
    return aa - bb || (a.createdAt ?? 0) - (b.createdAt ?? 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  });
  const owner = new Map<string, string>();
  // Addresses still named by an assignment stay claimed by that group, whatever its spec says now.
  for (const [g, vips] of assigned) for (const v of vips) if (!owner.has(v)) owner.set(v, g);
  for (const g of order) {
    const clash = g.vips.map((v) => [v, owner.get(v)] as const).find(([, o]) => o !== undefined && o !== g.name);
    if (clash) {
      rejected.set(g.name, `VIP ${clash[0]} is already claimed by group ${clash[1]}`);
      blockedBy.set(g.name, { address: clash[0], owner: clash[1]! });
      continue;
    }
    for (const v of g.vips) owner.set(v, g.name);
  }
  return { rejected, blockedBy };
}

/** The addresses a spec change takes away from the holder, to be retired (kept claimed) until it lets go. */
export function retiringAfter(
  prev: AssignmentRecord,
  next: AssignmentRecord['vips'],
): AssignmentRecord['vips'] | undefined {
  const keep = new Set(next.map((v) => addressOf(v.address)));
  const out = new Map<string, AssignmentRecord['vips'][number]>();
  for (const v of [...prev.vips, ...(prev.retiring ?? [])]) {
    const a = addressOf(v.address);
    if (!keep.has(a) && !out.has(a)) out.set(a, v);
  }
  return out.size > 0 ? [...out.values()] : undefined;
}
