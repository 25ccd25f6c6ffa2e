// Pure planning for the LVS director: the FailoverGroups this node holds and the real servers' health give the
// IPVS virtual services it should have; the diff against what `ipvsadm -Sn` lists gives the actions. The sync
// daemons are planned the same way. No I/O here (STYLE.md: pure planner, executors at the edges).
import type { Spec } from '../../crds/failovergroup.js';
import { vipOf, type VirtualServerSpec } from '../../crds/virtualserver.js';
import { destKey, serviceKey, type IpvsAction, type IpvsDest, type IpvsService, type SyncDaemon } from './ipvs.js';

/** A real server's place in a group: "<group>/<service>/<address:port>". */
export function realServerId(group: string, service: string, dest: { address: string; port: number }): string {
  return `${group}/${service}/${destKey(dest)}`;
}

/** The health of one real server as the checks see it: undefined until its first result (counted as up). */
export type HealthOf = (id: string) => boolean | undefined;

export interface DesiredService extends IpvsService {
  group: string;
  name: string;
  /** True when no real server takes new connections and the sorry server is in. */
  sorry: boolean;
}

/** Why a real server has the weight it has (status and metrics). */
export interface RealServerView {
  id: string;
  group: string;
  service: string;
  address: string;
  port: number;
  up: boolean | undefined;
  /** The weight the table should give it; undefined: not in the table (removed). */
  weight: number | undefined;
  sorry: boolean;
}

function servicesOf(spec: Pick<Spec, 'virtualServers'>): readonly VirtualServerSpec[] {
  return spec.virtualServers ?? [];
}

/**
 * The virtual services of the held groups. A real server without a check, or whose check has no result yet, is up
 * (keepalived without `alpha`); a failed one gets weight 0 (quiesce: established connections go on) or leaves the
 * table (remove). While no real server can take a new connection, the sorry server is added with weight 1.
 */
export function desiredServices(
  held: ReadonlyMap<string, Pick<Spec, 'vips' | 'virtualServers'>>,
  health: HealthOf,
): { services: DesiredService[]; views: RealServerView[] } {
  const services: DesiredService[] = [];
  const views: RealServerView[] = [];
  for (const [group, spec] of [...held].sort(([a], [b]) => a.localeCompare(b))) {
    for (const vs of servicesOf(spec)) {
      const address = vipOf(vs, spec.vips);
      if (address === undefined) continue;
      const dests: IpvsDest[] = [];
      const mine: RealServerView[] = [];
      for (const rs of vs.realServers) {
        const port = rs.port ?? vs.port;
        const id = realServerId(group, vs.name, { address: rs.address, port });
        const up = vs.check ? health(id) : true;
        const weight = up !== false ? rs.weight : vs.onFailure === 'quiesce' ? 0 : undefined;
        if (weight !== undefined) dests.push({ address: rs.address, port, weight, forwarding: vs.forwarding });
        mine.push({ id, group, service: vs.name, address: rs.address, port, up, weight, sorry: false });
      }
      const sorry = vs.sorryServer !== undefined && !dests.some((d) => d.weight > 0);
      if (sorry && vs.sorryServer) {
        const d: IpvsDest = {
          address: vs.sorryServer.address,
          port: vs.sorryServer.port ?? vs.port,
          weight: 1,
          forwarding: vs.forwarding,
        };
        const same = dests.find((x) => destKey(x) === destKey(d));
        if (same) same.weight = 1;
        else dests.push(d);
        const id = realServerId(group, vs.name, d);
        mine.push({ id, group, service: vs.name, address: d.address, port: d.port, up: true, weight: 1, sorry: true });
      }
      views.push(...mine);
      services.push({
        group,
        name: vs.name,
        protocol: vs.protocol,
        address,
        port: vs.port,
        scheduler: vs.scheduler,
        ...(vs.persistenceSeconds !== undefined ? { persistence: vs.persistenceSeconds } : {}),
        dests: canonicalDests(dests),
        sorry,
      });
    }
  }
  return { services, views };
}

function canonicalDests(dests: IpvsDest[]): IpvsDest[] {
  const seen = new Set<string>();
  return dests.filter((d) => (seen.has(destKey(d)) ? false : (seen.add(destKey(d)), true)));
}

