// The scale benchmark's scenario (nodes and group files) and what it reports (scale.ts runs it).
import { KERNEL_SLACK_MS, longLifetimeExtraMs } from '../../common/kernel-lifetime.js';
import { addressOverhangMs, maxLifetimeSeconds, type LeaseTiming } from '../../common/lease.js';
import { LEASE_CONFIG_DEFAULT } from '../../common/lease-config.js';
import type { PassSummary } from './scale-metrics.js';

export interface ScaleOptions {
  nodes: number;
  groups: number;
  /** Length of the steady-state window (ms). */
  steadyMs: number;
  log: (line: string) => void;
}

export interface ProcSample {
  t: number;
  cpuS: number;
  rssKiB: number;
  hwmKiB: number;
}

export interface ScaleResult {
  nodes: number;
  groups: number;
  /** ms from the controller's start. */
  /** Cold start: empty etcd, agents waiting for the group records; ms from the controller's start. */
  placement: {
    leaderMs?: number;
    groupsPublishedMs?: number;
    healthCompleteMs?: number;
    placedMs?: number;
    placed: number;
  };
  /** The controller's reconcile passes (from its /metrics histogram): count, mean and the bucket of the slowest. */
  passes: { toPlacement?: PassSummary; steady?: PassSummary & { perSecond: number } };
  /** Warm start: group records and every agent's health already in etcd, assignments deleted, a new controller. */
  warmPlacement: {
    leaderMs?: number;
    /** From the controller's log: sources read and mirrors listed ("leading"), first and last assignment written. */
    leadingMs?: number;
    firstAssignmentMs?: number;
    lastAssignmentMs?: number;
    placedMs?: number;
    placed: number;
    cpuSeconds?: number;
    note?: string;
  };
  lostNode: {
    node: string;
    groups: number;
    reassignedMs?: number;
    reassigned: number;
    /** Safety 3: the wait after the lease ended that the simulated agents' lease timing implies (part of reassignedMs). */
    safetyWaitMs?: number;
    /** The same wait for an agent with the default lease (2 s TTL), which a real cluster would add. */
    defaultAgentSafetyWaitMs?: number;
    /** How long after the warm placement the node was lost (scale.ts LOST_NODE_SETTLE_MS_PER_GROUP). */
    settleMs?: number;
    lastGroupMs?: number;
    note?: string;
  };
  controller: {
    cpuSecondsToPlacement?: number;
    steadyCpuPercent?: number;
    rssMiB?: number;
    peakRssMiB?: number;
  };
  etcd: {
    windowMs: number;
    unaryPerSecond: Record<string, number>;
    streamMessagesPerSecond: Record<string, number>;
    totalPerSecond: number;
  };
  steadyWindowMs: number;
}

export function nodeName(i: number): string {
  return `node-${String(i).padStart(3, '0')}`;
}

/** Group i: one /32 VIP, candidates node i, i+1, i+2 (mod N) with priorities 100, 90, 80. */
export function scaleGroup(i: number, nodes: number): Record<string, unknown> {
  return {
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name: `g${String(i).padStart(4, '0')}` },
    spec: {
      vips: [{ address: `198.19.${Math.floor(i / 250)}.${(i % 250) + 1}/32` }],
      nodes: [0, 1, 2].map((k) => ({ name: nodeName((i + k) % nodes), priority: 100 - 10 * k })),
      checks: [{ name: 'web', type: 'http', http: { port: 80, path: '/' }, intervalMs: 1000 }],
      failback: 'auto',
    },
  };
}

/** The wait before the lost node, per group (at least 3 s): 8 s at 10,000 groups. */
export const LOST_NODE_SETTLE_MS_PER_GROUP = 0.8;

/**
 * The simulated agents' lease: 10 s, renewed every 2 s (1,000 nodes make 500 keepalives a second, not the 4,000 of
 * the 2 s default that starved this 2-core machine). Its margin keeps the longest address lifetime (8 s) so far
 * inside the TTL that the controller's Safety-3 wait after a lease ends is 0: the lost-node figure is the
 * controller's own reaction. The wait a default agent's record implies is reported beside it (safetyWaitMs).
 */
export const SIM_LEASE = { ttlSeconds: 10, keepaliveIntervalMs: 2000, marginMs: 2000, renewWindowMs: 500 };
/** The default agent lease (common/lease-config.ts) as published, for the Safety-3 wait it implies. */
export const DEFAULT_AGENT_LEASE = { ...LEASE_CONFIG_DEFAULT, renewWindowMs: 500 };
export const SIM_AGENTS_PER_CLIENT = 10;
/**
 * The measured controller's own lease: 10 s instead of the default 2 s. At 10,000 groups the first pass publishes
 * 10,000 group records (100 transactions of 100 puts); etcd answers a lease keepalive only once it has applied what
 * it committed, and on this loaded 2-core machine the default lease expired on the server behind those writes
 * (keepalive unanswered for 2.1 s) before one assignment was written. Printed with the figures.
 */
export const SCALE_CONTROLLER_LEASE = { ttlSeconds: 10, keepaliveIntervalMs: 1000, marginMs: 2000 };
/**
 * Simulated agents that mirror assignments/ (a real agent does; each such watch gets every assignment event, and
 * 100 of them made etcd fan out 100,000 events for a placement of 1,000 groups, starving it on this machine).
 */
export const SIM_ASSIGNMENT_WATCHERS = 10;

/** Safety 3: how long the controller waits after a lease of this timing ended (default kernel slack). */
export function safetyWaitMs(t: LeaseTiming): number {
  const maxLife = maxLifetimeSeconds(t);
  return addressOverhangMs(
    { ttlSeconds: t.ttlSeconds, maxLifetimeSeconds: maxLife, renewWindowMs: t.renewWindowMs },
    KERNEL_SLACK_MS + longLifetimeExtraMs(maxLife),
  );
}

/**
 * Issue 16's scale targets, met or missed: cold placement of 1,000 groups on 100 nodes < 2 s (10,000 on 1,000:
 * < 15 s), warm < 1 s (no figure for 10,000: the issue names none; reported as measured), a lost node's groups
 * reassigned < 500 ms after its lease ended.
 */
export function scaleTargets(r: ScaleResult): string {
  const verdict = (v: number | undefined, limit: number) => (v !== undefined && v < limit ? 'met' : 'MISSED');
  const coldLimit = r.groups > 1000 ? 15_000 : 2000;
  const parts = [`cold placement < ${coldLimit / 1000} s: ${verdict(r.placement.placedMs, coldLimit)}`];
  if (r.groups <= 1000) parts.push(`warm < 1 s: ${verdict(r.warmPlacement.placedMs, 1000)}`);
  parts.push(`reassigned < 500 ms after lease end: ${verdict(r.lostNode.reassignedMs, 500)}`);
  return parts.join('; ');
}
