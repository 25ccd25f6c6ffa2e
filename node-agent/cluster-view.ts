// What the agent reads from etcd: the leader's group records and assignments, mirrored (list + watch), parsed on read.
import type { Etcd3 } from 'etcd3';
import { Mirror } from '../common/etcd.js';
import { AssignmentRecord, decode, GroupRecord, type Keys } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';
import { FailoverGroupSpec, formatPath, type Spec } from '../crds/failovergroup.js';

export interface Assignment {
  record: AssignmentRecord;
  /** The assignment's mod revision. */
  epoch: number;
}

/** A group's spec as this agent reads it: absent (no record), parsed, or present but not understood. */
export type SpecRead = { kind: 'absent' } | { kind: 'ok'; spec: Spec } | { kind: 'error'; why: string };

export class ClusterView {
  readonly groups: Mirror;
  readonly assignments: Mirror;

  constructor(
    client: Etcd3,
    private readonly keys: Keys,
    private readonly log: Logger,
  ) {
    this.groups = new Mirror(client, keys.groupsPrefix(), log, { resyncMs: 60_000 });
    this.assignments = new Mirror(client, keys.assignmentsPrefix(), log, { resyncMs: 60_000 });
  }

  start(signal: AbortSignal): Promise<void> {
    this.groups.start(signal);
    this.assignments.start(signal);
    return Promise.all([this.groups.ready, this.assignments.ready]).then(() => undefined);
  }

  listed(): boolean {
    return this.groups.relists > 0 && this.assignments.relists > 0;
  }

  onChange(fn: () => void): void {
    this.groups.on('change', fn);
    this.assignments.on('change', fn);
  }

  assignment(group: string): Assignment | undefined {
    const e = this.assignments.get(this.keys.assignment(group));
    if (!e) return undefined;
    const record = decode(AssignmentRecord, e.value, (why) =>
      this.log.warn({ group, why }, 'ignoring an assignment that does not parse'),
    );
    return record ? { record, epoch: e.modRevision } : undefined;
  }

  /** Every assignment that parses, by group. */
  allAssignments(): Map<string, Assignment> {
    const out = new Map<string, Assignment>();
    const p = this.keys.assignmentsPrefix();
    for (const e of this.assignments.under(p)) {
      const g = e.key.slice(p.length);
      const a = this.assignment(g);
      if (a) out.set(g, a);
    }
    return out;
  }

  groupNames(): string[] {
    const p = this.keys.groupsPrefix();
    return [...this.groups.under(p)].map((e) => e.key.slice(p.length));
  }

  readSpec(group: string): SpecRead {
    const e = this.groups.get(this.keys.group(group));
    if (!e) return { kind: 'absent' };
    let why = '';
    const rec = decode(GroupRecord, e.value, (w) => (why = `group record: ${w}`));
    if (!rec) return { kind: 'error', why };
    const spec = FailoverGroupSpec.safeParse(rec.spec);
    if (!spec.success)
      return {
        kind: 'error',
        why: spec.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; '),
      };
    return { kind: 'ok', spec: spec.data };
  }

  spec(group: string): Spec | undefined {
    const r = this.readSpec(group);
    return r.kind === 'ok' ? r.spec : undefined;
  }

  /** Every VIP the groups and the assignments name, for the leftovers at start. */
  knownVips(defaultIface: string): { cidr: string; iface: string }[] {
    const out: { cidr: string; iface: string }[] = [];
    for (const g of this.groupNames())
      for (const v of this.spec(g)?.vips ?? []) out.push({ cidr: v.address, iface: v.interface ?? defaultIface });
    for (const e of this.assignments.under(this.keys.assignmentsPrefix())) {
      const a = decode(AssignmentRecord, e.value);
      for (const v of a?.vips ?? []) out.push({ cidr: v.address, iface: v.interface ?? defaultIface });
    }
    return out;
  }
}
