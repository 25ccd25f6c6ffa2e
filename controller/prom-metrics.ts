// ControllerMetrics on a prom-client Registry of the controller's own. Names are listed in docs/operations.md.
import type { Counter, Gauge } from 'prom-client';
import { PromComponentMetrics } from '../common/prom-metrics.js';
import type { ControllerMetrics } from './metrics.js';

export interface PromControllerMetricsOptions {
  id: string;
  /** Node.js process metrics (process_*, nodejs_*). Default true. */
  processMetrics?: boolean;
}

export class PromControllerMetrics extends PromComponentMetrics implements ControllerMetrics {
  private readonly leaderGauge: Gauge;
  private readonly transitions: Counter<'group' | 'reason'>;
  private readonly changes: Counter<'group'>;
  private readonly assigned: Gauge<'group' | 'node'>;
  private readonly groupsGauge: Gauge<'state'>;
  private readonly revocations: Counter<'node'>;
  private readonly compactedRevision: Gauge;
  /** group -> candidate nodes with a series, to drop series of nodes and groups that went away. */
  private readonly series = new Map<string, Set<string>>();
  /** group -> the holder and candidates its series show, to skip a pass that changes nothing. */
  private readonly reported = new Map<string, string>();
  private seenThisPass = new Set<string>();
  /** Last etcd state reported by the controller; /readyz uses it when no better check is bound. */
  etcdConnected = false;

  constructor(opts: PromControllerMetricsOptions) {
    super({
      component: 'controller',
      info: {
        name: 'vipwarden_controller_info',
        help: 'Constant 1, labelled with the replica id.',
        labels: { id: opts.id },
      },
      etcdHelp: "Whether the controller's etcd lease is confirmed (1) or not (0).",
      processMetrics: opts.processMetrics,
    });
    this.leaderGauge = this.gauge('vipwarden_leader', 'Whether this controller replica leads (1) or stands by (0).');
    this.leaderGauge.set(0);
    this.transitions = this.counter(
      'vipwarden_transitions_total',
      'Holder changes decided by the leader (failover events), by reason.',
      ['group', 'reason'],
    );
    // The same events without the reason, created at 0 as soon as the leader sees the group: a series that first
    // appears at 1 shows no increase() in Prometheus, so alerts and graphs of "how often" use this one.
    this.changes = this.counter(
      'vipwarden_holder_changes_total',
      'Holder changes decided by the leader (failover events), per group; starts at 0 when the group is first seen.',
      ['group'],
    );
    this.assigned = this.gauge(
      'vipwarden_assigned_holder',
      'The node the leader has assigned the group to (1) and its other candidates (0).',
      ['group', 'node'],
    );
    this.groupsGauge = this.gauge(
      'vipwarden_groups',
      'FailoverGroups seen by the leader, by state (valid or rejected).',
      ['state'],
    );
    this.revocations = this.counter(
      'vipwarden_lease_revocations_total',
      "Holder leases the leader revoked because the holder's heartbeats stopped (agent.yaml fence.heartbeatMs).",
      ['node'],
    );
    this.compactedRevision = this.gauge(
      'vipwarden_etcd_compacted_revision',
      "The revision the leader last compacted etcd's history to (controller.yaml compactionIntervalSeconds).",
      [],
    );
    this.finish();
  }

  revoked(node: string): void {
    this.revocations.inc({ node });
  }

  compacted(revision: number): void {
    this.compactedRevision.set(revision);
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
    // Unchanged since the last pass: the series already say so (3,000 label lookups a pass at 1,000 groups).
    const key = `${node ?? ''}\n${nodes.join('\n')}`;
    if (this.reported.get(group) === key && this.series.has(group)) return;
    this.reported.set(group, key);
    if (!this.series.has(group)) this.changes.inc({ group }, 0);
    const want = new Set(nodes);
    if (node) want.add(node);
    const had = this.series.get(group) ?? new Set<string>();
    for (const n of had) if (!want.has(n)) this.assigned.remove({ group, node: n });
    for (const n of want) this.assigned.set({ group, node: n }, n === node ? 1 : 0);
    this.series.set(group, want);
  }

  reconcile(durationMs: number, outcome: 'ok' | 'requeue' | 'conflict' | 'error'): void {
    this.observeReconcile(durationMs, outcome);
  }

  override etcdUp(up: boolean): void {
    this.etcdConnected = up;
    super.etcdUp(up);
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
      this.reported.delete(group);
    }
  }
}
