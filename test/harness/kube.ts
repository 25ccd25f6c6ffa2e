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
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { onExitCleanup } from '../../hack/testbed/registry.js';
import { CommandError } from '../../common/exec.js';
import { spawnLogged, type ProcHandle } from '../../hack/testbed/proc.js';
import { isAlive, sleep } from '../../hack/testbed/util.js';
import { freePorts, startEtcd, type EtcdClientConfig, type EtcdCluster } from './etcd.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD_SCRIPT = join(REPO_ROOT, 'hack', 'kube', 'build.sh');
/** Work dirs (certs, tokens, kubeconfigs, logs): `<prefix><pid>-<random>`. */
const WORK_DIR_PREFIX = join(tmpdir(), 'vipwarden-kube-');

const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const SERVICE_CIDR = '10.96.0.0/24';
const SERVICE_IP = '10.96.0.1';

/** Last lines of a log file, for error messages. */
function logTail(path: string, lines = 40): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

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

// ---- binaries ----

export interface KubeBinaries {
  /** The pinned Kubernetes version, e.g. v1.37.1. */
  version: string;
  kubeApiserver: string;
  /** The built kubectl, or the one on PATH when it is within one minor version of the pin. */
  kubectl: string;
}

let binariesPromise: Promise<KubeBinaries> | undefined;

/**
 * Finds (building them on first use) kube-apiserver and kubectl by running hack/kube/build.sh, which does nothing
 * when the pinned version is already in the cache. The first build takes many minutes; its progress goes to stderr.
 * Memoized per process; a failure is not memoized.
 */
export function kubeBinaries(): Promise<KubeBinaries> {
  binariesPromise ??= buildKubeBinaries().catch((e: unknown) => {
    binariesPromise = undefined;
    throw e;
  });
  return binariesPromise;
}

async function buildKubeBinaries(): Promise<KubeBinaries> {
  const argv = ['bash', BUILD_SCRIPT];
  const r = await execa('bash', [BUILD_SCRIPT], {
    reject: false,
    stdin: 'ignore',
    // Progress to the terminal as it happens (a first build is long), and kept for the error message.
    stderr: ['pipe', 'inherit'],
    timeout: 60 * 60_000,
  });
  const stderr = String(r.stderr ?? '');
  if (r.exitCode !== 0) {
    const tail = stderr.trimEnd().split('\n').slice(-40).join('\n');
    throw new CommandError(argv, r.exitCode, `hack/kube/build.sh could not provide kube-apiserver:\n${tail}`);
  }
  const vars = new Map<string, string>();
  for (const line of String(r.stdout ?? '').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] && m[2] !== undefined) vars.set(m[1], m[2]);
  }
  const version = vars.get('KUBE_VERSION');
  const kubeApiserver = vars.get('KUBE_APISERVER');
  const kubectl = vars.get('KUBECTL');
  if (!version || !kubeApiserver || !kubectl) {
    throw new Error(
      `hack/kube/build.sh printed no KUBE_VERSION/KUBE_APISERVER/KUBECTL lines; stdout was:\n${r.stdout}`,
    );
  }
  return { version, kubeApiserver, kubectl };
}

// ---- certificates and keys (openssl) ----

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  const r = await execa('openssl', args, { cwd, reject: false, stdin: 'ignore', timeout: 60_000 });
  if (r.exitCode !== 0) throw new CommandError(['openssl', ...args], r.exitCode, String(r.stderr ?? ''));
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Key and certificate `name`.{key,crt} signed by ca.{key,crt}, with the given subject and extensions. */
async function issueCert(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  writeFileSync(join(dir, `${name}.ext`), extensions);
  await openssl(['req', '-new', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '7',
      '-sha256',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
}

interface Pki {
  caCrt: string;
  servingCrt: string;
  servingKey: string;
  adminCrt: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

/** A throwaway CA, the serving certificate, an admin client certificate and the service-account signing key. */
async function makePki(dir: string): Promise<Pki> {
  await openssl(
    [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '7',
      '-sha256',
      '-subj',
      '/CN=vipwarden-test-ca',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  await issueCert(
    dir,
    'serving',
    '/CN=kube-apiserver',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' +
      `subjectAltName=IP:127.0.0.1,IP:${SERVICE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,` +
      'DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n',
  );
  await issueCert(
    dir,
    'admin',
    '/O=system:masters/CN=vipwarden-admin',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
  );
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'sa.key'], dir);
  await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  const p = (f: string): string => join(dir, f);
  return {
    caCrt: p('ca.crt'),
    servingCrt: p('serving.crt'),
    servingKey: p('serving.key'),
    adminCrt: p('admin.crt'),
    adminKey: p('admin.key'),
    saKey: p('sa.key'),
    saPub: p('sa.pub'),
  };
}

// ---- kubeconfig ----

type KubeconfigUser = { token: string } | { clientCertificate: string; clientKey: string };

function writeKubeconfig(path: string, server: string, caCrt: string, userName: string, user: KubeconfigUser): void {
  const b64 = (f: string): string => readFileSync(f).toString('base64');
  const userEntry =
    'token' in user
      ? { token: user.token }
      : { 'client-certificate-data': b64(user.clientCertificate), 'client-key-data': b64(user.clientKey) };
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'vipwarden-test', cluster: { server, 'certificate-authority-data': b64(caCrt) } }],
    users: [{ name: userName, user: userEntry }],
    contexts: [{ name: userName, context: { cluster: 'vipwarden-test', user: userName } }],
    'current-context': userName,
    preferences: {},
  };
  writeFileSync(path, toYaml(doc), { mode: 0o600 });
}

