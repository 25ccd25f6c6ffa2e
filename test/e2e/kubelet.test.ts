// vipwarden on real Kubernetes nodes: the test kube-apiserver (test/harness/kube.ts) with kube-controller-manager
// and kube-scheduler, and on each of two testbed nodes a containerd and a kubelet (hack/kube/node.ts, node.sh) in
// that node's network namespace. The images (vipwarden's from hack/image/build.sh, a pause image from
// hack/kube/pause.sh) are imported from OCI archives: nothing is pulled. `helm install` of the chart, then:
// the agent pods run and register, the controller replicas (hostNetwork, one per node) elect one leader, a
// FailoverGroup applied with kubectl puts the VIP on a node, and deleting the holder's agent pod moves the VIP (seen
// in `kubectl get fg -w`) while its replacement removes what the old one left.
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { connectEtcd } from '../../common/etcd.js';
import { Keys } from '../../common/keyspace.js';
import {
  startApiProxy,
  startControlPlane,
  startKubeNode,
  type ApiProxy,
  type ControlPlane,
  type KubeNode,
} from '../../hack/kube/node.js';
import { requireRoot } from '../../hack/testbed/index.js';
import { REPO } from '../../hack/testbed/cluster.js';
import { startKube, type KubeEnv } from '../harness/kube.js';
import { createTestbed, startEtcd, type EtcdCluster, type Testbed } from '../harness/testbed.js';
import { waitFor } from '../integration/kube-helpers.js';
import { buildImage, runScript } from '../integration/package-helpers.js';

jest.setTimeout(180_000);

const NS = 'vipwarden-system';
const CHART = join(REPO, 'deploy', 'helm', 'vipwarden');
const keys = new Keys('/vipwarden/');
const t0 = Date.now();
const timings: Record<string, number> = {};

let kube: KubeEnv | undefined;
let tb: Testbed | undefined;
let etcd: EtcdCluster | undefined;
let client: Etcd3 | undefined;
let proxy: ApiProxy | undefined;
let cp: ControlPlane | undefined;
const nodes: KubeNode[] = [];
let helm = '';
let watch: { proc: ChildProcess; out: string } | undefined;

function k(): KubeEnv {
  if (!kube) throw new Error('the Kubernetes environment did not start (see the beforeAll error above)');
  return kube;
}
const kubectl = (args: string[], input?: string) =>
  k()
    .kubectl(args, input === undefined ? {} : { input })
    .then((r) => r.stdout);

interface Pod {
  metadata: { name: string; uid: string; labels: Record<string, string> };
  spec: { nodeName?: string; hostNetwork?: boolean };
  status: { phase: string; podIP?: string; containerStatuses?: { ready: boolean; restartCount: number }[] };
}
async function pods(component: string): Promise<Pod[]> {
  const out = await kubectl(['get', 'pods', '-n', NS, '-l', `app.kubernetes.io/component=${component}`, '-o', 'json']);
  return (JSON.parse(out) as { items: Pod[] }).items;
}
const running = (p: Pod) => p.status.phase === 'Running' && (p.status.containerStatuses ?? []).every((c) => c.ready);

beforeAll(async () => {
  requireRoot('the e2e tier');
  helm = (await runScript('hack/package/helm.sh')).HELM!;
  const [img, pause] = await Promise.all([buildImage(), runScript('hack/kube/pause.sh')]);
  timings.images = Date.now() - t0;
  // ServiceAccount admission on (the harness turns it off for want of a controller-manager): pods get tokens.
  // The API server reaches kubelets (kubectl logs) at their node IP: the node names resolve nowhere.
  kube = await startKube({
    serviceAccountAdmission: true,
    extraApiserverArgs: ['--kubelet-preferred-address-types=InternalIP'],
  });
  const binDir = dirname(kube.binaries.kubeApiserver);
  for (const b of ['kubelet', 'kube-controller-manager', 'kube-scheduler'])
    if (!existsSync(join(binDir, b)))
      throw new Error(`${binDir}/${b} is missing: VIPWARDEN_KUBE_NODE=1 bash hack/kube/build.sh`);
  tb = await createTestbed({ name: 'kubelet', nodes: 2 });
  etcd = await startEtcd({ members: 1, extraHosts: [tb.bridgeIp] });
  client = connectEtcd(etcd.clientConfig());
  proxy = await startApiProxy(kube, tb.bridgeIp);
  cp = startControlPlane(kube, binDir);
  timings.apiserver = Date.now() - t0;
  const started = await Promise.allSettled(
    tb.nodes.map((node) =>
      startKubeNode({
        kube: k(),
        proxy: proxy!,
        node,
        binDir,
        images: [pause.PAUSE_ARCHIVE!, img.archive],
        pauseImage: pause.PAUSE_IMAGE!,
      }),
    ),
  );
  for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value);
  for (const s of started) if (s.status === 'rejected') throw s.reason;
  timings.nodes = Date.now() - t0;
  await waitFor(
    async () =>
      (await kubectl(['get', 'nodes', '-o', 'name'])).trim().split('\n').length === nodes.length ? 1 : undefined,
    'both nodes registered',
    60_000,
  );
  await kubectl(['wait', '--for=condition=Ready', 'node', '--all', '--timeout=120s']);
  timings.ready = Date.now() - t0;
  for (const p of [cp.controllerManager, cp.scheduler])
    if (p.exited) throw new Error(`${p.name} exited: ${readFileSync(p.stderrLog, 'utf8').slice(-2000)}`);
  const tls = etcd.tls!;
  const values = {
    image: { pullPolicy: 'Never' },
    etcd: {
      endpoints: etcd.endpointsFor(tb.bridgeIp),
      tls: {
        enabled: true,
        ca: readFileSync(tls.ca, 'utf8'),
        cert: readFileSync(tls.cert, 'utf8'),
        key: readFileSync(tls.key, 'utf8'),
      },
    },
    controller: { hostNetwork: true },
    agent: { config: { vipRanges: [tb.subnet] } },
  };
  const valuesFile = join(k().dir, 'values.yaml');
  writeFileSync(valuesFile, JSON.stringify(values));
  const r = await runHelm(['install', 'vipwarden', CHART, '-n', NS, '--create-namespace', '-f', valuesFile]);
  expect(r).toMatch(/STATUS: deployed/);
}, 20 * 60_000);

