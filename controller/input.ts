// The planner's input, built from the leader's etcd mirrors, its memory and the source's snapshot. Every value is
// parsed with zod; a value that does not parse is logged and counts as absent.
import type { Entry, Mirror } from '../common/etcd.js';
import {
  AssignmentRecord,
  decode,
  DrainRecord,
  GroupRecord,
  HealthRecord,
  MoveRecord,
  NodeRecord,
  type Keys,
} from '../common/keyspace.js';
import { decodeEntry } from './parsed.js';
import { PromiseSets } from '../common/promise-sets.js';
import type { Logger } from '../common/log.js';
import { FailoverGroupSpec, type FailoverGroup } from '../crds/failovergroup.js';
import { addressOf, claimedBy, conflicts } from './conflicts.js';
import type { LeaderMemory } from './memory.js';
import type { CurrentAssignment, LiveNode, PlanInput } from './planner.js';
import type { SourceGroup } from './sources/types.js';

export type MirrorName =
  'nodes' | 'health' | 'assignments' | 'released' | 'drain' | 'moves' | 'groups' | 'presence' | 'promisesets';
export type Mirrors = Record<MirrorName, Mirror>;

export interface Selection {
  /** Valid groups to place. */
  groups: Map<string, FailoverGroup>;
  /** Invalid (never valid) or rejected groups: their assignments stay as they are. */
  frozen: Set<string>;
  /** Rejected groups with the reason (a VIP claimed by another group). */
  rejected: Map<string, string>;
  /** Groups retiring an address another group wants: their holder is asked to let go, so that it can move. */
  contested: Set<string>;
}

/** Which groups of the source are placed: deleting ones are not, invalid or conflicting ones are frozen. */
export function selectGroups(sourceGroups: readonly SourceGroup[], assignments: Iterable<Entry>): Selection {
  // An address stays claimed by its assignment while listed there, or retiring there (the holder may have it).
  const assignedVips = new Map<string, string[]>();
  const retiring = new Map<string, Set<string>>();
  for (const e of assignments) {
    const rec = decodeEntry(AssignmentRecord, e);
    if (!rec) continue;
    const c = claimedBy(rec);
    assignedVips.set(rec.group, [...c.vips, ...c.retiring]);
    if (c.retiring.length) retiring.set(rec.group, new Set(c.retiring));
  }
  const candidates = sourceGroups.filter((s) => s.group && !s.deleting);
  const { rejected, blockedBy } = conflicts(
    candidates.map((s) => ({
      name: s.name,
      vips: s.group!.spec.vips.map((v) => addressOf(v.address)),
      createdAt: s.createdAt,
    })),
    assignedVips,
  );
  const groups = new Map<string, FailoverGroup>();
  const frozen = new Set<string>();
  for (const s of sourceGroups) {
    if (s.deleting) continue;
    if (!s.group) {
      // Invalid and never valid: nothing to place, but an assignment it may have had stays as it is.
      frozen.add(s.name);
      continue;
    }
    if (rejected.has(s.name)) frozen.add(s.name);
    else groups.set(s.name, s.group);
  }
  const contested = new Set<string>();
  for (const { address, owner } of blockedBy.values()) if (retiring.get(owner)?.has(address)) contested.add(owner);
  return { groups, frozen, rejected, contested };
}

export interface InputContext {
  keys: Keys;
  mirrors: Mirrors;
  memory: LeaderMemory;
  log: Logger;
  leader: string;
  settleMs: number;
  /** Wall-clock and monotonic now, ms. */
  now: number;
  mono: number;
  /** This leader's assignment writes that the assignments mirror does not show yet (FencedWriter.ownWrites). */
  ownWrites?: ReadonlyMap<string, OwnWrite>;
}

/** An assignment this leader wrote (record) or deleted (no record), at revision `epoch`. */
export interface OwnWrite {
  epoch: number;
  record?: AssignmentRecord;
}

