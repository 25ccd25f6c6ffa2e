import { vipRef } from './addresses.js';
import { PromAgentMetrics, vipGroupResource } from './prom-metrics.js';
import { silentLogger } from '../common/log.js';
import { expectSeries } from '../common/testing/series.js';

async function text(m: PromAgentMetrics): Promise<string> {
  return m.registry.metrics();
}

describe('PromAgentMetrics', () => {
  it('reports holder per group and node, transitions, outage and lease figures', async () => {
    const m = new PromAgentMetrics({ node: 'node1', leaseTtlSeconds: 2, processMetrics: false });
    m.holder('web', true);
    m.transition('web', 'acquire', 'failover');
    m.failoverOutage('web', 0.123);
    m.failoverOutage('web', Number.NaN);
    m.keepaliveRtt(12);
    m.etcdUp(true);
    m.reconcile(3, 'ok');
    m.reconcile(4, 'error');
    const t = await text(m);
    expectSeries(t, [
      'vipwarden_group_holder{group="web",node="node1"} 1',
      'vipwarden_agent_transitions_total{group="web",kind="acquire",reason="failover"} 1',
      'vipwarden_failover_outage_seconds_count{group="web"} 1',
      'vipwarden_failover_outage_seconds_bucket{le="0.01",group="web"} 0',
      'vipwarden_failover_outage_seconds_bucket{le="0.2",group="web"} 1',
      'vipwarden_lease_keepalive_rtt_seconds_count 1',
      'vipwarden_lease_ttl_seconds 2',
      'vipwarden_etcd_up 1',
      'vipwarden_reconcile_total{component="agent",outcome="ok"} 1',
      'vipwarden_reconcile_total{component="agent",outcome="error"} 1',
      'vipwarden_agent_info{node="node1"} 1',
    ]);
  });

  it('shows a candidate as holding nothing once it runs the checks, without undoing a holding', async () => {
    const m = new PromAgentMetrics({ node: 'n2', leaseTtlSeconds: 2, processMetrics: false });
    m.checkResult('web', 'nginx', true, 5);
    m.checkResult('db', 'mysql', false, 1500);
    let t = await text(m);
    expectSeries(t, [
      'vipwarden_group_holder{group="web",node="n2"} 0',
      'vipwarden_check_up{group="web",check="nginx"} 1',
      'vipwarden_check_up{group="db",check="mysql"} 0',
      'vipwarden_check_runs_total{group="db",check="mysql",result="fail"} 1',
      'vipwarden_check_duration_seconds_sum{group="db",check="mysql"} 1.5',
    ]);
    m.holder('web', true);
    m.checkResult('web', 'nginx', true, 5);
    t = await text(m);
    expect(t).toContain('vipwarden_group_holder{group="web",node="n2"} 1');
  });

  it('counts announcements under the group that owns the VIP', async () => {
    const m = new PromAgentMetrics({ node: 'n1', leaseTtlSeconds: 2, processMetrics: false });
    const v4 = vipRef('198.18.0.100/24', 'eth0');
    const v6 = vipRef('2001:2::100/64', 'eth0');
    const ac = new AbortController();
    await vipGroupResource(m).acquire({
      group: 'web',
      node: 'n1',
      epoch: 7,
      vips: [v4, v6],
      spec: undefined,
      isCurrent: () => true,
      signal: ac.signal,
      log: silentLogger(),
    });
    m.onAnnounced(v4, 6);
    m.onAnnounced(v6, 3);
    m.onAnnounced(vipRef('198.18.0.200/24', 'eth0'), 2);
    const t = await text(m);
    expect(t).toContain('vipwarden_announcements_total{group="web",family="4"} 6');
    expect(t).toContain('vipwarden_announcements_total{group="web",family="6"} 3');
    expect(t).toContain('vipwarden_announcements_total{group="unknown",family="4"} 2');
  });

  it('keeps one registry per instance', async () => {
    const a = new PromAgentMetrics({ node: 'a', leaseTtlSeconds: 2 });
    const b = new PromAgentMetrics({ node: 'b', leaseTtlSeconds: 3 });
    a.holder('web', true);
    expect(await b.registry.metrics()).not.toContain('vipwarden_group_holder{');
    expect(await a.registry.metrics()).toContain('process_cpu_user_seconds_total');
  });
});
