// The controller's pure planner: (groups, liveness, health, assignments) -> assignment writes.
// No I/O, no clock: everything it knows comes in PlanInput. The safety rules of DESIGN.md live here:
//  - a group moves away from its holder only when the holder released the current epoch, or its lease is gone
//    and the longest address lifetime it may have set has run out (Safety 3);
//  - otherwise the holder is asked to release (release: true) and the planner waits.
import { TRANSITION_FOR_RELEASE, type AssignmentRecord, type TransitionReason } from '../common/keyspace.js';
import type { FailoverGroup, Phase } from '../crds/failovergroup.js';
import { retiringAfter } from './conflicts.js';
import { failsafeTakeover, forgetLiveSet, keptSetFor, promiseSetChanged, promiseSetFor } from './failsafe.js';
import { eventFigures } from './figures.js';
import { rankNodes, SELF_RELEASE, specErrorsOf, specHash, vipsOf, type RankedNode } from './ranking.js';
import type {
  Action,
  CurrentAssignment,
  EventDraft,
  GroupDecision,
  HolderState,
  Plan,
  PlanInput,
} from './plan-types.js';

export type * from './plan-types.js';
export { checksHash, rankNodes, specHash, vipsOf, type RankedNode } from './ranking.js';
export { findConflicts } from './conflicts.js';

function holderState(
  input: PlanInput,
  group: string,
  cur: CurrentAssignment | undefined,
): { state: HolderState; until?: number } {
  if (!cur || cur.record.holder === null) return { state: 'none' };
  const live = input.nodes.get(cur.record.holder);
  // etcd said the lease ended: whatever a watch that is behind still shows of its node record.
  const ended = cur.record.holderLease !== null && input.gone.has(cur.record.holderLease);
  if (live && live.lease === cur.record.holderLease && !ended) {
    const rel = input.released.get(group)?.get(cur.record.holder);
    return rel !== undefined && rel.epoch >= cur.epoch ? { state: 'released' } : { state: 'holding' };
  }
  const lease = cur.record.holderLease;
  const gone = lease ? input.gone.get(lease) : undefined;
  const mono = input.mono ?? input.now;
  if (!gone) {
    // Not known to have ended: the controller asks etcd about every such lease and is woken when one has ended.
    if (lease && input.unconfirmed?.has(lease)) return { state: 'unconfirmed' };
    return { state: 'gone-waiting', until: mono };
  }
  const until = gone.goneAt + gone.waitMs;
  return mono >= until ? { state: 'gone' } : { state: 'gone-waiting', until };
}

export function plan(input: PlanInput): Plan {
  const steps = planSteps(input);
  for (let r = steps.next(); ; r = steps.next()) if (r.done) return r.value;
}

/** Groups planned between two turns of the event loop in planYielding. */
const GROUPS_PER_TURN = 500;

/**
 * plan(), with a turn of the event loop every GROUPS_PER_TURN groups: a pass over 10,000 groups ran for seconds on a
 * loaded machine without one, and the leader's lease keepalives waited behind it (scale benchmark). Each group is
 * still planned in one synchronous step from the same input; what may advance between two steps is only what the
 * leader's memory learns from etcd (a lease it said ended, a release), as it may between buildInput and plan.
 *
 * `urgent` is given the actions of the groups whose holder's lease etcd said ended (planned first) as soon as they
 * are planned, so that a lost node's groups can be written while the others are planned (a group's plan depends on
 * the input and that group only). Those actions are in the returned plan too.
 */