/**
 * The actions that make `actual` match `desired`. Only services in `owned` (recorded as vipwarden's) or in
 * `desired` are touched; a service of someone else's is never deleted. Order: services added or edited, then
 * destinations added or edited (a server coming back is in before the sorry server leaves), then destinations
 * deleted, then services deleted. Weight changes are edits, which keep established connections.
 */
export function planIpvs(
  desired: readonly IpvsService[],
  actual: readonly IpvsService[],
  owned: ReadonlySet<string>,
): IpvsAction[] {
  const byKey = new Map(actual.map((s) => [serviceKey(s), s]));
  const wanted = new Set(desired.map(serviceKey));
  const svc: IpvsAction[] = [];
  const addDest: IpvsAction[] = [];
  const delDest: IpvsAction[] = [];
  const delSvc: IpvsAction[] = [];
  for (const d of desired) {
    const ref = { protocol: d.protocol, address: d.address, port: d.port };
    const head = {
      ...ref,
      scheduler: d.scheduler,
      ...(d.persistence !== undefined ? { persistence: d.persistence } : {}),
    };
    const a = byKey.get(serviceKey(d));
    if (!a) {
      svc.push({ type: 'add-service', service: head });
      for (const dest of d.dests) addDest.push({ type: 'add-dest', service: ref, dest });
      continue;
    }
    if (a.scheduler !== d.scheduler || a.persistence !== d.persistence)
      svc.push({ type: 'edit-service', service: head });
    const have = new Map(a.dests.map((x) => [destKey(x), x]));
    const want = new Set(d.dests.map(destKey));
    for (const dest of d.dests) {
      const x = have.get(destKey(dest));
      if (!x) addDest.push({ type: 'add-dest', service: ref, dest });
      else if (x.weight !== dest.weight || x.forwarding !== dest.forwarding)
        addDest.push({ type: 'edit-dest', service: ref, dest });
    }
    for (const x of a.dests) if (!want.has(destKey(x))) delDest.push({ type: 'delete-dest', service: ref, dest: x });
  }
  for (const a of actual) {
    const k = serviceKey(a);
    if (!wanted.has(k) && owned.has(k))
      delSvc.push({ type: 'delete-service', service: { protocol: a.protocol, address: a.address, port: a.port } });
  }
  return [...svc, ...addDest, ...delDest, ...delSvc];
}

export interface SyncWant {
  master?: { interface: string; syncId: number };
  backup?: { interface: string; syncId: number };
}

export type SyncStep =
  | { type: 'start'; state: 'master' | 'backup'; interface: string; syncId: number }
  | { type: 'stop'; state: 'master' | 'backup' };

/**
 * The sync daemons this node should run: master while it holds a group with virtual services (it multicasts its
 * connections), backup while it is a standby for one (it copies them), both when it is each for different groups.
 * A daemon that runs but is not wanted is stopped only if vipwarden started it (`owned`).
 */
export function planSync(
  want: SyncWant,
  actual: readonly SyncDaemon[],
  owned: ReadonlySet<'master' | 'backup'>,
): SyncStep[] {
  const steps: SyncStep[] = [];
  // Master first: on a failover the new holder starts multicasting before it stops listening.
  for (const state of ['master', 'backup'] as const) {
    const w = want[state];
    const a = actual.find((d) => d.state === state);
    if (w && a && a.interface === w.interface && a.syncId === w.syncId) continue;
    if (a && (w || owned.has(state))) steps.push({ type: 'stop', state });
    if (w) steps.push({ type: 'start', state, interface: w.interface, syncId: w.syncId });
  }
  return steps;
}

export function syncArgs(s: SyncStep): string[] {
  return s.type === 'start'
    ? ['--start-daemon', s.state, '--mcast-interface', s.interface, '--syncid', String(s.syncId)]
    : ['--stop-daemon', s.state];
}

/** What the sync daemons should be, from the groups this node holds and the ones it is a standby for. */
export function syncWant(
  held: ReadonlyMap<string, Pick<Spec, 'virtualServers'>>,
  standby: ReadonlyMap<string, Pick<Spec, 'virtualServers'>>,
  opts: { interface: string; syncId: number },
): SyncWant {
  const any = (m: ReadonlyMap<string, Pick<Spec, 'virtualServers'>>) =>
    [...m.values()].some((s) => servicesOf(s).length > 0);
  const d = { interface: opts.interface, syncId: opts.syncId };
  return { ...(any(held) ? { master: d } : {}), ...(any(standby) ? { backup: d } : {}) };
}
