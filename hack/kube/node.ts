// Real Kubernetes nodes for the kubelet tier (test/e2e/kubelet.test.ts): kube-controller-manager and kube-scheduler
// next to the test kube-apiserver (test/harness/kube.ts), and per testbed node a containerd and a kubelet running in
// that node's network namespace (hack/kube/node.sh), so hostNetwork pods get the node's eth0.
//
//   const proxy = await startApiProxy(kube, tb.bridgeIp);       // the API on the bridge, for the nodes
//   const cp = startControlPlane(kube, binDir);                  // controller-manager + scheduler, on loopback
//   const n1 = await startKubeNode({ kube, proxy, node: tb.node('node1'), binDir, images: [pause, image] });
//   ... await n1.stop(); await cp.stop(); await proxy.stop();
//
// The API server listens on loopback only: a TCP relay on the bridge address carries the nodes' connections to it
// (kubelets verify it as "kubernetes"; pods reach it as the "kubernetes" Service, 10.96.0.1:443, through a DNAT
// rule in the node's namespace, which is what kube-proxy would do). Every node's processes, containers included,
// live in one cgroup tree (the kubelet's cgroupRoot, under this process's own cgroup) that stop() empties and removes.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { spawnLogged, type ProcHandle } from '../testbed/proc.js';
import { destroyCgroup, makeCgroup, ownCgroupBase } from './cgroup.js';
import { onExitCleanup } from '../testbed/registry.js';
import type { TestbedNode } from '../testbed/testbed.js';
import { run, sleep } from '../testbed/util.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const NODE_SH = [join(HERE, 'node.sh'), resolve(HERE, '..', '..', '..', 'hack', 'kube', 'node.sh')].find(existsSync);
export const SERVICE_IP = '10.96.0.1';

/** What of test/harness/kube.ts's KubeEnv the nodes need. */
export interface KubeApi {
  server: string;
  caPath: string;
  adminToken: string;
  kubeconfigPath: string;
  dir: string;
}

export interface ApiProxy {
  host: string;
  port: number;
  stop(): Promise<void>;
}

/** A TCP relay host:<free port> -> the API server's loopback port. */
export async function startApiProxy(kube: KubeApi, host: string): Promise<ApiProxy> {
  const target = new URL(kube.server);
  const sockets = new Set<Socket>();
  const server: Server = createServer((c) => {
    const up = connect(Number(target.port), target.hostname);
    for (const s of [c, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    c.pipe(up).pipe(c);
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, host, ok));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    host,
    port,
    stop: () =>
      new Promise<void>((ok) => {
        for (const s of sockets) s.destroy();
        server.close(() => ok());
      }),
  };
}

export interface ControlPlane {
  readonly controllerManager: ProcHandle;
  readonly scheduler: ProcHandle;
  stop(): Promise<void>;
}

/** kube-controller-manager and kube-scheduler against the API server on loopback, no leader election. */
export function startControlPlane(kube: KubeApi, binDir: string): ControlPlane {
  const common = [`--kubeconfig=${kube.kubeconfigPath}`, '--leader-elect=false', '--secure-port=0', '--v=1'];
  const log = (n: string) => join(kube.dir, `${n}.log`);
  const controllerManager = spawnLogged(
    [
      join(binDir, 'kube-controller-manager'),
      ...common,
      `--service-account-private-key-file=${join(kube.dir, 'sa.key')}`,
      `--root-ca-file=${kube.caPath}`,
      '--use-service-account-credentials=false',
      // No pod network to allocate CIDRs from: hostNetwork pods need none.
      '--controllers=*,-nodeipam',
    ],
    { name: 'kube-controller-manager', stdoutLog: log('controller-manager'), stderrLog: log('controller-manager') },
  );
  const scheduler = spawnLogged([join(binDir, 'kube-scheduler'), ...common], {
    name: 'kube-scheduler',
    stdoutLog: log('scheduler'),
    stderrLog: log('scheduler'),
  });
  return {
    controllerManager,
    scheduler,
    stop: async () => {
      await Promise.all([controllerManager.stop({ timeoutMs: 5_000 }), scheduler.stop({ timeoutMs: 5_000 })]);
    },
  };
}

// ---- one node ----

export interface KubeNode {
  readonly name: string;
  readonly dir: string;
  readonly proc: ProcHandle;
  readonly cgroupRoot: string;
  /** Where the node's containerd listens (for ctr). */
  readonly containerdSocket: string;
  stop(): Promise<void>;
}

export interface StartKubeNodeOptions {
  kube: KubeApi;
  proxy: ApiProxy;
  node: TestbedNode;
  binDir: string;
  /** OCI archives to import, the pause image among them. */
  images: string[];
  pauseImage: string;
  /** Time for the images and the kubelet to start. Default 180 s. */
  readyTimeoutMs?: number;
}

function containerdToml(fs: string, cniDir: string, pauseImage: string): string {
  return `version = 2
root = "${fs}/containerd"
state = "${fs}/containerd-state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.opt",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${fs}/containerd-state/containerd.sock"
[ttrpc]
  address = "${fs}/containerd-state/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniDir}"
`;
}

function kubeletConfig(fs: string, node: TestbedNode, cgroupRoot: string): Record<string, unknown> {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // The machine has cgroup v1 only; the kubelet refuses it unless told.
    failCgroupV1: false,
    failSwapOn: false,
    cgroupDriver: 'cgroupfs',
    cgroupRoot,
    containerRuntimeEndpoint: `unix://${fs}/containerd-state/containerd.sock`,
    address: node.ip,
    healthzBindAddress: '127.0.0.1',
    readOnlyPort: 0,
    // Reachable only inside the testbed; the API server's `kubectl logs` and `exec` need no credentials here.
    authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
    authorization: { mode: 'AlwaysAllow' },
    resolvConf: '/etc/resolv.conf',
    // A loaded test machine: nothing is evicted, no image is collected, statuses come quickly.
    evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1Mi', 'imagefs.available': '1Mi' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    localStorageCapacityIsolation: false,
    syncFrequency: '5s',
    fileCheckFrequency: '5s',
    nodeStatusReportFrequency: '10s',
    serializeImagePulls: false,
  };
}

