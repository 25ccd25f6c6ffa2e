// AgentMetrics on a prom-client Registry of the agent's own (one registry per component, no global state).
// Metric names are listed in docs/operations.md; the alert rules and the dashboard use them.
import type { Counter, Gauge, Histogram } from 'prom-client';
import { PromComponentMetrics } from '../common/prom-metrics.js';
import type { VipRef } from './addresses.js';
import type { AgentMetrics } from './metrics.js';
import type { GroupResource } from './resources.js';

/** Buckets for failover outages: from 10 ms (a fast release path) to a hard failure on a long lease. */
export const OUTAGE_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 3, 5, 10, 30];
/** Buckets for check latencies and keepalive round trips: 1 ms up to a long lease TTL. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];

export interface PromAgentMetricsOptions {
  node: string;
  leaseTtlSeconds: number;
  /** Node.js process metrics (process_*, nodejs_*). Default true. */
  processMetrics?: boolean;
}

export class PromAgentMetrics extends PromComponentMetrics implements AgentMetrics {
  private readonly node: string;
  private readonly holderGauge: Gauge<'group' | 'node'>;
  private readonly transitions: Counter<'group' | 'kind' | 'reason'>;
  private readonly outage: Histogram<'group'>;
  private readonly checkUp: Gauge<'group' | 'check'>;
  private readonly checkDuration: Histogram<'group' | 'check'>;
  private readonly checkTotal: Counter<'group' | 'check' | 'result'>;
  private readonly rtt: Histogram;
  private readonly announcements: Counter<'group' | 'family'>;
  private readonly failsafeGauge: Gauge<'group'>;
  private readonly promises: Counter<'side' | 'answer'>;
  /** VIP address -> group, learnt when a group is acquired (see vipGroupResource): the announcer only knows the VIP. */
  private readonly vipGroups = new Map<string, string>();
  /** Groups whose holder series exists. */
  private readonly holderKnown = new Set<string>();

  constructor(opts: PromAgentMetricsOptions) {
    super({
      component: 'agent',
      info: {
        name: 'vipwarden_agent_info',
        help: 'Constant 1, labelled with the node name.',
        labels: { node: opts.node },
      },
      etcdHelp: 'Whether etcd answered the last lease keepalive (1) or the lease was lost (0).',
      processMetrics: opts.processMetrics,
    });
    this.node = opts.node;
    this.holderGauge = this.gauge(
      'vipwarden_group_holder',
      "Whether this node holds the group's addresses now (1) or not (0), as the agent sees it.",
      ['group', 'node'],
    );
    this.transitions = this.counter(
      'vipwarden_agent_transitions_total',
      'Groups acquired or released by this agent, by reason.',
      ['group', 'kind', 'reason'],
    );
    this.outage = this.histogram(
      'vipwarden_failover_outage_seconds',
      'From the detection of the failure to the addresses being added on this node.',
      OUTAGE_BUCKETS,
      ['group'],
    );
    this.checkUp = this.gauge(
      'vipwarden_check_up',
      'Result of the last run of a health check on this node (1 passed, 0 failed).',
      ['group', 'check'],
    );
    this.checkDuration = this.histogram(
      'vipwarden_check_duration_seconds',
      'How long health checks took.',
      LATENCY_BUCKETS,
      ['group', 'check'],
    );
    this.checkTotal = this.counter('vipwarden_check_runs_total', 'Health check runs, by result (pass or fail).', [
      'group',
      'check',
      'result',
    ]);
    this.rtt = this.histogram(
      'vipwarden_lease_keepalive_rtt_seconds',
      'Round trip of node lease keepalives (sent to answered).',
      LATENCY_BUCKETS,
    );
    this.gauge('vipwarden_lease_ttl_seconds', 'TTL of the node lease, from the configuration.').set(
      opts.leaseTtlSeconds,
    );
    this.announcements = this.counter(
      'vipwarden_announcements_total',
      'Gratuitous ARP (family 4) and unsolicited neighbour advertisement (family 6) packets sent.',
      ['group', 'family'],
    );
    this.failsafeGauge = this.gauge(
      'vipwarden_failsafe_active',
      'Whether this node keeps the group by failsafe promises now (1: etcd unreachable, every peer promised) or not (0).',
      ['group'],
    );
    this.promises = this.counter(
      'vipwarden_failsafe_promises_total',
      'Failsafe promises: given (answers to holders that asked) and received (answers to our requests), granted or refused.',
      ['side', 'answer'],
    );
    for (const side of ['given', 'received'])
      for (const answer of ['granted', 'refused']) this.promises.inc({ side, answer }, 0);
    this.finish();
  }

  failsafeActive(group: string, active: boolean): void {
    this.failsafeGauge.set({ group }, active ? 1 : 0);
  }

  promise(side: 'given' | 'received', granted: boolean): void {
    this.promises.inc({ side, answer: granted ? 'granted' : 'refused' });
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
    this.observeReconcile(durationMs, outcome);
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
