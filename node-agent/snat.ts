// SNAT: outgoing traffic to the group's `spec.snat` destinations leaves with the VIP as its source address.
// Rules live in vipwarden's own nat chain VIPWARDEN-SNAT (jumped to from the top of POSTROUTING), one rule per
// destination, each commented "vipwarden:<group>". Reconciled from what iptables lists, so every step is safe to
// repeat; removed on release, and at start for groups this process does not hold.
import type { Exec } from '../common/exec.js';
import { canonicalIPv6, ipv6Groups, mustParseCidr, isResourceName, type Family } from '../common/ip.js';
import type { Logger } from '../common/log.js';
import type { SnatRuleSpec } from '../crds/failovergroup.js';
import type { VipRef } from './addresses.js';
import type { GroupResource, ResourceContext } from './resources.js';

export const SNAT_CHAIN = 'VIPWARDEN-SNAT';
const COMMENT_PREFIX = 'vipwarden:';

export interface SnatRule {
  family: Family;
  group: string;
  /** Network address and prefix, as iptables prints it (host bits cleared, IPv6 compressed). */
  destination: string;
  protocol: 'all' | 'tcp' | 'udp';
  /** Sorted, unique. */
  ports: number[];
  toSource: string;
}

/** A rule as listed by `iptables -S`, with the tokens that delete it exactly. */
export interface ListedRule {
  /** undefined: a rule in our chain without our comment (someone else's, or hand-made). */
  group: string | undefined;
  /** undefined when the rule has options vipwarden never writes: it can only be deleted, never matched. */
  key: string | undefined;
  /** Everything after "-A VIPWARDEN-SNAT". */
  spec: string[];
}

export interface NatTable {
  hasChain: boolean;
  hasJump: boolean;
  rules: ListedRule[];
}

export type SnatStep =
  | { type: 'create-chain'; family: Family }
  | { type: 'insert-jump'; family: Family }
  | { type: 'delete'; family: Family; spec: string[] }
  | { type: 'append'; family: Family; spec: string[] };

/** Clears the host bits: iptables stores (and lists) the network, not the address written. */
export function networkOf(cidr: string): string {
  const c = mustParseCidr(cidr);
  if (c.family === 4) {
    const n = c.address.split('.').reduce((acc, o) => (acc << 8) | Number(o), 0) >>> 0;
    const mask = c.prefix === 0 ? 0 : (~0 << (32 - c.prefix)) >>> 0;
    const net = (n & mask) >>> 0;
    return `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.')}/${c.prefix}`;
  }
  const groups = ipv6Groups(c.address);
  let bits = c.prefix;
  const masked = groups.map((g) => {
    const keep = Math.max(0, Math.min(16, bits));
    bits -= 16;
    return keep === 0 ? 0 : g & ((0xffff << (16 - keep)) & 0xffff);
  });
  return `${canonicalIPv6(masked.map((g) => g.toString(16)).join(':'))}/${c.prefix}`;
}

export function ruleKey(r: Pick<SnatRule, 'destination' | 'protocol' | 'ports' | 'toSource'>): string {
  return `${r.destination}|${r.protocol}|${r.ports.join(',')}|${r.toSource}`;
}

/** The group's rules: each destination leaves from the first VIP of its family (pure). */
export function desiredRules(group: string, snat: readonly SnatRuleSpec[], vips: readonly VipRef[]): SnatRule[] {
  if (!isResourceName(group)) throw new Error(`invalid group name ${JSON.stringify(group)}`);
  return snat.map((s) => {
    const destination = networkOf(s.destination);
    const family = mustParseCidr(s.destination).family;
    const vip = vips.find((v) => v.family === family);
    if (!vip) throw new Error(`SNAT to ${s.destination} needs an IPv${family} VIP`);
    const ports = [...new Set(s.ports ?? [])].sort((a, b) => a - b);
    for (const p of ports) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`invalid port ${p}`);
    if (ports.length > 0 && s.protocol === 'all') throw new Error('ports need protocol tcp or udp');
    return { family, group, destination, protocol: s.protocol, ports, toSource: vip.address };
  });
}

