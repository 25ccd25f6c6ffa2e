// Throw-away etcd clusters (1 or 3 members) on tmpfs for integration tests, demo and benchmark.
// Clients listen on `host` (default 127.0.0.1) and on every `extraHosts` address (e.g. a testbed
// bridge 198.18.K.1 so that agents inside namespaces reach it); peers talk over `host`.
// By default over TLS with client certificates (--client-cert-auth) and peer TLS; clientConfig() gives a component
// its endpoints and certificate. The binaries are the pinned build of hack/etcd/build.sh.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { etcdBinaries, type EtcdBinaries } from '../etcd/binaries.js';
import { TestPki, type TlsFiles } from '../etcd/pki.js';
import { ETCD_DIR_PREFIX } from './names.js';
import { type ProcHandle, spawnLogged } from './proc.js';
import { onExitCleanup } from './registry.js';
import { assertAllowedAddress, assertNetnsName, inNetns, run, sleep } from './util.js';

export interface StartEtcdOptions {
  members: 1 | 3;
  /** Peer and advertised client address; default 127.0.0.1. */
  host?: string;
  /** More addresses the client port listens on (same port as on host). */
  extraHosts?: string[];
  /** etcd --heartbeat-interval (ms); default etcd's (100). */
  heartbeatMs?: number;
  /** etcd --election-timeout (ms); default etcd's (1000). */
  electionMs?: number;
  /** Run the members inside this network namespace (host/extraHosts must exist there). */
  netns?: string;
  /** How long to wait for a healthy cluster; default 30 s. */
  startTimeoutMs?: number;
  /**
   * TLS with client certificates (etcd --client-cert-auth, and peer TLS between members), certificates made now by
   * openssl (hack/etcd/pki.ts). Default true: every tier runs the way production should.
   */
  tls?: boolean;
}

export interface EtcdClientConfig {
  endpoints: string[];
  tls?: { ca: string; cert: string; key: string };
}

export interface EtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logFile: string;
  /** Client URL on `host`. */
  endpoint: string;
  readonly pid: number | undefined;
  readonly running: boolean;
}

export interface EtcdCluster {
  /** Client URLs on `host`, one per member. */
  readonly endpoints: string[];
  /** Client URLs on another of the listen addresses (host or one of extraHosts). */
  endpointsFor(host: string): string[];
  /**
   * What a component needs to connect (the `etcd` section of agent.yaml/controller.yaml minus the prefix, and what
   * connectEtcd takes): endpoints on `host` (default the cluster's host) and, with TLS, the CA and a client
   * certificate for `user` (default root).
   */
  clientConfig(opts?: { user?: string; host?: string }): EtcdClientConfig;
  readonly members: readonly EtcdMember[];
  /** Root dir on tmpfs holding every member's data dir and log. */
  readonly dir: string;
  /** The etcd and etcdctl this cluster runs (hack/etcd/build.sh), and their version. */
  readonly binaries: EtcdBinaries;
  /** The CA and the root client certificate, when the cluster runs TLS. */
  readonly tls: TlsFiles | undefined;
  /** etcdctl's flags for TLS as `user` (default root): --cacert, --cert, --key; empty without TLS. */
  etcdctlFlags(user?: string): string[];
  /** The environment the vipwarden CLI reads: VIPWARDEN_ETCD and, with TLS, VIPWARDEN_ETCD_CA/_CERT/_KEY. */
  cliEnv(opts?: { user?: string; host?: string }): Record<string, string>;
  /** The same as vipwarden CLI options: --etcd URLs and, with TLS, --etcd-ca, --etcd-cert, --etcd-key. */
  cliFlags(opts?: { user?: string; host?: string }): string[];
  /** Kills every member, removes the data. Idempotent. */
  stop(): Promise<void>;
  /** Kills member i (0-based), SIGKILL by default (SIGSTOP to freeze it). */
  kill(member: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts member i again on its data (after kill); waits until it is healthy. */
  restart(member: number): Promise<void>;
  /** Runs `etcdctl endpoint health` on the given members (default all); true if all healthy. */
  healthy(members?: number[]): Promise<boolean>;
}

const urlHost = (h: string): string => (h.includes(':') ? `[${h}]` : h);

/** Finds `count` ports that can be bound on every one of `hosts` (probing by binding), in `netns` if given. */
export async function freePorts(count: number, hosts: string[], netns?: string): Promise<number[]> {
  if (netns) {
    const script = PORT_PROBE_SCRIPT;
    const r = await run(inNetns(netns, [process.execPath, '-e', script, JSON.stringify({ count, hosts })]), {
      timeoutMs: 15_000,
    });
    const ports = JSON.parse(r.stdout) as unknown;
    if (!Array.isArray(ports) || ports.length !== count || !ports.every((p) => Number.isInteger(p)))
      throw new Error(`freePorts: bad answer ${r.stdout}`);
    return ports as number[];
  }
  return probePorts(count, hosts);
}

async function probePorts(count: number, hosts: string[]): Promise<number[]> {
  const bind = (host: string, port: number) =>
    new Promise<ReturnType<typeof createServer> | undefined>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(undefined));
      s.listen({ host, port, exclusive: true }, () => resolve(s));
    });
  const close = (s: ReturnType<typeof createServer>) => new Promise<void>((r) => s.close(() => r()));
  const held: Array<ReturnType<typeof createServer>> = [];
  const ports: number[] = [];
  try {
    for (let attempt = 0; attempt < 200 && ports.length < count; attempt++) {
      const first = await bind(hosts[0] as string, 0);
      if (!first) throw new Error(`freePorts: cannot bind on ${hosts[0]}`);
      held.push(first);
      const addr = first.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      let ok = port > 0;
      for (const h of hosts.slice(1)) {
        if (!ok) break;
        const s = await bind(h, port);
        if (s) held.push(s);
        else ok = false;
      }
      if (ok) ports.push(port);
    }
  } finally {
    await Promise.all(held.map(close));
  }
  if (ports.length < count)
    throw new Error(`freePorts: found only ${ports.length} of ${count} ports on ${hosts.join(', ')}`);
  return ports;
}

// The same probe, as a script for `node -e` inside a namespace.
const PORT_PROBE_SCRIPT = `
const net = require('node:net');
const { count, hosts } = JSON.parse(process.argv[1]);
const bind = (host, port) => new Promise((res) => { const s = net.createServer(); s.once('error', () => res(undefined)); s.listen({ host, port, exclusive: true }, () => res(s)); });
(async () => {
  const held = [], ports = [];
  for (let a = 0; a < 200 && ports.length < count; a++) {
    const f = await bind(hosts[0], 0); if (!f) break; held.push(f);
    const port = f.address().port; let ok = true;
    for (const h of hosts.slice(1)) { const s = await bind(h, port); if (s) held.push(s); else { ok = false; break; } }
    if (ok) ports.push(port);
  }
  process.stdout.write(JSON.stringify(ports));
  process.exit(0);
})();
`;

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
      ...(opts.heartbeatMs !== undefined ? [`--heartbeat-interval=${opts.heartbeatMs}`] : []),
      ...(opts.electionMs !== undefined ? [`--election-timeout=${opts.electionMs}`] : []),
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
    const ports = await freePorts(2 * n, hosts, opts.netns);
    members = Array.from({ length: n }, (_, i) => {
      const name = `m${i}`;
      const endpoint = `${scheme}://${urlHost(host)}:${ports[2 * i]}`;
      return {
        name,
        clientPort: ports[2 * i] as number,
        peerPort: ports[2 * i + 1] as number,
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
