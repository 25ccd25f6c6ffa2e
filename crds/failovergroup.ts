// The FailoverGroup API (vipwarden.io/v1alpha1): the one source of truth.
// The controller, the directory source, the CLI and the CRD generator all parse through `parseFailoverGroup`.
// The field types are in fields.ts, the health checks in checks.ts, the cloud part in cloud.ts and the LVS part in
// virtualserver.ts; this file composes the spec and the status and re-exports what others import from here.
import { z } from 'zod';
import { issuesOf, ValidationError } from '../common/validation.js';
import { isResourceName, parseCidr } from '../common/ip.js';
import { refineVirtualServers, VirtualServers } from './virtualserver.js';
import { CidrString, flagDuplicateNames, flagDuplicates, InterfaceName, LocalName, ms, Port } from './fields.js';
import { HealthCheck } from './checks.js';
import { CloudSpec } from './cloud.js';

export { CidrString, LocalName } from './fields.js';
export { CheckTypes, HealthCheck } from './checks.js';
export { CloudProviders, CloudSpec } from './cloud.js';

export const API_GROUP = 'vipwarden.io';
export const API_VERSION = 'v1alpha1';
export const KIND = 'FailoverGroup';
export const PLURAL = 'failovergroups';

export const Vip = z
  .object({
    address: CidrString.describe('The virtual address with its prefix length, e.g. 198.18.0.100/24 or 2001:2::100/64.'),
    interface: InterfaceName.optional().describe("Interface to add it to; the agent's default interface when absent."),
  })
  .strict()
  .describe('One virtual IP address.');

export const CandidateNode = z
  .object({
    name: z
      .string()
      .min(1)
      .max(253)
      .refine(isResourceName, 'must be a DNS-1123 name (lower case letters, digits, - and .)')
      .describe('Node name, as the agent on that machine calls itself.'),
    priority: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .default(100)
      .describe('Higher wins (0..1000). Ties break by a stable hash.'),
  })
  .strict();

export const SnatRule = z
  .object({
    destination: CidrString.describe('Traffic to this network leaves with the VIP as its source address.'),
    protocol: z.enum(['all', 'tcp', 'udp']).default('all'),
    ports: z.array(Port).max(15).optional().describe('Destination ports (tcp or udp only).'),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.ports && r.ports.length > 0 && r.protocol === 'all')
      ctx.addIssue({ code: 'custom', path: ['ports'], message: 'ports need protocol tcp or udp' });
  });

export const AnnounceSpec = z
  .object({
    burst: z.number().int().min(1).max(20).default(3).describe('Gratuitous ARP / unsolicited NA packets sent at once.'),
    repeatIntervalMs: ms('Time between repeats after the burst', 100, 60_000, 1000),
    repeatForMs: ms('How long to keep repeating', 0, 600_000, 3000),
  })
  .strict();

export const FailoverGroupSpec = z
  .object({
    vips: z.array(Vip).min(1).max(16).describe('Addresses that move together.'),
    nodes: z.array(CandidateNode).min(1).max(64).describe('Nodes that may hold the addresses, with their priorities.'),
    checks: z.array(HealthCheck).max(16).default([]).describe('Health checks run by the agent on each candidate node.'),
    failback: z
      .enum(['auto', 'manual'])
      .default('auto')
      .describe(
        'auto: the preferred healthy node takes the VIPs back. manual: the VIPs stay where they are while the holder is healthy.',
      ),
    arbiterLoss: z
      .enum(['failsafe', 'release'])
      .optional()
      .describe(
        'When etcd cannot be reached. failsafe (the default): the holder keeps the VIPs while every other node promises, over the LAN, that it cannot reach etcd and will not take them (docs/design.md, Failsafe). release: the VIPs go at the lease deadline.',
      ),
    snat: z
      .array(SnatRule)
      .max(32)
      .default([])
      .describe('Outgoing traffic to these destinations leaves from the first VIP of its family.'),
    hooks: z
      .array(LocalName)
      .max(8)
      .default([])
      .describe("Hooks, by name, from the agent's local configuration, run on acquire and release."),
    cloud: CloudSpec.optional(),
    announce: AnnounceSpec.optional(),
    virtualServers: VirtualServers,
  })
  .strict()
  .superRefine((s, ctx) => {
    refineVirtualServers(s, ctx);
    flagDuplicateNames(ctx, s.nodes, 'nodes', 'node');
    flagDuplicates(
      ctx,
      s.vips,
      (v) => {
        const c = parseCidr(v.address);
        return typeof c === 'string' ? undefined : c.address;
      },
      (i) => ['vips', i, 'address'],
      (address, j) => `duplicate VIP ${address} (also vips[${j}])`,
    );
    const families = new Set(
      s.vips.map((v) => parseCidr(v.address)).flatMap((c) => (typeof c === 'string' ? [] : [c.family])),
    );
    s.snat.forEach((r, i) => {
      const c = parseCidr(r.destination);
      if (typeof c !== 'string' && !families.has(c.family))
        ctx.addIssue({
          code: 'custom',
          path: ['snat', i, 'destination'],
          message: `an IPv${c.family} destination needs an IPv${c.family} VIP to use as the source`,
        });
    });
    flagDuplicates(
      ctx,
      s.hooks,
      (h) => h,
      (i) => ['hooks', i],
      (h, j) => `duplicate hook "${h}" (also hooks[${j}])`,
    );
    flagDuplicateNames(ctx, s.checks, 'checks', 'check');
  });

