// The scale benchmark's scenario (nodes and group files) and what it reports (scale.ts runs it).
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
