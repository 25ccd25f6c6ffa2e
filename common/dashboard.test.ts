// The Grafana dashboard and the alert rules name only metrics that the agent and the controller register.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { PromControllerMetrics } from '../controller/prom-metrics.js';
import { PromAgentMetrics } from '../node-agent/prom-metrics.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

async function registeredNames(): Promise<Set<string>> {
  const names = new Set<string>();
  const registries = [
    new PromAgentMetrics({ node: 'n', leaseTtlSeconds: 2, processMetrics: false }).registry,
    new PromControllerMetrics({ id: 'c', processMetrics: false }).registry,
  ];
  for (const r of registries) {
    for (const m of await r.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
    }
  }
  return names;
}

/** Metric names in a PromQL expression: our own prefix only (functions and labels never start with it). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bvipwarden_[a-zA-Z0-9_]+/g)].map((m) => m[0]);
}

interface Panel {
  title?: string;
  type: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

describe('deploy/grafana/vipwarden.json', () => {
  const dash = JSON.parse(readFileSync(join(repo, 'deploy/grafana/vipwarden.json'), 'utf8')) as {
    title: string;
    uid: string;
    panels: Panel[];
  };
  const panels = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');

  it('is a dashboard with panels that all query something', () => {
    expect(dash.title).toBe('vipwarden');
    expect(panels.length).toBeGreaterThan(10);
    for (const p of panels) {
      expect(p.title).toBeTruthy();
      expect(p.targets?.length).toBeGreaterThan(0);
    }
  });

  it('uses only metrics that we register', async () => {
    const known = await registeredNames();
    const used = new Set(panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr))));
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((n) => !known.has(n))).toEqual([]);
  });

  it('has a panel for each metric the issue lists', () => {
    const text = JSON.stringify(dash);
    for (const n of [
      'vipwarden_group_holder',
      'vipwarden_transitions_total',
      'vipwarden_failover_outage_seconds',
      'vipwarden_check_up',
      'vipwarden_check_duration_seconds',
      'vipwarden_lease_keepalive_rtt_seconds',
      'vipwarden_reconcile_duration_seconds',
      'vipwarden_reconcile_total',
      'vipwarden_etcd_up',
      'vipwarden_announcements_total',
      'vipwarden_leader',
      'vipwarden_groups',
    ]) {
      expect(text).toContain(n);
    }
  });
});

describe('deploy/prometheus/alerts.yml', () => {
  it('uses only metrics that we register', async () => {
    const rules = parseYaml(readFileSync(join(repo, 'deploy/prometheus/alerts.yml'), 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const known = await registeredNames();
    const exprs = rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
    expect(exprs.length).toBeGreaterThanOrEqual(6);
    const used = new Set(exprs.flatMap(metricNames));
    expect([...used].filter((n) => !known.has(n))).toEqual([]);
  });
});
