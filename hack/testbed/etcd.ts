// Throw-away etcd clusters (1 or 3 members) on tmpfs for integration tests, demo and benchmark.
// Clients listen on `host` (default 127.0.0.1) and on every `extraHosts` address (e.g. a testbed
// bridge 198.18.K.1 so that agents inside namespaces reach it); peers talk over `host`.
// By default over TLS with client certificates (--client-cert-auth) and peer TLS; clientConfig() gives a component
// its endpoints and certificate. The binaries are the pinned build of hack/etcd/build.sh.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { etcdBinaries } from '../etcd/binaries.js';
import { TestPki, type TlsFiles } from '../etcd/pki.js';
import { freePorts } from './etcd-ports.js';
import { leaderIndex } from './etcd-leader.js';
import { ETCD_TIMING } from './etcd-types.js';
import type { EtcdClientConfig, EtcdCluster, EtcdMember, StartEtcdOptions } from './etcd-types.js';
import { ETCD_DIR_PREFIX } from './names.js';
import { type ProcHandle, spawnLogged } from './proc.js';
import { onExitCleanup } from './registry.js';
import { assertAllowedAddress, assertNetnsName, inNetns, run, sleep } from './util.js';

const urlHost = (h: string): string => (h.includes(':') ? `[${h}]` : h);

export { freePorts } from './etcd-ports.js';
export * from './etcd-types.js';

function validMs(v: number | undefined, what: string): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > 60_000))
    throw new Error(`startEtcd: invalid ${what}: ${v}`);
}

