// VIP addresses on local interfaces, through `ip` (iproute2) with argv arrays. Every step is safe to repeat.
// Addresses are always added with a finite kernel lifetime (DESIGN.md Safety 2): that is also how the agent
// recognises addresses it may have left behind.
import type { Exec } from '../common/exec.js';
import { canonicalIPv6, isInterfaceName, mustParseCidr, type Family } from '../common/ip.js';

export interface VipRef {
  /** Address without prefix, canonical. */
  address: string;
  prefix: number;
  family: Family;
  iface: string;
}

export interface LocalAddress extends VipRef {
  /** Seconds left, or null for "forever". */
  validLft: number | null;
}

export function vipRef(cidr: string, iface: string): VipRef {
  const c = mustParseCidr(cidr);
  if (!isInterfaceName(iface)) throw new Error(`invalid interface name ${JSON.stringify(iface)}`);
  return { address: c.address, prefix: c.prefix, family: c.family, iface };
}

export function vipKey(v: Pick<VipRef, 'address' | 'iface'>): string {
  return `${v.iface}|${v.address}`;
}

interface IpJsonAddr {
  ifname?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number; valid_life_time?: number }[];
}

const FOREVER = 4294967295;

/** The command ran too late to be allowed to run: it did not run (see node-agent/native/before.c). */
export class DeadlinePassedError extends Error {
  constructor(readonly deadlineMs: number) {
    super('deadline passed before the address command could run');
    this.name = 'DeadlinePassedError';
  }
}

export class AddressManager {
  /**
   * @param deadlineExec path of vw-before (node-agent/native/before.c): when given, `ensure` with a deadline runs
   *   `ip` only if the monotonic clock has not passed it, checked in the forked process itself.
   */
  constructor(
    private readonly exec: Exec,
    private readonly deadlineExec?: string,
  ) {}

  /** Addresses on the given interfaces (all interfaces when empty). */
  async list(ifaces: readonly string[] = []): Promise<LocalAddress[]> {
    for (const i of ifaces) if (!isInterfaceName(i)) throw new Error(`invalid interface name ${JSON.stringify(i)}`);
    const r = await this.exec(['ip', '-j', 'addr', 'show'], { timeoutMs: 5000 });
    const parsed = JSON.parse(r.stdout || '[]') as IpJsonAddr[];
    const out: LocalAddress[] = [];
    for (const link of parsed) {
      if (!link.ifname || (ifaces.length && !ifaces.includes(link.ifname))) continue;
      for (const a of link.addr_info ?? []) {
        if (!a.local || a.prefixlen === undefined) continue;
        const family: Family = a.family === 'inet6' ? 6 : 4;
        out.push({
          address: family === 6 ? canonicalIPv6(a.local) : a.local,
          prefix: a.prefixlen,
          family,
          iface: link.ifname,
          validLft: a.valid_life_time === undefined || a.valid_life_time >= FOREVER ? null : a.valid_life_time,
        });
      }
    }
    return out;
  }

  /** Adds or renews addresses with a kernel lifetime of `lifetimeS` seconds (one `ip -batch` for all). */
  async ensure(vips: readonly VipRef[], lifetimeS: number, opts: { deadlineMs?: number } = {}): Promise<void> {
    if (vips.length === 0) return;
    if (!Number.isInteger(lifetimeS) || lifetimeS < 1) throw new Error(`invalid lifetime ${lifetimeS}`);
    const lines = vips.map((v) => {
      check(v);
      // No "-6" here: ip -batch takes no options per line (it fails with 'Object "-6" is unknown'); the family
      // follows from the address.
      const base = `addr replace ${v.address}/${v.prefix} dev ${v.iface} valid_lft ${lifetimeS} preferred_lft ${lifetimeS}`;
      // No duplicate address detection for a VIP: it moves on purpose, and DAD would delay it by a second.
      return v.family === 6 ? `${base} nodad` : base;
    });
    const ip = ['ip', '-batch', '-'];
    const argv =
      opts.deadlineMs !== undefined && this.deadlineExec
        ? [this.deadlineExec, String(Math.floor(opts.deadlineMs * 1e6)), ...ip]
        : ip;
    const r = await this.exec(argv, { input: `${lines.join('\n')}\n`, timeoutMs: 5000, okCodes: [75] });
    if (r.exitCode === 75) throw new DeadlinePassedError(opts.deadlineMs ?? 0);
  }

  /** Removes addresses; absent ones are fine. */
  async remove(vips: readonly VipRef[]): Promise<void> {
    if (vips.length === 0) return;
    const lines = vips.map((v) => {
      check(v);
      return `addr del ${v.address}/${v.prefix} dev ${v.iface}`;
    });
    // -force: go on after a line fails (an address that is already gone is not an error here).
    const r = await this.exec(['ip', '-force', '-batch', '-'], {
      input: `${lines.join('\n')}\n`,
      timeoutMs: 5000,
      okCodes: [1],
    });
    if (r.exitCode !== 0) {
      // Something failed: make sure it was only "already gone".
      const left = await this.list([...new Set(vips.map((v) => v.iface))]);
      const still = vips.filter((v) => left.some((l) => l.address === v.address && l.iface === v.iface));
      if (still.length)
        throw new Error(`could not remove ${still.map((v) => v.address).join(', ')}: ${r.stderr.trim()}`);
    }
  }
}

function check(v: VipRef): void {
  // Revalidate what reaches the command line, whatever built the VipRef.
  const c = mustParseCidr(`${v.address}/${v.prefix}`);
  if (c.family !== v.family || !isInterfaceName(v.iface)) throw new Error(`invalid VIP ${JSON.stringify(v)}`);
}
