// The agent's own local configuration (agent.yaml). Commands, hooks and credentials are named here and only
// here: a FailoverGroup may refer to them by name, never define them (DESIGN.md, "Health checks").
import { z } from 'zod';
import { isInterfaceName, isResourceName } from '../common/ip.js';
import { readYamlFile } from '../common/config-file.js';
import { EtcdConfigSchema } from '../common/etcd-config.js';
import { defaultFenceWindowMs, fenceTimingProblem } from '../common/fence.js';
import { failsafeTiming } from './failsafe/rules.js';
import { LEASE_CONFIG_DEFAULT, leaseConfigFields } from '../common/lease-config.js';
import { parseOrThrow } from '../common/validation.js';
import { LocalName } from '../crds/failovergroup.js';
import { allowlistFields } from './allowlist.js';
import { PeerConfigSchema } from './peer/config.js';

const Argv = z
  .array(z.string().min(1))
  .min(1)
  .refine((a) => a.length === 0 || a[0]!.startsWith('/'), 'the command must be an absolute path'); // min(1) names the empty one

/** How often an agent whose fence runs puts its heartbeat by default (agent.yaml `fence.heartbeatMs`). */
export const DEFAULT_HEARTBEAT_MS = 50;

export const AgentConfigSchema = z
  .object({
    node: z.string().refine(isResourceName, 'must be a DNS-1123 name'),
    etcd: EtcdConfigSchema,
    interface: z.string().refine(isInterfaceName, 'must be an interface name').default('eth0'),
    /** What a FailoverGroup may claim on this node (node-agent/allowlist.ts): vipRanges and allow. */
    ...allowlistFields,
    lease: z
      .object({ ...leaseConfigFields, renewWindowMs: z.number().int().min(20).max(5_000).optional() })
      .strict()
      .default({ ...LEASE_CONFIG_DEFAULT }),
    /** How long to wait, on SIGTERM, for the controller to move released groups before revoking the lease. */
    shutdownGraceMs: z.number().int().min(0).max(30_000).default(1500),
    metrics: z
      .object({ listen: z.string().default('127.0.0.1:9641') })
      .strict()
      .optional(),
    /** The failsafe peer channel (node-agent/peer/): where to listen, and the shared key file. Absent: none. */
    peer: PeerConfigSchema.optional(),
    stateDir: z.string().startsWith('/').default('/run/vipwarden'),
    /**
     * The fast fence (node-agent/fence/, docs/design.md "Fast fence"): `nftables` gates every VIP with an nftables
     * set element that the agent renews on each keepalive answer; `windowMs` is how long after the proof's keepalive
     * was sent it stays open (default: 1150 with heartbeats, ttlSeconds * 1000 - marginMs without; common/fence.ts
     * defaultFenceWindowMs). `fence: nftables` is short for `{ mode: nftables }`. `auto` (the default): `nftables`
     * where the node can run it (the helper, nft, the kernel), else `off`, decided at start (node-agent/fence/
     * auto.ts). `off`: the address lifetime alone.
     */
    fence: z
      .preprocess(
        (v) => (typeof v === 'string' ? { mode: v } : v),
        z
          .object({
            mode: z.enum(['off', 'nftables', 'auto']).default('auto'),
            windowMs: z.number().int().min(20).max(60_000).optional(),
            /**
             * Puts the node's heartbeat key this often (ms), so that the leading controller can revoke the lease of
             * a holder whose heartbeats stopped, well before its TTL ends (docs/design.md "Fast fence",
             * "Detection faster than the lease"). Only with the fence running; `off`: no heartbeats (detection by
             * the lease TTL). Absent: DEFAULT_HEARTBEAT_MS, except with `peer:` (failsafe keepers are never revoked,
             * so beats would be load for nothing). Each beat is an etcd write: docs/etcd.md "Compaction".
             */
            heartbeatMs: z.union([z.literal('off'), z.number().int().min(10).max(10_000)]).optional(),
          })
          .strict(),
      )
      .default({ mode: 'auto' }),
    /** Path of vw-before (node-agent/native/before.c); default: next to the agent's main.js. */
    deadlineExec: z.string().startsWith('/').optional(),
    commands: z
      .record(
        LocalName,
        z.object({ argv: Argv, timeoutMs: z.number().int().min(10).max(600_000).default(5000) }).strict(),
      )
      .default({}),
    /** Hooks (Heartbeat's haresources): run on acquire and on release of the groups that name them. */
    hooks: z
      .record(
        LocalName,
        z
          .object({
            acquire: Argv.optional(),
            release: Argv.optional(),
            timeoutMs: z.number().int().min(10).max(600_000).default(10_000),
          })
          .strict()
          .refine((h) => h.acquire !== undefined || h.release !== undefined, 'a hook needs acquire, release or both'),
      )
      .default({}),
    /** Named credential files (MySQL option files, cloud API tokens). */
    credentials: z.record(LocalName, z.string().startsWith('/', 'must be an absolute path')).default({}),
    /** Announcements: the IPv6 unsolicited neighbour advertisement sender (node-agent/ndsend.c). */
    announce: z
      .object({
        ndsend: z
          .union([z.literal('off'), z.string().startsWith('/', 'must be an absolute path or "off"')])
          .optional()
          .describe(
            'Path of the vipwarden-ndsend helper; "off" sends no NA. Default: next to the agent, else built from source.',
          ),
      })
      .strict()
      .default({}),
    cloud: z
      .object({
        digitalocean: z
          .object({
            apiBase: z.string().url().default('https://api.digitalocean.com'),
            metadataBase: z.string().url().default('http://169.254.169.254'),
            dropletId: z.number().int().positive().optional(),
            /** DigitalOcean renamed floating IPs to reserved IPs; both API paths work the same way. */
            api: z.enum(['floating_ips', 'reserved_ips']).default('floating_ips'),
          })
          .strict()
          .optional(),
        requestTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
        /** The holder looks at its floating IPs this often and points them back at itself (node-agent/cloud/keeper.ts). */
        checkIntervalMs: z.number().int().min(100).max(3_600_000).default(10_000),
        retry: z
          .object({
            maxAttempts: z.number().int().min(1).max(100).default(12),
            initialDelayMs: z.number().int().min(10).max(60_000).default(500),
            maxDelayMs: z.number().int().min(10).max(600_000).default(30_000),
          })
          .strict()
          .default({ maxAttempts: 12, initialDelayMs: 500, maxDelayMs: 30_000 }),
      })
      .strict()
      .default({
        requestTimeoutMs: 10_000,
        checkIntervalMs: 10_000,
        retry: { maxAttempts: 12, initialDelayMs: 500, maxDelayMs: 30_000 },
      }),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.lease.ttlSeconds * 1000 <= c.lease.marginMs + c.lease.keepaliveIntervalMs)
      ctx.addIssue({
        code: 'custom',
        path: ['lease', 'marginMs'],
        message: 'ttlSeconds must exceed marginMs + keepaliveIntervalMs',
      });
  });

