// ControllerMetrics on a prom-client Registry of the controller's own. Names are listed in docs/operations.md.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ControllerMetrics } from './metrics.js';

const RECONCILE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface PromControllerMetricsOptions {
  id: string;
  /** Node.js process metrics (process_*, nodejs_*). Default true. */
  processMetrics?: boolean;
}

export class PromControllerMetrics implements ControllerMetrics {
  readonly registry = new Registry();
  private readonly leaderGauge: Gauge;
  private readonly transitions: Counter<'group' | 'reason'>;
  private readonly changes: Counter<'group'>;
  private readonly assigned: Gauge<'group' | 'node'>;
  private readonly reconcileDuration: Histogram<'component'>;
  private readonly reconcileTotal: Counter<'component' | 'outcome'>;
  private readonly etcd: Gauge;
  private readonly groupsGauge: Gauge<'state'>;
  /** group -> candidate nodes with a series, to drop series of nodes and groups that went away. */
  private readonly series = new Map<string, Set<string>>();
  private seenThisPass = new Set<string>();
  /** Last etcd state reported by the controller; /readyz uses it when no better check is bound. */
  etcdConnected = false;

  constructor(opts: PromControllerMetricsOptions) {
    const registers = [this.registry];
    this.leaderGauge = new Gauge({
      name: 'vipwarden_leader',
      help: 'Whether this controller replica leads (1) or stands by (0).',
      registers,
    });
    this.leaderGauge.set(0);
    this.transitions = new Counter({
      name: 'vipwarden_transitions_total',
      help: 'Holder changes decided by the leader (failover events), by reason.',
      labelNames: ['group', 'reason'],
      registers,
    });
    // The same events without the reason, created at 0 as soon as the leader sees the group: a series that first
    // appears at 1 shows no increase() in Prometheus, so alerts and graphs of "how often" use this one.
    this.changes = new Counter({
      name: 'vipwarden_holder_changes_total',
      help: 'Holder changes decided by the leader (failover events), per group; starts at 0 when the group is first seen.',
      labelNames: ['group'],
      registers,
    });
    this.assigned = new Gauge({
      name: 'vipwarden_assigned_holder',
      help: 'The node the leader has assigned the group to (1) and its other candidates (0).',
      labelNames: ['group', 'node'],
      registers,
    });
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
      help: "Whether the controller's etcd lease is confirmed (1) or not (0).",
      registers,
    });
    this.etcd.set(0);
    this.groupsGauge = new Gauge({
      name: 'vipwarden_groups',
      help: 'FailoverGroups seen by the leader, by state (valid or rejected).',
      labelNames: ['state'],
      registers,
    });
    const info = new Gauge({
      name: 'vipwarden_controller_info',
      help: 'Constant 1, labelled with the replica id.',
      labelNames: ['id'],
      registers,
    });
    info.set({ id: opts.id }, 1);
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  leader(is: boolean): void {
    this.leaderGauge.set(is ? 1 : 0);
    if (!is) this.dropGroups(new Set());
  }

  transition(group: string, reason: string): void {
    this.transitions.inc({ group, reason });
    this.changes.inc({ group });
  }

  holder(group: string, node: string | null, nodes: readonly string[]): void {
    this.seenThisPass.add(group);
    if (!this.series.has(group)) this.changes.inc({ group }, 0);
    const want = new Set(nodes);
    if (node) want.add(node);
    const had = this.series.get(group) ?? new Set<string>();
    for (const n of had) if (!want.has(n)) this.assigned.remove({ group, node: n });
    for (const n of want) this.assigned.set({ group, node: n }, n === node ? 1 : 0);
    this.series.set(group, want);
  }

  reconcile(durationMs: number, outcome: 'ok' | 'requeue' | 'conflict' | 'error'): void {
    this.reconcileDuration.observe({ component: 'controller' }, Math.max(0, durationMs) / 1000);
    this.reconcileTotal.inc({ component: 'controller', outcome });
  }

  etcdUp(up: boolean): void {
    this.etcdConnected = up;
    this.etcd.set(up ? 1 : 0);
  }

  /** Called once per pass before the holders: groups not reported in the previous pass are gone. */
  groups(valid: number, rejected: number): void {
    this.groupsGauge.set({ state: 'valid' }, valid);
    this.groupsGauge.set({ state: 'rejected' }, rejected);
    this.dropGroups(this.seenThisPass);
    this.seenThisPass = new Set();
  }

  private dropGroups(keep: ReadonlySet<string>): void {
    for (const [group, nodes] of this.series) {
      if (keep.has(group)) continue;
      for (const n of nodes) this.assigned.remove({ group, node: n });
      this.series.delete(group);
    }
  }
}
