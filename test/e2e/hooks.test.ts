// Resources that move with the address (Heartbeat's haresources `httpd`): a real service (a second nginx, on
// port 8081) is started by an acquire hook and stopped by a release hook, both named in each agent's own
// configuration and run with start-stop-daemon. A recording hook keeps the environment each hook was given.
// A failing acquire hook makes the node let the group go, so that another node serves it.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, jest, test } from '@jest/globals';
import { TWO_NODES, type Cluster } from '../../hack/testbed/cluster.js';
import { startProbe, type Probe, type Sampler } from '../../hack/testbed/index.js';
import { useE2eCluster } from '../harness/e2e.js';
import { run } from '../../hack/testbed/util.js';
import { eventually } from '../harness/workloads.js';

jest.setTimeout(180_000);

const APP_PORT = 8081;
const SSD = '/usr/sbin/start-stop-daemon';
let c: Cluster;
let sampler: Sampler;
let probe: Probe | undefined;

const appDir = (node: string) => join(c.tb.dir, `app-${node}`);
const pidFile = (node: string) => join(appDir(node), 'nginx.pid');
const recordFile = (node: string) => join(c.tb.dir, `hooks-${node}.jsonl`);

/** A single-process nginx answering "<node>-app" on port 8081: the service the hooks move. */
function writeAppConfig(node: string): string {
  const dir = appDir(node);
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  const t = (x: string) => join(dir, 'tmp', x);
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx-own.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${t('body')}; proxy_temp_path ${t('proxy')}; fastcgi_temp_path ${t('fastcgi')};
  uwsgi_temp_path ${t('uwsgi')}; scgi_temp_path ${t('scgi')};
  server {
    listen ${APP_PORT};
    keepalive_timeout 0;
    location / { default_type text/plain; return 200 "${node}-app\\n"; }
  }
}
`,
  );
  return conf;
}

// Appends {phase, env} to a file: what a hook sees.
const RECORD = `require('node:fs').appendFileSync(process.argv[1], JSON.stringify(Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('VIPWARDEN_')))) + '\\n')`;

function hooksFor(node: string) {
  const conf = writeAppConfig(node);
  return {
    app: {
      acquire: [
        SSD,
        '--start',
        '--oknodo',
        '--background',
        '--make-pidfile',
        '--pidfile',
        pidFile(node),
        '--exec',
        '/usr/sbin/nginx',
        '--',
        '-p',
        appDir(node),
        '-c',
        conf,
      ],
      release: [
        SSD,
        '--stop',
        '--oknodo',
        '--remove-pidfile',
        '--pidfile',
        pidFile(node),
        '--exec',
        '/usr/sbin/nginx',
        '--retry',
        'TERM/5/KILL/2',
      ],
      timeoutMs: 15_000,
    },
    record: {
      acquire: [process.execPath, '-e', RECORD, recordFile(node)],
      release: [process.execPath, '-e', RECORD, recordFile(node)],
      timeoutMs: 10_000,
    },
    // The same hook name does different things per node: it fails on node1 only.
    fragile: { acquire: node === 'node1' ? ['/bin/false'] : ['/bin/true'], timeoutMs: 5000 },
  };
}

async function appListening(node: string): Promise<boolean> {
  const r = await run(['ss', '-N', c.tb.node(node).netns, '-Hltn', `sport = :${APP_PORT}`], { allowFailure: true });
  return r.exitCode === 0 && r.stdout.trim() !== '';
}

function records(node: string): Record<string, string>[] {
  if (!existsSync(recordFile(node))) return [];
  return readFileSync(recordFile(node), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, string>);
}

let ready = false;
const e2e = useE2eCluster(
  {
    name: 'hooks',
    nodes: 2,
    start: false,
    agentFor: (node) => (ready ? { hooks: hooksFor(node) } : {}),
  },
  async (f) => {
    ({ c, sampler } = f);
    // The hooks' services are daemons, not children of the testbed: stopped before the namespaces go.
    f.onTeardown(async () => {
      for (const n of c.tb.nodes) {
        await run(
          [
            SSD,
            '--stop',
            '--oknodo',
            '--remove-pidfile',
            '--pidfile',
            pidFile(n.name),
            '--exec',
            '/usr/sbin/nginx',
            '--retry',
            'KILL/2',
          ],
          { allowFailure: true },
        );
      }
    });
    f.onTeardown(async () => probe?.stop());
    ready = true;
    for (const n of c.tb.nodes) await c.startAgent(n.name);
    c.startController(0);
  },
);

describe('hooks on the netns testbed', () => {
  test('an acquire hook starts the service on the holder; after failover the old holder stops it and the new one starts it', async () => {
    const vip = e2e.f.applyWeb(0, {
      name: 'web',
      nodes: TWO_NODES,
      extra: { hooks: ['record', 'app'] },
    });
    await sampler.waitForHolder(vip, 'node1', 30_000);
    probe = await startProbe(c.tb, {
      target: vip,
      port: APP_PORT,
      intervalMs: 50,
      timeoutMs: 200,
      maxDurationMs: 120_000,
    });
    await probe.waitFor((s) => s.ok && s.body === 'node1-app', 20_000, { includePast: true });
    expect(await appListening('node2')).toBe(false);

    await c.nginx.get('node1')!.kill();
    await sampler.waitForHolder(vip, 'node2', 30_000);
    await probe.waitFor((s) => s.ok && s.body === 'node2-app', 30_000, { includePast: true });
    await eventually(async () => !(await appListening('node1')), 'the release hook to stop the service on node1');
    expect(existsSync(pidFile('node1'))).toBe(false);

    // What the hooks were told: group, VIPs, epoch and node; release with the epoch that was held.
    const n1 = records('node1');
    const n2 = records('node2');
    expect(n1.map((r) => r.VIPWARDEN_EVENT)).toEqual(['acquire', 'release']);
    expect(n1[0]).toMatchObject({
      VIPWARDEN_GROUP: 'web',
      VIPWARDEN_NODE: 'node1',
      VIPWARDEN_VIPS: `${vip}/24`,
      VIPWARDEN_ADDRESSES: vip,
      VIPWARDEN_INTERFACES: 'eth0',
    });
    expect(n1[1]!.VIPWARDEN_EPOCH).toBe(n1[0]!.VIPWARDEN_EPOCH);
    expect(n2.map((r) => [r.VIPWARDEN_EVENT, r.VIPWARDEN_NODE])).toEqual([['acquire', 'node2']]);
    expect(Number(n2[0]!.VIPWARDEN_EPOCH)).toBeGreaterThan(Number(n1[0]!.VIPWARDEN_EPOCH));

    await probe.stop();
    probe = undefined;
    await c.nginx.get('node1')!.start();
    // Failback to node1 moves the service back as well.
    await sampler.waitForHolder(vip, 'node1', 30_000);
    await eventually(
      async () => (await appListening('node1')) && !(await appListening('node2')),
      'the service back on node1 only',
    );
    await e2e.f.deleteAndWait('web', vip);
    await eventually(async () => !(await appListening('node1')), 'the service stopped when the group is deleted');
  });

  test('a failing acquire hook releases the group, so that another node serves it', async () => {
    const vip = e2e.f.applyWeb(1, {
      name: 'fragile',
      nodes: TWO_NODES,
      extra: { hooks: ['fragile'] },
    });
    await sampler.waitForHolder(vip, 'node2', 30_000);
    const s = await c.status();
    const node1 = s.groups.find((g) => g.group === 'fragile')!.nodes.find((n) => n.name === 'node1')!;
    expect(node1.healthy).toBe(false);
    expect(node1.checks.find((x) => x.name === 'acquire')?.message).toMatch(/acquire hook "fragile" exited 1/);
    const evs = await c.events('fragile');
    expect(evs.at(-1)!.to).toBe('node2');
    // It stays on node2 while node1 is held down.
    await new Promise((r) => setTimeout(r, 2000));
    expect(sampler.holders(vip)).toEqual(['node2']);
    await e2e.f.deleteAndWait('fragile', vip);
  });
});
