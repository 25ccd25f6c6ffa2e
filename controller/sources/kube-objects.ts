// The pure mapping between Kubernetes objects and the controller's model: a FailoverGroup object to a SourceGroup
// (parsed with the one zod schema), a report to a status merge patch, a transition to an Event, and the predicate
// that tells a change worth a pass from the controller's own status write. No client, no I/O.
import type { CoreV1Event, KubernetesObject } from '@kubernetes/client-node';
import type { EventRecord } from '../../common/keyspace.js';
import {
  API_GROUP,
  API_VERSION,
  KIND,
  parseFailoverGroup,
  type FailoverGroup,
  type Phase,
  type Status,
  type ValidationError,
} from '../../crds/failovergroup.js';
import type { GroupDecision } from '../planner.js';
import type { GroupReport, SourceGroup } from './types.js';

export const FINALIZER = 'vipwarden.io/release';
export const COMPONENT = 'vipwarden-controller';
const API_VERSION_FULL = `${API_GROUP}/${API_VERSION}`;

/** A FailoverGroup as the API server returns it (spec and status are validated by parseFailoverGroup, not here). */
export interface FailoverGroupObject extends KubernetesObject {
  spec?: unknown;
  status?: Partial<Status>;
}

type Condition = NonNullable<Status['conditions']>[number];

/**
 * Whether an update is worth a pass (controller-runtime's GenerationChangedPredicate): the spec changed (the API
 * server bumps metadata.generation for spec changes only, never for the status subresource), or something the
 * controller acts on in metadata did (deletion, finalizers, a new object under the same name). A status patch the
 * controller wrote itself changes none of these.
 */
export function worthAPass(prev: FailoverGroupObject | undefined, next: FailoverGroupObject): boolean {
  const a = prev?.metadata;
  const b = next.metadata;
  if (!a || !b) return true;
  if (a.generation === undefined || b.generation === undefined) return true;
  return (
    a.generation !== b.generation ||
    a.uid !== b.uid ||
    Boolean(a.deletionTimestamp) !== Boolean(b.deletionTimestamp) ||
    (a.finalizers ?? []).join('\n') !== (b.finalizers ?? []).join('\n')
  );
}

/** One core/v1 Event about a FailoverGroup (cluster-scoped objects: the Event lives in `namespace`). */
export function kubeEvent(e: {
  group: string;
  uid: string | undefined;
  name: string;
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  at: number;
  namespace: string;
  instance: string;
}): CoreV1Event {
  const at = new Date(e.at);
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: e.name, namespace: e.namespace },
    involvedObject: { apiVersion: API_VERSION_FULL, kind: KIND, name: e.group, ...(e.uid ? { uid: e.uid } : {}) },
    reason: e.reason,
    message: e.message,
    type: e.type,
    count: 1,
    firstTimestamp: at,
    lastTimestamp: at,
    source: { component: COMPONENT },
    reportingComponent: COMPONENT,
    reportingInstance: e.instance,
    action: e.reason,
  };
}

/** RFC 3339 with second precision, as metav1.Time is written. */
function kubeTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Pure: one object of the API to a SourceGroup, keeping the last valid spec when the new one is invalid. */
export function toSourceGroup(obj: FailoverGroupObject, lastGood: FailoverGroup | undefined): SourceGroup {
  const md = obj.metadata ?? {};
  const name = md.name ?? '';
  const r = parseFailoverGroup(obj, `FailoverGroup ${name}`);
  const created = md.creationTimestamp ? new Date(md.creationTimestamp).getTime() : undefined;
  const out: SourceGroup = {
    name,
    group: r.ok ? r.group : lastGood,
    createdAt: created !== undefined && Number.isFinite(created) ? created : undefined,
    generation: md.generation,
    deleting: md.deletionTimestamp !== undefined && md.deletionTimestamp !== null,
  };
  if (!r.ok) out.error = r.error as ValidationError;
  return out;
}

