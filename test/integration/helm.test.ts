// The Helm chart deploy/helm/vipwarden against a real kube-apiserver: helm lint, `helm template | kubectl apply
// --dry-run=server` (defaults, etcd TLS, ServiceMonitor), helm install and upgrade, and the drift test that keeps
// deploy/kubernetes what the chart renders (hack/package/manifests.sh --check). Helm is built from its Go module at
// a pinned version (hack/package/helm.sh, cached). Without a kubelet the pods do not run: test/e2e covers that.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { parseControllerConfig } from '../../controller/config.js';
import { parseAgentConfig } from '../../node-agent/config.js';
import { REPO } from '../../hack/testbed/cluster.js';
import { startKube, type KubeEnv } from '../harness/kube.js';
import { runScript } from './package-helpers.js';

const execFileP = promisify(execFile);
const CHART = join(REPO, 'deploy', 'helm', 'vipwarden');
const NS = 'vipwarden-helm';
let helm: string;
let kube: KubeEnv | undefined;
const dir = mkdtempSync(join(tmpdir(), 'vipwarden-helm-'));

function env(): KubeEnv {
  if (!kube) throw new Error('the Kubernetes environment did not start (see the beforeAll error above)');
  return kube;
}

async function h(args: string[], input?: string): Promise<string> {
  const child = execFileP(helm, args, {
    env: {
      ...process.env,
      KUBECONFIG: env().kubeconfigPath,
      HELM_CACHE_HOME: dir,
      HELM_CONFIG_HOME: dir,
      HELM_DATA_HOME: dir,
    },
    timeout: 120_000,
    maxBuffer: 32 * 1024 * 1024,
  });
  if (input !== undefined) child.child.stdin!.end(input);
  try {
    return (await child).stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`helm ${args.join(' ')}: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the integration tier must run as root');
  helm = (await runScript('hack/package/helm.sh')).HELM!;
  kube = await startKube();
}, 30 * 60_000);

afterAll(async () => {
  await kube?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const PEM = (what: string) => `-----BEGIN ${what}-----\nMIIBfake\n-----END ${what}-----\n`;
const tlsValues = () => {
  const f = join(dir, 'tls-values.yaml');
  writeFileSync(
    f,
    JSON.stringify({
      etcd: {
        endpoints: ['https://etcd-0.example:2379', 'https://etcd-1.example:2379'],
        tls: { enabled: true, ca: PEM('CERTIFICATE'), cert: PEM('CERTIFICATE'), key: PEM('PRIVATE KEY') },
      },
      serviceMonitor: { enabled: true },
    }),
  );
  return f;
};

test('helm lint passes, with the defaults and with TLS and the ServiceMonitor on', async () => {
  expect(await h(['lint', CHART, '--strict'])).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  expect(await h(['lint', CHART, '--strict', '-f', tlsValues()])).toMatch(/0 chart\(s\) failed/);
});

test('deploy/kubernetes is what the chart renders (hack/package/manifests.sh --check)', async () => {
  await runScript('hack/package/manifests.sh', ['--check']);
});

test('helm template | kubectl apply --dry-run=server: defaults, and etcd TLS', async () => {
  await env().kubectl(['create', 'namespace', 'vipwarden-dry']);
  for (const extra of [[], ['-f', tlsValues(), '--set', 'serviceMonitor.enabled=false']]) {
    const out = await h([
      'template',
      'vipwarden',
      CHART,
      '--namespace',
      'vipwarden-dry',
      '--include-crds',
      '--kube-version',
      '1.37.1',
      ...extra,
    ]);
    const r = await env().kubectl(['apply', '--dry-run=server', '-f', '-'], { input: out });
    expect(r.stdout).toMatch(/deployment\.apps\/vipwarden-controller created \(server dry run\)/);
    expect(r.stdout).toMatch(/daemonset\.apps\/vipwarden-agent created \(server dry run\)/);
    expect(r.stdout).toMatch(/customresourcedefinition\.apiextensions\.k8s\.io\/failovergroups\.vipwarden\.io/);
  }
  // The TLS variant: a Secret, mounted in both pods, and the configs name its files.
  const docs = parseAllDocuments(
    await h([
      'template',
      'vipwarden',
      CHART,
      '--namespace',
      'vipwarden-dry',
      '--kube-version',
      '1.37.1',
      '-f',
      tlsValues(),
    ]),
  ).map((d) => d.toJS() as { kind: string; metadata: { name: string }; data?: Record<string, string> });
  expect(docs.find((d) => d.kind === 'Secret')?.data).toHaveProperty(['tls.key']);
  expect(docs.some((d) => d.kind === 'ServiceMonitor')).toBe(true);
  const agentCm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'vipwarden-agent')!;
  const agent = parseAgentConfig({ ...(parseYaml(agentCm.data!['agent.yaml']!) as object), node: 'n1' });
  expect(agent.etcd.tls).toEqual({
    ca: '/etc/vipwarden-tls/ca.crt',
    cert: '/etc/vipwarden-tls/tls.crt',
    key: '/etc/vipwarden-tls/tls.key',
  });
});

test('helm install, then helm upgrade with changed values: objects, valid configs, rolled pods', async () => {
  const out = await h(['install', 'vipwarden', CHART, '--namespace', NS, '--create-namespace']);
  expect(out).toMatch(/STATUS: deployed/);
  const get = async (kind: string, name: string) =>
    JSON.parse((await env().kubectl(['-n', NS, 'get', kind, name, '-o', 'json'])).stdout) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  expect((await get('deployment', 'vipwarden-controller')).spec.replicas).toBe(2);
  const ds = await get('daemonset', 'vipwarden-agent');
  expect(ds.spec.template.spec.containers[0].image).toBe('ghcr.io/vipwarden/vipwarden:0.1.0');
  expect(ds.spec.template.spec.containers[0].securityContext.capabilities.add).toEqual(['NET_ADMIN', 'NET_RAW']);
  const ctlCm = await get('configmap', 'vipwarden-controller');
  const agentCm = await get('configmap', 'vipwarden-agent');
  parseControllerConfig(parseYaml(ctlCm.data['controller.yaml'] as string));
  parseAgentConfig({ ...(parseYaml(agentCm.data['agent.yaml'] as string) as object), node: 'n1' });
  expect((await env().kubectl(['get', 'crd', 'failovergroups.vipwarden.io'])).exitCode).toBe(0);
  const checksum1 = (await get('deployment', 'vipwarden-controller')).spec.template.metadata.annotations[
    'checksum/config'
  ];

  const up = await h([
    'upgrade',
    'vipwarden',
    CHART,
    '--namespace',
    NS,
    '--set',
    'controller.replicas=3',
    '--set',
    'controller.config.settleMs=500',
    '--set',
    'agent.interface=ens3',
  ]);
  expect(up).toMatch(/REVISION: 2/);
  const dep = await get('deployment', 'vipwarden-controller');
  expect(dep.spec.replicas).toBe(3);
  expect(dep.spec.template.metadata.annotations['checksum/config']).not.toBe(checksum1);
  const ctl = parseControllerConfig(
    parseYaml((await get('configmap', 'vipwarden-controller')).data['controller.yaml'] as string),
  );
  expect(ctl.settleMs).toBe(500);
  const agent = parseAgentConfig({
    ...(parseYaml((await get('configmap', 'vipwarden-agent')).data['agent.yaml'] as string) as object),
    node: 'n1',
  });
  expect(agent.interface).toBe('ens3');
  expect(await h(['history', 'vipwarden', '--namespace', NS])).toMatch(/2\s+.*deployed/);

  expect(await h(['uninstall', 'vipwarden', '--namespace', NS])).toMatch(/uninstalled/);
  expect(
    (await env().kubectl(['-n', NS, 'get', 'daemonset', 'vipwarden-agent'], { allowFailure: true })).exitCode,
  ).not.toBe(0);
}, 120_000); // two helm runs and several kubectl calls: 6.5 s at load 18, past the 5 s default
