// `vipwarden status` and `vipwarden events`: read etcd, render tables. Pure renderers, tested without etcd.
import type { Etcd3 } from 'etcd3';
import {
  AssignmentRecord,
  decode,
  EventRecord,
  GroupRecord,
  HealthRecord,
  Keys,
  LeaderRecord,
  MoveRecord,
  NodeRecord,
  RejectedRecord,
} from '../common/keyspace.js';
import { listPrefix } from '../common/etcd.js';
import { failsafeState } from '../common/failsafe-status.js';
import { OutageRecord } from '../common/presence.js';
import { arbiterLossOf, FailoverGroupSpec } from '../crds/failovergroup.js';

export interface GroupStatus {
  group: string;
  vips: string[];
  holder: string | null;
  epoch: number | null;
  pending: string | null;
  failback: string | null;
  pinnedTo: string | null;
  /**
   * spec.arbiterLoss, and for failsafe whether the holder can keep the group through an etcd outage now (its node
   * record acknowledges the assignment's promise set) and its last keep by promises.
   */
  arbiterLoss?: { mode: 'failsafe' | 'release'; armed: boolean; lastKept?: { ms: number; at: number } };
  nodes: {
    name: string;
    priority: number;
    live: boolean;
    healthy: boolean | null;
    drained: boolean;
    /** Why this node's agent cannot parse the group's spec (version skew): it will not hold the group. */
    specError?: string;
    checks: { name: string; ok: boolean; message?: string }[];
  }[];
}

export interface Status {
  leader: string | null;
  groups: GroupStatus[];
  /** Groups the leader does not place, with the reason (invalid spec, contested VIP). */
  rejected?: { group: string; reason: string; at: number }[];
}

async function prefixMap(
  c: Etcd3,
  prefix: string,
): Promise<Map<string, { value: string; mod: number; lease: string }>> {
  const res = await listPrefix(c, prefix);
  return new Map(
    res.kvs.map((kv) => [
      kv.key.toString().slice(prefix.length),
      { value: kv.value.toString(), mod: Number(kv.mod_revision), lease: String(kv.lease) },
    ]),
  );
}

export async function collectStatus(c: Etcd3, k: Keys): Promise<Status> {
  const [groups, assigns, nodes, health, drains, moves, rejected, leader] = await Promise.all([
    prefixMap(c, k.groupsPrefix()),
    prefixMap(c, k.assignmentsPrefix()),
    prefixMap(c, k.nodesPrefix()),
    prefixMap(c, k.healthPrefix()),
    prefixMap(c, k.drainPrefix()),
    prefixMap(c, k.movesPrefix()),
    prefixMap(c, k.rejectedPrefix()),
    c.get(k.leader()).string(),
  ]);
  const liveLease = new Map<string, string>();
  const specErrors = new Map<string, string>(); // "<node>/<group>" -> why
  const failsafe = new Map<string, NonNullable<NodeRecord['failsafe']>>();
  for (const [name, e] of nodes) {
    const rec = decode(NodeRecord, e.value);
    if (!rec || rec.lease !== e.lease) continue;
    liveLease.set(name, rec.lease);
    if (rec.failsafe) failsafe.set(name, rec.failsafe);
    for (const x of rec.specErrors ?? []) specErrors.set(`${name}/${x.group}`, x.why);
  }
  const names = [...new Set([...groups.keys(), ...assigns.keys()])].sort();
  const out: GroupStatus[] = [];
  for (const g of names) {
    const grec = decode(GroupRecord, groups.get(g)?.value);
    const spec = grec ? FailoverGroupSpec.safeParse(grec.spec) : undefined;
    const a = assigns.get(g);
    const arec = decode(AssignmentRecord, a?.value);
    const candidates = spec?.success ? spec.data.nodes : [];
    out.push({
      group: g,
      vips: spec?.success ? spec.data.vips.map((v) => v.address) : (arec?.vips.map((v) => v.address) ?? []),
      holder: arec?.holder ?? null,
      epoch: a ? a.mod : null,
      pending: arec?.release ? `release requested (${arec.reason})` : null,
      failback: spec?.success ? spec.data.failback : null,
      pinnedTo: decode(MoveRecord, moves.get(g)?.value)?.to ?? null,
      ...(spec?.success
        ? {
            arbiterLoss: failsafeState(
              arbiterLossOf(spec.data),
              g,
              a?.mod,
              arec,
              arec?.holder ? failsafe.get(arec.holder) : undefined,
            ),
          }
        : {}),
      nodes: candidates.map((n) => {
        const h = decode(HealthRecord, health.get(`${n.name}/${g}`)?.value);
        const live = liveLease.has(n.name);
        const specError = live ? specErrors.get(`${n.name}/${g}`) : undefined;
        return {
          name: n.name,
          priority: n.priority,
          live,
          healthy: live && h ? h.healthy : null,
          drained: drains.has(n.name),
          ...(specError !== undefined ? { specError } : {}),
          checks:
            live && h
              ? h.checks.map((c) => ({ name: c.name, ok: c.ok, ...(c.message ? { message: c.message } : {}) }))
              : [],
        };
      }),
    });
  }
  const rejectedList = [...rejected]
    .map(([group, e]) => ({ group, rec: decode(RejectedRecord, e.value) }))
    .filter((r): r is { group: string; rec: RejectedRecord } => r.rec !== undefined)
    .sort((a, b) => (a.group < b.group ? -1 : 1))
    .map((r) => ({ group: r.group, reason: r.rec.reason, at: r.rec.at }));
  return { leader: decode(LeaderRecord, leader)?.id ?? null, groups: out, rejected: rejectedList };
}

