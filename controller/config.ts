// The controller's configuration (controller.yaml).
import { hostname } from 'node:os';
import { z } from 'zod';
import { readYamlFile } from '../common/config-file.js';
import { EtcdConfigSchema } from '../common/etcd-config.js';
import { KERNEL_SLACK_MS } from '../common/kernel-lifetime.js';
import { LEASE_CONFIG_DEFAULT, leaseConfigFields } from '../common/lease-config.js';
import { parseOrThrow } from '../common/validation.js';

export const ControllerConfigSchema = z
  .object({
    id: z.string().min(1).max(128).optional(),
    etcd: EtcdConfigSchema,
    source: z.union([
      z.object({ directory: z.string().startsWith('/') }).strict(),
      z.object({ kubernetes: z.object({ kubeconfig: z.string().optional() }).strict() }).strict(),
    ]),
    lease: z
      .object(leaseConfigFields)
      .strict()
      .default({ ...LEASE_CONFIG_DEFAULT }),
    /**
     * How late the kernel may delete an address after its lifetime ends: derived from the kernel's code for every
     * HZ, plus a scheduling allowance (common/kernel-lifetime.ts, docs/design.md). Was 400, which churn exceeds.
     */
    kernelSlackMs: z.number().int().min(0).max(10_000).default(KERNEL_SLACK_MS),
    /** First placement of a new group waits up to this long for every live candidate's health. */
    settleMs: z.number().int().min(0).max(60_000).default(2000),
    resyncMs: z.number().int().min(100).max(600_000).default(1000),
    /**
     * Heartbeat periods a revocable holder (agent.yaml `fence.heartbeatMs`) may miss, while the other nodes' beats
     * arrive, before the leader revokes its lease (controller/heartbeats.ts). A wrong suspicion costs a failover,
     * never a second holder.
     */
    heartbeatMisses: z.number().int().min(1).max(100).default(3),
    eventsPerGroup: z.number().int().min(1).max(10_000).default(100),
    /**
     * The leader compacts etcd's history this often, to the revision it saw one interval before (controller/
     * compactor.ts, docs/etcd.md "Compaction"); 0: never (an etcd compacted by something else). Heartbeats write
     * a revision per node every heartbeatMs, and etcd compacts nothing by itself.
     */
    compactionIntervalSeconds: z.number().int().min(0).max(86_400).default(300),
    metrics: z
      .object({ listen: z.string().default('127.0.0.1:9642') })
      .strict()
      .optional(),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  })
  .strict();

export type ControllerConfig = z.output<typeof ControllerConfigSchema> & { id: string };

/**
 * The controller's id (its leader record, its logs): `id:` in the config, else VIPWARDEN_CONTROLLER_ID (the chart
 * gives each replica its pod name from the downward API: two hostNetwork replicas share the machine's hostname and
 * both run as pid 1), else hostname-pid.
 */
export function parseControllerConfig(
  raw: unknown,
  source = 'controller config',
  env: NodeJS.ProcessEnv = process.env,
): ControllerConfig {
  const c = parseOrThrow(ControllerConfigSchema, raw, source);
  const fromEnv = env['VIPWARDEN_CONTROLLER_ID']?.trim();
  return { ...c, id: c.id ?? (fromEnv ? fromEnv.slice(0, 128) : `${hostname()}-${process.pid}`) };
}

export async function loadControllerConfig(path: string): Promise<ControllerConfig> {
  return parseControllerConfig(await readYamlFile(path, 'controller config'), path);
}
