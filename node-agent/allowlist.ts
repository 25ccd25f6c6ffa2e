// The node-side allowlist (DESIGN.md "Trust"; MetalLB's address pools): a FailoverGroup says what should happen,
// the node's own agent.yaml says what may. A group that asks for an address outside vipRanges (or on another
// interface), a SNAT destination or a check target the node does not allow, or a floating IP it does not list, is
// refused whole: the agent holds none of it, runs none of its checks, and says why in its health record.
// Pure: no I/O, table-tested in allowlist.test.ts.
import { isIP } from 'node:net';
import { z } from 'zod';
import { ipv6Groups, isInterfaceName, parseCidr, type Cidr } from '../common/ip.js';
import type { Spec } from '../crds/failovergroup.js';

const CidrText = z.string().superRefine((v, ctx) => {
  const c = parseCidr(v);
  if (typeof c === 'string') ctx.addIssue({ code: 'custom', message: c });
});
const Interface = z.string().refine(isInterfaceName, 'must be an interface name');
/** A check target: a CIDR, or a host name matched exactly (lower case). */
const Target = z.union([
  CidrText,
  z
    .string()
    .min(1)
    .max(253)
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a CIDR or a lower-case host name'),
]);

export const VipRangeSchema = z.union([
  CidrText,
  z
    .object({
      cidr: CidrText,
      /** Interfaces a VIP of this range may go on; any interface when absent. */
      interfaces: z.array(Interface).min(1).max(64).optional(),
    })
    .strict(),
]);

/** The agent.yaml fields (spread into AgentConfigSchema). */
export const allowlistFields = {
  /** VIP ranges this node may hold. Absent or empty: the node holds nothing (and says so at start). */
  vipRanges: z.array(VipRangeSchema).max(256).optional(),
  allow: z
    .object({
      /** SNAT destinations a group may name (each rule's destination must lie inside one of these). */
      snatDestinations: z.array(CidrText).max(256).default([]),
      /** Check targets (http, tcp, mysql hosts) beyond loopback, which is always allowed. */
      checkTargets: z.array(Target).max(256).default([]),
      /** Cloud floating IPs a group may point at this node (exact addresses). */
      floatingIps: z
        .array(z.string().refine((v) => isIP(v) !== 0, 'must be an IP address'))
        .max(256)
        .default([]),
    })
    .strict()
    .default({ snatDestinations: [], checkTargets: [], floatingIps: [] }),
};

export interface AllowlistConfig {
  vipRanges?: Array<string | { cidr: string; interfaces?: string[] | undefined }> | undefined;
  allow: { snatDestinations: string[]; checkTargets: string[]; floatingIps: string[] };
}

interface Range {
  family: 4 | 6;
  base: bigint;
  prefix: number;
}

