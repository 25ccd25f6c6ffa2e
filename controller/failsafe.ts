// The controller's side of failsafe (docs/design.md "Failsafe (arbiter loss)", rules 1 and 5), pure like the planner.
// Rule 1: a failsafe group's assignment carries its promise set, every registered node with its lease; a new epoch
// (same holder) is written when that set changes, and the holder acknowledges in its node record the epoch whose
// set it asks. Rule 5: once the holder's lease ended and the ordinary Safety 3 wait ran out, the group goes to a node
// of the acknowledged set that still runs with its listed lease; any other node waits the holder's maxKeep more.
// Groups with arbiterLoss: release carry no set and wait nothing more: they behave as before failsafe.
import type { AssignmentRecord, PromiseSetEntry } from '../common/keyspace.js';
import { arbiterLossOf, type FailoverGroup } from '../crds/failovergroup.js';
import { listedForTakeover, takeoverWaitMs } from '../node-agent/failsafe/rules.js';
import { retiringAfter } from './conflicts.js';
import { vipsOf } from './ranking.js';
import type { CurrentAssignment, GoneLease, LiveNode, PlanInput } from './plan-types.js';

export function isFailsafe(group: FailoverGroup | undefined): boolean {
  return group !== undefined && arbiterLossOf(group.spec) === 'failsafe';
}

/**
 * Every live node with its lease, sorted, and its key: once per nodes map (one per pass), shared by every group
 * of the pass. Built per group and compared as strings, this was the largest part of a pass over 1,000 failsafe
 * groups on 100 nodes (scale benchmark). Frozen: the records that carry it share it.
 */
const setOfNodes = new WeakMap<ReadonlyMap<string, LiveNode>, { set: PromiseSetEntry[]; key: string }>();
function liveSet(nodes: ReadonlyMap<string, LiveNode>): { set: PromiseSetEntry[]; key: string } {
  let hit = setOfNodes.get(nodes);
  if (!hit) {
    const set = Object.freeze(
      [...nodes.values()]
        .map((n) => Object.freeze({ node: n.name, lease: n.lease }))
        .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)),
    ) as PromiseSetEntry[];
    setOfNodes.set(nodes, (hit = { set, key: key(set) }));
  }
  return hit;
}

/** Forgets the set of a nodes map (planSteps, at the start of each plan: a caller may have changed the map since). */
export function forgetLiveSet(nodes: ReadonlyMap<string, LiveNode>): void {
  setOfNodes.delete(nodes);
}

/** Rule 1: the promise set to write with a failsafe group's assignment (undefined for release groups). */
export function promiseSetFor(
  group: FailoverGroup | undefined,
  nodes: ReadonlyMap<string, LiveNode>,
): PromiseSetEntry[] | undefined {
  if (!isFailsafe(group)) return undefined;
  return liveSet(nodes).set;
}

/** Keys of the sets records carry, by set (a record's parse is cached with its mirror entry, and its set with it). */
const keyOfSet = new WeakMap<readonly PromiseSetEntry[], string>();
function key(set: readonly PromiseSetEntry[] | undefined): string {
  if (!set) return '';
  let k = keyOfSet.get(set);
  if (k === undefined) keyOfSet.set(set, (k = set.map((e) => `${e.node}=${e.lease}`).join(',')));
  return k;
}

/** Rule 1: a node registered (or came back with a new lease), or a listed lease ended: a new epoch is due. */
export function promiseSetChanged(
  group: FailoverGroup | undefined,
  rec: AssignmentRecord,
  nodes: ReadonlyMap<string, LiveNode>,
): boolean {
  if (!isFailsafe(group)) return false;
  return liveSet(nodes).key !== key(rec.promiseSet);
}

/**
 * The promise set a record written for the same holder on the same lease keeps when its own has none (the spec no
 * longer says failsafe, or the group is gone): the holder may still act on the epoch that carried it, and keep by
 * it, until it sees the new record, so the controller must go on treating the group as one it may keep (rule 5).
 */
export function keptSetFor(
  cur: CurrentAssignment | undefined,
  next: AssignmentRecord,
): readonly PromiseSetEntry[] | undefined {
  if (next.promiseSet || !cur?.record.promiseSet) return undefined;
  if (next.holder === null || next.holder !== cur.record.holder || next.holderLease !== cur.record.holderLease)
    return undefined;
  return cur.record.promiseSet;
}

export interface Takeover {
  /** May this node be given the group now? */
  allows(node: string): boolean;
  /** When any node may be given it (monotonic ms): the Safety 3 wait + the holder's maxKeep. */
  allUntil: number;
  /** The nodes of the acknowledged set still on their listed lease. */
  listed: ReadonlySet<string>;
}

/**
 * Rule 5, for a failsafe group whose holder's lease etcd said ended (`gone`) and whose Safety 3 wait ran out:
 * who may be given it now. Undefined when nothing more than the ordinary wait applies (release group, or a holder
 * that cannot keep by promises: no peer channel, maxKeep 0, or that wait + maxKeep has passed too).
 */
export function failsafeTakeover(
  input: Pick<PlanInput, 'nodes' | 'mono' | 'now'>,
  name: string,
  group: FailoverGroup | undefined,
  cur: CurrentAssignment | undefined,
  gone: GoneLease | undefined,
): Takeover | undefined {
  // Whether the holder may keep is read from the record, not from the spec: a holder cut off from etcd keeps by the
  // spec it saw, and a spec edited to `release`, or a group deleted, in the meantime does not stop it. A promise set
  // stays in every record of a holder's tenure once one carried it (keptSetFor), so the record says it.
  if (!cur?.record.promiseSet || !gone || !(gone.maxKeepMs !== undefined && gone.maxKeepMs > 0)) return undefined;
  const mono = input.mono ?? input.now;
  const allUntil = gone.goneAt + takeoverWaitMs({ listed: false, overhangMs: gone.waitMs, maxKeepMs: gone.maxKeepMs });
  if (mono >= allUntil) return undefined;
  // Only the set of the epoch the holder acknowledged: the one it asks (it may not have seen a newer one).
  const acked = gone.acks?.[name] === cur.epoch ? cur.record.promiseSet : undefined;
  const leases = new Map([...input.nodes.values()].map((n) => [n.name, n.lease]));
  const listed = listedForTakeover(acked, leases);
  listed.delete(gone.node);
  // A promise names the group, not its addresses: a listed node is bound for this group only, and the record it
  // would be given drops what a spec edit took away from the group (retiring), which frees those addresses for
  // other groups and any node. While the holder may keep them, nobody is given the group (the record stays).
  if (group && retiringAfter(cur.record, vipsOf(group))) listed.clear();
  return { allows: (n) => listed.has(n), allUntil, listed };
}
