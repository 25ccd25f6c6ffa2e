// vipwarden: the operator's command line, reading etcd directly (bare VMs).
//   vipwarden status [-o json]          groups, VIPs, holder, epoch, candidates' liveness and health
//   vipwarden events [group] [-o json]  failover history
//   vipwarden move <group> <node>       pin the group to a node (planned move through the release fast path)
//   vipwarden move <group> --unpin      give the choice back to priorities
//   vipwarden drain <node> / undrain <node>
// Options: --etcd URL[,URL] (or VIPWARDEN_ETCD), --prefix /vipwarden/ (or VIPWARDEN_PREFIX), --timeout ms
import type { Etcd3 } from 'etcd3';
import { connectEtcd } from '../common/etcd.js';
import { isResourceName } from '../common/ip.js';
import {
  AssignmentRecord,
  decode,
  DEFAULT_PREFIX,
  DrainRecord,
  EventRecord,
  GroupRecord,
  HealthRecord,
  Keys,
  LeaderRecord,
  MoveRecord,
  NodeRecord,
} from '../common/keyspace.js';
import { FailoverGroupSpec } from '../crds/failovergroup.js';

export interface CliIO {
  out(line: string): void;
  err(line: string): void;
}

export interface Options {
  etcd: string[];
  prefix: string;
  output: 'table' | 'json';
  timeoutMs: number;
  positional: string[];
  unpin: boolean;
}

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv): Options {
  const o: Options = {
    etcd: (env.VIPWARDEN_ETCD ?? 'http://127.0.0.1:2379').split(','),
    prefix: env.VIPWARDEN_PREFIX ?? DEFAULT_PREFIX,
    output: 'table',
    timeoutMs: 3000,
    positional: [],
    unpin: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--etcd') o.etcd = next().split(',');
    else if (a === '--prefix') o.prefix = next();
    else if (a === '-o' || a === '--output') {
      const v = next();
      if (v !== 'json' && v !== 'table') throw new UsageError('-o takes json or table');
      o.output = v;
    } else if (a === '--timeout') {
      const v = next();
      o.timeoutMs = Number(v);
      if (!/^\d+$/.test(v) || o.timeoutMs < 1 || o.timeoutMs > 600_000)
        throw new UsageError(`--timeout takes milliseconds (1 to 600000), got "${v}"`);
    } else if (a === '--unpin') o.unpin = true;
    else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}`);
    else o.positional.push(a);
  }
  for (const e of o.etcd) {
    let u: URL | undefined;
    try {
      u = new URL(e);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) {
      throw new UsageError(`etcd endpoint "${e}" is not an http(s)://host:port URL (--etcd or VIPWARDEN_ETCD)`);
    }
  }
  if (!o.prefix.startsWith('/'))
    throw new UsageError(`etcd prefix "${o.prefix}" must start with "/" (--prefix or VIPWARDEN_PREFIX)`);
  return o;
}

/** At most `max` positional arguments, and --unpin only where it means something. */
function expectArgs(cmd: string, o: Options, max: number): void {
  if (o.positional.length > max) throw new UsageError(`${cmd}: unexpected argument ${o.positional[max]}`);
  if (o.unpin && cmd !== 'move') throw new UsageError(`--unpin only goes with move`);
}

/** A short reason for an etcd failure, for the operator. */
export function etcdFailure(endpoints: readonly string[], err: unknown, timeoutMs: number): string | undefined {
  const msg = err instanceof Error ? err.message : String(err);
  let why: string | undefined;
  if (/ECONNREFUSED/.test(msg)) why = 'connection refused';
  else if (/EHOSTUNREACH|ENETUNREACH/.test(msg)) why = 'host unreachable';
  else if (/ENOTFOUND|EAI_AGAIN/.test(msg)) why = 'name not found';
  else if (/deadline|timed out|timeout/i.test(msg)) why = `no answer within ${timeoutMs} ms`;
  else if (/unavailable|No connection|connect/i.test(msg)) why = msg.replace(/\s*Resolution note:\s*\.?/, '').trim();
  return why && `cannot reach etcd at ${endpoints.join(',')}: ${why}. Check --etcd or VIPWARDEN_ETCD.`;
}