/** The candidates that can be drained: every node named by a group, or registered. */
export async function knownNodes(c: Etcd3, k: Keys): Promise<Set<string>> {
  const [groups, nodes] = await Promise.all([prefixMap(c, k.groupsPrefix()), prefixMap(c, k.nodesPrefix())]);
  const names = new Set(nodes.keys());
  for (const e of groups.values()) {
    const spec = FailoverGroupSpec.safeParse(decode(GroupRecord, e.value)?.spec);
    if (spec.success) for (const n of spec.data.nodes) names.add(n.name);
  }
  return names;
}

export function renderStatus(s: Status): string[] {
  const lines = [`leader: ${s.leader ?? '(none)'}`];
  if (s.groups.length === 0) lines.push('no groups');
  else {
    const rows: string[][] = [['GROUP', 'VIPS', 'HOLDER', 'EPOCH', 'NODES (priority, live, health)']];
    for (const g of s.groups) {
      const nodes = g.nodes
        .map(
          (n) =>
            `${n.name}(${n.priority},${n.live ? 'up' : 'down'},${n.drained ? 'drained' : n.specError !== undefined ? 'SPEC' : n.healthy === null ? '?' : n.healthy ? 'ok' : 'FAIL'})`,
        )
        .join(' ');
      const holder =
        (g.holder ?? '-') +
        (g.pending ? ' [releasing]' : '') +
        (g.pinnedTo ? ` [pinned:${g.pinnedTo}]` : '') +
        (g.arbiterLoss?.armed ? ' [failsafe]' : '');
      rows.push([g.group, g.vips.join(','), holder, g.epoch === null ? '-' : String(g.epoch), nodes]);
    }
    lines.push(...table(rows));
    // When failsafe held a group: the holder kept it by its peers' promises while etcd could not be reached.
    for (const g of s.groups)
      if (g.arbiterLoss?.lastKept)
        lines.push(
          `${g.group}: kept through arbiter outage (${Math.round(g.arbiterLoss.lastKept.ms / 1000)} s), ended ${new Date(g.arbiterLoss.lastKept.at).toISOString()}`,
        );
  }
  // What failed, and why: the message each failing check gave.
  const failing = s.groups.flatMap((g) =>
    g.nodes.flatMap((n) =>
      n.checks.filter((c) => !c.ok).map((c) => [g.group, n.name, c.name, c.message ?? '(no message)']),
    ),
  );
  if (failing.length > 0) lines.push('', ...table([['GROUP', 'NODE', 'FAILING CHECK', 'MESSAGE'], ...failing]));
  // Version skew: the SpecNotUnderstood condition of the FailoverGroup, as etcd shows it.
  const skew = s.groups.flatMap((g) =>
    g.nodes.flatMap((n) => (n.specError !== undefined ? [[g.group, n.name, n.specError]] : [])),
  );
  if (skew.length > 0)
    lines.push('', ...table([['GROUP', 'NODE', 'SPEC NOT UNDERSTOOD (the node will not hold it)'], ...skew]));
  const rejected = s.rejected ?? [];
  if (rejected.length > 0)
    lines.push('', ...table([['REJECTED GROUP', 'REASON'], ...rejected.map((r) => [r.group, r.reason])]));
  return lines;
}

