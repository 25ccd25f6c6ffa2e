// AgentMetrics on a prom-client Registry of the agent's own (one registry per component, no global state).
// Metric names are listed in docs/operations.md; the alert rules and the dashboard use them.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { VipRef } from './addresses.js';
import type { AgentMetrics } from './metrics.js';
import type { GroupResource } from './resources.js';

/** Buckets for failover outages: from 10 ms (a fast release path) to a hard failure on a long lease. */
export const OUTAGE_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 3, 5, 10, 30];
/** Buckets for check latencies and keepalive round trips: 1 ms up to a long lease TTL. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];
export const RECONCILE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface PromAgentMetricsOptions {
  node: string;
  leaseTtlSeconds: number;
  /** Node.js process metrics (process_*, nodejs_*). Default true. */
  processMetrics?: boolean;
}

export class PromAgentMetrics implements AgentMetrics {
  readonly registry = new Registry();
  private readonly node: string;
  private readonly holderGauge: Gauge<'group' | 'node'>;
  private readonly transitions: Counter<'group' | 'kind' | 'reason'>;
  private readonly outage: Histogram<'group'>;
  private readonly checkUp: Gauge<'group' | 'check'>;
  private readonly checkDuration: Histogram<'group' | 'check'>;
  private readonly checkTotal: Counter<'group' | 'check' | 'result'>;
  private readonly rtt: Histogram;
  private readonly reconcileDuration: Histogram<'component'>;
  private readonly reconcileTotal: Counter<'component' | 'outcome'>;
  private readonly etcd: Gauge;
  private readonly announcements: Counter<'group' | 'family'>;
  /** VIP address -> group, learnt when a group is acquired (see vipGroupResource): the announcer only knows the VIP. */
  private readonly vipGroups = new Map<string, string>();
  /** Groups whose holder series exists. */
  private readonly holderKnown = new Set<string>();

  constructor(opts: PromAgentMetricsOptions) {
    this.node = opts.node;
    const registers = [this.registry];
    this.holderGauge = new Gauge({
      name: 'vipwarden_group_holder',
      help: "Whether this node holds the group's addresses now (1) or not (0), as the agent sees it.",
      labelNames: ['group', 'node'],
      registers,
    });
    this.transitions = new Counter({
      name: 'vipwarden_agent_transitions_total',
      help: 'Groups acquired or released by this agent, by reason.',
      labelNames: ['group', 'kind', 'reason'],
      registers,
    });
    this.outage = new Histogram({
      name: 'vipwarden_failover_outage_seconds',
      help: 'From the detection of the failure to the addresses being added on this node.',
      labelNames: ['group'],
      buckets: OUTAGE_BUCKETS,
      registers,
    });
    this.checkUp = new Gauge({
      name: 'vipwarden_check_up',
      help: 'Result of the last run of a health check on this node (1 passed, 0 failed).',
      labelNames: ['group', 'check'],
      registers,
    });
    this.checkDuration = new Histogram({
      name: 'vipwarden_check_duration_seconds',
      help: 'How long health checks took.',
      labelNames: ['group', 'check'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.checkTotal = new Counter({
      name: 'vipwarden_check_runs_total',
      help: 'Health check runs, by result (pass or fail).',
      labelNames: ['group', 'check', 'result'],
      registers,
    });
    this.rtt = new Histogram({
      name: 'vipwarden_lease_keepalive_rtt_seconds',
      help: 'Round trip of node lease keepalives (sent to answered).',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const ttl = new Gauge({
      name: 'vipwarden_lease_ttl_seconds',
      help: 'TTL of the node lease, from the configuration.',
      registers,
    });
    ttl.set(opts.leaseTtlSeconds);
    this.reconcileDuration = new Histogram({
      name: 'vipwarden_reconcile_duration_seconds',
      help: 'Duration of reconcile passes.',
      labelNames: ['component'],
      buckets: RECONCILE_BUCKETS,
      registers,
    });
    this.reconcileTotal = new Counter({
      name: 'vipwarden_reconcile_total',
      help: 'Reconcile passes, by outcome.',
      labelNames: ['component', 'outcome'],
      registers,
    });
    this.etcd = new Gauge({
      name: 'vipwarden_etcd_up',
      help: 'Whether etcd answered the last lease keepalive (1) or the lease was lost (0).',
      registers,
    });
    this.etcd.set(0);
    this.announcements = new Counter({
      name: 'vipwarden_announcements_total',
      help: 'Gratuitous ARP (family 4) and unsolicited neighbour advertisement (family 6) packets sent.',
      labelNames: ['group', 'family'],
      registers,
    });
    const info = new Gauge({
      name: 'vipwarden_agent_info',
      help: 'Constant 1, labelled with the node name.',
      labelNames: ['node'],
      registers,
    });
    info.set({ node: opts.node }, 1);
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  holder(group: string, held: boolean): void {
    this.holderKnown.add(group);
    this.holderGauge.set({ group, node: this.node }, held ? 1 : 0);
  }

  transition(group: string, kind: 'acquire' | 'release', reason: string): void {
    this.transitions.inc({ group, kind, reason });
  }

  failoverOutage(group: string, seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.outage.observe({ group }, seconds);
  }

  checkResult(group: string, check: string, ok: boolean, latencyMs: number): void {
    this.checkUp.set({ group, check }, ok ? 1 : 0);
    this.checkDuration.observe({ group, check }, Math.max(0, latencyMs) / 1000);
    this.checkTotal.inc({ group, check, result: ok ? 'pass' : 'fail' });
    // A node that runs a group's checks is one of its candidates: it shows 0 until it acquires, so that
    // "no node holds the group" is a sum of zeros, not an absent series.
    if (!this.holderKnown.has(group)) this.holder(group, false);
  }

  keepaliveRtt(ms: number): void {
    this.rtt.observe(Math.max(0, ms) / 1000);
  }

  reconcile(durationMs: number, outcome: 'ok' | 'error'): void {
    this.reconcileDuration.observe({ component: 'agent' }, Math.max(0, durationMs) / 1000);
    this.reconcileTotal.inc({ component: 'agent', outcome });
  }

  etcdUp(up: boolean): void {
    this.etcd.set(up ? 1 : 0);
  }

  announced(group: string, family: 4 | 6, packets: number): void {
    this.announcements.inc({ group, family: String(family) }, packets);
  }

  /** For CommandAnnouncer's onSent: counts packets under the group that owns the VIP. */
  readonly onAnnounced = (vip: VipRef, packets: number): void => {
    this.announced(this.vipGroups.get(vip.address) ?? 'unknown', vip.family, packets);
  };

  /** Remembers which group a VIP belongs to. Kept after a release: a repeat may still report late. */
  noteVips(group: string, vips: readonly VipRef[]): void {
    for (const v of vips) this.vipGroups.set(v.address, group);
  }
}

/**
 * A resource that only tells the metrics which group a VIP belongs to, so that announcements are counted per
 * group. It runs right after the announcement resource, long before the first arping has exited.
 */
export function vipGroupResource(metrics: PromAgentMetrics): GroupResource {
  return {
    name: 'metrics',
    acquire: async (ctx) => metrics.noteVips(ctx.group, ctx.vips),
    release: async () => undefined,
  };
}
