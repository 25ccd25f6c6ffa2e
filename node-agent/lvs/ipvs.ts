// The IPVS table as vipwarden sees it, and Debian's ipvsadm text format both ways: `ipvsadm -Sn` (the table, as
// rules) parsed into IpvsService values, actions formatted as the lines of an `ipvsadm -R` batch, the sync daemon
// listing (`ipvsadm -Ln --daemon`) and the per-destination counters (`ipvsadm -Ln --stats --exact`).
import { isIP } from 'node:net';
import { canonical } from '../../crds/virtualserver.js';

export type Protocol = 'tcp' | 'udp';
export type Forwarding = 'nat' | 'dr' | 'tunnel';

export interface IpvsDest {
  address: string;
  port: number;
  weight: number;
  forwarding: Forwarding;
}

export interface IpvsService {
  protocol: Protocol;
  address: string;
  port: number;
  scheduler: string;
  /** Seconds; undefined: not persistent. */
  persistence?: number;
  dests: IpvsDest[];
}

/** "tcp 198.18.0.100:80", "udp [2001:2::100]:53": the identity of a virtual service. */
export function serviceKey(s: { protocol: Protocol; address: string; port: number }): string {
  return `${s.protocol} ${hostPort(s.address, s.port)}`;
}

export function destKey(d: { address: string; port: number }): string {
  return hostPort(d.address, d.port);
}

export function hostPort(address: string, port: number): string {
  const a = canonical(address);
  return isIP(a) === 6 ? `[${a}]:${port}` : `${a}:${port}`;
}

const FWD_FLAG: Record<Forwarding, string> = { nat: '-m', dr: '-g', tunnel: '-i' };
const FLAG_FWD: Record<string, Forwarding> = { '-m': 'nat', '-g': 'dr', '-i': 'tunnel' };

function splitHostPort(text: string): { address: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m || isIP(m[1]!) === 0) return undefined;
  return { address: canonical(m[1]!), port: Number(m[2]) };
}

/**
 * Parses `ipvsadm -Sn` (`-A -t 198.18.0.100:80 -s wlc -p 300`, `-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 1`).
 * Firewall-mark services (`-f`) and lines it does not understand are returned in `foreign`: never vipwarden's.
 */
export function parseIpvsRules(text: string): { services: IpvsService[]; foreign: string[] } {
  const services = new Map<string, IpvsService>();
  const foreign: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const t = line.split(/\s+/);
    const proto = t[1] === '-t' ? 'tcp' : t[1] === '-u' ? 'udp' : undefined;
    const vs = proto && t[2] ? splitHostPort(t[2]) : undefined;
    if (!proto || !vs || (t[0] !== '-A' && t[0] !== '-a')) {
      foreign.push(line);
      continue;
    }
    const key = serviceKey({ protocol: proto, ...vs });
    if (t[0] === '-A') {
      const s: IpvsService = { protocol: proto, address: vs.address, port: vs.port, scheduler: 'wlc', dests: [] };
      for (let i = 3; i < t.length; i++) {
        if (t[i] === '-s') s.scheduler = t[++i] ?? s.scheduler;
        else if (t[i] === '-p') s.persistence = Number(t[++i]);
        else if (t[i] === '-M' || t[i] === '-b' || t[i] === '--pe') i++;
      }
      services.set(key, s);
    } else {
      const s = services.get(key);
      let dest: IpvsDest | undefined;
      for (let i = 3; i < t.length; i++) {
        if (t[i] === '-r') {
          const hp = splitHostPort(t[++i] ?? '');
          if (hp) dest = { ...hp, weight: 1, forwarding: 'dr' };
        } else if (t[i] === '-w' && dest) dest.weight = Number(t[++i]);
        else if (FLAG_FWD[t[i]!] && dest) dest.forwarding = FLAG_FWD[t[i]!]!;
        else if (t[i] === '-x' || t[i] === '-y' || t[i] === '--tun-type' || t[i] === '--tun-port') i++;
      }
      if (s && dest) s.dests.push(dest);
      else foreign.push(line);
    }
  }
  return { services: [...services.values()], foreign };
}

export type IpvsAction =
  | { type: 'add-service'; service: Omit<IpvsService, 'dests'> }
  | { type: 'edit-service'; service: Omit<IpvsService, 'dests'> }
  | { type: 'delete-service'; service: Pick<IpvsService, 'protocol' | 'address' | 'port'> }
  | { type: 'add-dest'; service: Pick<IpvsService, 'protocol' | 'address' | 'port'>; dest: IpvsDest }
  | { type: 'edit-dest'; service: Pick<IpvsService, 'protocol' | 'address' | 'port'>; dest: IpvsDest }
  | { type: 'delete-dest'; service: Pick<IpvsService, 'protocol' | 'address' | 'port'>; dest: IpvsDest };