export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
}

export async function listEvents(c: Etcd3, k: Keys, group: string | undefined): Promise<EventRecord[]> {
  const res = await c.getAll().prefix(k.eventsPrefix(group)).exec();
  const evs = res.kvs
    .map((kv) => decode(EventRecord, kv.value.toString()))
    .filter((e): e is EventRecord => e !== undefined);
  return evs.sort((a, b) => a.epoch - b.epoch);
}

/** The periods a VIP was on no node, as the agents measured them (outages/<group>/), oldest first. */
export async function listOutages(c: Etcd3, k: Keys, group: string | undefined): Promise<OutageRecord[]> {
  const res = await c.getAll().prefix(k.outagesPrefix(group)).exec();
  return res.kvs
    .map((kv) => decode(OutageRecord, kv.value.toString()))
    .filter((o): o is OutageRecord => o !== undefined)
    .sort((a, b) => a.toAt - b.toAt);
}

export function renderOutages(outs: readonly OutageRecord[]): string[] {
  const rows = [['VIP ON NO NODE FROM', 'UNTIL', 'GROUP', 'EPOCH', 'FROM', 'TO', 'REASON', 'GAP']];
  for (const o of outs) {
    const why = o.releaseReason && o.releaseReason !== o.reason ? `${o.reason} (${o.releaseReason})` : o.reason;
    const note = [o.expired ? 'lifetime ran out first' : '', o.message ?? ''].filter(Boolean).join('; ');
    rows.push([
      o.fromAt === undefined ? '?' : new Date(o.fromAt).toISOString(),
      new Date(o.toAt).toISOString(),
      o.group,
      String(o.epoch),
      o.from ?? '?',
      o.to,
      why,
      (o.gapMs === undefined ? '?' : `${Math.round(o.gapMs)}ms`) + (note ? ` (${note})` : ''),
    ]);
  }
  return table(rows);
}

/** Transitions, then (when there are any) the outages the agents measured. */
export function renderEvents(evs: EventRecord[], outages: readonly OutageRecord[] = []): string[] {
  const tail = outages.length > 0 ? ['', ...renderOutages(outages)] : [];
  if (evs.length === 0) return ['no events', ...tail];
  const rows = [['TIME', 'GROUP', 'EPOCH', 'FROM', 'TO', 'REASON', 'DETECT', 'OUTAGE']];
  for (const e of evs) {
    rows.push([
      new Date(e.at).toISOString(),
      e.group,
      String(e.epoch),
      e.from ?? '-',
      e.to ?? '-',
      e.reason,
      e.detectMs === undefined ? '-' : `${Math.round(e.detectMs)}ms`,
      e.outageMs === undefined ? '-' : `${Math.round(e.outageMs)}ms`,
    ]);
  }
  return [...table(rows), ...tail];
}
