// deploy/kubernetes against a real kube-apiserver: the workloads pass `kubectl apply --dry-run=server`, and the
// controller runs (from dist/, as in its Deployment) with a token of its ServiceAccount bound only by deploy/'s RBAC.
// A permission missing there shows up here as a finalizer, status or Event that never appears.
// The node agents are stood in for by etcd records (a node lease, health, releases): this tier has no netns
// testbed; test/e2e/kubernetes.test.ts runs real agents.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3, Lease } from 'etcd3';
import { parseAllDocuments, stringify as toYaml } from 'yaml';
import { connectEtcd } from '../../common/etcd.js';
import { AssignmentRecord, decode, GroupRecord, Keys } from '../../common/keyspace.js';
import { spawnLogged, type ProcHandle } from '../../hack/testbed/proc.js';
import { DIST, requireBuilt } from '../../hack/testbed/cluster.js';
import { startEtcd, type EtcdCluster } from '../harness/etcd.js';
import { startKube, type KubeEnv } from '../harness/kube.js';
import { DEPLOY_DIR, kubeSlot, getFg, objectEvents, waitFor } from './kube-helpers.js';

interface FgObject {
  metadata: { finalizers?: string[]; uid: string };
  status?: {
    phase?: string;
    holder?: string;
    epoch?: number;
    observedGeneration?: number;
    nodes?: { name: string; live: boolean; healthy: boolean }[];
    conditions?: { type: string; status: string; reason: string; message: string }[];
    lastTransition?: { from?: string; to?: string; reason: string };
  };
}

const slot = kubeSlot();
const env = (): KubeEnv => slot.get();
let etcd: EtcdCluster | undefined;
let client: Etcd3 | undefined;
let controller: ProcHandle | undefined;
let nodeLease: Lease | undefined;
let saKubeconfig = '';
const dir = mkdtempSync(join(tmpdir(), 'vipwarden-rbac-'));
const keys = new Keys('/vipwarden/');

beforeAll(async () => {
  requireBuilt();
  const kube = await slot.start(() => startKube());
  for (const f of ['00-crd.yaml', '01-namespace.yaml', '02-rbac.yaml'])
    await kube.kubectl(['apply', '-f', join(DEPLOY_DIR, f)]);
  await kube.kubectl(['wait', '--for=condition=Established', 'crd/failovergroups.vipwarden.io', '--timeout=60s']);
  saKubeconfig = await kube.createServiceAccountKubeconfig('vipwarden-system', 'vipwarden-controller');
  etcd = await startEtcd({ members: 1 });
  client = connectEtcd(etcd.clientConfig());
}, 30 * 60_000);

