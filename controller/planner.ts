// The controller's pure planner: (groups, liveness, health, assignments) -> assignment writes.
// No I/O, no clock: everything it knows comes in PlanInput. The safety rules of DESIGN.md live here:
//  - a group moves away from its holder only when the holder released the current epoch, or its lease is gone
//    and the longest address lifetime it may have set has run out (Safety 3);
//  - otherwise the holder is asked to release (release: true) and the planner waits.
import { fingerprint, fnv1a } from '../common/hash.js';
import type { AssignmentRecord, HealthRecord, MoveRecord } from '../common/keyspace.js';
import type { FailoverGroup, Phase } from '../crds/failovergroup.js';

export interface LiveNode {
  name: string;
  lease: string;
  ttlSeconds: number;
  maxLifetimeSeconds: number;
}

export interface GoneLease {
  lease: string;
  node: string;
  /** Controller wall time at which the lease was seen to end (its node key deleted), ms. */
  goneAt: number;
  /** How long after goneAt an address of that node may still exist (DESIGN.md Safety 3). */
  waitMs: number;
  /** The lease's TTL: the node was last heard from about this long before goneAt. */
  ttlMs?: number;
}

export interface CurrentAssignment {
  record: AssignmentRecord;
  /** The key's mod revision. */
  epoch: number;
}

export interface PlanInput {
  now: number;
  leader: string;
  /** Valid groups to place (conflicts already removed). */
  groups: ReadonlyMap<string, FailoverGroup>;
  /** Groups that exist but are invalid or conflicting: their assignments are left as they are. */
  frozen: ReadonlySet<string>;
  nodes: ReadonlyMap<string, LiveNode>;
  gone: ReadonlyMap<string, GoneLease>;
  health: ReadonlyMap<string, ReadonlyMap<string, HealthRecord>>;
  assignments: ReadonlyMap<string, CurrentAssignment>;
  /** group -> node -> epoch that node released, with when it said so (wall ms). */
  released: ReadonlyMap<
    string,
    ReadonlyMap<string, { epoch: number; at: number; reason?: string; failingSince?: number }>
  >;
  drained: ReadonlySet<string>;
  pins: ReadonlyMap<string, MoveRecord>;
  /** When the controller first saw each group; a group is placed for the first time once every live candidate
   *  has reported its health, or settleMs after that, so that it lands on the preferred node at once. */
  firstSeen: ReadonlyMap<string, number>;
  settleMs: number;
}

export interface EventDraft {
  from: string | null;
  to: string | null;
  reason: string;
  detectMs?: number;
  outageMs?: number;
}

export type Action =
  | { type: 'put'; group: string; expectEpoch: number; record: AssignmentRecord; event?: EventDraft }
  | { type: 'delete'; group: string; expectEpoch: number; event?: EventDraft };

export interface RankedNode {
  name: string;
  live: boolean;
  healthy: boolean;
  eligible: boolean;
  priority: number;
  why?: string;
}

export interface GroupDecision {
  group: string;
  phase: Phase;
  holder: string | null;
  epoch: number;
  state: HolderState;
  nodes: RankedNode[];
  message: string;
}

export interface Plan {
  actions: Action[];
  decisions: Map<string, GroupDecision>;
  /** Earliest time at which a waiting group must be planned again. */
  requeueAt?: number;
}

/** Reasons for which the holder releases on its own. */
const SELF_RELEASE = new Set(['unhealthy', 'health report for other checks', 'no health report']);

export type HolderState = 'none' | 'holding' | 'released' | 'gone-waiting' | 'gone';

// Fingerprints per group object: a pass over 1,000 groups computed each of them several times, and hashing was
// a third of the controller's CPU (scale benchmark). Group objects are parsed once and never changed in place.
const checksHashes = new WeakMap<FailoverGroup, string>();
const specHashes = new WeakMap<FailoverGroup, string>();