export class UsageError extends Error {}

const USAGE = `usage: vipwarden <command> [options]
  status [-o json]            groups, VIPs, holder, epoch, candidates
  events [group] [-o json]    failover history
  move <group> <node>         pin a group to a node (planned move)
  move <group> --unpin        let priorities choose again
  drain <node> | undrain <node>
options: --etcd URL[,URL] (VIPWARDEN_ETCD), --prefix P (VIPWARDEN_PREFIX), --timeout MS`;

async function withEtcd<T>(o: Options, fn: (c: Etcd3, k: Keys) => Promise<T>): Promise<T> {
  const client = connectEtcd({ endpoints: o.etcd, timeoutMs: o.timeoutMs, dialTimeoutMs: o.timeoutMs });
  try {
    return await fn(client, new Keys(o.prefix));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const unreachable = etcdFailure(o.etcd, err, o.timeoutMs);
    if (unreachable) throw new Error(unreachable);
    throw err;
  } finally {
    client.close();
  }
}

async function prefixMap(
  c: Etcd3,
  prefix: string,
): Promise<Map<string, { value: string; mod: number; lease: string }>> {
  const res = await c.getAll().prefix(prefix).exec();
  return new Map(
    res.kvs.map((kv) => [
      kv.key.toString().slice(prefix.length),
      { value: kv.value.toString(), mod: Number(kv.mod_revision), lease: String(kv.lease) },
    ]),
  );
}

export interface GroupStatus {
  group: string;
  vips: string[];
  holder: string | null;
  epoch: number | null;
  pending: string | null;
  failback: string | null;
  pinnedTo: string | null;
  nodes: {
    name: string;
    priority: number;
    live: boolean;
    healthy: boolean | null;
    drained: boolean;
    checks: { name: string; ok: boolean; message?: string }[];
  }[];
}

export async function collectStatus(c: Etcd3, k: Keys): Promise<{ leader: string | null; groups: GroupStatus[] }> {
  const [groups, assigns, nodes, health, drains, moves, leader] = await Promise.all([
    prefixMap(c, k.groupsPrefix()),
    prefixMap(c, k.assignmentsPrefix()),
    prefixMap(c, k.nodesPrefix()),
    prefixMap(c, k.healthPrefix()),
    prefixMap(c, k.drainPrefix()),
    prefixMap(c, k.movesPrefix()),
    c.get(k.leader()).string(),
  ]);
  const liveLease = new Map<string, string>();
  for (const [name, e] of nodes) {
    const rec = decode(NodeRecord, e.value);
    if (rec && rec.lease === e.lease) liveLease.set(name, rec.lease);
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
      nodes: candidates.map((n) => {
        const h = decode(HealthRecord, health.get(`${g}/${n.name}`)?.value);
        const live = liveLease.has(n.name);
        return {
          name: n.name,
          priority: n.priority,
          live,
          healthy: live && h ? h.healthy : null,
          drained: drains.has(n.name),
          checks:
            live && h
              ? h.checks.map((c) => ({ name: c.name, ok: c.ok, ...(c.message ? { message: c.message } : {}) }))
              : [],
        };
      }),
    });
  }
  return { leader: decode(LeaderRecord, leader)?.id ?? null, groups: out };
}

export function renderStatus(s: { leader: string | null; groups: GroupStatus[] }): string[] {
  const lines = [`leader: ${s.leader ?? '(none)'}`];
  if (s.groups.length === 0) return [...lines, 'no groups'];
  const rows: string[][] = [['GROUP', 'VIPS', 'HOLDER', 'EPOCH', 'NODES (priority, live, health)']];
  for (const g of s.groups) {
    const nodes = g.nodes
      .map(
        (n) =>
          `${n.name}(${n.priority},${n.live ? 'up' : 'down'},${n.drained ? 'drained' : n.healthy === null ? '?' : n.healthy ? 'ok' : 'FAIL'})`,
      )
      .join(' ');
    const holder =
      (g.holder ?? '-') + (g.pending ? ' [releasing]' : '') + (g.pinnedTo ? ` [pinned:${g.pinnedTo}]` : '');
    rows.push([g.group, g.vips.join(','), holder, g.epoch === null ? '-' : String(g.epoch), nodes]);
  }
  return [...lines, ...table(rows)];
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
}