/** The fence's options for Holdings, or undefined when it is off; throws when its window does not fit the lease. */
export function fenceOptions(
  c: Pick<AgentConfig, 'fence' | 'lease'> & Partial<Pick<AgentConfig, 'peer'>>,
): { windowMs: number; heartbeatMs?: number } | undefined {
  // `auto` is resolved at start (node-agent/fence/auto.ts); unresolved it runs no fence.
  if (c.fence.mode !== 'nftables') return undefined;
  const heartbeatMs = heartbeatPeriodMs(c);
  const windowMs = fenceWindowMs(c);
  const problem = fenceTimingProblem(windowMs, c.lease);
  if (problem) throw new Error(`agent config: fence.windowMs: ${problem}`);
  return { windowMs, ...(heartbeatMs !== undefined ? { heartbeatMs } : {}) };
}

/** The fence window the agent runs with: agent.yaml's, else the default for its lease and heartbeats. */
export function fenceWindowMs(c: Pick<AgentConfig, 'fence' | 'lease'> & Partial<Pick<AgentConfig, 'peer'>>): number {
  return c.fence.windowMs ?? defaultFenceWindowMs(c.lease, heartbeatPeriodMs(c) !== undefined);
}

/** The heartbeat period the agent runs with when its fence runs (undefined: none). */
export function heartbeatPeriodMs(
  c: Pick<AgentConfig, 'fence'> & Partial<Pick<AgentConfig, 'peer'>>,
): number | undefined {
  const h = c.fence.heartbeatMs;
  if (h === 'off') return undefined;
  return h ?? (c.peer ? undefined : DEFAULT_HEARTBEAT_MS);
}

export type AgentConfig = z.output<typeof AgentConfigSchema> & { lease: { renewWindowMs: number } };

export function parseAgentConfig(raw: unknown, source = 'agent config'): AgentConfig {
  const c = parseOrThrow(AgentConfigSchema, raw, source);
  // An answer may renew address lifetimes only while its keepalive is this fresh (see lease.ts).
  const renewWindowMs = c.lease.renewWindowMs ?? Math.min(500, Math.floor((c.lease.ttlSeconds * 1000) / 4));
  const parsed = { ...c, lease: { ...c.lease, renewWindowMs } };
  // A window given by hand must fit whether the mode is nftables or auto (auto never runs a window that does not).
  fenceOptions(
    parsed.fence.windowMs === undefined ? parsed : { ...parsed, fence: { ...parsed.fence, mode: 'nftables' } },
  );
  if (parsed.peer) {
    try {
      failsafeTiming(parsed.lease, parsed.peer);
    } catch (err) {
      throw new Error(`${source}: peer: ${(err as Error).message}`);
    }
  }
  return parsed;
}

/** Reads agent.yaml; `node` (from --node or VIPWARDEN_NODE) takes the place of the file's `node:`. */
export async function loadAgentConfig(path: string, overrides: { node?: string } = {}): Promise<AgentConfig> {
  const raw = await readYamlFile(path, 'agent config');
  const withNode =
    overrides.node !== undefined && raw !== null && typeof raw === 'object' ? { ...raw, node: overrides.node } : raw;
  return parseAgentConfig(withNode, path);
}