afterAll(async () => {
  watch?.proc.kill('SIGKILL');
  if (kube) {
    // What Kubernetes saw, next to the logs (kept with VIPWARDEN_KEEP_KUBE=1 or VIPWARDEN_E2E_DUMP).
    const r = await kube.kubectl(['get', 'pods,events', '-A', '-o', 'wide'], { allowFailure: true });
    const logs = await kube.kubectl(
      ['logs', '-n', NS, '-l', 'app.kubernetes.io/name=vipwarden', '--prefix', '--tail=40'],
      {
        allowFailure: true,
      },
    );
    writeFileSync(join(kube.dir, 'objects.txt'), r.stdout + r.stderr + logs.stdout + logs.stderr);
  }
  const dump = process.env.VIPWARDEN_E2E_DUMP;
  if (dump && kube) {
    const { cpSync } = await import('node:fs');
    cpSync(kube.dir, join(dump, 'kubelet-test'), {
      recursive: true,
      dereference: false,
      filter: (s) => !s.includes('/fs'),
    });
  }
  for (const n of nodes) await n.stop().catch(() => undefined);
  await cp?.stop();
  await proxy?.stop();
  client?.close();
  await etcd?.stop();
  await tb?.destroy();
  await kube?.stop();
  process.stderr.write(
    `kubelet e2e timings (ms since start): ${JSON.stringify({ ...timings, end: Date.now() - t0 })}\n`,
  );
}, 120_000);

async function runHelm(args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  const home = join(k().dir, 'helm');
  return new Promise((ok, fail) =>
    execFile(
      helm,
      args,
      {
        env: {
          ...process.env,
          KUBECONFIG: k().kubeconfigPath,
          HELM_CACHE_HOME: home,
          HELM_CONFIG_HOME: home,
          HELM_DATA_HOME: home,
        },
        timeout: 120_000,
      },
      (err, stdout, stderr) => (err ? fail(new Error(`helm ${args[0]}: ${err.message}\n${stderr}`)) : ok(stdout)),
    ),
  );
}

test('the agent pod runs on each kubelet node, on its network, and registers in etcd under the node name', async () => {
  const agents = await waitFor(
    async () => {
      const p = await pods('agent');
      return p.length === nodes.length && p.every(running) ? p : undefined;
    },
    'an agent pod Running and ready on every node',
    120_000,
  );
  timings.agents = Date.now() - t0;
  expect(agents.map((p) => p.spec.nodeName).sort()).toEqual(tb!.nodes.map((n) => n.name));
  for (const p of agents) {
    expect(p.spec.hostNetwork).toBe(true);
    expect(p.status.podIP).toBe(tb!.node(p.spec.nodeName!).ip);
  }
  for (const n of tb!.nodes)
    await waitFor(async () => (await client!.get(keys.node(n.name)).string()) ?? undefined, `${n.name} registered`);
});

test("the controller's two replicas run, one on each node, and elect one leader", async () => {
  const ctl = await waitFor(
    async () => {
      const p = await pods('controller');
      return p.length === 2 && p.every(running) ? p : undefined;
    },
    'two controller pods Running and ready',
    120_000,
  );
  expect(new Set(ctl.map((p) => p.spec.nodeName)).size).toBe(2);
  expect(await client!.get(keys.leader()).string()).toBeTruthy();
  const leaders = await waitFor(async () => {
    const logs = await Promise.all(ctl.map((p) => kubectl(['logs', '-n', NS, p.metadata.name])));
    const l = logs.filter((s) => s.includes('elected leader'));
    return l.length >= 1 ? l : undefined;
  }, 'a controller log saying "elected leader"');
  expect(leaders).toHaveLength(1);
});

