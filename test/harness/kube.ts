// A real Kubernetes API for tests: its own etcd and a kube-apiserver on loopback, RBAC on, no controllers, no nodes.
//
//   const kube = await startKube();
//   await kube.kubectl(['apply', '-f', '-'], { input: yaml });
//   const saKubeconfig = await kube.createServiceAccountKubeconfig('default', 'reader');
//   await kube.stop();
//
// The binaries come from hack/kube/build.sh (a cached build of k8s.io/kubernetes, see docs/kubernetes-testing.md).
// What is not there: kube-controller-manager (no garbage collection, namespaces that are deleted stay Terminating,
// no default ServiceAccount per namespace, so the ServiceAccount admission plugin is off), scheduler, kubelet.
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { onExitCleanup } from '../../hack/testbed/registry.js';
import { CommandError } from '../../common/exec.js';
import type { ProcHandle } from '../../hack/testbed/proc.js';
import { isAlive } from '../../hack/testbed/util.js';
import { startEtcd, type EtcdClientConfig, type EtcdCluster } from './etcd.js';
import { startApiserver } from './kube-apiserver.js';
import { kubeBinaries, type KubeBinaries } from './kube-binaries.js';
import { makePki, writeKubeconfig } from './kube-pki.js';

export { kubeBinaries, type KubeBinaries } from './kube-binaries.js';

/** Work dirs (certs, tokens, kubeconfigs, logs): `<prefix><pid>-<random>`. */
const WORK_DIR_PREFIX = join(tmpdir(), 'vipwarden-kube-');

/** Removes work dirs `<prefix><pid>-*` whose creating process is gone (a run killed with SIGKILL). */
function sweepStaleWorkDirs(): void {
  const parent = dirname(WORK_DIR_PREFIX);
  const base = basename(WORK_DIR_PREFIX);
  let names: string[] = [];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(base)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(base.length))?.[1]);
    if (Number.isInteger(pid) && pid > 0 && !isAlive(pid)) rmSync(join(parent, name), { recursive: true, force: true });
  }
}

// ---- the environment ----

