// kube-apiserver for the test Kubernetes API (kube.ts): its flags, its start on a free loopback port and the wait
// for /readyz.
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { spawnLogged, type ProcHandle } from '../../hack/testbed/proc.js';
import { sleep } from '../../hack/testbed/util.js';
import { freePorts, type EtcdCluster } from './etcd.js';
import type { KubeBinaries } from './kube-binaries.js';
import type { Pki } from './kube-pki.js';

const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const SERVICE_CIDR = '10.96.0.0/24';

/** Last lines of a log file, for error messages. */
function logTail(path: string, lines = 40): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

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

export interface ApiserverOptions {
  binaries: KubeBinaries;
  etcd: EtcdCluster;
  etcdEndpoint: string;
  pki: Pki;
  /** The token auth file (token,user,uid,"groups"). */
  tokenFile: string;
  /** Where its stdout and stderr go. */
  logPath: string;
  /** A token that may read /readyz. */
  adminToken: string;
  readyTimeoutMs?: number;
  serviceAccountAdmission?: boolean;
  extraApiserverArgs?: readonly string[];
}

/**
 * Starts kube-apiserver on a free loopback port (another try, up to three, when the port was taken meanwhile) and
 * waits for /readyz. Throws, with the log's tail, when it exits or is not ready in time; then nothing it started runs.
 */
export async function startApiserver(opts: ApiserverOptions): Promise<{ apiserver: ProcHandle; server: string }> {
  const { binaries, etcd, etcdEndpoint, pki, tokenFile, logPath, adminToken } = opts;
  const ca = readFileSync(pki.caCrt);
  for (let attempt = 1; ; attempt++) {
    const [port] = await freePorts(1, ['127.0.0.1']);
    const server = `https://127.0.0.1:${port}`;
    const apiserver = spawnLogged(
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
    if (ready) return { apiserver, server };
    const exited = !!apiserver.exited;
    await apiserver.stop();
    const tail = logTail(logPath);
    if (exited && attempt < 3 && /address already in use/i.test(tail)) continue;
    throw new Error(
      `kube-apiserver ${exited ? 'exited' : 'was not ready in time'} (last /readyz: ${last || 'none'}); ` +
        `log ${logPath}:\n${tail}`,
    );
  }
}