export async function startEtcd(opts: StartEtcdOptions): Promise<EtcdCluster> {
  if (opts.members !== 1 && opts.members !== 3)
    throw new Error(`startEtcd: members must be 1 or 3, got ${String(opts.members)}`);
  const host = opts.host ?? '127.0.0.1';
  const extra = opts.extraHosts ?? [];
  for (const h of [host, ...extra]) assertAllowedAddress(h);
  validMs(opts.heartbeatMs, 'heartbeatMs');
  validMs(opts.electionMs, 'electionMs');
  if (opts.netns) assertNetnsName(opts.netns);
  const hosts = [host, ...extra.filter((h) => h !== host)];
  // The pinned etcd build (hack/etcd/build.sh), not the distribution's: older etcd has lease bugs.
  const bins = etcdBinaries();
  const id = `${process.pid}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const dir = `${ETCD_DIR_PREFIX}${id}`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'owner.json'), JSON.stringify({ pid: process.pid, createdAt: new Date().toISOString() }));
  const useTls = opts.tls ?? true;
  const scheme = useTls ? 'https' : 'http';
  let pki: TestPki | undefined;
  let serverTls: TlsFiles | undefined;
  let rootTls: TlsFiles | undefined;
  if (useTls) {
    pki = new TestPki(join(dir, 'pki'));
    serverTls = pki.server(hosts);
    rootTls = pki.client('root');
  }
  const tlsFlags = (user?: string): string[] => {
    if (!pki) return [];
    const t = user === undefined ? (rootTls as TlsFiles) : pki.client(user);
    return [`--cacert=${t.ca}`, `--cert=${t.cert}`, `--key=${t.key}`];
  };
  const procs: Array<ProcHandle | undefined> = [];
  let stopped = false;
  const unregister = onExitCleanup(`etcd ${dir}`, () => {
    for (const p of procs) if (p && !p.exited) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const n = opts.members;
  let members: EtcdMember[] = [];
  const argvFor = (i: number): string[] => {
    const m = members[i] as EtcdMember;
    const cluster = members.map((x) => `${x.name}=${scheme}://${urlHost(host)}:${x.peerPort}`).join(',');
    return [
      bins.etcd,
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=${hosts.map((h) => `${scheme}://${urlHost(h)}:${m.clientPort}`).join(',')}`,
      `--advertise-client-urls=${scheme}://${urlHost(host)}:${m.clientPort}`,
      // Prometheus text without TLS (the benchmark's request counts): the client port asks for a certificate.
      `--listen-metrics-urls=${m.metricsUrl.replace(/\/metrics$/, '')}`,
      `--listen-peer-urls=${scheme}://${urlHost(host)}:${m.peerPort}`,
      `--initial-advertise-peer-urls=${scheme}://${urlHost(host)}:${m.peerPort}`,
      ...(serverTls
        ? [
            `--cert-file=${serverTls.cert}`,
            `--key-file=${serverTls.key}`,
            `--trusted-ca-file=${serverTls.ca}`,
            '--client-cert-auth',
            `--peer-cert-file=${serverTls.cert}`,
            `--peer-key-file=${serverTls.key}`,
            `--peer-trusted-ca-file=${serverTls.ca}`,
            '--peer-client-cert-auth',
          ]
        : []),
      `--initial-cluster=${cluster}`,
      `--initial-cluster-token=vipwarden-${id}`,
      '--initial-cluster-state=new',
      `--heartbeat-interval=${opts.heartbeatMs ?? ETCD_TIMING.heartbeatMs}`,
      `--election-timeout=${opts.electionMs ?? ETCD_TIMING.electionMs}`,
      '--logger=zap',
      '--log-level=info',
    ];
  };
  const spawnMember = (i: number): void => {
    const m = members[i] as EtcdMember;
    procs[i] = spawnLogged(argvFor(i), {
      name: m.name,
      netns: opts.netns ?? null,
      stdoutLog: m.logFile,
      stderrLog: m.logFile,
    });
  };
  const healthy = async (which?: number[]): Promise<boolean> => {
    const idx = which ?? members.map((_, i) => i);
    const eps = idx.map((i) => (members[i] as EtcdMember).endpoint);
    const r = await run(
      inNetns(opts.netns, [
        bins.etcdctl,
        `--endpoints=${eps.join(',')}`,
        ...tlsFlags(),
        '--dial-timeout=1s',
        '--command-timeout=2s',
        'endpoint',
        'health',
      ]),
      {
        allowFailure: true,
        timeoutMs: 10_000,
      },
    );
    return r.exitCode === 0;
  };
  const waitHealthy = async (which: number[] | undefined, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000; i++) {
      const idx = which ?? members.map((_, j) => j);
      for (const j of idx) {
        const p = procs[j];
        if (!p || p.exited)
          throw new Error(
            `etcd member ${j} exited during start-up; log tail:\n${tail((members[j] as EtcdMember).logFile)}`,
          );
      }
      if (await healthy(which)) return;
      if (Date.now() > deadline) break;
      await sleep(100);
    }
    throw new Error(`etcd not healthy after ${timeoutMs} ms; log tail:\n${tail((members[0] as EtcdMember).logFile)}`);
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // SIGKILL: the data goes away anyway, and a graceful stop of a whole cluster waits on peers for seconds.
    await Promise.all(procs.map((p) => p?.stop({ signal: 'SIGKILL', timeoutMs: 3000 })));
    rmSync(dir, { recursive: true, force: true });
    unregister();
  };

  // Ports can be taken between probing and etcd binding them: retry a few times.
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const ports = await freePorts(3 * n, hosts, opts.netns);
    members = Array.from({ length: n }, (_, i) => {
      const name = `m${i}`;
      const endpoint = `${scheme}://${urlHost(host)}:${ports[2 * i]}`;
      return {
        name,
        clientPort: ports[2 * i] as number,
        peerPort: ports[2 * i + 1] as number,
        metricsUrl: `http://${urlHost(host)}:${ports[2 * n + i]}/metrics`,
        dataDir: join(dir, `${name}.etcd`),
        logFile: join(dir, `${name}.log`),
        endpoint,
        get pid() {
          const p = procs[i];
          return p && !p.exited ? p.pid : undefined;
        },
        get running() {
          const p = procs[i];
          return !!p && !p.exited;
        },
      };
    });
    try {
      for (let i = 0; i < n; i++) spawnMember(i);
      await waitHealthy(undefined, opts.startTimeoutMs ?? 30_000);
      lastErr = undefined;
      break;
    } catch (e) {
      lastErr = e;
      await Promise.all(procs.map((p) => p?.stop({ signal: 'SIGKILL', timeoutMs: 2000 })));
      procs.length = 0;
      for (const m of members) rmSync(m.dataDir, { recursive: true, force: true });
    }
  }
  if (lastErr) {
    await stop();
    throw lastErr;
  }

  function clientConfig(o: { user?: string; host?: string } = {}): EtcdClientConfig {
    const endpoints = o.host === undefined ? members.map((m) => m.endpoint) : endpointsFor(o.host);
    if (!pki) return { endpoints };
    return { endpoints, tls: o.user === undefined ? (rootTls as TlsFiles) : pki.client(o.user) };
  }
  function endpointsFor(h: string): string[] {
    if (!hosts.includes(h)) throw new Error(`etcd does not listen on ${h} (listens on ${hosts.join(', ')})`);
    return members.map((m) => `${scheme}://${urlHost(h)}:${m.clientPort}`);
  }
  const member = (i: number): EtcdMember => {
    const m = members[i];
    if (!m) throw new Error(`etcd: no member ${i} (cluster has ${members.length})`);
    return m;
  };
  return {
    endpoints: members.map((m) => m.endpoint),
    endpointsFor,
    clientConfig,
    tls: rootTls,
    etcdctlFlags: tlsFlags,
    cliFlags(o = {}) {
      const c = clientConfig(o);
      return [
        '--etcd',
        c.endpoints.join(','),
        ...(c.tls ? ['--etcd-ca', c.tls.ca, '--etcd-cert', c.tls.cert, '--etcd-key', c.tls.key] : []),
      ];
    },
    cliEnv(o = {}) {
      const c = clientConfig(o);
      return {
        VIPWARDEN_ETCD: c.endpoints.join(','),
        ...(c.tls
          ? { VIPWARDEN_ETCD_CA: c.tls.ca, VIPWARDEN_ETCD_CERT: c.tls.cert, VIPWARDEN_ETCD_KEY: c.tls.key }
          : {}),
      };
    },
    members,
    dir,
    binaries: bins,
    stop,
    healthy,
    leader: () =>
      leaderIndex(
        bins.etcdctl,
        tlsFlags(),
        members.filter((m) => m.running).map((m) => m.endpoint),
        members.map((m) => m.endpoint),
        opts.netns,
      ),
    async kill(i, signal = 'SIGKILL') {
      member(i);
      const p = procs[i];
      if (!p || p.exited) return;
      if (signal === 'SIGKILL' || signal === 'SIGTERM') await p.stop({ signal, timeoutMs: 3000 });
      else p.kill(signal);
    },
    async restart(i) {
      const m = member(i);
      if (stopped) throw new Error('etcd: cluster is stopped');
      const p = procs[i];
      if (p && !p.exited) await p.stop({ signal: 'SIGKILL', timeoutMs: 2000 });
      if (!existsSync(m.dataDir)) throw new Error(`etcd: data dir of ${m.name} is gone`);
      spawnMember(i);
      await waitHealthy([i], opts.startTimeoutMs ?? 30_000);
    },
  };
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