const vip = () => tb!.vip(0);
async function holds(node: string): Promise<boolean> {
  const r = await tb!.exec(node, ['ip', '-o', 'addr', 'show', 'dev', 'eth0']);
  return r.stdout.includes(` ${vip()}/24 `);
}

test('a FailoverGroup applied with kubectl puts the VIP on the preferred node', async () => {
  const group = {
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name: 'web' },
    spec: {
      vips: [{ address: `${vip()}/24` }],
      nodes: [
        { name: 'node1', priority: 100 },
        { name: 'node2', priority: 90 },
      ],
      failback: 'auto',
    },
  };
  await kubectl(['apply', '-f', '-'], JSON.stringify(group));
  await waitFor(async () => ((await holds('node1')) ? true : undefined), 'the VIP on node1', 60_000);
  expect(await holds('node2')).toBe(false);
  await waitFor(async () => {
    const o = JSON.parse(await kubectl(['get', 'fg', 'web', '-o', 'json'])) as { status?: { holder?: string } };
    return o.status?.holder === 'node1' ? true : undefined;
  }, 'status.holder node1');
  const table = await kubectl(['get', 'fg', 'web']);
  expect(table).toMatch(new RegExp(`web\\s+${vip().replaceAll('.', '\\.')}/24\\s+node1\\s`));
  await waitFor(
    async () => (/Events:[\s\S]*Assigned/.test(await kubectl(['describe', 'fg', 'web'])) ? true : undefined),
    'kubectl describe fg showing the Assigned Event',
  );
  timings.vip = Date.now() - t0;
});

test("the holder's agent hung: the VIP moves (kubectl get fg -w shows it); its pod deleted, the new one cleans up", async () => {
  const out = {
    proc: spawn(k().binaries.kubectl, [`--kubeconfig=${k().kubeconfigPath}`, 'get', 'fg', 'web', '-w']),
    out: '',
  };
  watch = out;
  out.proc.stdout!.on('data', (d: Buffer) => (out.out += d.toString()));
  await waitFor(async () => (/\bnode1\b/.test(out.out) ? true : undefined), 'kubectl get fg -w printing node1');
  const old = (await pods('agent')).find((p) => p.spec.nodeName === 'node1')!;
  // The old agent is frozen first, so it leaves its VIP and state file behind as a hung one would, and the VIP moves
  // when its lease ends (the failover -w shows); the VIP's
  // lifetime is stretched to 120 s (as an agent with a longer lease would have left it), so that only the new agent
  // can have removed it.
  const agentPid = await findAgentPid(nodes[0]!);
  process.kill(agentPid, 'SIGSTOP');
  await tb!.exec('node1', [
    'ip',
    'addr',
    'replace',
    `${vip()}/24`,
    'dev',
    'eth0',
    'valid_lft',
    '120',
    'preferred_lft',
    '120',
  ]);
  await waitFor(async () => (/\bnode2\b/.test(out.out) ? true : undefined), 'kubectl get fg -w printing node2', 60_000);
  await waitFor(async () => ((await holds('node2')) ? true : undefined), 'the VIP on node2');
  // Only now the pod goes (its frozen agent gets SIGKILL after the grace period): the DaemonSet makes a new one.
  await kubectl(['delete', 'pod', '-n', NS, old.metadata.name, '--grace-period=1', '--wait=false']);
  const fresh = await waitFor(
    async () => {
      const p = (await pods('agent')).find((x) => x.spec.nodeName === 'node1');
      return p && p.metadata.uid !== old.metadata.uid && running(p) ? p : undefined;
    },
    'a new agent pod on node1',
    120_000,
  );
  const log = await waitFor(
    async () => {
      const l = await kubectl(['logs', '-n', NS, fresh.metadata.name]);
      return /removing VIPs left over from an earlier run/.test(l) ? l : undefined;
    },
    'the new agent removing what the old one left',
    60_000,
  );
  expect(log).toContain(vip());
  // failback: auto, node1 healthy again: the VIP returns, and -w saw that too.
  await waitFor(async () => ((await holds('node1')) ? true : undefined), 'the VIP back on node1', 60_000);
  await waitFor(
    async () => (/node2[\s\S]*\n\S*web\s+\S+\s+node1\b/.test(out.out) ? true : undefined),
    'get -w: node1 again',
  );
  timings.failover = Date.now() - t0;
});

/** The pid of the agent process of `node` (in that node's cgroup tree, found by its command line). */
async function findAgentPid(node: KubeNode): Promise<number> {
  const { readdirSync } = await import('node:fs');
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cg = readFileSync(`/proc/${p}/cgroup`, 'utf8');
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cg.includes(node.cgroupRoot) && cmd.includes('vipwarden-agent')) return Number(p);
    } catch {
      // gone
    }
  }
  throw new Error(`no agent process in ${node.cgroupRoot}`);
}
