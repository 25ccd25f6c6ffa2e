// A fake ipvsadm for tests: an in-memory IPVS table that answers `-Sn`, `-R` batches, single commands, the sync
// daemon commands and listings the way the kernel and ipvsadm do, including their refusals (a service or
// destination that already exists, or does not). It lets the director's tests check that a plan is valid, not just
// that it was sent.
import { CommandError, type Exec, type ExecResult } from '../../common/exec.js';
import { destKey, hostPort, serviceKey, type IpvsDest, type IpvsService, type SyncDaemon } from './ipvs.js';

const FWD: Record<string, IpvsDest['forwarding']> = { '-m': 'nat', '-g': 'dr', '-i': 'tunnel' };
const FWD_FLAG: Record<IpvsDest['forwarding'], string> = { nat: '-m', dr: '-g', tunnel: '-i' };
const FWD_NAME: Record<IpvsDest['forwarding'], string> = { nat: 'Masq', dr: 'Route', tunnel: 'Tunnel' };

function hp(text: string): { address: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) throw new Error(`bad address ${text}`);
  return { address: m[1]!, port: Number(m[2]) };
}

export class FakeIpvs {
  readonly services = new Map<string, IpvsService & { stats: Map<string, number[]> }>();
  daemons: SyncDaemon[] = [];
  /** Every argv run, ipvsadm or not. */
  readonly calls: string[][] = [];
  /** Lines applied from -R batches and single commands, in order. */
  readonly applied: string[] = [];
  sysctls: string[] = [];
  /** When set, the next ipvsadm call fails like a kernel without IPVS. */
  unavailable = false;

  readonly exec: Exec = async (argv, opts) => {
    this.calls.push([...argv]);
    if (argv[0] === 'sysctl') {
      this.sysctls.push(...argv.slice(3));
      return ok('');
    }
    if (!/ipvsadm$/.test(argv[0] ?? '')) throw new CommandError(argv, 127, 'not found');
    if (this.unavailable)
      throw new CommandError(argv, 2, "Can't initialize ipvs: Protocol not available\nAre you sure ...");
    const args = argv.slice(1);
    const fail = (msg: string) => {
      throw new CommandError(argv, 2, msg);
    };
    if (args[0] === '-Sn') return ok(this.save());
    if (args[0] === '-Ln' && args[1] === '--daemon') return ok(this.daemonText());
    if (args[0] === '-Ln' && args.includes('--stats')) return ok(this.listing('stats'));
    if (args[0] === '-Ln') return ok(this.listing('conns'));
    if (args[0] === '--start-daemon') {
      const state = args[1] as SyncDaemon['state'];
      if (this.daemons.some((d) => d.state === state)) fail('Sync daemon already running');
      const iface = args[args.indexOf('--mcast-interface') + 1]!;
      const syncId = Number(args[args.indexOf('--syncid') + 1] ?? 0);
      this.daemons.push({ state, interface: iface, syncId });
      return ok('');
    }
    if (args[0] === '--stop-daemon') {
      this.daemons = this.daemons.filter((d) => d.state !== args[1]);
      return ok('');
    }
    if (args[0] === '-R') {
      for (const line of (opts?.input ?? '').split('\n').filter((l) => l.trim())) {
        const err = this.apply(line.trim().split(/\s+/));
        if (err) fail(err);
        this.applied.push(line.trim());
      }
      return ok('');
    }
    const err = this.apply(args);
    if (err) fail(err);
    this.applied.push(args.join(' '));
    return ok('');
  };

  /** The table and daemons as JSON (the fake binary keeps them in a file between runs). */
  toJSON(): { services: IpvsService[]; daemons: SyncDaemon[] } {
    return { services: [...this.services.values()].map(({ stats: _s, ...rest }) => rest), daemons: this.daemons };
  }

  static from(state: { services?: IpvsService[]; daemons?: SyncDaemon[] }): FakeIpvs {
    const f = new FakeIpvs();
    for (const s of state.services ?? []) f.put(s);
    f.daemons = [...(state.daemons ?? [])];
    return f;
  }

