// LVS virtual services on a FailoverGroup's VIPs (issue 11): the holder is the director and programs IPVS from
// these; every candidate runs the real-server checks. Kept apart from failovergroup.ts so that the LVS part of the
// API is one file; failovergroup.ts adds the field and calls `refineVirtualServers` from its superRefine.
// This file must not import failovergroup.ts (it is imported by it); the shared field types are in fields.ts.
import { isIP } from 'node:net';
import { z } from 'zod';
import { canonicalIPv6, parseCidr } from '../common/ip.js';
import type { CelRule, FieldExtras } from './openapi.js';
import { httpAnswerFields, ms as msField, Port } from './fields.js';

/** An IPv4 or IPv6 address without a prefix length, as written (IPv6 is compared canonically). */
const IpAddress = z
  .string()
  .min(2)
  .max(45)
  .refine((v) => isIP(v) !== 0, 'must be an IPv4 or IPv6 address without a prefix length, like 198.18.1.11');

const VsName = z
  .string()
  .min(1)
  .max(32)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lower-case name (letters, digits and -), at most 32 long');

export const Schedulers = ['rr', 'wrr', 'lc', 'wlc', 'sh', 'mh'] as const;
export const Forwardings = ['nat', 'dr', 'tunnel'] as const;
export const RealServerCheckTypes = ['http', 'tcp', 'mysql'] as const;

export const RealServer = z
  .object({
    address: IpAddress.describe('The real server, in the VIP family; it must be allowed by each director node.'),
    port: Port.optional().describe(
      'Port on the real server; the virtual port when absent. DR and tunnel forward to the virtual port only.',
    ),
    weight: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(1)
      .describe('Share of new connections (wrr, wlc, mh ...); 0 takes no new connections.'),
  })
  .strict()
  .describe('One real server behind the virtual service.');

export const RealServerCheck = z
  .object({
    type: z.enum(RealServerCheckTypes),
    intervalMs: msField('Time between two runs against each real server', 100, 3_600_000, 2000),
    timeoutMs: msField('How long one run may take', 50, 600_000, 1000),
    rise: z.number().int().min(1).max(100).default(2).describe('Successes in a row before a failed server is back.'),
    fall: z.number().int().min(1).max(100).default(2).describe('Failures in a row before a server is taken out.'),
    port: Port.optional().describe("Port to check; the real server's port when absent."),
    http: z
      .object({
        path: z.string().startsWith('/').max(1024).default('/'),
        ...httpAnswerFields,
      })
      .strict()
      .optional()
      .describe('An HTTP(S) GET (type http).'),
    mysql: z
      .object({
        credentials: z
          .string()
          .min(1)
          .max(63)
          .regex(/^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$/)
          .optional()
          .describe("Name of a credentials file in the agent's local configuration; never a password here."),
      })
      .strict()
      .optional()
      .describe('Connect and SELECT 1 (type mysql).'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.timeoutMs > c.intervalMs)
      ctx.addIssue({ code: 'custom', path: ['timeoutMs'], message: 'must not exceed intervalMs' });
    if (c.type !== 'http' && c.http) ctx.addIssue({ code: 'custom', path: ['http'], message: 'only for type http' });
    if (c.type !== 'mysql' && c.mysql)
      ctx.addIssue({ code: 'custom', path: ['mysql'], message: 'only for type mysql' });
  })
  .describe('The check every director runs against each real server (keepalived HTTP_GET / TCP_CHECK, ldirectord).');

export const SorryServer = z
  .object({
    address: IpAddress.describe('Answers while no real server is up (keepalived sorry_server, ldirectord fallback).'),
    port: Port.optional().describe('The virtual port when absent.'),
  })
  .strict();

