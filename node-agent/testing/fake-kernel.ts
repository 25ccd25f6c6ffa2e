// A fake kernel for tests that need no root: keeps addresses and their lifetimes as `ip -batch` and
// `ip -j addr show` (through vw-before or not) would, and can be told to fail deletions.
import type { Exec, ExecOptions } from '../../common/exec.js';
import type { VipRef } from '../addresses.js';

/** The kernel's addresses, driven by `ip -batch` and listed by `ip -j addr show`. */
export class FakeKernel {
  readonly addrs = new Map<string, { address: string; prefix: number; iface: string; lifetime: number }>();
  readonly commands: { argv: string[]; input: string }[] = [];
  failDelete = false;
  /** Exit code of vw-before (75: deadline passed, nothing run). */
  deadlineExit = 0;
  /** While set, every command waits for it (a slow `ip`). */
  gate: Promise<void> | undefined;
  exec: Exec = async (argv, opts?: ExecOptions) => {
    this.commands.push({ argv: [...argv], input: opts?.input ?? '' });
    if (this.gate) await this.gate;
    if (argv[0]?.endsWith('vw-before')) {
      if (this.deadlineExit) return { stdout: '', stderr: '', exitCode: this.deadlineExit };
      argv = argv.slice(2);
    }
    if (argv.join(' ') === 'ip -j addr show') {
      const byIf = new Map<string, unknown[]>();
      for (const a of this.addrs.values()) {
        const list = byIf.get(a.iface) ?? [];
        list.push({
          family: a.address.includes(':') ? 'inet6' : 'inet',
          local: a.address,
          prefixlen: a.prefix,
          valid_life_time: a.lifetime,
        });
        byIf.set(a.iface, list);
      }
      return {
        stdout: JSON.stringify([...byIf].map(([ifname, addr_info]) => ({ ifname, addr_info }))),
        stderr: '',
        exitCode: 0,
      };
    }
    let failed = false;
    for (const line of (opts?.input ?? '').trim().split('\n')) {
      const [, verb, cidr, , iface, , lft] = line.split(' ');
      const [address, prefix] = cidr!.split('/');
      const key = `${iface}|${address}`;
      if (verb === 'replace')
        this.addrs.set(key, { address: address!, prefix: Number(prefix), iface: iface!, lifetime: Number(lft) });
      else if (verb === 'del') {
        if (this.failDelete) failed = true;
        else this.addrs.delete(key);
      }
    }
    return failed
      ? { stdout: '', stderr: 'RTNETLINK answers: Operation not permitted', exitCode: 1 }
      : { stdout: '', stderr: '', exitCode: 0 };
  };
  has(v: VipRef): boolean {
    return this.addrs.has(`${v.iface}|${v.address}`);
  }
  lifetimeOf(v: VipRef): number | undefined {
    return this.addrs.get(`${v.iface}|${v.address}`)?.lifetime;
  }
}