export function checksHash(group: FailoverGroup): string {
  let h = checksHashes.get(group);
  if (h === undefined) checksHashes.set(group, (h = fingerprint(group.spec.checks)));
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

/** Ranks candidates: effective priority (priority + check weights) desc, then a stable hash, then name. */
export function rankNodes(group: FailoverGroup, input: PlanInput): RankedNode[] {
  const wantHash = checksHash(group);
  const health = input.health.get(group.name);
  const out = group.spec.nodes.map((c): RankedNode => {
    const live = input.nodes.has(c.name);
    const h = health?.get(c.name);
    const fresh = h !== undefined && h.checksHash === wantHash;
    const healthy = fresh && h.healthy;
    const priority = c.priority + (fresh ? h.priorityDelta : 0);
    let why: string | undefined;
    if (!live) why = 'no lease';
    else if (input.drained.has(c.name)) why = 'drained';
    else if (!h) why = 'no health report';
    else if (!fresh) why = 'health report for other checks';
    else if (!h.healthy) why = 'unhealthy';
    return { name: c.name, live, healthy, eligible: why === undefined, priority, why };
  });
  return out.sort(
    (a, b) =>
      Number(b.eligible) - Number(a.eligible) ||
      b.priority - a.priority ||
      fnv1a(`${group.name}/${b.name}`) - fnv1a(`${group.name}/${a.name}`) ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
}

function holderState(
  input: PlanInput,
  group: string,
  cur: CurrentAssignment | undefined,
): { state: HolderState; until?: number } {
  if (!cur || cur.record.holder === null) return { state: 'none' };
  const live = input.nodes.get(cur.record.holder);
  if (live && live.lease === cur.record.holderLease) {
    const rel = input.released.get(group)?.get(cur.record.holder);
    return rel !== undefined && rel.epoch >= cur.epoch ? { state: 'released' } : { state: 'holding' };
  }
  const gone = cur.record.holderLease ? input.gone.get(cur.record.holderLease) : undefined;
  // The controller records every lease it sees end; one it never saw is entered by the caller before planning.
  if (!gone) return { state: 'gone-waiting', until: input.now };
  const until = gone.goneAt + gone.waitMs;
  return input.now >= until ? { state: 'gone' } : { state: 'gone-waiting', until };
}

export function plan(input: PlanInput): Plan {
  const actions: Action[] = [];
  const decisions = new Map<string, GroupDecision>();
  let requeueAt: number | undefined;
  const names = new Set<string>([...input.groups.keys(), ...input.assignments.keys()]);
  for (const name of [...names].sort()) {
    if (input.frozen.has(name)) continue;
    const r = planGroup(input, name);
    if (r.action) actions.push(r.action);
    if (r.decision) decisions.set(name, r.decision);
    if (r.until !== undefined) requeueAt = requeueAt === undefined ? r.until : Math.min(requeueAt, r.until);
  }
  return { actions, decisions, requeueAt };
}

function record(
  input: PlanInput,
  name: string,
  fields: Partial<AssignmentRecord> & Pick<AssignmentRecord, 'holder' | 'holderLease' | 'reason'>,
  group?: FailoverGroup,
  prev?: AssignmentRecord,
): AssignmentRecord {
  return {
    group: name,
    vips: group ? vipsOf(group) : (prev?.vips ?? []),
    release: false,
    specHash: group ? specHash(group) : (prev?.specHash ?? ''),
    at: input.now,
    leader: input.leader,
    ...fields,
  };
}

function planGroup(input: PlanInput, name: string): { action?: Action; decision?: GroupDecision; until?: number } {
  const group = input.groups.get(name);
  const cur = input.assignments.get(name);
  const epoch = cur?.epoch ?? 0;
  const holder = cur?.record.holder ?? null;
  const hs = holderState(input, name, cur);
  const ranked = group ? rankNodes(group, input) : [];
  // A node that has just let go of this epoch is not offered the group again in the same breath.
  const offer = ranked.filter((n) => n.eligible && !(hs.state === 'released' && n.name === holder));
  const best = offer[0];
  const pin = input.pins.get(name);
  const pinned = pin ? offer.find((n) => n.name === pin.to) : undefined;
  const holderRank = ranked.find((n) => n.name === holder);

  // Who should hold the group if the choice were free, and why the current holder should let go.
  let desired: string | null = null;
  let moveWhy = '';
  if (!group) {
    desired = null;
    moveWhy = 'deleted';
  } else if (pinned) {
    desired = pinned.name;
    moveWhy = 'move';
  } else if (hs.state === 'holding' && holderRank?.eligible) {
    const failback = group.spec.failback === 'auto' && best !== undefined && best.priority > holderRank.priority;
    desired = failback ? best.name : holder;
    moveWhy = 'failback';
  } else {
    desired = best?.name ?? null;
    if (hs.state === 'holding') moveWhy = holderRank ? (holderRank.why ?? 'unhealthy') : 'node-removed';
  }

  const decision = (phase: Phase, message: string): GroupDecision => ({
    group: name,
    phase,
    holder,
    epoch,
    state: hs.state,
    nodes: ranked,
    message,
  });
  const phaseFor = (h: string | null): Phase => {
    if (h === null) return 'NoHealthyNode';
    const healthyCount = ranked.filter((n) => n.eligible).length;
    return healthyCount < ranked.length ? 'Degraded' : 'Active';
  };

  switch (hs.state) {
    case 'holding': {
      if (!cur || holder === null) throw new Error('unreachable');
      if (desired === holder) {
        if (group && (cur.record.release || cur.record.specHash !== specHash(group))) {
          const reason = cur.record.release ? 'release-cancelled' : 'spec-changed';
          return {
            action: {
              type: 'put',
              group: name,
              expectEpoch: epoch,
              record: record(input, name, { holder, holderLease: cur.record.holderLease, reason }, group),
            },
            decision: decision(phaseFor(holder), reason),
          };
        }
        return { decision: decision(phaseFor(holder), `held by ${holder}`) };
      }
      // A holder whose own checks fail lets go by itself, with its health in the same transaction: asking it
      // would only cost a round trip. (Its lease ending is the backstop if it cannot.)
      if (holderRank && SELF_RELEASE.has(moveWhy)) {
        return { decision: decision(phaseFor(holder), `waiting for ${holder} to release (${moveWhy})`) };
      }
      // Ask the holder to let go; the move happens once it has released this epoch (or its lease is gone).
      if (cur.record.release && cur.record.reason === moveWhy) {
        return { decision: decision(phaseFor(holder), `waiting for ${holder} to release (${moveWhy})`) };
      }
      return {
        action: {
          type: 'put',
          group: name,
          expectEpoch: epoch,
          record: record(
            input,
            name,
            { holder, holderLease: cur.record.holderLease, release: true, reason: moveWhy },
            group,
            cur.record,
          ),
        },
        decision: decision(phaseFor(holder), `asking ${holder} to release (${moveWhy})`),
      };
    }
    case 'gone-waiting':
      return {
        decision: decision(phaseFor(holder), `lease of ${holder} ended; waiting for its addresses to expire`),
        until: hs.until,
      };
    case 'none':
    case 'released':
    case 'gone': {
      if (!cur && group) {
        const settleUntil = (input.firstSeen.get(name) ?? input.now) + input.settleMs;
        const waitingFor = ranked.filter(
          (n) =>
            !n.eligible &&
            (n.why === 'no lease' || n.why === 'no health report' || n.why === 'health report for other checks'),
        );
        if (waitingFor.length > 0 && input.now < settleUntil) {
          return {
            decision: decision('Pending', `waiting for health from ${waitingFor.map((n) => n.name).join(', ')}`),
            until: settleUntil,
          };
        }
      }
      const reasonOut =
        hs.state === 'gone'
          ? 'lease-expired'
          : hs.state === 'released'
            ? cur?.record.release
              ? cur.record.reason
              : releasedReason(input, name, holder)
            : cur
              ? 'recovered'
              : 'initial';
      const fig = eventFigures(input, name, cur, hs.state);
      // Only the two figures go into the event: failureAt feeds the record's detectedAt, not the event.
      const figures = (): Pick<EventDraft, 'detectMs' | 'outageMs'> => ({
        ...(fig.detectMs !== undefined ? { detectMs: fig.detectMs } : {}),
        ...(fig.outageMs !== undefined ? { outageMs: fig.outageMs } : {}),
      });
      const failingSince = fig.failureAt;
      if (!group) {
        if (!cur) return {};
        return {
          action: {
            type: 'delete',
            group: name,
            expectEpoch: epoch,
            event: { from: holder, to: null, reason: 'deleted', ...figures() },
          },
          decision: decision('NoHealthyNode', 'deleted'),
        };
      }
      if (desired === null) {
        // Nothing to write when there never was a holder: the first assignment names one.
        if (!cur || holder === null) return { decision: decision('NoHealthyNode', 'no eligible node') };
        return {
          action: {
            type: 'put',
            group: name,
            expectEpoch: epoch,
            record: record(input, name, { holder: null, holderLease: null, reason: 'no-healthy-node' }, group),
            event: holder !== null ? { from: holder, to: null, reason: reasonOut, ...figures() } : undefined,
          },
          decision: decision('NoHealthyNode', 'no eligible node'),
        };
      }
      const live = input.nodes.get(desired);
      if (!live) throw new Error(`eligible node ${desired} has no lease`);
      const reason = pinned && desired === pinned.name && reasonOut !== 'initial' ? 'move' : reasonOut;
      return {
        action: {
          type: 'put',
          group: name,
          expectEpoch: epoch,
          record: record(
            input,
            name,
            { holder: desired, holderLease: live.lease, reason, ...(failingSince ? { detectedAt: failingSince } : {}) },
            group,
          ),
          event: { from: holder, to: desired, reason, ...figures() },
        },
        decision: decision(phaseFor(desired), `assigning to ${desired} (${reason})`),
      };
    }
  }
}

/** The holder's own words for letting go: "unhealthy", "shutting down", ... */
function releasedReason(input: PlanInput, group: string, holder: string | null): string {
  const r = holder ? input.released.get(group)?.get(holder)?.reason : undefined;
  if (!r) return 'released';
  return r.startsWith('release requested') ? 'released' : r.replace(/\s+/g, '-');
}

/**
 * The figures an event records (DESIGN.md: every transition keeps detection and outage):
 *  - health failure: detectMs from the first failed check to the holder's release; outageMs from the first failed
 *    check to this assignment;
 *  - lease end: detectMs is the lease TTL (the node was last heard from about then); outageMs from then to now;
 *  - planned release: outageMs from the holder removing its addresses to this assignment.
 * The new holder adds the addresses a few ms later (the agent measures that part).
 */
function eventFigures(
  input: PlanInput,
  group: string,
  cur: CurrentAssignment | undefined,
  state: HolderState,
): { detectMs?: number; outageMs?: number; failureAt?: number } {
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
    return { detectMs: ttlMs, outageMs: Math.max(0, input.now - g.goneAt) + ttlMs, failureAt: g.goneAt - ttlMs };
  }
  return {};
}

/**
 * Two groups claiming one VIP: the group that already holds an assignment with it keeps it, then the older one
 * (creation order as given), then the smaller name. Returns the rejected groups with the reason.
 */
export function findConflicts(
  groups: readonly { name: string; vips: string[]; createdAt?: number }[],
  assigned: ReadonlyMap<string, string[]>,
): Map<string, string> {
  const rejected = new Map<string, string>();
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
      continue;
    }
    for (const v of g.vips) owner.set(v, g.name);
  }
  return rejected;
}