export const VirtualServer = z
  .object({
    name: VsName.describe('Unique within the group; names the service in metrics and status.'),
    vip: IpAddress.optional().describe('One of the group VIP addresses (without prefix); the first VIP when absent.'),
    protocol: z.enum(['tcp', 'udp']).default('tcp'),
    port: Port.describe('The virtual port on the VIP.'),
    scheduler: z
      .enum(Schedulers)
      .default('wlc')
      .describe('IPVS scheduler: rr, wrr, lc, wlc (default), sh (source hash), mh (Maglev hash).'),
    persistenceSeconds: z
      .number()
      .int()
      .min(1)
      .max(2_678_400)
      .optional()
      .describe('Keeps a client on one real server for this long after its last connection (ipvsadm -p).'),
    forwarding: z
      .enum(Forwardings)
      .default('nat')
      .describe(
        'nat (masquerading: replies must route back through the director), dr (direct routing: real servers hold ' +
          'the VIP on lo, see `vipwarden realserver`), tunnel (IP-in-IP).',
      ),
    realServers: z.array(RealServer).min(1).max(64).describe('The real servers.'),
    check: RealServerCheck.optional(),
    onFailure: z
      .enum(['quiesce', 'remove'])
      .default('quiesce')
      .describe(
        'quiesce: a failed real server keeps its entry at weight 0 (no new connections, established ones go on); ' +
          'remove: its entry is deleted.',
      ),
    sorryServer: SorryServer.optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (
      (v.forwarding === 'dr' || v.forwarding === 'tunnel') &&
      v.sorryServer?.port !== undefined &&
      v.sorryServer.port !== v.port
    )
      ctx.addIssue({
        code: 'custom',
        path: ['sorryServer', 'port'],
        message: `${v.forwarding} forwards to the virtual port (${v.port}); the port cannot be changed`,
      });
    const family = isIP(v.vip ?? '') || undefined;
    const seen = new Map<string, number>();
    v.realServers.forEach((r, i) => {
      if ((v.forwarding === 'dr' || v.forwarding === 'tunnel') && r.port !== undefined && r.port !== v.port)
        ctx.addIssue({
          code: 'custom',
          path: ['realServers', i, 'port'],
          message: `${v.forwarding} forwards to the virtual port (${v.port}); the port cannot be changed`,
        });
      if (family !== undefined && isIP(r.address) !== 0 && isIP(r.address) !== family)
        ctx.addIssue({
          code: 'custom',
          path: ['realServers', i, 'address'],
          message: `an IPv${isIP(r.address)} real server behind an IPv${family} virtual service`,
        });
      const key = `${canonical(r.address)}:${r.port ?? v.port}`;
      const j = seen.get(key);
      if (j !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['realServers', i],
          message: `duplicate real server ${key} (also realServers[${j}])`,
        });
      else seen.set(key, i);
    });
  })
  .describe('An IPVS virtual service on one of the VIPs, balanced by whichever node holds the group.');

export type VirtualServerSpec = z.output<typeof VirtualServer>;
export type RealServerSpec = z.output<typeof RealServer>;
export type RealServerCheckSpec = z.output<typeof RealServerCheck>;

/** The field failovergroup.ts adds to the spec. Optional rather than defaulted: a spec without virtual services
 *  parses to the same value as before, so agents that predate this field keep accepting what the controller
 *  publishes. */
export const VirtualServers = z
  .array(VirtualServer)
  .max(64)
  .optional()
  .describe('LVS virtual services on the VIPs: the holder balances them over real servers (docs/lvs.md).');

export function canonical(address: string): string {
  return isIP(address) === 6 ? canonicalIPv6(address) : address;
}

/** The VIP address (canonical) a virtual service sits on: its `vip`, else the group's first VIP. */
export function vipOf(vs: Pick<VirtualServerSpec, 'vip'>, vips: readonly { address: string }[]): string | undefined {
  if (vs.vip !== undefined) return canonical(vs.vip);
  const c = vips[0] && parseCidr(vips[0].address);
  return c && typeof c !== 'string' ? canonical(c.address) : undefined;
}

type Ctx = z.RefinementCtx;