export const Condition = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().int().optional(),
});

export const Phases = ['Pending', 'Active', 'Degraded', 'NoHealthyNode', 'Invalid'] as const;

export const FailoverGroupStatus = z
  .object({
    phase: z.enum(Phases).optional(),
    holder: z.string().optional(),
    epoch: z.number().int().optional().describe('etcd revision of the current assignment; it only grows.'),
    vips: z.array(z.string()).optional(),
    observedGeneration: z.number().int().optional(),
    nodes: z
      .array(
        z.object({
          name: z.string(),
          live: z.boolean(),
          healthy: z.boolean(),
          priority: z.number().int().optional(),
          checks: z.array(z.object({ name: z.string(), ok: z.boolean(), message: z.string().optional() })).optional(),
        }),
      )
      .optional(),
    lastTransition: z
      .object({
        from: z.string().optional(),
        to: z.string().optional(),
        reason: z.string(),
        time: z.string(),
        durationMs: z.number().optional(),
      })
      .optional(),
    conditions: z.array(Condition).optional(),
  })
  .describe('Written by the controller.');

export const Metadata = z
  .object({
    name: z
      .string()
      .min(1)
      .max(253)
      .refine(isResourceName, 'must be a DNS-1123 name (lower case letters, digits, - and .)'),
    generation: z.number().int().optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    creationTimestamp: z.union([z.string(), z.date()]).optional(),
    deletionTimestamp: z.union([z.string(), z.date()]).optional(),
    finalizers: z.array(z.string()).optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .loose();

export const FailoverGroupResource = z.object({
  apiVersion: z.literal(`${API_GROUP}/${API_VERSION}`),
  kind: z.literal(KIND),
  metadata: Metadata,
  spec: FailoverGroupSpec,
  status: FailoverGroupStatus.optional(),
});

export type FailoverGroupSpecInput = z.input<typeof FailoverGroupSpec>;
export type Spec = z.output<typeof FailoverGroupSpec>;
export type ArbiterLoss = NonNullable<Spec['arbiterLoss']>;

/** spec.arbiterLoss with its default applied (absent means failsafe; kept absent so that older specs hash alike). */
export function arbiterLossOf(spec: Pick<Spec, 'arbiterLoss'>): ArbiterLoss {
  return spec.arbiterLoss ?? 'failsafe';
}
export type HealthCheckSpec = z.output<typeof HealthCheck>;
export type SnatRuleSpec = z.output<typeof SnatRule>;
export type Status = z.output<typeof FailoverGroupStatus>;
export type Phase = (typeof Phases)[number];

/** The internal model of one group, after validation and defaulting. */
export interface FailoverGroup {
  name: string;
  generation?: number;
  spec: Spec;
}

export { formatPath, issuesOf, ValidationError, type ValidationIssue } from '../common/validation.js';

export type ParseResult = { ok: true; group: FailoverGroup } | { ok: false; error: ValidationError };

/** One parse from a FailoverGroup document (as applied with kubectl or dropped in a directory) to the model. */
export function parseFailoverGroup(doc: unknown, source = 'FailoverGroup'): ParseResult {
  const r = FailoverGroupResource.safeParse(doc);
  if (!r.success) {
    const name = (doc as { metadata?: { name?: unknown } } | null)?.metadata?.name;
    const label = typeof name === 'string' ? `${source} ${name}` : source;
    return { ok: false, error: new ValidationError(label, issuesOf(r.error)) };
  }
  return { ok: true, group: { name: r.data.metadata.name, generation: r.data.metadata.generation, spec: r.data.spec } };
}

/** The candidate node entry for `node`, if the group names it. */
export function candidate(group: FailoverGroup, node: string) {
  return group.spec.nodes.find((n) => n.name === node);
}
