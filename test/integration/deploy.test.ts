// deploy/: the alert rules pass promtool (and their unit tests, including the two-holder alert), the scrape config
// and the dashboard's queries are valid PromQL, the systemd units pass `systemd-analyze verify`, and the example
// configuration files parse with the components' own schemas.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { CommandError, realExec } from '../../common/exec.js';
import { parseControllerConfig } from '../../controller/config.js';
import { parseAgentConfig } from '../../node-agent/config.js';
import { REPO } from '../../hack/testbed/cluster.js';

const deploy = join(REPO, 'deploy');
let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'vipwarden-deploy-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

async function run(argv: string[]): Promise<string> {
  try {
    const r = await realExec(argv, { timeoutMs: 60_000 });
    return `${r.stdout}\n${r.stderr}`;
  } catch (err) {
    // Show the tool's own explanation in the test failure.
    throw new Error(err instanceof CommandError ? err.message : String(err));
  }
}

describe('Prometheus files', () => {
  it('promtool check rules passes on the alert rules', async () => {
    expect(await run(['promtool', 'check', 'rules', join(deploy, 'prometheus/alerts.yml')])).toMatch(
      /SUCCESS: \d+ rules found/,
    );
  });

  it('promtool test rules passes, including the alert for more than one holder', async () => {
    const tests = readFileSync(join(deploy, 'prometheus/alerts.test.yml'), 'utf8');
    expect(tests).toContain('alertname: VipwardenMultipleHolders');
    expect(await run(['promtool', 'test', 'rules', join(deploy, 'prometheus/alerts.test.yml')])).toContain('SUCCESS');
  });

  it('promtool test rules fails when the two-holder alert is missing (the test has teeth)', async () => {
    const rules = parseYaml(readFileSync(join(deploy, 'prometheus/alerts.yml'), 'utf8')) as {
      groups: { rules: { alert: string }[] }[];
    };
    for (const g of rules.groups) g.rules = g.rules.filter((r) => r.alert !== 'VipwardenMultipleHolders');
    writeFileSync(join(tmp, 'alerts.yml'), toYaml(rules));
    writeFileSync(join(tmp, 'alerts.test.yml'), readFileSync(join(deploy, 'prometheus/alerts.test.yml')));
    await expect(run(['promtool', 'test', 'rules', join(tmp, 'alerts.test.yml')])).rejects.toThrow(
      /VipwardenMultipleHolders/,
    );
  });

  it('the scrape config is valid', async () => {
    const cfg = parseYaml(readFileSync(join(deploy, 'prometheus/prometheus.yml'), 'utf8')) as { rule_files: string[] };
    cfg.rule_files = [join(deploy, 'prometheus/alerts.yml')];
    const path = join(tmp, 'prometheus.yml');
    writeFileSync(path, toYaml(cfg));
    expect(await run(['promtool', 'check', 'config', path])).toContain('SUCCESS');
  });

  it('every dashboard query is valid PromQL', async () => {
    const dash = JSON.parse(readFileSync(join(deploy, 'grafana/vipwarden.json'), 'utf8')) as {
      panels: { targets?: { expr: string }[] }[];
    };
    const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(10);
    // Grafana's variables, replaced by what Grafana would put there.
    const rules = exprs.map((e, i) => ({
      record: `dashboard:query${i}`,
      expr: e.replaceAll('$__rate_interval', '1m').replaceAll('$group', '.*'),
    }));
    const path = join(tmp, 'dashboard-rules.yml');
    writeFileSync(path, toYaml({ groups: [{ name: 'dashboard', rules }] }));
    expect(await run(['promtool', 'check', 'rules', path])).toMatch(/SUCCESS/);
  });
});

describe('systemd units', () => {
  it('systemd-analyze verify passes on both units', async () => {
    // verify wants ExecStart to exist: point it at the repository's entry points instead of /usr/bin (the .deb).
    const paths: string[] = [];
    for (const unit of ['vipwarden-agent.service', 'vipwarden-controller.service']) {
      const text = readFileSync(join(deploy, 'systemd', unit), 'utf8');
      const bin = unit.replace('.service', '');
      expect(text).toContain(`ExecStart=/usr/bin/${bin} `);
      const entry = join(REPO, 'bin', `${bin}.js`);
      const path = join(tmp, unit);
      writeFileSync(path, text.replace(`/usr/bin/${bin}`, entry));
      paths.push(path);
    }
    const out = await run(['systemd-analyze', 'verify', ...paths]);
    // verify exits 0 even for some warnings about our units; there must be none.
    expect(out.split('\n').filter((l) => /vipwarden-(agent|controller)\.service/.test(l))).toEqual([]);
  });

  it("the agent unit has the hardening and a stop timeout above the agent's own exit deadline", () => {
    const text = readFileSync(join(deploy, 'systemd/vipwarden-agent.service'), 'utf8');
    const setting = (k: string) => [...text.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
    expect(setting('Restart')).toEqual(['on-failure']);
    expect(setting('NoNewPrivileges')).toEqual(['yes']);
    expect(setting('ProtectSystem')).toEqual(['strict']);
    expect(setting('AmbientCapabilities')).toEqual(['CAP_NET_ADMIN CAP_NET_RAW']);
    expect(setting('CapabilityBoundingSet')).toEqual(['CAP_NET_ADMIN CAP_NET_RAW']);
    const timeoutStop = setting('TimeoutStopSec')[0]!;
    expect(timeoutStop).toMatch(/^\d+s$/);
    // main.ts exits by itself at shutdownGraceMs + 5 s.
    const agent = parseAgentConfig(parseYaml(readFileSync(join(deploy, 'etc/vipwarden/agent.yaml'), 'utf8')));
    expect(parseInt(timeoutStop, 10) * 1000).toBeGreaterThan(agent.shutdownGraceMs + 5000);
  });
});

describe('example configuration', () => {
  it("agent.yaml and controller.yaml parse with the components' schemas and enable metrics", () => {
    const agent = parseAgentConfig(
      parseYaml(readFileSync(join(deploy, 'etc/vipwarden/agent.yaml'), 'utf8')),
      'agent.yaml',
    );
    expect(agent.metrics?.listen).toMatch(/:9641$/);
    const ctl = parseControllerConfig(
      parseYaml(readFileSync(join(deploy, 'etc/vipwarden/controller.yaml'), 'utf8')),
      'controller.yaml',
    );
    expect(ctl.metrics?.listen).toMatch(/:9642$/);
  });
});
