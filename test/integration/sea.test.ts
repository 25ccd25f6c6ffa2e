// The single executables (hack/package/sea.sh) run without Node.js or node_modules: the CLI, the controller and the
// agent from dist/sea against a real etcd. What a bundle can break is exercised: etcd3's gRPC protos (compiled into
// the bundle), prom-client's /metrics, pino-pretty (VIPWARDEN_LOG_PRETTY=1), the lazy import of the Kubernetes
// source, and the agent's lookup of its native helpers next to the binary.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import type { Etcd3 } from 'etcd3';
import { stringify as toYaml } from 'yaml';
import { connectEtcd } from '../../common/etcd.js';
import { Keys } from '../../common/keyspace.js';
import { REPO, requireBuilt, webGroup } from '../../hack/testbed/cluster.js';
import { freePorts, startEtcd, type EtcdCluster } from '../harness/etcd.js';
import { buildSea, run, start, waitFor, type Proc } from './package-helpers.js';

jest.setTimeout(20 * 60_000);

const PREFIX = '/sea-test/';
let sea: string;
let etcd: EtcdCluster;
let client: Etcd3;
let dir: string;
/** No PATH entry with node in it, and no NODE_* variables: the binaries must not need them. */
let env: NodeJS.ProcessEnv;
const procs: Proc[] = [];

beforeAll(async () => {
  requireBuilt();
  sea = await buildSea();
  etcd = await startEtcd({ members: 1 });
  client = connectEtcd(etcd.clientConfig());
  dir = mkdtempSync(join(tmpdir(), 'vw-sea-'));
  env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: dir, LANG: 'C.UTF-8' };
}, 20 * 60_000);

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  client?.close();
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function noRuntimeWarnings(text: string): void {
  // The SEA's require() warns once when code asks it for a non-built-in module: nothing may. (grpc-js's DEP0123
  // about TLS to an IP address is not the bundle's: node prints it too.)
  expect(text).not.toMatch(/single-executable|ExperimentalWarning|Cannot find module/);
}

test('vipwarden --help prints the usage, from the binary alone', async () => {
  const r = await run([join(sea, 'vipwarden'), '--help'], { env });
  expect(`${r.out}${r.err}`).toContain('usage: vipwarden');
  noRuntimeWarnings(r.err);
});

test('--version on every command prints the package version (no package.json beside the binary)', async () => {
  const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  for (const cmd of ['vipwarden', 'vipwarden-agent', 'vipwarden-controller']) {
    const r = await run([join(sea, cmd), '--version'], { env });
    expect(r.code).toBe(0);
    expect(r.out).toContain(version);
    noRuntimeWarnings(r.err);
  }
});

test('the agent and the controller exit 1 with the missing path named', async () => {
  for (const cmd of ['vipwarden-agent', 'vipwarden-controller']) {
    const r = await run([join(sea, cmd), '--config', join(dir, 'no-such', 'x.yaml')], { env });
    expect(r.code).toBe(1);
    expect(r.err).toContain(join(dir, 'no-such', 'x.yaml'));
    expect(r.err).toContain(`${cmd}:`);
    noRuntimeWarnings(r.err);
  }
});

test('the CLI names an unreachable etcd', async () => {
  const [port] = await freePorts(1, ['127.0.0.1']);
  const r = await run([join(sea, 'vipwarden'), 'status', '--etcd', `http://127.0.0.1:${port}`, '--timeout', '2000'], {
    env,
  });
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/cannot reach etcd/);
});

