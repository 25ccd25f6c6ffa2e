import { PromControllerMetrics } from './prom-metrics.js';
import { expectSeries } from '../common/testing/series.js';

describe('PromControllerMetrics', () => {
  it('reports leadership, transitions, reconcile outcomes, etcd and group counts', async () => {
    const m = new PromControllerMetrics({ id: 'c0', processMetrics: false });
    expect(await m.registry.metrics()).toContain('vipwarden_leader 0');
    m.leader(true);
    m.transition('web', 'health');
    m.transition('web', 'health');
    m.reconcile(2, 'ok');
    m.reconcile(2, 'conflict');
    m.etcdUp(true);
    m.groups(2, 1);
    const t = await m.registry.metrics();
    expectSeries(t, [
      'vipwarden_leader 1',
      'vipwarden_transitions_total{group="web",reason="health"} 2',
      'vipwarden_holder_changes_total{group="web"} 2',
      'vipwarden_reconcile_total{component="controller",outcome="conflict"} 1',
      'vipwarden_reconcile_duration_seconds_count{component="controller"} 2',
      'vipwarden_etcd_up 1',
    ]);
    expect(m.etcdConnected).toBe(true);
    expect(t).toContain('vipwarden_groups{state="valid"} 2');
    expect(t).toContain('vipwarden_groups{state="rejected"} 1');
    expect(t).toContain('vipwarden_controller_info{id="c0"} 1');
  });

  it('shows the assigned holder among the candidates and drops series of nodes and groups that went away', async () => {
    const m = new PromControllerMetrics({ id: 'c0', processMetrics: false });
    m.leader(true);
    m.groups(2, 0);
    m.holder('web', 'n1', ['n1', 'n2', 'n3']);
    m.holder('db', null, ['n1', 'n2']);
    let t = await m.registry.metrics();
    // Created at 0, so that Prometheus sees the first change as an increase.
    expectSeries(t, [
      'vipwarden_holder_changes_total{group="db"} 0',
      'vipwarden_assigned_holder{group="web",node="n1"} 1',
      'vipwarden_assigned_holder{group="web",node="n3"} 0',
      'vipwarden_assigned_holder{group="db",node="n1"} 0',
    ]);

    // Next pass: n3 is no longer a candidate of web, db is gone.
    m.groups(1, 0);
    m.holder('web', 'n2', ['n1', 'n2']);
    m.groups(1, 0);
    t = await m.registry.metrics();
    expect(t).toContain('vipwarden_assigned_holder{group="web",node="n2"} 1');
    expect(t).toContain('vipwarden_assigned_holder{group="web",node="n1"} 0');
    expect(t).not.toContain('node="n3"');
    expect(t).not.toContain('vipwarden_assigned_holder{group="db"');

    // A replica that stops leading shows no assignments.
    m.leader(false);
    expect(await m.registry.metrics()).not.toContain('vipwarden_assigned_holder{');
  });
});