afterAll(async () => {
  await controller?.stop({ timeoutMs: 3000 }).catch(() => undefined);
  await nodeLease?.revoke().catch(() => undefined);
  client?.close();
  await etcd?.stop().catch(() => undefined);
  await slot.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

function docs(file: string): Record<string, unknown>[] {
  return parseAllDocuments(readFileSync(join(DEPLOY_DIR, file), 'utf8')).map(
    (d) => d.toJS() as Record<string, unknown>,
  );
}

test('the workloads pass server-side validation (kubectl apply --dry-run=server)', async () => {
  const r = await env().kubectl(['apply', '--dry-run=server', '-f', DEPLOY_DIR]);
  expect(r.stdout).toMatch(/deployment\.apps\/vipwarden-controller (created|configured|unchanged) \(server dry run\)/);
  expect(r.stdout).toMatch(/daemonset\.apps\/vipwarden-agent (created|configured|unchanged) \(server dry run\)/);
  expect(r.stdout).toMatch(/configmap\/vipwarden-agent/);
});

test('the manifests say what the design asks: 2 controller replicas; agents on the host network with NET_ADMIN and NET_RAW only', () => {
  const [deployment] = docs('04-controller.yaml') as {
    spec: { replicas: number; template: { spec: { serviceAccountName: string } } };
  }[];
  expect(deployment?.spec.replicas).toBe(2);
  expect(deployment?.spec.template.spec.serviceAccountName).toBe('vipwarden-controller');
  type Container = {
    env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
    securityContext: { capabilities: { add?: string[]; drop?: string[] }; privileged?: boolean };
  };
  const [ds] = docs('05-agent.yaml') as {
    spec: {
      template: {
        spec: {
          hostNetwork: boolean;
          automountServiceAccountToken: boolean;
          containers: Container[];
          initContainers?: Container[];
        };
      };
    };
  }[];
  const pod = ds!.spec.template.spec;
  expect(pod.hostNetwork).toBe(true);
  expect(pod.automountServiceAccountToken).toBe(false);
  const agent = pod.containers[0]!;
  expect(agent.securityContext.capabilities.add?.sort()).toEqual(['NET_ADMIN', 'NET_RAW']);
  expect(agent.securityContext.capabilities.drop).toEqual(['ALL']);
  expect(agent.securityContext.privileged).toBeUndefined();
  // Issue 14: the node name comes from the downward API straight into VIPWARDEN_NODE, with no init container.
  expect(pod.initContainers).toBeUndefined();
  expect(agent.env?.find((e) => e.name === 'VIPWARDEN_NODE')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
});

test("the controller's ServiceAccount may do what it needs and nothing more", async () => {
  const can = async (...args: string[]) =>
    (await env().kubectl(['auth', 'can-i', ...args], { kubeconfig: saKubeconfig, allowFailure: true })).stdout.trim();
  expect(await can('list', 'failovergroups.vipwarden.io')).toBe('yes');
  expect(await can('watch', 'failovergroups.vipwarden.io')).toBe('yes');
  expect(await can('patch', 'failovergroups.vipwarden.io', '--subresource=status')).toBe('yes');
  expect(await can('create', 'events', '-n', 'default')).toBe('yes');
  expect(await can('create', 'failovergroups.vipwarden.io')).toBe('no');
  expect(await can('delete', 'failovergroups.vipwarden.io')).toBe('no');
  expect(await can('create', 'events', '-n', 'kube-system')).toBe('no');
  expect(await can('get', 'secrets', '-A')).toBe('no');
  expect(await can('list', 'nodes')).toBe('no');
});

test('FailoverGroup write is opt-in: not aggregated into the built-in edit or admin roles', async () => {
  // This API server runs without kube-controller-manager, so no aggregation happens here: read the built-in roles'
  // aggregation selectors from the server and match them against deploy/'s ClusterRoles, as the aggregation
  // controller would.
  const builtIn = async (name: string) => {
    const r = await env().kubectl(['get', 'clusterrole', name, '-o', 'json']);
    const role = JSON.parse(r.stdout) as {
      aggregationRule?: { clusterRoleSelectors?: { matchLabels?: Record<string, string> }[] };
    };
    return role.aggregationRule?.clusterRoleSelectors ?? [];
  };
  const ours = docs('02-rbac.yaml').filter((d) => d['kind'] === 'ClusterRole') as {
    metadata: { name: string; labels?: Record<string, string> };
    rules: { resources: string[]; verbs: string[] }[];
  }[];
  const aggregatedInto = async (role: string) => {
    const selectors = await builtIn(role);
    expect(selectors.length).toBeGreaterThan(0);
    return ours
      .filter((c) =>
        selectors.some((s) => Object.entries(s.matchLabels ?? {}).every(([k, v]) => c.metadata.labels?.[k] === v)),
      )
      .map((c) => c.metadata.name);
  };
  const writes = (name: string) =>
    ours
      .find((c) => c.metadata.name === name)!
      .rules.some(
        (r) =>
          r.resources.includes('failovergroups') && r.verbs.some((v) => v !== 'get' && v !== 'list' && v !== 'watch'),
      );
  for (const role of ['edit', 'admin']) {
    const names = await aggregatedInto(role);
    expect(names.filter(writes)).toEqual([]);
  }
  expect(await aggregatedInto('view')).toEqual(['vipwarden-failovergroups-view']);
  expect(writes('vipwarden-failovergroups-edit')).toBe(true);

  // Bound as the docs say, the opt-in role grants the write; bound to the built-in edit role, a user gets none.
  const k = env();
  await k.kubectl(['create', 'clusterrolebinding', 'rbac-test-editor', '--clusterrole=edit', '--user=ed']);
  await k.kubectl([
    'create',
    'clusterrolebinding',
    'rbac-test-netops',
    '--clusterrole=vipwarden-failovergroups-edit',
    '--user=netops',
  ]);
  const can = async (user: string, ...args: string[]) =>
    (await k.kubectl(['auth', 'can-i', ...args, '--as', user], { allowFailure: true })).stdout.trim();
  expect(await can('ed', 'create', 'failovergroups.vipwarden.io')).toBe('no');
  expect(await can('ed', 'patch', 'failovergroups.vipwarden.io')).toBe('no');
  expect(await can('netops', 'create', 'failovergroups.vipwarden.io')).toBe('yes');
  expect(await can('netops', 'delete', 'failovergroups.vipwarden.io')).toBe('yes');
  expect(await can('netops', 'patch', 'failovergroups.vipwarden.io', '--subresource=status')).toBe('no');
});

/** A node agent's etcd records for node1: its lease and node record, and health for every published group. */
async function fakeAgent(c: Etcd3): Promise<{ stop(): void }> {
  const lease = c.lease(2, { autoKeepAlive: true });
  nodeLease = lease;
  const id = await lease.grant();
  const now = Date.now();
  await lease.put(keys.node('node1')).value(
    JSON.stringify({
      name: 'node1',
      lease: id,
      ttlSeconds: 2,
      maxLifetimeSeconds: 1,
      renewWindowMs: 100,
      addresses: [],
      interfaces: ['eth0'],
      version: 'test',
      startedAt: now,
    }),
  );
  let stopped = false;
  const released = new Set<string>();
  const loop = async () => {
    for (let i = 0; i < 100_000 && !stopped; i++) {
      const groups = await c.getAll().prefix(keys.groupsPrefix()).strings();
      for (const text of Object.values(groups)) {
        const g = decode(GroupRecord, text);
        if (!g) continue;
        const key = keys.health(g.name, 'node1');
        if ((await c.get(key).string()) === null) {
          await lease
            .put(key)
            .value(
              JSON.stringify({ healthy: true, priorityDelta: 0, checks: [], checksHash: g.checksHash, at: Date.now() }),
            );
        }
      }
      // Let go of what the controller asks back (the fast path of DESIGN.md, Safety 3).
      const assignments = await c.getAll().prefix(keys.assignmentsPrefix()).exec();
      for (const kv of assignments.kvs) {
        const a = decode(AssignmentRecord, kv.value.toString());
        const epoch = Number(kv.mod_revision);
        if (a?.release && a.holder === 'node1' && !released.has(`${a.group}/${epoch}`)) {
          released.add(`${a.group}/${epoch}`);
          await lease
            .put(keys.released(a.group, 'node1'))
            .value(JSON.stringify({ epoch, at: Date.now(), reason: a.reason }));
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  void loop().catch(() => undefined);
  return { stop: () => (stopped = true) };
}

const group = (name: string, vip: string) =>
  toYaml({
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name },
    spec: { vips: [{ address: vip }], nodes: [{ name: 'node1' }] },
  });

const fg = (name: string) => getFg<FgObject>(env(), name);

const events = (name: string) => objectEvents(env(), name);

test('the controller, as its ServiceAccount: finalizer, status, Events, a rejected VIP conflict, deletion through release', async () => {
  const path = join(dir, 'controller.yaml');
  writeFileSync(
    path,
    toYaml({
      id: 'rbac-controller',
      etcd: { ...etcd!.clientConfig({ user: 'controller' }), prefix: '/vipwarden/' },
      source: { kubernetes: { kubeconfig: saKubeconfig } },
      settleMs: 500,
      logLevel: 'debug',
    }),
  );
  const log = join(dir, 'controller.log');
  controller = spawnLogged([process.execPath, join(DIST, 'controller', 'main.js'), '--config', path], {
    name: 'controller',
    stdoutLog: log,
    stderrLog: log,
  });
  const agent = await fakeAgent(client!);
  try {
    await env().kubectl(['apply', '-f', '-'], { input: group('web', '198.18.0.100/24') });
    const web = await waitFor(async () => {
      const o = await fg('web');
      return o?.status?.phase === 'Active' &&
        o.status.holder === 'node1' &&
        o.metadata.finalizers?.includes('vipwarden.io/release')
        ? o
        : undefined;
    }, 'web Active with the finalizer (status patch and finalizer patch allowed)');
    expect(web.status).toMatchObject({
      holder: 'node1',
      observedGeneration: 1,
      nodes: [{ name: 'node1', live: true, healthy: true }],
    });
    expect(web.status?.epoch).toBeGreaterThan(0);
    expect(web.status?.conditions?.map((c) => [c.type, c.status])).toEqual([
      ['Accepted', 'True'],
      ['Ready', 'True'],
      // arbiterLoss failsafe (the default), and the fake agent acknowledges no promise set: not armed.
      ['Failsafe', 'False'],
    ]);
    const assigned = await waitFor(
      async () => (await events('web')).find((e) => e.reason === 'Assigned'),
      'the Assigned Event (events create allowed)',
    );
    expect(assigned.message).toMatch(/VIPs assigned to node1 \(initial/);
    await waitFor(
      async () => ((await fg('web'))?.status?.lastTransition?.to === 'node1' ? true : undefined),
      'lastTransition in status',
    );

    // A later group claiming the same VIP is rejected; the earlier one keeps it.
    await new Promise((r) => setTimeout(r, 1100)); // creationTimestamp has second resolution
    await env().kubectl(['apply', '-f', '-'], { input: group('web-copy', '198.18.0.100/32') });
    const copy = await waitFor(async () => {
      const o = await fg('web-copy');
      return o?.status?.phase === 'Invalid' ? o : undefined;
    }, 'web-copy rejected');
    expect(copy.status?.conditions?.find((c) => c.type === 'Accepted')).toMatchObject({
      status: 'False',
      reason: 'VIPConflict',
      message: expect.stringMatching(/198\.18\.0\.100 is already claimed by group web/),
    });
    expect(copy.status?.holder).toBeUndefined();
    expect((await fg('web'))?.status).toMatchObject({ phase: 'Active', holder: 'node1' });
    await waitFor(
      async () => (await events('web-copy')).find((e) => e.reason === 'Rejected' && e.type === 'Warning'),
      'the Rejected Event',
    );

    // Deleting web: the finalizer holds the object until node1 has released and the assignment is gone.
    await env().kubectl(['delete', 'fg', 'web', '--wait=false']);
    await waitFor(
      async () => ((await fg('web')) === undefined ? true : undefined),
      'web gone (finalizer removed after the release)',
    );
    expect(await client!.get(keys.assignment('web')).string()).toBeNull();
    const released = await waitFor(
      async () => (await events('web')).find((e) => e.reason === 'Released'),
      'the Released Event',
    );
    expect(released.message).toMatch(/released by node1/);

    // With web gone, web-copy is accepted and placed.
    const placed = await waitFor(async () => {
      const o = await fg('web-copy');
      return o?.status?.phase === 'Active' ? o : undefined;
    }, 'web-copy placed once web let the VIP go');
    expect(placed.status?.conditions?.find((c) => c.type === 'Accepted')?.status).toBe('True');
    await env().kubectl(['delete', 'fg', 'web-copy', '--timeout=30s']);
  } finally {
    agent.stop();
  }
  // Nothing the controller tried was refused.
  const text = readFileSync(log, 'utf8');
  expect(text).not.toMatch(/forbidden|Forbidden|HTTP 403/);
  expect(text).not.toMatch(
    /status update failed|could not publish the event|could not add the finalizer|finalize failed/,
  );
}, 120_000);
