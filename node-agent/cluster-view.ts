// What the agent reads from etcd: the leader's group records and assignments, mirrored (list + watch), parsed on
// read and cached per mod revision: a pass reads every group and every assignment, and parses only what changed.
import type { Etcd3 } from 'etcd3';
import { Mirror, type Entry } from '../common/etcd.js';
import { AssignmentRecord, decode, GroupRecord, type Keys } from '../common/keyspace.js';
import { PromiseSets } from '../common/promise-sets.js';
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
  /** Failsafe promise sets, named by digest in the assignments (common/promise-sets.ts). */
  readonly promiseSets: Mirror;
  private readonly sets: PromiseSets;
  /**
   * Parses by mirror entry. The mirror replaces an entry on every change and never edits one, so an entry stands
   * for one mod revision of its key: a cached parse is that revision's, and it goes with the entry.
   */
  private readonly specReads = new WeakMap<Entry, SpecRead>();
  private readonly assignmentReads = new WeakMap<Entry, AssignmentRecord | undefined>();

  constructor(
    client: Etcd3,
    private readonly keys: Keys,
    private readonly log: Logger,
  ) {
    this.groups = new Mirror(client, keys.groupsPrefix(), log, { resyncMs: 60_000 });
    this.assignments = new Mirror(client, keys.assignmentsPrefix(), log, { resyncMs: 60_000 });
    this.promiseSets = new Mirror(client, keys.promiseSetsPrefix(), log, { resyncMs: 60_000 });
    this.sets = new PromiseSets(
      this.promiseSets,
      (d) => keys.promiseSet(d),
      (digest, why) => log.warn({ digest, why }, 'ignoring a stored promise set'),
    );
  }

  /**
   * Resolves once groups and assignments are listed. The promise sets are not waited for: without them the agent
   * only cannot keep by promises (an etcd role from before they were stored, deploy/etcd/setup.sh not run again,
   * must not keep the agent from starting).
   */
  start(signal: AbortSignal): Promise<void> {
    this.groups.start(signal);
    this.assignments.start(signal);
    this.promiseSets.start(signal);
    return Promise.all([this.groups.ready, this.assignments.ready]).then(() => undefined);
  }

  listed(): boolean {
    return this.groups.relists > 0 && this.assignments.relists > 0;
  }

  onChange(fn: () => void): void {
    this.groups.on('change', fn);
    this.assignments.on('change', fn);
    this.promiseSets.on('change', fn);
  }

  /**
   * The group's assignment, with the promise set it names in `promiseSet` once this agent has read and checked it
   * (common/promise-sets.ts). Until then the record comes without it: failsafe then neither acknowledges nor keeps
   * by that epoch, and everything else acts on the record as usual.
   */
  assignment(group: string): Assignment | undefined {
    const e = this.assignments.get(this.keys.assignment(group));
    if (!e) return undefined;
    let record = this.assignmentReads.get(e);
    if (!this.assignmentReads.has(e)) {
      record = decode(AssignmentRecord, e.value, (why) =>
        this.log.warn({ group, why }, 'ignoring an assignment that does not parse'),
      );
      this.assignmentReads.set(e, record);
    }
    if (record?.promiseSetRef !== undefined && record.promiseSet === undefined) {
      const full = this.sets.resolve(record);
      // A set never changes under its digest: once read, it stays with the entry.
      if (full) this.assignmentReads.set(e, (record = full));
    }
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

  /** The group's spec; the same object on every call until the record changes (callers must not edit it). */
  readSpec(group: string): SpecRead {
    const e = this.groups.get(this.keys.group(group));
    if (!e) return { kind: 'absent' };
    let read = this.specReads.get(e);
    if (!read) this.specReads.set(e, (read = parseSpec(e)));
    return read;
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

function parseSpec(e: Entry): SpecRead {
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
