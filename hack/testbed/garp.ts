// Gratuitous ARP from a node, with Debian's arping (Thomas Habets' arping 2.x, not iputils):
//   -U unsolicited, -S <source IP> (lower-case -s is the source MAC!), -i <iface>, -W <seconds between>,
//   -c <count>, -q quiet. Without -S the source is the interface's primary address and the frame is
//   an ordinary request that does NOT update neighbours' entries for the VIP.
// Exit status is 1 whenever no reply came, which is always the case for unsolicited ARP, and also on
// real errors; so errors are told apart by stderr.
import { isIPv4 } from 'node:net';
import type { NsRef, Testbed } from './testbed.js';
import { assertAllowedAddress, assertIfName } from './util.js';

export interface GarpOptions {
  count?: number;
  /** Gap between frames, ms; default 50. */
  intervalMs?: number;
  iface?: string;
}

export async function sendGarp(tb: Testbed, node: NsRef, address: string, opts: GarpOptions = {}): Promise<void> {
  if (!isIPv4(address)) throw new Error(`sendGarp: IPv4 only, got ${address}`);
  assertAllowedAddress(address);
  const iface = opts.iface ?? 'eth0';
  assertIfName(iface);
  const count = opts.count ?? 2;
  if (!Number.isInteger(count) || count < 1 || count > 20) throw new Error(`sendGarp: count must be 1..20`);
  const gap = (opts.intervalMs ?? 50) / 1000;
  const r = await tb.exec(
    node,
    ['arping', '-q', '-U', '-c', String(count), '-W', String(gap), '-i', iface, '-S', address, address],
    {
      allowFailure: true,
      timeoutMs: 10_000,
    },
  );
  if (r.exitCode !== 0 && r.stderr.trim() !== '') throw new Error(`arping failed: ${r.stderr.trim()}`);
}
