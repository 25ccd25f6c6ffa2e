// VIP addresses on local interfaces. Every step is safe to repeat. Addresses are always added with a finite kernel
// lifetime (DESIGN.md Safety 2): that is also how the agent recognises addresses it may have left behind.
// Two paths: the data-path helper (node-agent/dataplane.ts: rtnetlink from one long-running process, each address
// checked against its deadline right before the kernel acts, the first gratuitous ARP of a new IPv4 address sent
// right after the kernel's acknowledgement), used whenever it is built; else `ip` (iproute2) with argv arrays,
// through vw-before when a deadline is given.
import { dirname, join } from 'node:path';
import type { Exec } from '../common/exec.js';
import { canonicalIPv6, isInterfaceName, mustParseCidr, type Family } from '../common/ip.js';
import {
  DATAPLANE,
  Dataplane,
  DataplaneUnavailableError,
  DeadlineExpiredError,
  isExecutable,
  nativeHelperPath,
  sharedDataplane,
} from './dataplane.js';

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

/** When a request to the helper has no deadline of its own (no caller in the agent does that). */
const DEFAULT_DEADLINE_MS = 5000;

export interface AddressManagerOptions {
  /** Families whose new addresses the helper announces at once, right after the add (default: IPv4 only; IPv6
   * NAs come from the announcer, which knows whether agent.yaml turned them off). */
  announceOnAdd?: readonly Family[];
}

export class AddressManager {
  /** The data-path helper, when there is one; undefined: the `ip` command path. */
  readonly dataplane: Dataplane | undefined;
  private readonly deadlineExec: string | undefined;
  private readonly announceOnAdd: readonly Family[];

  /**
   * @param deadlineExec a Dataplane to use; or the path of vw-before (node-agent/native/before.c, what agent.ts
   *   passes in production): then the data-path helper built beside it (or beside this module) is used, shared by
   *   the whole process, and without one `ensure` with a deadline runs `ip` through vw-before, which runs it only
   *   if the monotonic clock has not passed the deadline. Undefined: `ip` commands through `exec` (unit tests).
   */
  constructor(
    private readonly exec: Exec,
    deadlineExec?: string | Dataplane,
    opts: AddressManagerOptions = {},
  ) {
    this.announceOnAdd = opts.announceOnAdd ?? [4];
    if (deadlineExec instanceof Dataplane) {
      this.dataplane = deadlineExec;
      this.deadlineExec = undefined;
    } else {
      this.deadlineExec = deadlineExec;
      const bin = deadlineExec === undefined ? undefined : helperBeside(deadlineExec);
      this.dataplane = bin ? sharedDataplane(bin) : undefined;
    }
  }

  /** Addresses on the given interfaces (all interfaces when empty). */
  async list(ifaces: readonly string[] = []): Promise<LocalAddress[]> {
    for (const i of ifaces) if (!isInterfaceName(i)) throw new Error(`invalid interface name ${JSON.stringify(i)}`);
    if (this.dataplane) {
      const all = await this.dataplane.listAddresses();
      return ifaces.length ? all.filter((a) => ifaces.includes(a.iface)) : all;
    }
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

  /**
   * Adds or renews addresses with a kernel lifetime of `lifetimeS` seconds. With the helper: one request per
   * address, all sent at once, each checked against the deadline right before its own netlink request (an address
   * whose check failed was not touched; DeadlinePassedError says that at least one was refused). Without: one
   * `ip -batch` for all, checked once by vw-before before `ip` starts.
   */
  async ensure(vips: readonly VipRef[], lifetimeS: number, opts: { deadlineMs?: number } = {}): Promise<void> {
    if (vips.length === 0) return;
    if (!Number.isInteger(lifetimeS) || lifetimeS < 1) throw new Error(`invalid lifetime ${lifetimeS}`);
    for (const v of vips) check(v);
    const dp = this.dataplane;
    if (dp) {
      const deadlineMs = opts.deadlineMs ?? monoMs() + DEFAULT_DEADLINE_MS;
      const results = await Promise.allSettled(
        vips.map((v) =>
          dp.addAddress(v, { validLft: lifetimeS, deadlineMs, announce: this.announceOnAdd.includes(v.family) }),
        ),
      );
      const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason as Error);
      if (failed.some((e) => e instanceof DeadlineExpiredError)) throw new DeadlinePassedError(deadlineMs);
      if (failed[0]) throw failed[0];
      return;
    }
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
    for (const v of vips) check(v);
    const dp = this.dataplane;
    if (dp) {
      // A helper that died under the request leaves its outcome unknown: ask a new one once more (deleting twice
      // is harmless). Anything else that fails is thrown, so that a release is not acknowledged.
      const del = (v: VipRef) =>
        dp.deleteAddress(v).catch((err) => {
          if (err instanceof DataplaneUnavailableError) return dp.deleteAddress(v);
          throw err;
        });
      const results = await Promise.allSettled(vips.map(del));
      const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ v: vips[i]!, err: r.reason }] : []));
      if (failed.length)
        throw new Error(
          `could not remove ${failed.map((f) => f.v.address).join(', ')}: ${failed.map((f) => String(f.err)).join('; ')}`,
        );
      return;
    }
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

/** The data-path helper beside vw-before (an installed agent), else beside this module (dist/node-agent). */
export function helperBeside(deadlineExec: string): string | undefined {
  return [join(dirname(deadlineExec), DATAPLANE), nativeHelperPath()].find(isExecutable);
}

function monoMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

function check(v: VipRef): void {
  // Revalidate what reaches the command line, whatever built the VipRef.
  const c = mustParseCidr(`${v.address}/${v.prefix}`);
  if (c.family !== v.family || !isInterfaceName(v.iface)) throw new Error(`invalid VIP ${JSON.stringify(v)}`);
}