/** The rule spec vipwarden writes, in the order iptables lists it. */
export function ruleSpec(r: SnatRule): string[] {
  return [
    '-d',
    r.destination,
    ...(r.protocol !== 'all' ? ['-p', r.protocol] : []),
    ...(r.ports.length > 0 ? ['-m', 'multiport', '--dports', r.ports.join(',')] : []),
    '-m',
    'comment',
    '--comment',
    `${COMMENT_PREFIX}${r.group}`,
    '-j',
    'SNAT',
    '--to-source',
    r.toSource,
  ];
}

/** Splits one `iptables -S` line into arguments (double quotes with backslash escapes, as iptables prints). */
export function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '\\' && i + 1 < line.length) cur += line[++i];
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') {
      quoted = true;
      inToken = true;
    } else if (ch === ' ' || ch === '\t') {
      if (inToken) out.push(cur);
      cur = '';
      inToken = false;
    } else {
      cur += ch;
      inToken = true;
    }
  }
  if (quoted) throw new Error(`unterminated quote in iptables output: ${line}`);
  if (inToken) out.push(cur);
  return out;
}

/** Reads our chain, its jump, and our rules out of `iptables -t nat -S` (pure). */
export function parseNatTable(text: string): NatTable {
  const t: NatTable = { hasChain: false, hasJump: false, rules: [] };
  for (const line of text.split('\n')) {
    const a = splitRuleLine(line.trim());
    if (a[0] === '-N' && a[1] === SNAT_CHAIN && a.length === 2) t.hasChain = true;
    else if (a[0] === '-A' && a[1] === 'POSTROUTING' && a.length === 4 && a[2] === '-j' && a[3] === SNAT_CHAIN)
      t.hasJump = true;
    else if (a[0] === '-A' && a[1] === SNAT_CHAIN) t.rules.push(listedRule(a.slice(2)));
  }
  return t;
}

function listedRule(spec: string[]): ListedRule {
  const r: {
    destination?: string;
    protocol: SnatRule['protocol'];
    ports: number[];
    toSource?: string;
    group?: string;
  } = { protocol: 'all', ports: [] };
  let known = true;
  for (let i = 0; i < spec.length; i++) {
    const opt = spec[i];
    const val = spec[i + 1];
    const takes = val !== undefined;
    if (opt === '-d' && takes) r.destination = val;
    else if (opt === '-p' && (val === 'tcp' || val === 'udp')) r.protocol = val;
    else if (opt === '-m' && (val === 'multiport' || val === 'comment')) {
      /* the match itself says nothing */
    } else if (opt === '--dports' && takes)
      r.ports = val
        .split(',')
        .map(Number)
        .sort((a, b) => a - b);
    else if (opt === '--comment' && takes) {
      if (val.startsWith(COMMENT_PREFIX)) r.group = val.slice(COMMENT_PREFIX.length);
    } else if (opt === '-j' && val === 'SNAT') {
      /* our target */
    } else if (opt === '--to-source' && takes) r.toSource = val;
    else {
      known = false;
      continue;
    }
    i++; // the option's value
  }
  const key =
    known && r.destination && r.toSource
      ? ruleKey({ destination: r.destination, protocol: r.protocol, ports: r.ports, toSource: r.toSource })
      : undefined;
  return { group: r.group, key, spec };
}

/**
 * Steps that make one family's table hold exactly `desired` for `group` (pure). Rules of other groups are left
 * alone; `keepGroups` (cleanup at start) instead removes every rule of a group not in the set.
 */
export function planSnat(
  family: Family,
  table: NatTable,
  want: { group: string; rules: readonly SnatRule[] } | { keepGroups: ReadonlySet<string> },
): SnatStep[] {
  const steps: SnatStep[] = [];
  if ('keepGroups' in want) {
    for (const r of table.rules)
      if (r.group === undefined || !want.keepGroups.has(r.group)) steps.push({ type: 'delete', family, spec: r.spec });
    return steps;
  }
  const desired = want.rules.filter((r) => r.family === family);
  const wanted = new Set(desired.map(ruleKey));
  const present = new Set<string>();
  for (const r of table.rules) {
    if (r.group !== want.group) continue;
    if (r.key !== undefined && wanted.has(r.key) && !present.has(r.key)) present.add(r.key);
    else steps.push({ type: 'delete', family, spec: r.spec });
  }
  const missing = desired.filter((r) => !present.has(ruleKey(r)));
  if (missing.length > 0) {
    if (!table.hasChain) steps.push({ type: 'create-chain', family });
    if (!table.hasJump) steps.push({ type: 'insert-jump', family });
  }
  for (const r of missing) steps.push({ type: 'append', family, spec: ruleSpec(r) });
  return steps;
}