function vsArgs(s: Pick<IpvsService, 'protocol' | 'address' | 'port'>): string[] {
  return [s.protocol === 'tcp' ? '-t' : '-u', hostPort(s.address, s.port)];
}

/** One action as ipvsadm arguments (without the program name): also one line of an `ipvsadm -R` batch. */
export function actionArgs(a: IpvsAction): string[] {
  switch (a.type) {
    case 'add-service':
    case 'edit-service': {
      const s = a.service;
      const out = [a.type === 'add-service' ? '-A' : '-E', ...vsArgs(s), '-s', s.scheduler];
      if (s.persistence !== undefined) out.push('-p', String(s.persistence));
      return out;
    }
    case 'delete-service':
      return ['-D', ...vsArgs(a.service)];
    case 'add-dest':
    case 'edit-dest':
      return [
        a.type === 'add-dest' ? '-a' : '-e',
        ...vsArgs(a.service),
        '-r',
        hostPort(a.dest.address, a.dest.port),
        FWD_FLAG[a.dest.forwarding],
        '-w',
        String(a.dest.weight),
      ];
    case 'delete-dest':
      return ['-d', ...vsArgs(a.service), '-r', hostPort(a.dest.address, a.dest.port)];
  }
}

/** The stdin of `ipvsadm -R`: one action per line, in order. */
export function restoreBatch(actions: readonly IpvsAction[]): string {
  return actions.map((a) => actionArgs(a).join(' ') + '\n').join('');
}

export interface SyncDaemon {
  state: 'master' | 'backup';
  interface: string;
  syncId: number;
}

/** Parses `ipvsadm -Ln --daemon`: "master sync daemon (mcast=eth0, syncid=3)". */
export function parseDaemons(text: string): SyncDaemon[] {
  const out: SyncDaemon[] = [];
  for (const line of text.split('\n')) {
    const m = /^(master|backup) sync daemon \(mcast=([^,\s)]+), syncid=(\d+)/.exec(line.trim());
    if (m) out.push({ state: m[1] as SyncDaemon['state'], interface: m[2]!, syncId: Number(m[3]) });
  }
  return out;
}

export interface DestStats {
  /** Active (established) and inactive connections, from `ipvsadm -Ln --exact`. */
  activeConns: number;
  inactiveConns: number;
  /** Totals since the entry was created, from `ipvsadm -Ln --stats --exact`. */
  conns: number;
  inPackets: number;
  outPackets: number;
  inBytes: number;
  outBytes: number;
}

/**
 * Parses the listing of `ipvsadm -Ln --exact` (connection counts) or `ipvsadm -Ln --stats --exact` (totals), keyed
 * by serviceKey then destKey. The two listings have the same shape: a service line, then its destinations.
 */
export function parseListing(text: string, kind: 'conns' | 'stats'): Map<string, Map<string, number[]>> {
  const out = new Map<string, Map<string, number[]>>();
  let current: Map<string, number[]> | undefined;
  for (const raw of text.split('\n')) {
    const t = raw.trim().split(/\s+/);
    if ((t[0] === 'TCP' || t[0] === 'UDP') && t[1]) {
      const hp = splitHostPort(t[1]);
      current = undefined;
      if (!hp) continue;
      current = new Map();
      out.set(serviceKey({ protocol: t[0] === 'TCP' ? 'tcp' : 'udp', ...hp }), current);
    } else if (t[0] === '->' && current && t[1]) {
      const hp = splitHostPort(t[1]);
      if (!hp) continue;
      // conns: -> RIP:PORT Forward Weight ActiveConn InActConn; stats: -> RIP:PORT Conns InPkts OutPkts InBytes OutBytes
      const nums = (kind === 'conns' ? t.slice(3) : t.slice(2)).map(Number);
      if (nums.every((n) => Number.isFinite(n))) current.set(destKey(hp), nums);
    }
  }
  return out;
}

export function statsOf(conns: number[] | undefined, stats: number[] | undefined): DestStats {
  return {
    activeConns: conns?.[1] ?? 0,
    inactiveConns: conns?.[2] ?? 0,
    conns: stats?.[0] ?? 0,
    inPackets: stats?.[1] ?? 0,
    outPackets: stats?.[2] ?? 0,
    inBytes: stats?.[3] ?? 0,
    outBytes: stats?.[4] ?? 0,
  };
}
