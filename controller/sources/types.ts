// Where FailoverGroups come from. The Kubernetes API and a directory of YAML both implement GroupSource and feed
// one reconciler (MetalLB's habit: business logic never imports the Kubernetes client).
import type { FailsafeState } from '../../common/failsafe-status.js';
import type { EventRecord } from '../../common/keyspace.js';
import type { FailoverGroup, ValidationError } from '../../crds/failovergroup.js';
import type { GroupDecision } from '../planner.js';

export interface SourceGroup {
  name: string;
  /** The group to place: the current spec, or the last valid one when the current one is invalid. */
  group?: FailoverGroup;
  /** Set when the newest version does not validate. */
  error?: ValidationError;
  /** Creation order, for "the earlier group keeps a contested VIP". */
  createdAt?: number;
  generation?: number;
  /** The object is being deleted (Kubernetes finalizer): release everywhere, then `finalize`. */
  deleting?: boolean;
}

export interface GroupSource {
  readonly kind: string;
  /** Starts watching; calls onChange (a hint) whenever anything may have changed. */
  start(signal: AbortSignal, onChange: () => void): Promise<void>;
  /** The current snapshot. */
  list(): SourceGroup[];
  /** False until the first complete snapshot is in (then `list()` is meaningless); absent: always complete. */
  synced?(): boolean;
  /** Reads ahead, before this controller leads, what makes the first snapshot after `start` quick (optional). */
  prefetch?(): void;
}

export interface GroupReport {
  decision?: GroupDecision;
  /** Why the group is not placed (invalid, contested VIP). */
  rejected?: string;
  /** For a group with a holder: whether failsafe can keep it through an etcd outage now, and its last keep. */
  failsafe?: FailsafeState;
  source: SourceGroup;
}

/** Where status and events go back to (Kubernetes status and Events; nothing for the directory source). */
export interface StatusSink {
  report(group: string, report: GroupReport): Promise<void>;
  event(group: string, event: EventRecord): Promise<void>;
  /** The group's VIPs are released everywhere and its assignment deleted: let the object go. */
  finalize(group: string): Promise<void>;
}

export const NO_STATUS: StatusSink = {
  report: async () => undefined,
  event: async () => undefined,
  finalize: async () => undefined,
};
