// Why a holder let go (ReleaseReason) and why a group changed hands (TransitionReason): zod enums shared by agent,
// controller, metrics labels and status (issue 9 item 4), and the transition each release stands for.
import { z } from 'zod';

/**
 * Why an agent let go of a group, or declined one named to it: the `reason` of released/<group>/<node> and the
 * agent's metric label. `other` is what an unknown value (an older or newer agent) reads as: the release still
 * counts, only its reason is unknown.
 */
export const ReleaseReason = z.enum([
  /** The controller asked (assignment `release: true`; the assignment's reason says why). */
  'release-requested',
  'shutting-down',
  'unhealthy',
  /** The node lease was not confirmed in time (or could not be told: no ack is written for it). */
  'lease-not-confirmed',
  /** Held under a lease this process no longer has. */
  'earlier-lease',
  'already-released',
  /** The agent cannot parse the group's spec (version skew): it holds nothing it cannot check. */
  'spec-not-understood',
  /** An address add was not covered by a fresh keepalive answer (or failed): let go as a release would. */
  'address-add-not-covered',
  'assigned-elsewhere',
  'assignment-gone',
  'other',
]);
export type ReleaseReason = z.infer<typeof ReleaseReason>;

/**
 * Why an assignment changed: the `reason` of assignments/<group> and events/<group>/<rev>, the controller's metric
 * label and the status' lastTransition. `other` is what an unknown value reads as.
 */
export const TransitionReason = z.enum([
  /** First placement of a group. */
  'initial',
  /** Nobody held it; a node became eligible. */
  'recovered',
  /** The holder's lease ended (etcd said so) and its addresses have run out (Safety 3). */
  'lease-expired',
  /** The holder let go on its own, for no reason more specific than this. */
  'released',
  'unhealthy',
  'shutting-down',
  'already-released',
  'failback',
  /** Pinned to another node (`vipwarden move`). */
  'move',
  'drained',
  'deleted',
  /** The holder is no longer one of the group's nodes. */
  'node-removed',
  'no-healthy-node',
  /** Same holder, new spec; with `release: true`, a VIP leaving for another group waits for the holder's ack. */
  'spec-changed',
  'release-cancelled',
  /** The holder let go by itself without the controller deciding a move (lost lease, etcd stall): history only. */
  'holder-let-go',
  /** Same holder, new promise set (a node registered, or a listed lease ended): failsafe rule 1. */
  'promise-set',
  /** History only: the holder kept the group by promises while etcd could not be reached (failsafe). */
  'kept-through-arbiter-outage',
  'other',
]);
export type TransitionReason = z.infer<typeof TransitionReason>;

/** The transition a release stands for, when the holder let go on its own (not at the controller's request). */
export const TRANSITION_FOR_RELEASE: Record<ReleaseReason, TransitionReason> = {
  'release-requested': 'released',
  'shutting-down': 'shutting-down',
  unhealthy: 'unhealthy',
  'lease-not-confirmed': 'released',
  'earlier-lease': 'released',
  'already-released': 'already-released',
  'spec-not-understood': 'released',
  'address-add-not-covered': 'released',
  'assigned-elsewhere': 'released',
  'assignment-gone': 'released',
  other: 'released',
};