/** containerd and a kubelet in `node`'s network namespace, registered as Kubernetes node `node.name`. */
export async function startKubeNode(o: StartKubeNodeOptions): Promise<KubeNode> {
  if (!NODE_SH) throw new Error('hack/kube/node.sh not found');
  const dir = join(o.kube.dir, `node-${o.node.name}`);
  const fs = join(dir, 'fs');
  const cniDir = join(dir, 'cni');
  mkdirSync(join(dir, 'images'), { recursive: true });
  mkdirSync(cniDir, { recursive: true });
  for (const [i, f] of o.images.entries()) await run(['ln', '-sf', f, join(dir, 'images', `${i}.tar`)]);
  // Only hostNetwork pods run here; containerd reports its network ready once it finds a CNI config, and a pod
  // without hostNetwork would get loopback only.
  writeFileSync(
    join(cniDir, '10-loopback.conflist'),
    JSON.stringify({ cniVersion: '1.0.0', name: 'vipwarden-none', plugins: [{ type: 'loopback' }] }),
  );
  writeFileSync(join(dir, 'containerd.toml'), containerdToml(fs, cniDir, o.pauseImage));
  const cgroupRoot = `${ownCgroupBase()}/vw-kubelet-${process.pid}-${o.node.name}`;
  writeFileSync(join(dir, 'cgroup-root'), cgroupRoot);
  writeFileSync(join(dir, 'kubelet.yaml'), toYaml(kubeletConfig(fs, o.node, cgroupRoot)));
  const b64 = (f: string) => readFileSync(f).toString('base64');
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'test',
        cluster: {
          server: `https://${o.proxy.host}:${o.proxy.port}`,
          'tls-server-name': 'kubernetes',
          'certificate-authority-data': b64(o.kube.caPath),
        },
      },
    ],
    users: [{ name: 'kubelet', user: { token: o.kube.adminToken } }],
    contexts: [{ name: 'kubelet', context: { cluster: 'test', user: 'kubelet' } }],
    'current-context': 'kubelet',
  };
  writeFileSync(join(dir, 'kubelet.kubeconfig'), toYaml(kubeconfig), { mode: 0o600 });
  const args = [
    join(o.binDir, 'kubelet'),
    `--config=${join(dir, 'kubelet.yaml')}`,
    `--kubeconfig=${join(dir, 'kubelet.kubeconfig')}`,
    `--hostname-override=${o.node.name}`,
    `--node-ip=${o.node.ip}`,
    `--root-dir=${fs}/kubelet`,
    '--v=1',
  ];
  writeFileSync(join(dir, 'kubelet.args'), `${args.join('\n')}\n`);
  // Pods reach the API as the "kubernetes" Service, as kube-proxy would let them.
  // (A route first: without one the connect fails before the DNAT rule is reached. Nothing leaves as 10.96.0.1.)
  await run(['ip', 'netns', 'exec', o.node.netns, 'ip', 'route', 'replace', `${SERVICE_IP}/32`, 'dev', 'eth0']);
  await run([
    ...['ip', 'netns', 'exec', o.node.netns, 'iptables', '-w', '5', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp'],
    ...['-d', SERVICE_IP, '--dport', '443', '-j', 'DNAT', '--to-destination', `${o.proxy.host}:${o.proxy.port}`],
  ]);

  makeCgroup(`${cgroupRoot}/node`);
  const unregister = onExitCleanup(`kubelet node ${o.node.name}`, () => destroyCgroup(cgroupRoot));
  const proc = spawnLogged(
    [
      'nsenter',
      `--net=/run/netns/${o.node.netns}`,
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'bash',
      NODE_SH,
      dir,
    ],
    { name: `kube-node-${o.node.name}`, stdoutLog: join(dir, 'node.log'), stderrLog: join(dir, 'node.log') },
  );
  let stopped = false;
  const node: KubeNode = {
    name: o.node.name,
    dir,
    proc,
    cgroupRoot,
    containerdSocket: `${fs}/containerd-state/containerd.sock`,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await proc.stop({ timeoutMs: 5_000 });
      destroyCgroup(cgroupRoot);
      unregister();
    },
  };
  const deadline = Date.now() + (o.readyTimeoutMs ?? 180_000);
  while (!existsSync(join(dir, 'ready'))) {
    if (proc.exited || Date.now() > deadline) {
      const tail = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').slice(-30).join('\n') : '');
      await node.stop();
      throw new Error(
        `node ${o.node.name} did not start:\n${tail(join(dir, 'node.log'))}\n${tail(join(dir, 'containerd.log'))}`,
      );
    }
    await sleep(200);
  }
  return node;
}