export async function planYielding(
  input: PlanInput,
  opts: { urgent?: (actions: readonly Action[]) => void } = {},
): Promise<Plan> {
  const steps = planSteps(input);
  for (let n = 1, r = steps.next(); ; n++, r = steps.next()) {
    if (r.done) return r.value;
    if (r.value) opts.urgent?.(r.value);
    if (n % GROUPS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * The plan, one group per step; the groups whose holder's lease ended first, and after them (when there are any)
 * one step that yields their actions. The plan lists actions in group name order whatever the order of planning.
 */
function* planSteps(input: PlanInput): Generator<readonly Action[] | undefined, Plan> {
  const planned = new Map<string, Action>();
  const decisions = new Map<string, GroupDecision>();
  let requeueAt: number | undefined;
  forgetLiveSet(input.nodes);
  const names = [...new Set<string>([...input.groups.keys(), ...input.assignments.keys()])].sort();
  const urgent: string[] = [];
  const rest: string[] = [];
  for (const name of names) {
    const lease = input.assignments.get(name)?.record.holderLease;
    (typeof lease === 'string' && input.gone.has(lease) ? urgent : rest).push(name);
  }
  const step = (name: string) => {
    const cur = input.assignments.get(name);
    const r = withKeptSet(cur, withRetiring(cur, planGroup(input, name)));
    if (r.action) planned.set(name, r.action);
    if (r.decision) decisions.set(name, r.decision);
    if (r.until !== undefined) requeueAt = requeueAt === undefined ? r.until : Math.min(requeueAt, r.until);
  };
  for (const name of urgent) {
    if (input.frozen.has(name)) continue;
    step(name);
    yield;
  }
  if (urgent.length) yield urgent.flatMap((n) => planned.get(n) ?? []);
  for (const name of rest) {
    if (input.frozen.has(name)) continue;
    step(name);
    yield;
  }
  const actions = names.flatMap((n) => planned.get(n) ?? []);
  return { actions, decisions, requeueAt };
}

function record(
  input: PlanInput,
  name: string,
  fields: Partial<AssignmentRecord> & Pick<AssignmentRecord, 'holder' | 'holderLease' | 'reason'>,
  group?: FailoverGroup,
  prev?: AssignmentRecord,
): AssignmentRecord {
  // Failsafe rule 1: the promise set goes with every assignment of a failsafe group.
  const promiseSet = fields.holder !== null ? promiseSetFor(group, input.nodes) : undefined;
  return {
    group: name,
    vips: group ? vipsOf(group) : (prev?.vips ?? []),
    release: false,
    specHash: group ? specHash(group) : (prev?.specHash ?? ''),
    at: input.now,
    leader: input.leader,
    ...(promiseSet ? { promiseSet } : {}),
    ...fields,
  };
}

/**
 * A record written for a holder that still holds keeps claiming what that holder may still have: the
 * addresses a spec change took away stay `retiring` until it lets go (a release, or its lease ended and the wait
 * ran out), whatever else the record says. A record written after that starts clean.
 */
function withRetiring<T extends { action?: Action; decision?: GroupDecision }>(
  cur: CurrentAssignment | undefined,
  r: T,
): T {
  const a = r.action;
  if (!cur || a?.type !== 'put') return r;
  // Only while it holds: after a release or a waited-out lease end, it has nothing left.
  const holding = r.decision?.state === 'holding' && a.record.holder === cur.record.holder;
  const retiring = holding ? retiringAfter(cur.record, a.record.vips) : undefined;
  const { retiring: _drop, ...rest } = a.record;
  return { ...r, action: { ...a, record: retiring ? { ...rest, retiring } : rest } };
}

/** A record for the same holder on the same lease keeps the promise set of its tenure (failsafe.ts keptSetFor). */
function withKeptSet<T extends { action?: Action }>(cur: CurrentAssignment | undefined, r: T): T {
  const a = r.action;
  if (a?.type !== 'put') return r;
  const kept = keptSetFor(cur, a.record);
  return kept ? { ...r, action: { ...a, record: { ...a.record, promiseSet: [...kept] } } } : r;
}

function planGroup(input: PlanInput, name: string): { action?: Action; decision?: GroupDecision; until?: number } {
  const group = input.groups.get(name);
  const cur = input.assignments.get(name);
  const epoch = cur?.epoch ?? 0;
  const holder = cur?.record.holder ?? null;
  const hs = holderState(input, name, cur);
  const ranked = group ? rankNodes(group, input) : [];
  // A node that has just let go of this epoch is not offered the group again in the same breath.
  // (Unless it let go only so that a VIP it retired could move to another group: then it may have the rest back.)
  const vipMove = cur?.record.release === true && cur.record.reason === 'spec-changed';
  // Failsafe rule 5: after the lease end of a holder that may keep by promises, only listed nodes at first.
  const gone = hs.state === 'gone' && cur?.record.holderLease ? input.gone.get(cur.record.holderLease) : undefined;
  const takeover = failsafeTakeover(input, name, group, cur, gone);
  const offer = ranked.filter(
    (n) =>
      n.eligible && !(hs.state === 'released' && n.name === holder && !vipMove) && (takeover?.allows(n.name) ?? true),
  );
  const best = offer[0];
  const pin = input.pins.get(name);
  const pinned = pin ? offer.find((n) => n.name === pin.to) : undefined;
  const holderRank = ranked.find((n) => n.name === holder);
  const specErrors = group ? specErrorsOf(group, input) : [];

  // Who should hold the group if the choice were free, and why the current holder should let go.
  let desired: string | null = null;
  let moveWhy: TransitionReason = 'released';
  // The holder's own verdict on itself (its checks), when that is why it should let go: it does so by itself.
  let selfWhy: RankedNode['why'];
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
    if (hs.state === 'holding' && !holderRank) moveWhy = 'node-removed';
    else if (hs.state === 'holding' && holderRank?.why && SELF_RELEASE.has(holderRank.why)) selfWhy = holderRank.why;
    else if (hs.state === 'holding') moveWhy = holderRank?.why === 'drained' ? 'drained' : 'unhealthy';
  }

  const decision = (phase: Phase, message: string): GroupDecision => ({
    group: name,
    phase,
    holder,
    epoch,
    state: hs.state,
    nodes: ranked,
    message,
    ...(specErrors.length ? { specErrors } : {}),
  });
  const phaseFor = (h: string | null): Phase => {
    if (h === null) return 'NoHealthyNode';
    const healthyCount = ranked.filter((n) => n.eligible).length;
    return healthyCount < ranked.length ? 'Degraded' : 'Active';
  };

  /** The current record rewritten in the same epoch: the holder asked to let go, or such a request taken back. */
  const rewrite = (fields: Parameters<typeof record>[2], note: string, prev?: AssignmentRecord) => ({
    action: { type: 'put' as const, group: name, expectEpoch: epoch, record: record(input, name, fields, group, prev) },
    decision: decision(phaseFor(holder), note),
  });

  switch (hs.state) {
    case 'holding': {
      if (!cur || holder === null) throw new Error('unreachable');
      // An address this holder may still have is wanted by another group: it moves only once the holder let go.
      if (group && input.contested?.has(name) && cur.record.retiring?.length) {
        const why = 'a VIP it retires is wanted by another group';
        if (vipMove) return { decision: decision(phaseFor(holder), `waiting for ${holder} to release (${why})`) };
        const { holderLease, vips, specHash: sh } = cur.record;
        const fields = { holder, holderLease, release: true, reason: 'spec-changed', vips, specHash: sh } as const;
        return rewrite(fields, `asking ${holder} to release (${why})`);
      }
      if (desired === holder) {
        if (group && (cur.record.release || cur.record.specHash !== specHash(group))) {
          const reason = cur.record.release ? 'release-cancelled' : 'spec-changed';
          return rewrite({ holder, holderLease: cur.record.holderLease, reason }, reason);
        }
        if (promiseSetChanged(group, cur.record, input.nodes))
          return rewrite({ holder, holderLease: cur.record.holderLease, reason: 'promise-set' }, 'promise set changed');
        return { decision: decision(phaseFor(holder), `held by ${holder}`) };
      }
      // A holder whose own checks fail lets go by itself, with its health in the same transaction: asking it
      // would only cost a round trip. (Its lease ending is the backstop if it cannot.)
      if (holderRank && selfWhy) {
        return { decision: decision(phaseFor(holder), `waiting for ${holder} to release (${selfWhy})`) };
      }
      // Ask the holder to let go; the move happens once it has released this epoch (or its lease is gone).
      if (cur.record.release && cur.record.reason === moveWhy) {
        return { decision: decision(phaseFor(holder), `waiting for ${holder} to release (${moveWhy})`) };
      }
      const fields = { holder, holderLease: cur.record.holderLease, release: true, reason: moveWhy };
      return rewrite(fields, `asking ${holder} to release (${moveWhy})`, cur.record);
    }
    case 'unconfirmed':
      return {
        decision: decision(
          phaseFor(holder),
          `no node record names the lease of ${holder}; asking etcd whether it ended`,
        ),
        until: hs.until,
      };
    case 'gone-waiting':
      return {
        decision: decision(phaseFor(holder), `lease of ${holder} ended; waiting for its addresses to expire`),
        until: hs.until,
      };
    case 'none':
    case 'released':
    case 'gone': {
      if (takeover && offer.length === 0) {
        // Nobody may be given the group yet, not even "nobody": a holder: null record would free it for anyone, and
        // deleting the record of a deleted group would let a group of the same name be placed at once.
        const who = group
          ? `only ${[...takeover.listed].join(', ') || 'no node'} may take over`
          : 'the record of the deleted group stays';
        const note = `lease of ${holder} ended; it may keep by promises: ${who} before its maxKeep runs out`;
        return { decision: decision(phaseFor(holder), note), until: takeover.allUntil };
      }
      if (!cur && group) {
        const mono = input.mono ?? input.now;
        const settleUntil = (input.firstSeen.get(name) ?? mono) + input.settleMs;
        const waitingFor = ranked.filter(
          (n) =>
            !n.eligible &&
            (n.why === 'no lease' || n.why === 'no health report' || n.why === 'health report for other checks'),
        );
        if (waitingFor.length > 0 && mono < settleUntil) {
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

/** The holder's own reason for letting go, when it was not asked to. */
function releasedReason(input: PlanInput, group: string, holder: string | null): TransitionReason {
  const r = holder ? input.released.get(group)?.get(holder)?.reason : undefined;
  return r ? TRANSITION_FOR_RELEASE[r] : 'released';
}