/** Pure: the status a report asks for, as a merge patch of `status` (null clears a field). */
export function statusPatch(
  report: GroupReport,
  current: Partial<Status> | undefined,
  now: number,
): Record<string, unknown> {
  const d: GroupDecision | undefined = report.decision;
  const src = report.source;
  const invalid = src.error !== undefined;
  const rejected = report.rejected;
  let phase: Phase;
  if (rejected !== undefined && (!d || !invalid)) phase = 'Invalid';
  else if (d) phase = d.phase;
  else phase = 'Pending';
  const vips = (src.group?.spec.vips ?? []).map((v) => v.address);

  const accepted: Omit<Condition, 'lastTransitionTime'> =
    rejected === undefined
      ? {
          type: 'Accepted',
          status: 'True',
          reason: 'Valid',
          message: 'the spec is valid and its VIPs are not claimed by another group',
        }
      : invalid
        ? {
            type: 'Accepted',
            status: 'False',
            reason: 'InvalidSpec',
            message: src.group ? `${rejected} (the last valid spec stays in force)` : rejected,
          }
        : { type: 'Accepted', status: 'False', reason: 'VIPConflict', message: rejected };
  const holding = d?.holder !== null && d?.holder !== undefined && (phase === 'Active' || phase === 'Degraded');
  const ready: Omit<Condition, 'lastTransitionTime'> = holding
    ? { type: 'Ready', status: 'True', reason: phase, message: `${vips.join(', ')} held by ${d?.holder}` }
    : { type: 'Ready', status: 'False', reason: phase, message: d?.message ?? rejected ?? 'not placed yet' };
  const conditions = [accepted, ready, ...specCondition(d), ...failsafeCondition(report, d)].map((c): Condition => {
    const prev = current?.conditions?.find((p) => p.type === c.type);
    const same = prev && prev.status === c.status;
    return {
      ...c,
      lastTransitionTime: same && prev.lastTransitionTime ? prev.lastTransitionTime : kubeTime(now),
      ...(src.generation !== undefined ? { observedGeneration: src.generation } : {}),
    };
  });
  const status: Record<string, unknown> = {
    phase,
    holder: d?.holder ?? null,
    epoch: d && d.epoch > 0 ? d.epoch : null,
    vips: phase === 'Invalid' && !d ? null : vips,
    observedGeneration: src.generation ?? null,
    nodes: d ? d.nodes.map((n) => ({ name: n.name, live: n.live, healthy: n.healthy, priority: n.priority })) : null,
    conditions,
  };
  return status;
}

/**
 * Failsafe, for a held group with arbiterLoss failsafe: True (Armed) once the holder acknowledged the promise set of
 * the current epoch, so that it may keep the VIPs through an etcd outage; False (NotArmed) before. The message
 * carries the holder's last keep. While etcd is down for the controller too, nothing is written (its passes pause);
 * the keep shows afterwards, here and as the event "kept through arbiter outage (N s)".
 */
function failsafeCondition(report: GroupReport, d: GroupDecision | undefined): Omit<Condition, 'lastTransitionTime'>[] {
  const f = report.failsafe;
  if (!f || f.mode !== 'failsafe' || !d?.holder) return [];
  const last = f.lastKept
    ? `; last kept through an arbiter outage for ${Math.round(f.lastKept.ms / 1000)} s, at ${new Date(f.lastKept.at).toISOString()}`
    : '';
  return [
    f.armed
      ? {
          type: 'Failsafe',
          status: 'True',
          reason: 'Armed',
          message: `${d.holder} may keep the VIPs through an etcd outage (it acknowledged the promise set of epoch ${d.epoch})${last}`,
        }
      : {
          type: 'Failsafe',
          status: 'False',
          reason: 'NotArmed',
          message: `${d.holder} has not acknowledged the promise set of epoch ${d.epoch} yet: an etcd outage now would take the VIPs down${last}`,
        },
  ];
}

/**
 * SpecNotUnderstood (True) while a candidate's agent cannot parse the spec (version skew): it holds nothing it cannot
 * check and is not eligible; the group is placed on a node that understands it. Absent otherwise.
 */
function specCondition(d: GroupDecision | undefined): Omit<Condition, 'lastTransitionTime'>[] {
  const errs = d?.specErrors ?? [];
  if (errs.length === 0) return [];
  const nodes = errs.map((e) => e.node).join(', ');
  return [
    {
      type: 'SpecNotUnderstood',
      status: 'True',
      reason: 'AgentVersionSkew',
      message: `the agent on ${nodes} cannot parse the spec and will not hold the group: ${errs.map((e) => `${e.node}: ${e.why}`).join('; ')}`,
    },
  ];
}

/** Pure: the Event for one transition. */
export function eventFor(
  group: string,
  uid: string | undefined,
  ev: EventRecord,
  opts: { namespace: string; instance: string; now: number },
): CoreV1Event {
  const figures = [
    ev.detectMs !== undefined ? `detected in ${Math.round(ev.detectMs)} ms` : '',
    ev.outageMs !== undefined ? `outage ${Math.round(ev.outageMs)} ms` : '',
  ].filter(Boolean);
  const tail = `(${ev.reason}${figures.length ? `; ${figures.join(', ')}` : ''}, epoch ${ev.epoch})`;
  let reason: string;
  let message: string;
  let type: 'Normal' | 'Warning' = 'Normal';
  if (ev.from && ev.to) {
    reason = 'Failover';
    message = `VIPs moved from ${ev.from} to ${ev.to} ${tail}`;
  } else if (ev.to) {
    reason = 'Assigned';
    message = `VIPs assigned to ${ev.to} ${tail}`;
  } else {
    reason = ev.reason === 'deleted' ? 'Released' : 'NoHealthyNode';
    message =
      ev.reason === 'deleted'
        ? `VIPs released by ${ev.from ?? 'no node'} ${tail}`
        : `VIPs left ${ev.from ?? 'no node'}; no node can hold them ${tail}`;
    if (ev.reason !== 'deleted') type = 'Warning';
  }
  return kubeEvent({
    group,
    uid,
    name: `${group}.${ev.epoch.toString(16)}`,
    reason,
    message: ev.message ? `${message}: ${ev.message}` : message,
    type,
    at: ev.at,
    namespace: opts.namespace,
    instance: opts.instance,
  });
}