/** Builds the planner's input from the mirrors and the memory. */
export function buildInput(ctx: InputContext, sel: Pick<Selection, 'groups' | 'frozen' | 'contested'>): PlanInput {
  const { keys, mirrors, memory, log } = ctx;
  // Asks etcd about any lease no node key carries (the answer wakes another pass).
  memory.observe(mirrors.nodes.under(keys.nodesPrefix()), mirrors.assignments.under(keys.assignmentsPrefix()));
  const nodes = new Map<string, LiveNode>();
  for (const e of mirrors.nodes.under(keys.nodesPrefix())) {
    const rec = decodeEntry(NodeRecord, e, (why) =>
      log.warn({ key: e.key, why }, 'ignoring a node record that does not parse'),
    );
    // A record whose lease etcd said ended is only a watch that is behind: not a live node.
    if (rec && rec.lease === e.lease && !memory.isGone(rec.lease))
      nodes.set(rec.name, {
        name: rec.name,
        lease: rec.lease,
        ttlSeconds: rec.ttlSeconds,
        maxLifetimeSeconds: rec.maxLifetimeSeconds,
        ...(rec.specErrors?.length ? { specErrorByGroup: new Map(rec.specErrors.map((x) => [x.group, x.why])) } : {}),
      });
  }
  const health = new Map<string, Map<string, HealthRecord>>();
  for (const e of mirrors.health.under(keys.healthPrefix())) {
    const { group, node } = keys.healthParts(e.key) ?? {};
    const rec = decodeEntry(HealthRecord, e, (why) =>
      log.warn({ key: e.key, why }, 'ignoring a health record that does not parse'),
    );
    if (!group || !node || !rec) continue;
    // Health is only as alive as the lease it was written under.
    if (nodes.get(node)?.lease !== e.lease) continue;
    let m = health.get(group);
    if (!m) health.set(group, (m = new Map()));
    m.set(node, rec);
  }
  const assignments = new Map<string, CurrentAssignment>();
  // A record whose promise set the leader cannot read yet (its promisesets/ watch is behind the assignments one) is
  // not planned this pass: planned as if it named no set, a failsafe group would lose rule 5's wait. The set's
  // arrival wakes a pass.
  let frozen: Set<string> | undefined;
  for (const e of mirrors.assignments.under(keys.assignmentsPrefix())) {
    const group = e.key.slice(keys.assignmentsPrefix().length);
    const rec = resolvedAssignment(ctx, e);
    if (rec === 'unresolved') (frozen ??= new Set(sel.frozen)).add(group);
    else if (rec) assignments.set(group, { record: rec, epoch: e.modRevision });
  }
  // What this leader wrote is newer than what its watch shows yet: planned from the older epoch, each such group
  // would be written again and fail its compare (1,306 conflicts in a cold placement of 1,000 groups, scale
  // benchmark). Only the leader writes assignments, and only fenced, so its own committed write is the current value.
  for (const [group, w] of ctx.ownWrites ?? []) {
    if (w.record) assignments.set(group, { record: w.record, epoch: w.epoch });
    else assignments.delete(group);
  }
  const drained = new Set<string>();
  for (const e of mirrors.drain.under(keys.drainPrefix()))
    if (decodeEntry(DrainRecord, e)) drained.add(e.key.slice(keys.drainPrefix().length));
  const pins = new Map<string, MoveRecord>();
  for (const e of mirrors.moves.under(keys.movesPrefix())) {
    const rec = decodeEntry(MoveRecord, e);
    if (rec) pins.set(e.key.slice(keys.movesPrefix().length), rec);
  }
  memory.seeGroups(sel.groups.keys());
  return {
    now: ctx.now,
    mono: ctx.mono,
    leader: ctx.leader,
    groups: sel.groups,
    frozen: frozen ?? sel.frozen,
    contested: sel.contested,
    nodes,
    gone: memory.gone,
    unconfirmed: memory.unconfirmed,
    health,
    assignments,
    released: memory.released,
    drained,
    pins,
    firstSeen: memory.firstSeen,
    settleMs: ctx.settleMs,
  };
}

const resolved = new WeakMap<Entry, AssignmentRecord>();

/** An assignment entry parsed, with its stored promise set (cached per entry once found: a set never changes). */
function resolvedAssignment(ctx: InputContext, e: Entry): AssignmentRecord | 'unresolved' | undefined {
  const hit = resolved.get(e);
  if (hit) return hit;
  const rec = decodeEntry(AssignmentRecord, e, (why) =>
    ctx.log.warn({ key: e.key, why }, 'ignoring an assignment that does not parse'),
  );
  if (!rec) return undefined;
  const full = promiseSetsOf(ctx).resolve(rec);
  if (!full) return 'unresolved';
  resolved.set(e, full);
  return full;
}

const setsByMirror = new WeakMap<Mirror, PromiseSets>();
function promiseSetsOf(ctx: InputContext): PromiseSets {
  const m = ctx.mirrors.promisesets;
  let s = setsByMirror.get(m);
  if (!s)
    setsByMirror.set(
      m,
      (s = new PromiseSets(
        m,
        (d) => ctx.keys.promiseSet(d),
        (digest, why) => ctx.log.warn({ digest, why }, 'ignoring a stored promise set'),
      )),
    );
  return s;
}

const fromEtcd = new Map<string, { modRevision: number; group: SourceGroup }>();

/**
 * The groups as the leaders before this one published them (groups/<name>), for as long as the source has not
 * listed once (an API server down at election): existing assignments keep their specs and still fail over, and
 * nothing counts as deleted. Parsed once per record version.
 */
export function groupsFromEtcd(keys: Keys, groups: Mirror, log: Logger): SourceGroup[] {
  const out: SourceGroup[] = [];
  const seen = new Set<string>();
  for (const e of groups.under(keys.groupsPrefix())) {
    seen.add(e.key);
    const hit = fromEtcd.get(e.key);
    if (hit?.modRevision === e.modRevision) {
      out.push(hit.group);
      continue;
    }
    const rec = decode(GroupRecord, e.value, (why) => log.warn({ key: e.key, why }, 'ignoring a group record'));
    const spec = rec ? FailoverGroupSpec.safeParse(rec.spec) : undefined;
    if (!rec || !spec?.success) continue;
    const group: SourceGroup = {
      name: rec.name,
      group: { name: rec.name, generation: rec.generation, spec: spec.data },
      generation: rec.generation,
      createdAt: e.createRevision,
    };
    fromEtcd.set(e.key, { modRevision: e.modRevision, group });
    out.push(group);
  }
  for (const k of [...fromEtcd.keys()]) if (!seen.has(k)) fromEtcd.delete(k);
  return out;
}