function bitsOf(c: Cidr): bigint {
  if (c.family === 4) return c.address.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  if (c.address.includes('.')) {
    // ::ffff:1.2.3.4 and friends: the last 32 bits in dotted form.
    const i = c.address.lastIndexOf(':');
    const head = ipv6Groups(`${c.address.slice(0, i + 1)}0:0`);
    const v4 = bitsOf({ address: c.address.slice(i + 1), prefix: 32, family: 4 });
    return (head.slice(0, 6).reduce((acc, g) => (acc << 16n) | BigInt(g), 0n) << 32n) | v4;
  }
  return ipv6Groups(c.address).reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

function rangeOf(text: string): Range | undefined {
  const c = parseCidr(text);
  return typeof c === 'string' ? undefined : { family: c.family, base: bitsOf(c), prefix: c.prefix };
}

/** Whether CIDR `inner` (an address with its prefix) lies wholly inside `outer`. */
function inside(inner: Range, outer: Range): boolean {
  if (inner.family !== outer.family || inner.prefix < outer.prefix) return false;
  const width = inner.family === 4 ? 32 : 128;
  const shift = BigInt(width - outer.prefix);
  return inner.base >> shift === outer.base >> shift;
}

function hostRange(host: string): Range | undefined {
  const fam = isIP(host);
  if (fam === 0) return undefined;
  return rangeOf(`${host}/${fam === 4 ? 32 : 128}`);
}

const LOOPBACK = [rangeOf('127.0.0.0/8')!, rangeOf('::1/128')!];

/** Why this node refuses the group, or undefined when it may hold it (every reason, joined). */
export function refusal(cfg: AllowlistConfig, spec: Spec, defaultInterface: string): string | undefined {
  const why = [...vipProblems(cfg, spec.vips, defaultInterface), ...otherProblems(cfg, spec)];
  return why.length > 0 ? why.join('; ') : undefined;
}

/** The VIP part alone (also applied to an assignment's VIPs, which is what the agent actually adds). */
export function vipProblems(
  cfg: AllowlistConfig,
  vips: ReadonlyArray<{ address: string; interface?: string | undefined }>,
  defaultInterface: string,
): string[] {
  const ranges = (cfg.vipRanges ?? []).flatMap((r) => {
    const o = typeof r === 'string' ? { cidr: r } : r;
    const range = rangeOf(o.cidr);
    return range ? [{ range, text: o.cidr, interfaces: o.interfaces }] : [];
  });
  if (ranges.length === 0) return ['no vipRanges in the agent configuration: this node holds no VIPs'];
  const out: string[] = [];
  vips.forEach((v, i) => {
    const r = rangeOf(v.address);
    const iface = v.interface ?? defaultInterface;
    if (!r) return void out.push(`vips[${i}]: ${v.address} is not a CIDR`);
    const fits = ranges.filter((x) => inside(r, x.range));
    if (fits.length === 0) return void out.push(`vips[${i}]: ${v.address} is outside this node's vipRanges`);
    if (!fits.some((x) => x.interfaces === undefined || x.interfaces.includes(iface)))
      out.push(
        `vips[${i}]: ${v.address} may not go on interface ${iface} (allowed: ${[
          ...new Set(fits.flatMap((x) => x.interfaces ?? [])),
        ].join(', ')})`,
      );
  });
  return out;
}

function otherProblems(cfg: AllowlistConfig, spec: Spec): string[] {
  const out: string[] = [];
  const snat = cfg.allow.snatDestinations.map(rangeOf).filter((r): r is Range => r !== undefined);
  spec.snat.forEach((s, i) => {
    const r = rangeOf(s.destination);
    if (!r || !snat.some((x) => inside(r, x)))
      out.push(`snat[${i}]: destination ${s.destination} is not in this node's allow.snatDestinations`);
  });
  const targets = cfg.allow.checkTargets;
  const targetRanges = targets.map(rangeOf).filter((r): r is Range => r !== undefined);
  const hostAllowed = (host: string): boolean => {
    const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
    if (h === 'localhost') return true;
    const r = hostRange(h);
    if (!r) return targets.includes(h);
    return [...LOOPBACK, ...targetRanges].some((x) => inside(r, x));
  };
  spec.checks.forEach((c, i) => {
    const host = c.http?.host ?? c.tcp?.host ?? (c.mysql && c.mysql.socket === undefined ? c.mysql.host : undefined);
    if (host !== undefined && !hostAllowed(host))
      out.push(`checks[${i}] (${c.name}): target ${host} is not local and not in this node's allow.checkTargets`);
  });
  if (spec.cloud && !cfg.allow.floatingIps.includes(spec.cloud.floatingIp))
    out.push(`cloud: floating IP ${spec.cloud.floatingIp} is not in this node's allow.floatingIps`);
  return out;
}

/** The line the agent logs at start: what it may hold, or why it holds nothing. */
export function describeAllowlist(cfg: AllowlistConfig): { held: boolean; message: string } {
  const n = cfg.vipRanges?.length ?? 0;
  if (n === 0)
    return {
      held: false,
      message: 'no vipRanges in the agent configuration: this node holds no VIPs (list the ranges it may hold)',
    };
  const ranges = (cfg.vipRanges ?? []).map((r) =>
    typeof r === 'string' ? r : `${r.cidr}${r.interfaces ? ` on ${r.interfaces.join(',')}` : ''}`,
  );
  return { held: true, message: `may hold VIPs in ${ranges.join(', ')}` };
}