export interface KubectlOptions {
  /** Written to kubectl's stdin (for `apply -f -`). */
  input?: string;
  /** Another kubeconfig, e.g. one from createServiceAccountKubeconfig(); default the admin one. */
  kubeconfig?: string;
  /** Return a non-zero exit instead of throwing CommandError. */
  allowFailure?: boolean;
  timeoutMs?: number;
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface KubeEnv {
  /** The pinned Kubernetes version that runs. */
  readonly version: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** Admin kubeconfig (cluster-admin through group system:masters). */
  readonly kubeconfigPath: string;
  /** Bearer token of the admin user (token auth file, group system:masters). */
  readonly adminToken: string;
  /** CA that signed the serving certificate (also trusted for client certificates). */
  readonly caPath: string;
  /** The kube-apiserver's own etcd, https://127.0.0.1:<port> (TLS with client certificates, like every test etcd). */
  readonly etcdEndpoint: string;
  /** What connectEtcd needs to reach that etcd: the endpoint, the CA and a client certificate. */
  readonly etcdClient: EtcdClientConfig;
  /** Work dir: certs, token file, kubeconfigs, apiserver.log. Removed by stop() (unless keepDir). */
  readonly dir: string;
  readonly binaries: KubeBinaries;
  /** Process ids (each leads its own process group). */
  readonly pids: { readonly etcd: number; readonly apiserver: number };
  /** Runs kubectl with the admin kubeconfig (or opts.kubeconfig); throws CommandError on failure. */
  kubectl(args: readonly string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /**
   * Creates the ServiceAccount (and its namespace) if missing, mints a token for it with `kubectl create token`
   * (TokenRequest API) and writes a kubeconfig that uses it. Returns the kubeconfig's path (inside `dir`).
   */
  createServiceAccountKubeconfig(namespace: string, name: string, opts?: { duration?: string }): Promise<string>;
  /** Stops kube-apiserver and etcd (whole process groups) and removes the work dir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartKubeOptions {
  /** How the admin kubeconfig authenticates: bearer token (default) or client certificate (O=system:masters). */
  adminAuth?: 'token' | 'client-certificate';
  /** Extra kube-apiserver flags, appended last (so they override ours). */
  extraApiserverArgs?: readonly string[];
  /** Time for kube-apiserver to pass /readyz. Default 120 s. */
  readyTimeoutMs?: number;
  /** Keep the work dir after stop() (for reading logs); also VIPWARDEN_KEEP_KUBE=1. */
  keepDir?: boolean;
  /** Keep the ServiceAccount admission plugin on (pods get tokens): for a kube-controller-manager that makes them. */
  serviceAccountAdmission?: boolean;
  /** Use these binaries instead of calling hack/kube/build.sh. */
  binaries?: KubeBinaries;
}

const NAME_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Starts etcd and kube-apiserver, waits for /readyz and writes the admin kubeconfig. */
export async function startKube(opts: StartKubeOptions = {}): Promise<KubeEnv> {
  // The build cache (/var/cache/vipwarden) and the rest of the integration tier assume root: say so up front.
  if (process.getuid?.() !== 0 && !process.env.VIPWARDEN_CACHE) {
    throw new Error('startKube: run the integration tier as root (or set VIPWARDEN_CACHE to a writable directory)');
  }
  const binaries = opts.binaries ?? (await kubeBinaries());
  sweepStaleWorkDirs();
  const dir = mkdtempSync(`${WORK_DIR_PREFIX}${process.pid}-`);
  const keep = opts.keepDir === true || process.env.VIPWARDEN_KEEP_KUBE === '1';
  const removeDir = (): void => {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  };
  const unregisterDir = onExitCleanup(`kube work dir ${dir}`, removeDir);

  let etcd: EtcdCluster | undefined;
  let apiserver: ProcHandle | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await apiserver?.stop({ timeoutMs: 10_000 });
    await etcd?.stop();
    removeDir();
    unregisterDir();
  };

  try {
    const pki = await makePki(dir);
    const adminToken = randomBytes(24).toString('hex');
    const tokenFile = join(dir, 'tokens.csv');
    // token,user,uid,"group1,group2"
    writeFileSync(tokenFile, `${adminToken},vipwarden-admin,vipwarden-admin,"system:masters"\n`, { mode: 0o600 });

    etcd = await startEtcd({ members: 1 });
    const etcdEndpoint = etcd.endpoints[0];
    if (!etcdEndpoint) throw new Error('startEtcd returned no endpoint');

    // The options it shares with startKube (readyTimeoutMs, serviceAccountAdmission, extraApiserverArgs) pass on.
    const logPath = join(dir, 'apiserver.log');
    const started = await startApiserver({
      ...opts,
      binaries,
      etcd,
      etcdEndpoint,
      pki,
      tokenFile,
      logPath,
      adminToken,
    });
    const server = started.server;
    apiserver = started.apiserver;

    const kubeconfigPath = join(dir, 'admin.kubeconfig');
    writeKubeconfig(
      kubeconfigPath,
      server,
      pki.caCrt,
      'vipwarden-admin',
      opts.adminAuth === 'client-certificate'
        ? { clientCertificate: pki.adminCrt, clientKey: pki.adminKey }
        : { token: adminToken },
    );

    const kubectl = async (args: readonly string[], kopts: KubectlOptions = {}): Promise<KubectlResult> => {
      const argv = [binaries.kubectl, `--kubeconfig=${kopts.kubeconfig ?? kubeconfigPath}`, ...args];
      const r = await execa(argv[0] as string, argv.slice(1), {
        reject: false,
        timeout: kopts.timeoutMs ?? 60_000,
        env: { KUBECONFIG: '' },
        ...(kopts.input !== undefined ? { input: kopts.input } : { stdin: 'ignore' as const }),
      });
      const out = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? -1 };
      if (out.exitCode !== 0 && !kopts.allowFailure) {
        throw new CommandError(argv, r.exitCode, out.stderr || String(r.message ?? ''), false, out.stdout);
      }
      return out;
    };

    const createServiceAccountKubeconfig = async (
      namespace: string,
      name: string,
      saOpts: { duration?: string } = {},
    ): Promise<string> => {
      if (!NAME_RE.test(namespace) || !NAME_RE.test(name)) {
        throw new Error(
          `invalid namespace or ServiceAccount name: ${JSON.stringify(namespace)}/${JSON.stringify(name)}`,
        );
      }
      const ensure = async (args: string[]): Promise<void> => {
        const r = await kubectl(args, { allowFailure: true });
        if (r.exitCode !== 0 && !/AlreadyExists|already exists/.test(r.stderr)) {
          throw new CommandError([binaries.kubectl, ...args], r.exitCode, r.stderr, false, r.stdout);
        }
      };
      await ensure(['create', 'namespace', namespace]);
      await ensure(['create', 'serviceaccount', name, '-n', namespace]);
      const r = await kubectl(['create', 'token', name, '-n', namespace, `--duration=${saOpts.duration ?? '1h'}`]);
      const token = r.stdout.trim();
      if (!token) throw new Error(`kubectl create token ${namespace}/${name} printed no token`);
      const path = join(dir, `sa-${namespace}-${name}.kubeconfig`);
      writeKubeconfig(path, server, pki.caCrt, `system:serviceaccount:${namespace}:${name}`, { token });
      return path;
    };

    return {
      version: binaries.version,
      server,
      kubeconfigPath,
      adminToken,
      caPath: pki.caCrt,
      etcdEndpoint,
      etcdClient: etcd.clientConfig(),
      dir,
      binaries,
      pids: { etcd: etcd.members[0]?.pid ?? -1, apiserver: apiserver.pid },
      kubectl,
      createServiceAccountKubeconfig,
      stop,
    };
  } catch (e) {
    // Logs are in `dir`, which stop() removes: the error message already carries their tails.
    await stop();
    throw e;
  }
}