  /** Adds a service by hand (someone else's, or left over). */
  put(s: IpvsService): void {
    this.services.set(serviceKey(s), { ...s, dests: s.dests.map((d) => ({ ...d })), stats: new Map() });
  }

  dest(key: string, dest: string): IpvsDest | undefined {
    return this.services.get(key)?.dests.find((d) => destKey(d) === dest);
  }

  private apply(t: string[]): string | undefined {
    const op = t[0];
    const protocol = t[1] === '-t' ? 'tcp' : 'udp';
    const vs = hp(t[2]!);
    const key = serviceKey({ protocol, ...vs });
    const s = this.services.get(key);
    const flag = (f: string) => (t.includes(f) ? t[t.indexOf(f) + 1] : undefined);
    switch (op) {
      case '-A':
      case '-E': {
        if (op === '-A' && s) return 'Service already exists';
        if (op === '-E' && !s) return 'No such service';
        const p = flag('-p');
        const next = {
          protocol,
          ...vs,
          scheduler: flag('-s') ?? 'wlc',
          ...(p !== undefined ? { persistence: Number(p) } : {}),
          dests: s?.dests ?? [],
          stats: s?.stats ?? new Map<string, number[]>(),
        } as IpvsService & { stats: Map<string, number[]> };
        this.services.set(key, next);
        return undefined;
      }
      case '-D':
        if (!s) return 'No such service';
        this.services.delete(key);
        return undefined;
      case '-a':
      case '-e':
      case '-d': {
        if (!s) return 'Service not defined';
        const r = hp(flag('-r')!);
        const i = s.dests.findIndex((d) => destKey(d) === destKey(r));
        if (op === '-d') {
          if (i < 0) return 'No such destination';
          s.dests.splice(i, 1);
          return undefined;
        }
        if (op === '-a' && i >= 0) return 'Destination already exists';
        if (op === '-e' && i < 0) return 'No such destination';
        const fwd = t.find((x) => FWD[x]);
        const d: IpvsDest = {
          ...r,
          weight: Number(flag('-w') ?? 1),
          forwarding: fwd ? FWD[fwd]! : 'dr',
        };
        if (i >= 0) s.dests[i] = d;
        else s.dests.push(d);
        return undefined;
      }
      default:
        return `unknown command ${op}`;
    }
  }

  private save(): string {
    const lines: string[] = [];
    for (const s of this.services.values()) {
      const p = s.protocol === 'tcp' ? '-t' : '-u';
      lines.push(
        `-A ${p} ${hostPort(s.address, s.port)} -s ${s.scheduler}${s.persistence !== undefined ? ` -p ${s.persistence}` : ''}`,
      );
      for (const d of s.dests)
        lines.push(
          `-a ${p} ${hostPort(s.address, s.port)} -r ${hostPort(d.address, d.port)} ${FWD_FLAG[d.forwarding]} -w ${d.weight}`,
        );
    }
    return lines.join('\n');
  }

  private listing(kind: 'conns' | 'stats'): string {
    const lines = ['IP Virtual Server version 1.2.1 (size=4096)'];
    lines.push(
      kind === 'conns'
        ? 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn'
        : 'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port',
    );
    for (const s of this.services.values()) {
      const vs = `${s.protocol.toUpperCase()}  ${hostPort(s.address, s.port)}`;
      lines.push(kind === 'conns' ? `${vs} ${s.scheduler}` : `${vs} 0 0 0 0 0`);
      for (const d of s.dests) {
        const n = s.stats.get(destKey(d)) ?? [0, 0, 0, 0, 0, 0, 0];
        lines.push(
          kind === 'conns'
            ? `  -> ${hostPort(d.address, d.port)}  ${FWD_NAME[d.forwarding]} ${d.weight} ${n[0]} ${n[1]}`
            : `  -> ${hostPort(d.address, d.port)}  ${n.slice(2).join(' ')}`,
        );
      }
    }
    return lines.join('\n');
  }

  private daemonText(): string {
    return this.daemons.map((d) => `${d.state} sync daemon (mcast=${d.interface}, syncid=${d.syncId})`).join('\n');
  }
}

function ok(stdout: string): ExecResult {
  return { stdout, stderr: '', exitCode: 0 };
}