export function stepArgv(s: SnatStep): string[] {
  const bin = s.family === 6 ? 'ip6tables' : 'iptables';
  const base = [bin, '-w', '5', '-t', 'nat'];
  switch (s.type) {
    case 'create-chain':
      return [...base, '-N', SNAT_CHAIN];
    case 'insert-jump':
      // At the top, so that a broader MASQUERADE rule (Docker, libvirt) does not decide first.
      return [...base, '-I', 'POSTROUTING', '1', '-j', SNAT_CHAIN];
    case 'delete':
      return [...base, '-D', SNAT_CHAIN, ...s.spec];
    case 'append':
      return [...base, '-A', SNAT_CHAIN, ...s.spec];
  }
}

export class SnatResource implements GroupResource {
  readonly name = 'snat';
  private queue: Promise<unknown> = Promise.resolve();
  /** Groups that may have rules installed (by this process; stale ones are removed at start). */
  private readonly installed = new Set<string>();

  constructor(private readonly exec: Exec) {}

  async acquire(ctx: ResourceContext): Promise<void> {
    const snat = ctx.spec?.snat ?? [];
    const rules = desiredRules(ctx.group, snat, ctx.vips);
    // Most groups have no SNAT: then there is nothing to list or change on the failover path.
    if (rules.length === 0 && !this.installed.has(ctx.group)) return;
    await this.serial(async () => {
      this.installed.add(ctx.group);
      for (const family of [4, 6] as const) {
        if (!rules.some((r) => r.family === family) && !(await this.hasRulesOf(family, ctx.group))) continue;
        const steps = planSnat(family, await this.list(family), { group: ctx.group, rules });
        await this.run(steps, ctx.log);
      }
      if (rules.length === 0) this.installed.delete(ctx.group);
    });
  }

  async release(ctx: ResourceContext): Promise<void> {
    if (!this.installed.has(ctx.group)) return;
    await this.serial(async () => {
      for (const family of [4, 6] as const) {
        const table = await this.list(family).catch(() => undefined);
        if (!table) continue;
        await this.run(planSnat(family, table, { group: ctx.group, rules: [] }), ctx.log);
      }
      this.installed.delete(ctx.group);
    });
  }

  async cleanupStale(keep: ReadonlySet<string>, log: Logger): Promise<void> {
    await this.serial(async () => {
      for (const family of [4, 6] as const) {
        const table = await this.list(family).catch(() => undefined);
        if (!table) continue;
        const steps = planSnat(family, table, { keepGroups: keep });
        if (steps.length > 0)
          log.info({ family, rules: steps.length }, 'removing SNAT rules left over from an earlier run');
        await this.run(steps, log);
      }
    });
  }

  private async hasRulesOf(family: Family, group: string): Promise<boolean> {
    const t = await this.list(family).catch(() => undefined);
    return t?.rules.some((r) => r.group === group) ?? false;
  }

  private async list(family: Family): Promise<NatTable> {
    const r = await this.exec([family === 6 ? 'ip6tables' : 'iptables', '-w', '5', '-t', 'nat', '-S'], {
      timeoutMs: 10_000,
    });
    return parseNatTable(r.stdout);
  }

  private async run(steps: readonly SnatStep[], log: Logger): Promise<void> {
    for (const s of steps) {
      const argv = stepArgv(s);
      try {
        await this.exec(argv, { timeoutMs: 10_000 });
      } catch (err) {
        // Another agent run may have created the chain or jump in between; anything else is a real failure.
        if (s.type === 'create-chain' && /already exists/i.test(String(err))) continue;
        throw err;
      }
      log.debug({ argv }, 'snat');
    }
    if (steps.length > 0)
      log.info(
        {
          changes: steps.map(
            (s) => `${s.type}${s.type === 'append' || s.type === 'delete' ? ` ${s.spec.join(' ')}` : ''}`,
          ),
        },
        'SNAT rules changed',
      );
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
