// Whether failsafe can keep a group through an etcd outage now, read from etcd's records alone (pure): shown by
// `vipwarden status` ([failsafe]) and by the FailoverGroup's Failsafe condition (docs/design.md "Failsafe").
import type { AssignmentRecord, NodeRecord } from './keyspace.js';
import { hasPromiseSet } from './promise-sets.js';

export interface FailsafeState {
  mode: 'failsafe' | 'release';
  /** The holder acknowledged the promise set of the current epoch: it may keep the VIPs if etcd goes away. */
  armed: boolean;
  /** The holder's last keep through an arbiter outage, as its node record reports it. */
  lastKept?: { ms: number; at: number };
}

export function failsafeState(
  mode: 'failsafe' | 'release',
  group: string,
  epoch: number | undefined,
  assignment: AssignmentRecord | undefined,
  holderFailsafe: NodeRecord['failsafe'] | undefined,
): FailsafeState {
  const f = assignment?.holder ? holderFailsafe : undefined;
  const armed = mode === 'failsafe' && epoch !== undefined && hasPromiseSet(assignment) && f?.acks[group] === epoch;
  const last = f?.kept.filter((k) => k.group === group).at(-1);
  return { mode, armed, ...(last ? { lastKept: { ms: last.ms, at: last.at } } : {}) };
}
