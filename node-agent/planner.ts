// The agent's pure planner: (assignments, own lease and health, what it holds) -> steps.
// DESIGN.md Safety 1: hold a group only while the assignment names this node *and this lease*, the lease is known
// alive, the group is healthy here, and this process has not let go of that epoch already.
import type { AssignmentRecord, ReleaseReason } from '../common/keyspace.js';

export interface Held {
  epoch: number;
  vips: string[];
  specHash: string;
}

export interface AgentView {
  node: string;
  lease: string | undefined;
  /** An answered keepalive bounds the lease beyond now + margin. */
  leaseSafe: boolean;
  shuttingDown: boolean;
  assignments: ReadonlyMap<string, { record: AssignmentRecord; epoch: number }>;
  /** Per group: healthy here (unknown counts as not healthy). */
  healthy: ReadonlyMap<string, boolean>;
  held: ReadonlyMap<string, Held>;
  /** Per group, the epoch this process decided to let go of: never taken again. */
  relinquishedEpoch: ReadonlyMap<string, number>;
  /** Per group, the epoch whose released/<node>/<group> key this process wrote. */
  releaseKeyEpoch: ReadonlyMap<string, number>;
  /** Per group, the highest epoch acted on: older assignments are ignored (Safety 4). */
  newestEpoch: ReadonlyMap<string, number>;
  /** Groups let go of whose addresses are not yet confirmed gone: nothing is planned for them until they are. */
  leaving?: ReadonlySet<string>;
  /** Groups whose spec this agent cannot parse (version skew), with why: never held, since they cannot be checked. */
  specErrors?: ReadonlyMap<string, string>;
  /** Held groups that failsafe keeps by promises (node-agent/failsafe/): not let go for the lease alone. */
  kept?: ReadonlySet<string>;
}

export type AgentStep =
  | { type: 'acquire'; group: string; epoch: number; record: AssignmentRecord }
  | { type: 'update'; group: string; epoch: number; record: AssignmentRecord }
  | { type: 'release'; group: string; reason: ReleaseReason; ackEpoch?: number }
  | { type: 'ack'; group: string; epoch: number; reason: ReleaseReason };

export function planAgent(v: AgentView): AgentStep[] {
  const steps: AgentStep[] = [];
  const groups = new Set<string>([...v.assignments.keys(), ...v.held.keys()]);
  for (const g of [...groups].sort()) {
    if (v.leaving?.has(g)) continue;
    const cur = v.assignments.get(g);
    // Letting go of an epoch is acting on it too: nothing older is ever taken again (Safety 4).
    const newest = Math.max(v.newestEpoch.get(g) ?? 0, v.relinquishedEpoch.get(g) ?? 0);
    const stale = cur !== undefined && cur.epoch < newest;
    const a = stale ? undefined : cur;
    const mine =
      a !== undefined && a.record.holder === v.node && v.lease !== undefined && a.record.holderLease === v.lease;
    const healthy = v.healthy.get(g) === true;
    const reason: ReleaseReason | '' = !a
      ? 'assignment-gone'
      : !mine
        ? 'assigned-elsewhere'
        : a.record.release
          ? 'release-requested'
          : v.shuttingDown
            ? 'shutting-down'
            : v.specErrors?.has(g)
              ? 'spec-not-understood'
              : !healthy
                ? 'unhealthy'
                : !v.leaseSafe && !v.kept?.has(g)
                  ? 'lease-not-confirmed'
                  : v.relinquishedEpoch.get(g) === a.epoch
                    ? 'already-released'
                    : '';
    const want = mine && reason === '';
    const held = v.held.get(g);
    if (stale && held) continue; // an old assignment arriving late changes nothing
    if (held) {
      if (reason !== '') {
        steps.push({
          type: 'release',
          group: g,
          reason,
          ackEpoch: mine && reason !== 'lease-not-confirmed' ? a!.epoch : undefined,
        });
      } else if (held.epoch !== a!.epoch) {
        steps.push({ type: 'update', group: g, epoch: a!.epoch, record: a!.record });
      }
      continue;
    }
    if (want) {
      steps.push({ type: 'acquire', group: g, epoch: a!.epoch, record: a!.record });
      continue;
    }
    // Named but not holding, for a reason that will not pass by itself: tell the controller, once per epoch.
    if (mine && reason !== '' && reason !== 'lease-not-confirmed' && v.releaseKeyEpoch.get(g) !== a!.epoch) {
      steps.push({ type: 'ack', group: g, epoch: a!.epoch, reason });
    }
  }
  return steps;
}
