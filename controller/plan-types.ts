// The planner's input and output: what the controller knows about one moment (PlanInput), and what it decides
// (actions to write, a decision per group for status). Pure data; controller/planner.ts turns one into the other.
import type {
  AssignmentRecord,
  HealthRecord,
  MoveRecord,
  ReleaseReason,
  TransitionReason,
} from '../common/keyspace.js';
import type { FailoverGroup, Phase } from '../crds/failovergroup.js';
import type { RankedNode } from './ranking.js';

export interface LiveNode {
  name: string;
  lease: string;
  ttlSeconds: number;
  maxLifetimeSeconds: number;
  /** Groups whose spec this node's agent cannot parse (version skew), with why: it may hold none of them. */
  specErrorByGroup?: ReadonlyMap<string, string>;
}

export interface GoneLease {
  lease: string;
  node: string;
  /** When etcd said the lease was gone (monotonic ms, PlanInput.mono's clock). */
  goneAt: number;
  /** How long after goneAt an address of that node may still exist (DESIGN.md Safety 3). */
  waitMs: number;
  /** The lease's TTL: the node was last heard from about this long before goneAt. */
  ttlMs?: number;
  /** Failsafe: how long after its lease's proven end the node may keep by promises (0 or absent: it cannot). */
  maxKeepMs?: number;
  /** Failsafe: per group, the epoch whose promise set the node acknowledged asking (its last node record). */
  acks?: Readonly<Record<string, number>>;
}

export interface CurrentAssignment {
  record: AssignmentRecord;
  /** The key's mod revision. */
  epoch: number;
}

export interface PlanInput {
  /** Wall-clock now (ms since the epoch): for records people read and figures from other machines' clocks. */
  now: number;
  /** Monotonic now (ms): every wait is measured on it (Safety 3; a wall clock may jump). Defaults to `now`. */
  mono?: number;
  leader: string;
  /** Valid groups to place (conflicts already removed). */
  groups: ReadonlyMap<string, FailoverGroup>;
  /** Groups that exist but are invalid or conflicting: their assignments are left as they are. */
  frozen: ReadonlySet<string>;
  /** Groups retiring an address (AssignmentRecord.retiring) that another group wants: the holder must let go. */
  contested?: ReadonlySet<string>;
  nodes: ReadonlyMap<string, LiveNode>;
  gone: ReadonlyMap<string, GoneLease>;
  /** Leases no valid node record names that etcd has not said are gone (value: when next asked, mono). */
  unconfirmed?: ReadonlyMap<string, number>;
  health: ReadonlyMap<string, ReadonlyMap<string, HealthRecord>>;
  assignments: ReadonlyMap<string, CurrentAssignment>;
  /** group -> node -> epoch that node released, with when it said so (wall ms). */
  released: ReadonlyMap<string, ReadonlyMap<string, ReleasedSeen>>;
  drained: ReadonlySet<string>;
  pins: ReadonlyMap<string, MoveRecord>;
  /** When the controller first saw each group (mono); a group is placed for the first time once every live candidate
   *  has reported its health, or settleMs after that, so that it lands on the preferred node at once. */
  firstSeen: ReadonlyMap<string, number>;
  settleMs: number;
}

/** A release an agent wrote (released/<group>/<node>), remembered after its key went with the lease. */
export interface ReleasedSeen {
  epoch: number;
  /** When the agent said so (its wall clock, ms). */
  at: number;
  reason?: ReleaseReason;
  failingSince?: number;
}

export interface EventDraft {
  from: string | null;
  to: string | null;
  reason: TransitionReason;
  detectMs?: number;
  outageMs?: number;
}

export type Action =
  | { type: 'put'; group: string; expectEpoch: number; record: AssignmentRecord; event?: EventDraft }
  | { type: 'delete'; group: string; expectEpoch: number; event?: EventDraft };

export interface GroupDecision {
  group: string;
  phase: Phase;
  holder: string | null;
  epoch: number;
  state: HolderState;
  nodes: RankedNode[];
  message: string;
  /** Candidates whose agent cannot parse this group's spec, with why (the SpecNotUnderstood condition). */
  specErrors?: { node: string; why: string }[];
}

export interface Plan {
  actions: Action[];
  decisions: Map<string, GroupDecision>;
  /** Earliest monotonic time at which a waiting group must be planned again. */
  requeueAt?: number;
}

/**
 * - holding: the holder's node record names the assignment's lease; released: and it released this epoch;
 * - unconfirmed: no node record names the lease, and etcd has not said it ended: nothing moves;
 * - gone-waiting: etcd said the lease ended, and addresses set under it may still exist; gone: they cannot.
 */
export type HolderState = 'none' | 'holding' | 'released' | 'unconfirmed' | 'gone-waiting' | 'gone';
