// Prometheus series per real server, read from the director at scrape time: up (the check's view), weight (what
// the table gives it), IPVS connection counts and the totals of connections, packets and bytes (from the holder's
// table; a standby reports up and weight only). Metric names are listed in docs/lvs.md.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { LvsDirector } from './director.js';

type Labels = 'group' | 'service' | 'server';

export function registerLvsMetrics(registry: Registry, director: Pick<LvsDirector, 'status' | 'onResult'>): void {
  const registers = [registry];
  const labelNames: Labels[] = ['group', 'service', 'server'];
  const g = (name: string, help: string, extra: string[] = []) =>
    new Gauge({ name, help, labelNames: [...labelNames, ...extra], registers });
  const up = g(
    'vipwarden_lvs_real_server_up',
    'Whether the real server passes its check (1), fails it (0); absent before the first result.',
  );
  const weight = g(
    'vipwarden_lvs_real_server_weight',
    'The weight the IPVS table gives the real server (0: quiesced; absent: removed).',
  );
  const sorry = g(
    'vipwarden_lvs_sorry_server_active',
    'Whether the sorry server is in the table because no real server is up.',
  );
  const conns = g('vipwarden_lvs_real_server_connections', 'IPVS connections to the real server now, by state.', [
    'state',
  ]);
  const total = g(
    'vipwarden_lvs_real_server_connections_total',
    'Connections scheduled to the real server since its entry was created (IPVS counter).',
  );
  const packets = g(
    'vipwarden_lvs_real_server_packets_total',
    'Packets to and from the real server through the director (IPVS counter).',
    ['direction'],
  );
  const bytes = g(
    'vipwarden_lvs_real_server_bytes_total',
    'Bytes to and from the real server through the director (IPVS counter).',
    ['direction'],
  );
  const checks = new Counter({
    name: 'vipwarden_lvs_real_server_checks_total',
    help: 'Real-server check runs by this node, by result.',
    labelNames: ['server', 'result'],
    registers,
  });
  director.onResult((id, ok) => checks.inc({ server: id, result: ok ? 'ok' : 'fail' }));
  // Refreshed at scrape time: the series are the director's current view, nothing is kept in between.
  const all = [up, weight, sorry, conns, total, packets, bytes];
  new Gauge({
    name: 'vipwarden_lvs_real_servers',
    help: 'Real servers known to this node (over every group it is a candidate for).',
    registers,
    async collect() {
      const list = await director.status();
      for (const m of all) m.reset();
      this.set(list.filter((s) => !s.sorry).length);
      for (const s of list) {
        const l = { group: s.group, service: s.service, server: `${s.address}:${s.port}` };
        if (s.sorry) {
          sorry.set(l, 1);
          continue;
        }
        if (s.up !== undefined) up.set(l, s.up ? 1 : 0);
        if (s.weight !== undefined) weight.set(l, s.weight);
        if (s.stats) {
          conns.set({ ...l, state: 'active' }, s.stats.activeConns);
          conns.set({ ...l, state: 'inactive' }, s.stats.inactiveConns);
          total.set(l, s.stats.conns);
          packets.set({ ...l, direction: 'in' }, s.stats.inPackets);
          packets.set({ ...l, direction: 'out' }, s.stats.outPackets);
          bytes.set({ ...l, direction: 'in' }, s.stats.inBytes);
          bytes.set({ ...l, direction: 'out' }, s.stats.outBytes);
        }
      }
    },
  });
}