async function events(c: Etcd3, k: Keys, group: string | undefined): Promise<EventRecord[]> {
  const res = await c.getAll().prefix(k.eventsPrefix(group)).exec();
  const evs = res.kvs
    .map((kv) => decode(EventRecord, kv.value.toString()))
    .filter((e): e is EventRecord => e !== undefined);
  return evs.sort((a, b) => a.epoch - b.epoch);
}

export function renderEvents(evs: EventRecord[]): string[] {
  if (evs.length === 0) return ['no events'];
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
  return table(rows);
}

function needName(v: string | undefined, what: string): string {
  if (!v) throw new UsageError(`${what} is missing`);
  if (!isResourceName(v)) throw new UsageError(`${what} "${v}" is not a valid name`);
  return v;
}

export async function run(argv: string[], env: NodeJS.ProcessEnv, io: CliIO): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'realserver') return (await import('./realserver.js')).realserver(rest, io); // LVS real servers (lvs)
  if (cmd && rest.some((a) => a === '--help' || a === '-h')) {
    io.out(USAGE);
    return 0;
  }
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    // Asked for: on stdout, success. Not asked for (no command): on stderr, a usage error.
    if (cmd) io.out(USAGE);
    else io.err(USAGE);
    return cmd ? 0 : 2;
  }
  try {
    const o = parseArgs(rest, env);
    switch (cmd) {
      case 'status':
        expectArgs(cmd, o, 0);
        return await withEtcd(o, async (c, k) => {
          const s = await collectStatus(c, k);
          if (o.output === 'json') io.out(JSON.stringify(s, null, 2));
          else for (const l of renderStatus(s)) io.out(l);
          return 0;
        });
      case 'events':
        expectArgs(cmd, o, 1);
        return await withEtcd(o, async (c, k) => {
          const group = o.positional[0] ? needName(o.positional[0], 'group') : undefined;
          const evs = await events(c, k, group);
          if (o.output === 'json') io.out(JSON.stringify(evs, null, 2));
          else for (const l of renderEvents(evs)) io.out(l);
          return 0;
        });
      case 'move':
        expectArgs(cmd, o, o.unpin ? 1 : 2);
        return await withEtcd(o, async (c, k) => {
          const group = needName(o.positional[0], 'group');
          if (o.unpin) {
            await c.delete().key(k.move(group)).exec();
            io.out(`${group}: unpinned; priorities choose the holder again`);
            return 0;
          }
          const node = needName(o.positional[1], 'node');
          const g = decode(GroupRecord, await c.get(k.group(group)).string());
          if (!g) throw new UsageError(`no group named ${group}`);
          const spec = FailoverGroupSpec.safeParse(g.spec);
          if (spec.success && !spec.data.nodes.some((n) => n.name === node))
            throw new UsageError(`${node} is not a candidate node of ${group}`);
          await c
            .put(k.move(group))
            .value(JSON.stringify({ to: node, at: Date.now() }))
            .exec();
          io.out(
            `${group}: pinned to ${node}; it moves there once ${node} is healthy (undo with: vipwarden move ${group} --unpin)`,
          );
          return 0;
        });
      case 'drain':
      case 'undrain':
        expectArgs(cmd, o, 1);
        return await withEtcd(o, async (c, k) => {
          const node = needName(o.positional[0], 'node');
          if (cmd === 'drain') {
            await c
              .put(k.drain(node))
              .value(JSON.stringify(DrainRecord.parse({ at: Date.now(), by: 'cli' })))
              .exec();
            io.out(`${node}: drained; its groups move to other nodes`);
          } else {
            await c.delete().key(k.drain(node)).exec();
            io.out(`${node}: undrained`);
          }
          return 0;
        });
      default:
        throw new UsageError(`unknown command ${cmd}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`vipwarden: ${err.message}`);
      io.err(USAGE);
      return 2;
    }
    io.err(`vipwarden: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
