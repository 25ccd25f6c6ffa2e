// A real Prometheus (the Debian package) scrapes the testbed's agents (each on its node address, in its own
// namespace, reached through the testbed bridge) and the controller (loopback). After a failover, PromQL shows one
// holder on the new node and a raised transition counter. /healthz and /readyz answer on every component.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { stringify as toYaml } from 'yaml';
import { freePorts, requireRoot, type ProcHandle } from '../../hack/testbed/index.js';
import { REPO, startCluster, webGroup, type Cluster } from '../../hack/testbed/cluster.js';
import { logOf } from '../harness/e2e.js';

jest.setTimeout(180_000);

const PROMETHEUS = '/usr/bin/prometheus';
const AGENT_PORT = 9641;

let c: Cluster | undefined;
let prom: ProcHandle | undefined;
let promDir: string | undefined;
let promUrl = '';
let controllerMetrics = '';
const nodeIp = new Map<string, string>();

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** GET with a per-request timeout; never throws (status 0 when nothing answered). */
async function get(url: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(q: string): Promise<Sample[]> {
  const r = await get(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
  if (r.status !== 200) throw new Error(`query ${q}: HTTP ${r.status} ${r.body}`);
  const body = JSON.parse(r.body) as { status: string; data: { resultType: string; result: Sample[] } };
  if (body.status !== 'success') throw new Error(`query ${q}: ${r.body}`);
  return body.data.result;
}

/** Polls until `check` returns a value, at most `timeoutMs` and 600 tries; the last error explains a timeout. */
async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let i = 0; i < 600 && Date.now() < deadline; i++) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = String(err);
    }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
}

async function scalar(q: string): Promise<number | undefined> {
  const r = await query(q);
  return r.length === 1 ? Number(r[0]!.value[1]) : undefined;
}

beforeAll(async () => {
  requireRoot('the e2e tier');
  const [ctlPort] = await freePorts(1, ['127.0.0.1']);
  controllerMetrics = `127.0.0.1:${ctlPort}`;
  // Agents start only after the testbed exists: their listen address is their node's address.
  c = await startCluster({
    name: 'prom',
    start: false,
    agentFor: (node) => ({ metrics: { listen: `${nodeIp.get(node)}:${AGENT_PORT}` } }),
    controller: { metrics: { listen: controllerMetrics } },
  });
  for (const n of c.tb.nodes) nodeIp.set(n.name, n.ip);
  for (const n of c.tb.nodes) await c.startAgent(n.name);
  c.startController(0);

  promDir = mkdtempSync(join(tmpdir(), 'vipwarden-prom-'));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
    rule_files: [join(REPO, 'deploy/prometheus/alerts.yml')],
    scrape_configs: [
      { job_name: 'vipwarden-agent', static_configs: [{ targets: c.tb.nodes.map((n) => `${n.ip}:${AGENT_PORT}`) }] },
      { job_name: 'vipwarden-controller', static_configs: [{ targets: [controllerMetrics] }] },
    ],
  };
  writeFileSync(join(promDir, 'prometheus.yml'), toYaml(config));
  // The port is probed only now, after etcd and the controller took theirs (a port probed before the cluster started
  // could be taken by it meanwhile: Prometheus then exits at once). A start that still exits is tried again, at
  // most 3 times, and the last one's log is the error.
  for (let attempt = 1; ; attempt++) {
    const [promPort] = await freePorts(1, ['127.0.0.1']);
    promUrl = `http://127.0.0.1:${promPort}`;
    prom = c.tb.spawn(
      null,
      [
        PROMETHEUS,
        `--config.file=${join(promDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(promDir, 'data')}`,
        '--storage.tsdb.retention.time=1h',
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--log.level=warn',
      ],
      { name: `prometheus-${attempt}` },
    );
    const end = Date.now() + 30_000;
    while (!prom.exited && Date.now() < end && (await get(`${promUrl}/-/ready`)).status !== 200) await sleep(200);
    if (!prom.exited && (await get(`${promUrl}/-/ready`)).status === 200) break;
    const log = logOf(prom).slice(-2000);
    await prom.stop({ timeoutMs: 5000 }).catch(() => undefined);
    if (attempt === 3) throw new Error(`Prometheus did not start (3 tries); its last log:\n${log}`);
  }
});

afterAll(async () => {
  await prom?.stop({ timeoutMs: 5000 }).catch(() => undefined);
  await c?.destroy();
  if (promDir) rmSync(promDir, { recursive: true, force: true });
});