/** Cross-field rules between the virtual services and the rest of the spec (called from FailoverGroupSpec). */
export function refineVirtualServers(
  s: { vips: readonly { address: string }[]; virtualServers?: readonly VirtualServerSpec[] },
  ctx: Ctx,
): void {
  const vipFamilies = new Map<string, number>();
  for (const v of s.vips) {
    const c = parseCidr(v.address);
    if (typeof c !== 'string') vipFamilies.set(canonical(c.address), c.family);
  }
  const names = new Map<string, number>();
  const services = new Map<string, number>();
  (s.virtualServers ?? []).forEach((vs, i) => {
    const j = names.get(vs.name);
    if (j !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['virtualServers', i, 'name'],
        message: `duplicate virtual server name "${vs.name}" (also virtualServers[${j}])`,
      });
    else names.set(vs.name, i);
    const vip = vipOf(vs, s.vips);
    if (vs.vip !== undefined && !vipFamilies.has(canonical(vs.vip))) {
      ctx.addIssue({
        code: 'custom',
        path: ['virtualServers', i, 'vip'],
        message: `${vs.vip} is not one of the group's VIP addresses`,
      });
      return;
    }
    if (vip === undefined) return;
    const family = vipFamilies.get(vip);
    vs.realServers.forEach((r, k) => {
      if (vs.vip === undefined && family !== undefined && isIP(r.address) !== family)
        ctx.addIssue({
          code: 'custom',
          path: ['virtualServers', i, 'realServers', k, 'address'],
          message: `an IPv${isIP(r.address)} real server behind the IPv${family} VIP ${vip}`,
        });
    });
    const key = `${vs.protocol}:${vip}:${vs.port}`;
    const m = services.get(key);
    if (m !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['virtualServers', i, 'port'],
        message: `${vs.protocol} ${vip} port ${vs.port} is already virtualServers[${m}]`,
      });
    else services.set(key, i);
  });
}

// ---- The CRD side: what zod cannot say (merged into OPENAPI_EXTRAS by crds/openapi.ts). ----

const IP_RULE: CelRule = { rule: 'isIP(self)', messageExpression: "'must be an IPv4 or IPv6 address; got ' + self" };

export const LVS_OPENAPI_EXTRAS: Record<string, FieldExtras> = {
  spec: {
    rules: [
      // refineVirtualServers: vip names one of the group's VIP addresses.
      {
        rule: '!has(self.virtualServers) || self.virtualServers.all(s, !has(s.vip) || !isIP(s.vip) || self.vips.exists(v, isCIDR(v.address) && cidr(v.address).ip() == ip(s.vip)))',
        message: "a virtual server's vip must be one of the group's VIP addresses",
        fieldPath: '.virtualServers',
      },
    ],
  },
  'spec.virtualServers': {
    rules: [
      // refineVirtualServers: duplicate name.
      { rule: 'self.all(v, self.exists_one(w, w.name == v.name))', message: 'virtual server names must be unique' },
    ],
  },
  'spec.virtualServers[]': {
    rules: [
      // VirtualServer.superRefine: dr and tunnel forward to the virtual port.
      {
        rule: "self.forwarding == 'nat' || self.realServers.all(r, !has(r.port) || r.port == self.port)",
        message: 'dr and tunnel forward to the virtual port: a real server port cannot differ',
        fieldPath: '.realServers',
      },
      {
        rule: "self.forwarding == 'nat' || !has(self.sorryServer) || !has(self.sorryServer.port) || self.sorryServer.port == self.port",
        message: 'dr and tunnel forward to the virtual port: the sorry server port cannot differ',
        fieldPath: '.sorryServer.port',
      },
      // VirtualServer.superRefine: duplicate real server.
      {
        rule: 'self.realServers.all(r, self.realServers.exists_one(q, q.address == r.address && (has(q.port) ? q.port : self.port) == (has(r.port) ? r.port : self.port)))',
        message: 'real servers (address and port) must be unique',
        fieldPath: '.realServers',
      },
    ],
  },
  'spec.virtualServers[].vip': { rules: [IP_RULE] },
  'spec.virtualServers[].realServers[].address': { rules: [IP_RULE] },
  'spec.virtualServers[].sorryServer.address': { rules: [IP_RULE] },
  'spec.virtualServers[].protocol': { description: 'tcp or udp.' },
  'spec.virtualServers[].sorryServer': {
    description: 'A server that takes the traffic while every real server is down.',
  },
  'spec.virtualServers[].check': {
    rules: [
      // RealServerCheck.superRefine.
      {
        rule: 'self.timeoutMs <= self.intervalMs',
        message: 'timeoutMs must not exceed intervalMs',
        fieldPath: '.timeoutMs',
      },
      { rule: "self.type == 'http' || !has(self.http)", message: 'http is only for type http', fieldPath: '.http' },
      {
        rule: "self.type == 'mysql' || !has(self.mysql)",
        message: 'mysql is only for type mysql',
        fieldPath: '.mysql',
      },
    ],
  },
};