// ---- readiness ----

function httpsGet(url: string, ca: Buffer, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest(url, { ca, headers: { authorization: `Bearer ${token}` }, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
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

    const logPath = join(dir, 'apiserver.log');
    const ca = readFileSync(pki.caCrt);
    let server = '';
    for (let attempt = 1; ; attempt++) {
      const [port] = await freePorts(1, ['127.0.0.1']);
      server = `https://127.0.0.1:${port}`;
      apiserver = spawnLogged(
        [
          binaries.kubeApiserver,
          `--etcd-servers=${etcdEndpoint}`,
          ...(etcd.tls
            ? [`--etcd-cafile=${etcd.tls.ca}`, `--etcd-certfile=${etcd.tls.cert}`, `--etcd-keyfile=${etcd.tls.key}`]
            : []),
          '--bind-address=127.0.0.1',
          // Without a default route the apiserver cannot pick an address to advertise by itself. Since 1.37 a
          // loopback address is refused while an endpoint reconciler would publish it in the "kubernetes" Endpoints;
          // nothing in the tests uses that Service, so the reconciler is off.
          '--advertise-address=127.0.0.1',
          '--endpoint-reconciler-type=none',
          `--secure-port=${port}`,
          `--tls-cert-file=${pki.servingCrt}`,
          `--tls-private-key-file=${pki.servingKey}`,
          `--client-ca-file=${pki.caCrt}`,
          `--token-auth-file=${tokenFile}`,
          '--anonymous-auth=false',
          '--authorization-mode=RBAC',
          `--service-account-issuer=${SA_ISSUER}`,
          `--service-account-key-file=${pki.saPub}`,
          `--service-account-signing-key-file=${pki.saKey}`,
          `--api-audiences=${SA_ISSUER}`,
          `--service-cluster-ip-range=${SERVICE_CIDR}`,
          // No kube-controller-manager: namespaces get no "default" ServiceAccount, so pods would be rejected.
          ...(opts.serviceAccountAdmission ? [] : ['--disable-admission-plugins=ServiceAccount']),
          '--profiling=false',
          '--v=1',
          ...(opts.extraApiserverArgs ?? []),
        ],
        // The child writes its log straight to the file; its own process group; setpriv kills it if jest dies.
        { name: 'kube-apiserver', stdoutLog: logPath, stderrLog: logPath, processGroup: true },
      );
      const deadline = Date.now() + (opts.readyTimeoutMs ?? 120_000);
      let last = '';
      let ready = false;
      while (!ready && !apiserver.exited && Date.now() < deadline) {
        try {
          const r = await httpsGet(`${server}/readyz`, ca, adminToken);
          ready = r.status === 200;
          if (ready) break;
          last = `HTTP ${r.status}: ${r.body.slice(0, 2_000)}`;
        } catch (e) {
          last = e instanceof Error ? e.message : String(e);
        }
        await sleep(250);
      }
      if (ready) break;
      const exited = !!apiserver.exited;
      await apiserver.stop();
      const tail = logTail(logPath);
      if (exited && attempt < 3 && /address already in use/i.test(tail)) continue;
      throw new Error(
        `kube-apiserver ${exited ? 'exited' : 'was not ready in time'} (last /readyz: ${last || 'none'}); ` +
          `log ${logPath}:\n${tail}`,
      );
    }

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
