// Who may hold a group, in which order: eligibility from liveness, drain and health, then effective priority
// (priority + check weights), then a stable hash, so that every replica computes the same ranking (MetalLB's habit).
import { fingerprint, fnv1a } from '../common/hash.js';
import type { AssignmentRecord } from '../common/keyspace.js';
import type { FailoverGroup } from '../crds/failovergroup.js';
import type { PlanInput } from './planner.js';

/** Why a candidate may not take the group now (status text; the holder's own verdicts are SELF_RELEASE). */
export type Ineligible =
  'no lease' | 'drained' | 'spec not understood' | 'no health report' | 'health report for other checks' | 'unhealthy';

export interface RankedNode {
  name: string;
  live: boolean;
  healthy: boolean;
  eligible: boolean;
  priority: number;
  why?: Ineligible;
}

/** Verdicts the holder reaches by itself (its own checks): it lets go on its own, the controller only waits. */
export const SELF_RELEASE: ReadonlySet<string> = new Set<Ineligible>([
  'unhealthy',
  'health report for other checks',
  'no health report',
  // The agent lets go of a group it cannot parse by itself (release reason spec-not-understood).
  'spec not understood',
]);

// Fingerprints per group object: a pass over 1,000 groups computed each of them several times, and hashing was
// a third of the controller's CPU (scale benchmark). Group objects are parsed once and never changed in place.
const checksHashes = new WeakMap<FailoverGroup, string>();
const specHashes = new WeakMap<FailoverGroup, string>();

/**
 * Fingerprints of check lists by their JSON: most groups name the same few checks, and stableJson + sha256 for each new
 * group object (10,000 when the source lists them) was 300 ms of one synchronous stretch of the first pass, which
 * with the machine loaded blocked the leader's event loop for 3.6 s and let its lease expire (scale benchmark,
 * 10,000 groups). Same value as fingerprint(checks); bounded by clearing.
 */
const checksByJson = new Map<string, string>();
const CHECKS_BY_JSON_MAX = 10_000;

export function checksHash(group: FailoverGroup): string {
  let h = checksHashes.get(group);
  if (h === undefined) {
    // Plain JSON as the key (native, several times cheaper than stableJson): equal JSON is an equal value, so an
    // equal fingerprint; the same checks in another key order only miss.
    const json = JSON.stringify(group.spec.checks);
    h = checksByJson.get(json);
    if (h === undefined) {
      if (checksByJson.size >= CHECKS_BY_JSON_MAX) checksByJson.clear();
      checksByJson.set(json, (h = fingerprint(group.spec.checks)));
    }
    checksHashes.set(group, h);
  }
  return h;
}

/** What the agent acts on besides holder: a change here re-issues the assignment to the same holder. */
export function specHash(group: FailoverGroup): string {
  let h = specHashes.get(group);
  if (h === undefined) {
    const s = group.spec;
    specHashes.set(
      group,
      (h = fingerprint({ vips: s.vips, snat: s.snat, hooks: s.hooks, announce: s.announce, cloud: s.cloud })),
    );
  }
  return h;
}

export function vipsOf(group: FailoverGroup): AssignmentRecord['vips'] {
  return group.spec.vips.map((v) =>
    v.interface ? { address: v.address, interface: v.interface } : { address: v.address },
  );
}

// The tie-break hash of each candidate, in spec order: a sort hashed two strings per comparison, every pass.
const tieHashes = new WeakMap<FailoverGroup, Map<string, number>>();

function tieHash(group: FailoverGroup, node: string): number {
  let m = tieHashes.get(group);
  if (!m) tieHashes.set(group, (m = new Map()));
  let h = m.get(node);
  if (h === undefined) m.set(node, (h = fnv1a(`${group.name}/${node}`)));
  return h;
}

/** Ranks candidates: effective priority (priority + check weights) desc, then a stable hash, then name. */
export function rankNodes(group: FailoverGroup, input: PlanInput): RankedNode[] {
  const wantHash = checksHash(group);
  const health = input.health.get(group.name);
  const out = group.spec.nodes.map((c): RankedNode => {
    const node = input.nodes.get(c.name);
    const live = node !== undefined;
    const h = health?.get(c.name);
    const fresh = h !== undefined && h.checksHash === wantHash;
    const healthy = fresh && h.healthy;
    const priority = c.priority + (fresh ? h.priorityDelta : 0);
    let why: Ineligible | undefined;
    if (!live) why = 'no lease';
    else if (input.drained.has(c.name)) why = 'drained';
    else if (node.specErrorByGroup?.has(group.name)) why = 'spec not understood';
    else if (!h) why = 'no health report';
    else if (!fresh) why = 'health report for other checks';
    else if (!h.healthy) why = 'unhealthy';
    return { name: c.name, live, healthy, eligible: why === undefined, priority, why };
  });
  return out.sort(
    (a, b) =>
      Number(b.eligible) - Number(a.eligible) ||
      b.priority - a.priority ||
      tieHash(group, b.name) - tieHash(group, a.name) ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
}

/** The group's candidates whose agent cannot parse its spec, with why (version skew). */
export function specErrorsOf(group: FailoverGroup, input: PlanInput): { node: string; why: string }[] {
  const out: { node: string; why: string }[] = [];
  for (const c of group.spec.nodes) {
    const why = input.nodes.get(c.name)?.specErrorByGroup?.get(group.name);
    if (why !== undefined) out.push({ node: c.name, why });
  }
  return out;
}