test('controller, agent and CLI from dist/sea work against etcd: election, registration, metrics, status', async () => {
  const [cport, aport] = await freePorts(2, ['127.0.0.1']);
  const groups = join(dir, 'groups');
  mkdirSync(groups);
  // A group for a node that does not exist: placed nowhere, but read, validated and written to etcd.
  writeFileSync(
    join(groups, 'web.yaml'),
    toYaml(webGroup({ name: 'sea-web', vips: ['198.18.250.100/24'], nodes: [['sea-absent', 100]] })),
  );
  writeFileSync(
    join(dir, 'controller.yaml'),
    toYaml({
      id: 'sea-ctl',
      etcd: { ...etcd.clientConfig(), prefix: PREFIX },
      source: { directory: groups },
      metrics: { listen: `127.0.0.1:${cport}` },
    }),
  );
  writeFileSync(
    join(dir, 'agent.yaml'),
    toYaml({
      node: 'sea-node',
      etcd: { ...etcd.clientConfig(), prefix: PREFIX },
      interface: 'lo',
      stateDir: join(dir, 'state'),
      metrics: { listen: `127.0.0.1:${aport}` },
    }),
  );
  const ctl = start([join(sea, 'vipwarden-controller'), '--config', join(dir, 'controller.yaml')], {
    ...env,
    VIPWARDEN_LOG_PRETTY: '1',
  });
  procs.push(ctl);
  const agent = start([join(sea, 'vipwarden-agent'), '--config', join(dir, 'agent.yaml'), '--log-level', 'debug'], env);
  procs.push(agent);

  const keys = new Keys(PREFIX);
  await waitFor('the agent registered in etcd', () => client.get(keys.node('sea-node')).string(), 30_000).catch(
    (err: Error) => {
      throw new Error(`${err.message}\nagent:\n${agent.output()}`);
    },
  );
  const metrics = await waitFor(
    'controller /readyz and /metrics',
    async () => {
      const ready = await fetch(`http://127.0.0.1:${cport}/readyz`);
      if (ready.status !== 200) return undefined;
      return (await fetch(`http://127.0.0.1:${cport}/metrics`)).text();
    },
    30_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\ncontroller:\n${ctl.output()}`);
  });
  expect(metrics).toMatch(/^vipwarden_/m);
  expect(metrics).toMatch(/^process_cpu_seconds_total/m); // prom-client's default metrics (and @opentelemetry/api)
  const agentMetrics = await (await fetch(`http://127.0.0.1:${aport}/metrics`)).text();
  expect(agentMetrics).toMatch(/^vipwarden_/m);

  const status = await waitFor('status lists the group', async () => {
    const r = await run([join(sea, 'vipwarden'), 'status', '-o', 'json', '--prefix', PREFIX], {
      env: { ...env, ...etcd.cliEnv() },
    });
    if (r.code !== 0) throw new Error(r.err);
    const s = JSON.parse(r.out) as { leader: string | null; groups: { group: string }[] };
    return s.leader && s.groups.some((g) => g.group === 'sea-web') ? s : undefined;
  });
  expect(status.leader).toContain('sea-ctl');

  // pino-pretty as a stream: human-readable lines, no JSON.
  expect(ctl.output()).toMatch(/INFO.*controller started/);
  // The agent used the helpers next to the binary: it did not try to compile vipwarden-ndsend.
  expect(agent.output()).not.toMatch(/no vipwarden-ndsend|gcc/);
  noRuntimeWarnings(ctl.output());
  noRuntimeWarnings(agent.output());

  // SIGTERM: the agent revokes its lease (the node key goes), both exit 0.
  agent.child.kill('SIGTERM');
  expect(await agent.exited).toEqual({ code: 0, signal: null });
  expect(await client.get(keys.node('sea-node')).string()).toBeNull();
  ctl.child.kill('SIGTERM');
  expect(await ctl.exited).toEqual({ code: 0, signal: null });
});

test('the helpers are found next to the binary, through a symlink, and the agent says so when they are not', async () => {
  // A copy of the binary alone, without vw-before anywhere it looks: a clear error, not a crash.
  const lone = join(dir, 'lone', 'bin');
  mkdirSync(lone, { recursive: true });
  copyFileSync(join(sea, 'vipwarden'), join(lone, 'vipwarden'));
  symlinkSync('vipwarden', join(lone, 'vipwarden-agent'));
  writeFileSync(
    join(dir, 'lone.yaml'),
    toYaml({
      node: 'sea-lone',
      etcd: { ...etcd.clientConfig(), prefix: PREFIX },
      interface: 'lo',
      stateDir: join(dir, 'lone-state'),
    }),
  );
  const r = await run([join(lone, 'vipwarden-agent'), '--config', join(dir, 'lone.yaml')], { env, timeoutMs: 30_000 });
  expect(r.code).toBe(1);
  expect(r.err).toContain(`${join(lone, 'vw-before')} is missing`);
});

test('the Kubernetes source loads lazily from the bundle (its client is there: a missing kubeconfig is named)', async () => {
  writeFileSync(
    join(dir, 'kube-controller.yaml'),
    toYaml({
      etcd: { ...etcd.clientConfig(), prefix: PREFIX },
      source: { kubernetes: { kubeconfig: join(dir, 'no-such-kubeconfig') } },
    }),
  );
  const r = await run([join(sea, 'vipwarden-controller'), '--config', join(dir, 'kube-controller.yaml')], { env });
  expect(r.code).toBe(1);
  expect(r.err).toContain(join(dir, 'no-such-kubeconfig'));
  noRuntimeWarnings(r.err);
});

test('each command is its own bundle: the agent carries neither the Kubernetes client nor the controller', async () => {
  const out = join(dir, 'bundles');
  const r = await run([process.execPath, join(REPO, 'hack', 'package', 'bundle.mjs'), out], { env: process.env });
  expect(r.code).toBe(0);
  const agent = readFileSync(join(out, 'agent.cjs'), 'utf8');
  const controller = readFileSync(join(out, 'controller.cjs'), 'utf8');
  // keepNames keeps class names: KubeConfig is @kubernetes/client-node's, HeartbeatMonitor and Compactor the
  // controller's.
  for (const name of ['KubeConfig', 'HeartbeatMonitor', 'Compactor']) {
    expect(controller).toContain(`"${name}"`);
    expect(agent).not.toContain(`"${name}"`);
  }
  // The dispatcher holds no command's code: it reads the one it runs.
  expect(readFileSync(join(out, 'vipwarden.cjs'), 'utf8').length).toBeLessThan(4000);
});
