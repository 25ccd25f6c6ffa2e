// What the agent's and the controller's Prometheus metrics share: a registry of their own (no global state), the
// reconcile and etcd series under the same names, an info series, Node.js process metrics, and short constructors
// for the rest. Metric names are listed in docs/operations.md.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const RECONCILE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface ComponentMetricsOptions {
  /** The `component` label of the reconcile series. */
  component: 'agent' | 'controller';
  /** Constant 1, labelled with who this is (vipwarden_agent_info{node}, vipwarden_controller_info{id}). */
  info: { name: string; help: string; labels: Record<string, string> };
  /** What vipwarden_etcd_up means for this component. */
  etcdHelp: string;
  /** Node.js process metrics (process_*, nodejs_*). Default true. */
  processMetrics?: boolean;
}

export abstract class PromComponentMetrics {
  readonly registry = new Registry();
  private readonly component: string;
  private readonly reconcileDuration: Histogram<'component'>;
  private readonly reconcileTotal: Counter<'component' | 'outcome'>;
  private readonly etcd: Gauge;
  private etcdCheck: (() => boolean) | undefined;

  protected constructor(private readonly opts: ComponentMetricsOptions) {
    this.component = opts.component;
    this.reconcileDuration = this.histogram(
      'vipwarden_reconcile_duration_seconds',
      'Duration of reconcile passes.',
      RECONCILE_BUCKETS,
      ['component'],
    );
    this.reconcileTotal = this.counter('vipwarden_reconcile_total', 'Reconcile passes, by outcome.', [
      'component',
      'outcome',
    ]);
    // Read when scraped from the bound check, the same truth /readyz tells (issue 12: set from lease events, it once
    // stayed 1 through a whole etcd outage); etcdUp() sets it until a check is bound.
    const check = () => this.etcdCheck;
    this.etcd = new Gauge({
      name: 'vipwarden_etcd_up',
      help: opts.etcdHelp,
      registers: [this.registry],
      collect() {
        const c = check();
        if (c) this.set(c() ? 1 : 0);
      },
    });
    this.etcd.set(0);
  }

  /** Call last in the subclass's constructor, so that the component's own series come first in /metrics. */
  protected finish(): void {
    const { info } = this.opts;
    this.gauge(info.name, info.help, Object.keys(info.labels)).set(info.labels, 1);
    if (this.opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  protected gauge<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  protected counter<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  protected histogram<L extends string = string>(
    name: string,
    help: string,
    buckets: number[],
    labelNames: readonly L[] = [],
  ): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  protected observeReconcile(durationMs: number, outcome: string): void {
    this.reconcileDuration.observe({ component: this.component }, Math.max(0, durationMs) / 1000);
    this.reconcileTotal.inc({ component: this.component, outcome });
  }

  etcdUp(up: boolean): void {
    if (!this.etcdCheck) this.etcd.set(up ? 1 : 0);
  }

  /** From now on vipwarden_etcd_up is check() at each scrape (the component's lease is proven alive by etcd). */
  bindEtcdUp(check: () => boolean): void {
    this.etcdCheck = check;
  }
}
