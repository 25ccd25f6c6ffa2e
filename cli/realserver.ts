// vipwarden realserver: sets up (or undoes) a real server behind an LVS director in direct-routing or tunnel mode.
// The real server must accept packets for the VIP without answering ARP for it (only the director does), so the VIP
// goes on lo (DR) or tunl0 (IP-in-IP), with arp_ignore=1 / arp_announce=2, and rp_filter off for the tunnel.
// This is what LVS-DR users always write by hand; every step is safe to repeat.
//
//   vipwarden realserver add <vip> [<vip> ...] [--tunnel] [--dry-run]
//   vipwarden realserver remove <vip> [<vip> ...] [--tunnel] [--dry-run]
import { isIP } from 'node:net';
import { CommandError, realExec, type Exec } from '../common/exec.js';
import { canonicalIPv6 } from '../common/ip.js';

export interface RealServerIO {
  out(line: string): void;
  err(line: string): void;
}

export const REALSERVER_USAGE = `usage: vipwarden realserver add|remove <vip> [<vip> ...] [--tunnel] [--dry-run]
  Puts each VIP on lo (or on tunl0 with --tunnel) with ARP for it suppressed, as an LVS real server in direct-routing
  (or tunnel) mode needs: arp_ignore=1 and arp_announce=2 (all and the device), rp_filter=0 for the tunnel.
  remove takes the addresses away again (the ARP settings stay: they are harmless and other VIPs may need them).
  --dry-run prints the commands instead of running them.`;

export interface RealServerPlan {
  commands: string[][];
}

/** The commands that make this machine a real server for `vips` (add) or stop it being one (remove). */
export function planRealServer(action: 'add' | 'remove', vips: readonly string[], tunnel: boolean): RealServerPlan {
  const dev = tunnel ? 'tunl0' : 'lo';
  const commands: string[][] = [];
  const v4 = vips.filter((v) => isIP(v) === 4);
  if (action === 'add') {
    if (tunnel && v4.length > 0) commands.push(['modprobe', 'ipip'], ['ip', 'link', 'set', 'tunl0', 'up']);
    if (v4.length > 0) {
      const sysctls = [
        'net.ipv4.conf.all.arp_ignore=1',
        'net.ipv4.conf.all.arp_announce=2',
        `net.ipv4.conf.${dev}.arp_ignore=1`,
        `net.ipv4.conf.${dev}.arp_announce=2`,
      ];
      // Tunnelled packets arrive on tunl0 from the director's address: reverse-path filtering would drop them.
      if (tunnel) sysctls.push('net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.tunl0.rp_filter=0');
      commands.push(['sysctl', '-q', '-w', ...sysctls]);
    }
  }
  for (const vip of vips) {
    const six = isIP(vip) === 6;
    const cidr = six ? `${canonicalIPv6(vip)}/128` : `${vip}/32`;
    if (action === 'add') {
      // IPv6 has no ARP: an address on lo is not answered for in neighbour discovery on other links.
      commands.push(['ip', ...(six ? ['-6'] : []), 'addr', 'replace', cidr, 'dev', dev, ...(six ? ['nodad'] : [])]);
    } else {
      commands.push(['ip', ...(six ? ['-6'] : []), 'addr', 'del', cidr, 'dev', dev]);
    }
  }
  return { commands };
}

export async function realserver(argv: string[], io: RealServerIO, exec: Exec = realExec): Promise<number> {
  const [action, ...rest] = argv;
  if (!action || action === 'help' || rest.includes('--help') || rest.includes('-h') || action === '--help') {
    (action ? io.out : io.err)(REALSERVER_USAGE);
    return action ? 0 : 2;
  }
  const tunnel = rest.includes('--tunnel');
  const dryRun = rest.includes('--dry-run');
  const vips = rest.filter((a) => !a.startsWith('--'));
  const unknown = rest.filter((a) => a.startsWith('--') && a !== '--tunnel' && a !== '--dry-run');
  const bad = vips.filter((v) => isIP(v) === 0);
  if ((action !== 'add' && action !== 'remove') || vips.length === 0 || bad.length > 0 || unknown.length > 0) {
    if (action !== 'add' && action !== 'remove') io.err(`vipwarden realserver: unknown action ${action}`);
    if (vips.length === 0) io.err('vipwarden realserver: no VIP given');
    for (const b of bad) io.err(`vipwarden realserver: ${b} is not an IP address (give it without a prefix length)`);
    for (const u of unknown) io.err(`vipwarden realserver: unknown option ${u}`);
    io.err(REALSERVER_USAGE);
    return 2;
  }
  if (tunnel && vips.some((v) => isIP(v) === 6)) {
    io.err(
      'vipwarden realserver: --tunnel is for IPv4 VIPs (tunl0); IPv6 tunnel real servers need ip6tnl, set up by hand',
    );
    return 2;
  }
  const plan = planRealServer(action, vips, tunnel);
  for (const cmd of plan.commands) {
    if (dryRun) {
      io.out(cmd.join(' '));
      continue;
    }
    try {
      await exec(cmd, { timeoutMs: 10_000 });
    } catch (err) {
      // Removing an address that is already gone is success (safe to repeat).
      if (action === 'remove' && err instanceof CommandError && /Cannot assign|not found|No such/i.test(err.stderr))
        continue;
      io.err(`vipwarden realserver: ${err instanceof Error ? err.message : String(err)}`);
      return 1;
    }
  }
  if (!dryRun)
    io.out(
      action === 'add'
        ? `real server ready for ${vips.join(', ')} on ${tunnel ? 'tunl0' : 'lo'} (ARP for them suppressed)`
        : `removed ${vips.join(', ')} from ${tunnel ? 'tunl0' : 'lo'}`,
    );
  return 0;
}