describe('metrics on the netns testbed', () => {
  test('every component serves /healthz and /readyz', async () => {
    const cl = c!;
    cl.applyGroup(
      webGroup({
        vips: [`${cl.tb.vip(0)}/24`],
      }),
    );
    await until('node1 to hold web', 60_000, async () => ((await cl.holderOf('web')) === 'node1' ? true : undefined));
    for (const ip of nodeIp.values()) {
      expect((await get(`http://${ip}:${AGENT_PORT}/healthz`)).status).toBe(200);
      await until(`agent at ${ip} to be ready`, 30_000, async () =>
        (await get(`http://${ip}:${AGENT_PORT}/readyz`)).status === 200 ? true : undefined,
      );
    }
    expect((await get(`http://${controllerMetrics}/healthz`)).status).toBe(200);
    await until('the controller to be ready', 30_000, async () =>
      (await get(`http://${controllerMetrics}/readyz`)).status === 200 ? true : undefined,
    );
    const m = await get(`http://${controllerMetrics}/metrics`);
    expect(m.body).toContain('vipwarden_leader 1');
  });

  test('Prometheus sees one holder, and after a failover the new holder and a raised transition counter', async () => {
    const cl = c!;
    expect(prom!.exited).toBe(false);
    // Every target up, the rules loaded.
    await until('all four targets to be up', 60_000, async () =>
      (await scalar('sum(up{job=~"vipwarden-.*"})')) === 4 ? true : undefined,
    );
    const rules = JSON.parse((await get(`${promUrl}/api/v1/rules`)).body) as {
      data: { groups: { rules: { name: string; health: string }[] }[] };
    };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    expect(loaded.map((r) => r.name)).toContain('VipwardenMultipleHolders');
    expect(loaded.every((r) => r.health !== 'err')).toBe(true);

    await until('node1 as the only holder in Prometheus', 30_000, async () => {
      const holders = await query('vipwarden_group_holder{group="web"} == 1');
      return holders.length === 1 && holders[0]!.metric.node === 'node1' ? true : undefined;
    });
    expect(await scalar('sum(vipwarden_group_holder{group="web"})')).toBe(1);
    // Every candidate shows a series (0 or 1), and the leader assigned node1.
    expect((await query('vipwarden_group_holder{group="web"}')).length).toBe(3);
    expect((await query('vipwarden_assigned_holder{group="web"} == 1')).map((s) => s.metric.node)).toEqual(['node1']);
    expect(await scalar('sum(vipwarden_leader)')).toBe(1);
    expect(await scalar('min(vipwarden_etcd_up)')).toBe(1);
    expect(await scalar('min(vipwarden_check_up{group="web",check="nginx"})')).toBe(1);
    expect(await scalar('sum(vipwarden_lease_keepalive_rtt_seconds_count)')).toBeGreaterThan(0);
    const before = (await scalar('sum(vipwarden_transitions_total{group="web"})')) ?? 0;

    cl.nginx.get('node1')!.kill();
    await until('the VIP to move off node1', 60_000, async () => {
      const h = await cl.holderOf('web');
      return h && h !== 'node1' ? h : undefined;
    });
    const holder = (await cl.holderOf('web'))!;

    await until(`${holder} as the only holder in Prometheus`, 30_000, async () => {
      const holders = await query('vipwarden_group_holder{group="web"} == 1');
      return holders.length === 1 && holders[0]!.metric.node === holder ? true : undefined;
    });
    expect(await scalar('sum(vipwarden_group_holder{group="web"}) == 1')).toBe(1);
    const after = await until('the transition counter to rise', 30_000, async () => {
      const v = await scalar('sum(vipwarden_transitions_total{group="web"})');
      return v !== undefined && v > before ? v : undefined;
    });
    expect(after).toBeGreaterThan(before);
    await until('increase() of holder changes to show the failover', 30_000, async () => {
      const v = await scalar('sum(increase(vipwarden_holder_changes_total{group="web"}[5m]))');
      return v !== undefined && v > 0 ? v : undefined;
    });
    // The agents' side of the same story: node1 released, the new holder acquired and measured the outage.
    await until('the agents to report the move', 30_000, async () => {
      const rel = await scalar(
        'sum(vipwarden_agent_transitions_total{group="web",kind="release",instance=~"' + nodeIp.get('node1') + ':.*"})',
      );
      const acq = await scalar(
        `sum(vipwarden_failover_outage_seconds_count{group="web",instance="${nodeIp.get(holder)}:${AGENT_PORT}"})`,
      );
      return rel !== undefined && rel >= 1 && acq !== undefined && acq >= 1 ? true : undefined;
    });
    await until('the failed check on node1', 30_000, async () =>
      (await scalar(
        `vipwarden_check_up{group="web",check="nginx",instance="${nodeIp.get('node1')}:${AGENT_PORT}"}`,
      )) === 0
        ? true
        : undefined,
    );
    // The failover did not raise the alerts that would mean a broken invariant.
    const firing = await query('ALERTS{alertstate="firing"}');
    expect(
      firing
        .map((s) => s.metric.alertname)
        .filter((a) => a === 'VipwardenMultipleHolders' || a === 'VipwardenNoLeader'),
    ).toEqual([]);
  });

  test('logs are pino JSON, and the lines about a group carry group, node and epoch', async () => {
    const cl = c!;
    const lines = (p: ProcHandle) =>
      readFileSync(p.stdoutLog!, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const agentLines = [...cl.agents.values()].flatMap(lines);
    expect(agentLines.length).toBeGreaterThan(0);
    for (const l of agentLines) expect(typeof l.node).toBe('string');
    const about = agentLines.filter((l) =>
      ['acquired', 'released', 'told the controller this node will not hold it'].includes(String(l.msg)),
    );
    expect(about.map((l) => l.msg)).toEqual(expect.arrayContaining(['acquired', 'released']));
    for (const l of about) {
      expect(l.group).toBe('web');
      expect(typeof l.epoch).toBe('number');
    }
    const ctl = lines(cl.controllers[0]!);
    const failovers = ctl.filter((l) => l.msg === 'failover');
    expect(failovers.length).toBeGreaterThanOrEqual(2);
    for (const l of [...failovers, ...ctl.filter((l) => l.msg === 'assignment written')]) {
      expect(l.group).toBe('web');
      expect(typeof l.epoch).toBe('number');
    }
    for (const l of ctl.filter((l) => l.msg === 'assignment written')) expect(typeof l.node).toBe('string');
  });
});
