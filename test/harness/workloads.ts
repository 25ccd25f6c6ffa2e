// Workloads for the e2e tests of issue 4, on the netns testbed: MariaDB per node, a TCP server that tells each
// client its source address, TCP connections from a namespace, and what a namespace's neighbour cache holds.
// Every process is started with tb.spawn (killed with the testbed, and with this process), every wait is bounded.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NsRef, ProcHandle, Testbed, TestbedNode } from '../../hack/testbed/index.js';
import { assertAllowedAddress, run, sleep, waitUntil } from '../../hack/testbed/util.js';

// ---- MariaDB ------------------------------------------------------------------------------------------------

export interface Mariadb {
  readonly node: TestbedNode;
  readonly dir: string;
  readonly socket: string;
  /** A MySQL option file with the check user's credentials and this server's socket. */
  readonly credentialsFile: string;
  /** The same credentials without a socket: the check connects over TCP to the group's host and port. */
  readonly credentialsFileTcp: string;
  readonly running: boolean;
  /** SQL as root over the socket (the test's own administration, not the check). */
  sql(statement: string): Promise<string>;
  /** Makes this server a replica of `primary` (GTID, from the start of the primary's binary log). */
  replicateFrom(primary: Mariadb): Promise<void>;
  /** Graceful stop (SIGTERM), as `systemctl stop mariadb` would; waits until it is gone. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

export const CHECK_USER = 'vwcheck';
const CHECK_PASSWORD = 'check-pw#1 "quoted"';

/** One datadir made by mariadb-install-db, copied for every server (an install takes ~1.5 s). */
async function template(tb: Testbed): Promise<string> {
  const dir = join(tb.dir, 'mariadb-template');
  if (existsSync(join(dir, 'mysql'))) return dir;
  await run(
    [
      'mariadb-install-db',
      '--no-defaults',
      `--datadir=${dir}`,
      '--auth-root-authentication-method=normal',
      '--user=root',
      '--skip-test-db',
      '--innodb-log-file-size=4M',
      '--innodb-buffer-pool-size=16M',
    ],
    { timeoutMs: 120_000 },
  );
  return dir;
}

/**
 * mariadbd in a node's namespace, on port 3306 there (loopback and the node's address) and on a socket under the
 * testbed dir, with a binary log and a server id of its own, so that another node can replicate from it.
 */
export async function startMariadb(tb: Testbed, nodeRef: NsRef): Promise<Mariadb> {
  if (nodeRef === null) throw new Error('startMariadb: needs a node');
  const node = tb.node(typeof nodeRef === 'string' ? nodeRef : nodeRef.name);
  const dir = join(tb.dir, `mariadb-${node.name}`);
  const serverId = 10 + tb.nodes.indexOf(node) + 1;
  const datadir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const credentialsFile = join(dir, 'check.cnf');
  const credentialsFileTcp = join(dir, 'check-tcp.cnf');
  mkdirSync(dir, { recursive: true });
  if (!existsSync(datadir)) await run(['cp', '-a', await template(tb), datadir], { timeoutMs: 60_000 });
  let proc: ProcHandle | undefined;

  const client = (sql: string, timeoutMs = 10_000) =>
    run(['mariadb', '--no-defaults', '-S', socket, '-uroot', '--batch', '--skip-column-names', '-e', sql], {
      timeoutMs,
    });

  const start = async (): Promise<void> => {
    if (proc && !proc.exited) return;
    const p = tb.spawn(
      node,
      [
        '/usr/sbin/mariadbd',
        '--no-defaults',
        `--datadir=${datadir}`,
        `--socket=${socket}`,
        `--pid-file=${join(dir, 'mysqld.pid')}`,
        `--log-error=${join(dir, 'error.log')}`,
        '--port=3306',
        // The namespace's loopback and the node's address (replicas connect to it); nothing else exists in there.
        '--bind-address=0.0.0.0',
        `--server-id=${serverId}`,
        `--log-bin=${join(dir, 'binlog')}`,
        '--user=root',
        '--skip-name-resolve',
        '--performance-schema=OFF',
        '--innodb-buffer-pool-size=16M',
        '--innodb-log-file-size=4M',
        '--max-connections=64',
      ],
      { name: 'mariadbd' },
    );
    proc = p;
    await waitUntil(
      async () => {
        if (p.exited) throw new Error(`mariadbd on ${node.name} exited at start; see ${join(dir, 'error.log')}`);
        return (
          (
            await run(['mariadb-admin', '--no-defaults', '-S', socket, '-uroot', 'ping'], {
              allowFailure: true,
              timeoutMs: 5000,
            })
          ).exitCode === 0
        );
      },
      { timeoutMs: 60_000, intervalMs: 100, what: `mariadbd on ${node.name}` },
    );
  };

  await start();
  const pw = CHECK_PASSWORD.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
  await client(
    [
      `CREATE USER IF NOT EXISTS '${CHECK_USER}'@'localhost' IDENTIFIED BY '${pw}'`,
      `CREATE USER IF NOT EXISTS '${CHECK_USER}'@'127.0.0.1' IDENTIFIED BY '${pw}'`,
      // Enough to read replication status; SELECT 1 and @@read_only need no grant.
      `GRANT REPLICA MONITOR ON *.* TO '${CHECK_USER}'@'localhost'`,
      `GRANT REPLICA MONITOR ON *.* TO '${CHECK_USER}'@'127.0.0.1'`,
    ].join('; '),
  );
  // An option file as an operator would write it: quoted password with a # and quotes in it.
  const cnf = `# vipwarden check user\n[client]\nuser = ${CHECK_USER}\npassword = "${CHECK_PASSWORD.replace(/"/g, '\\"')}"\n`;
  writeFileSync(credentialsFile, `${cnf}socket = ${socket}\n`, { mode: 0o600 });
  writeFileSync(credentialsFileTcp, `${cnf}[mysqld]\nsocket = /nonexistent/ignored.sock\n`, { mode: 0o600 });

  const sql = async (s: string) => (await client(s)).stdout.trim();
  return {
    node,
    dir,
    socket,
    credentialsFile,
    credentialsFileTcp,
    get running() {
      return !!proc && !proc.exited;
    },
    sql,
    async replicateFrom(primary: Mariadb) {
      await primary.sql(
        `CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY 'repl-pw'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'`,
      );
      await sql(
        `CHANGE MASTER TO MASTER_HOST='${primary.node.ip}', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', ` +
          `MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE`,
      );
    },
    async stop() {
      const p = proc;
      if (!p || p.exited) return;
      await p.stop({ signal: 'SIGTERM', timeoutMs: 30_000 });
    },
    start,
  };
}

// ---- a TCP server that tells the client its address ---------------------------------------------------------

const WHOAMI_SOURCE = `
const net = require('node:net');
const [port, maxMs] = process.argv.slice(2).map(Number);
const srv = net.createServer((s) => { s.on('error', () => {}); s.end(s.remoteAddress.replace(/^::ffff:/, '') + '\\n'); });
srv.listen({ port, host: '::', ipv6Only: false }, () => console.log('listening'));
setTimeout(() => process.exit(0), maxMs).unref();
`;

export interface WhoamiServer {
  readonly port: number;
  stop(): Promise<void>;
}

/** A server in `ns` that answers each connection with the source address it saw, then closes. */
export async function startWhoami(tb: Testbed, ns: NsRef, port: number, maxMs = 600_000): Promise<WhoamiServer> {
  const script = join(tb.dir, 'whoami.cjs');
  writeFileSync(script, WHOAMI_SOURCE);
  const p = tb.spawn(ns, [process.execPath, script, String(port), String(maxMs)], { name: `whoami${port}` });
  const n = ns === null ? null : typeof ns === 'string' ? tb.node(ns) : ns;
  await waitUntil(
    async () => {
      if (p.exited) throw new Error('whoami server exited');
      const r = await run(['ss', ...(n ? ['-N', n.netns] : []), '-Hltn', `sport = :${port}`], { allowFailure: true });
      return r.exitCode === 0 && r.stdout.trim() !== '';
    },
    { timeoutMs: 10_000, intervalMs: 50, what: `whoami on port ${port}` },
  );
  return { port, stop: async () => void (await p.stop({ timeoutMs: 2000 })) };
}

const CONNECT_SOURCE = `
const net = require('node:net');
const [host, port, timeoutMs] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const s = net.connect({ host, port });
let out = '';
const t = setTimeout(() => { console.log('timeout'); process.exit(2); }, timeoutMs);
s.setEncoding('utf8');
s.on('data', (d) => (out += d));
s.on('end', () => { clearTimeout(t); console.log(out.trim()); process.exit(0); });
s.on('error', (e) => { clearTimeout(t); console.log('error ' + e.code); process.exit(1); });
`;

/** One TCP connection from `ns` to host:port; resolves with what the server said (or "error X" / "timeout"). */
export async function connectFrom(
  tb: Testbed,
  ns: NsRef,
  host: string,
  port: number,
  timeoutMs = 3000,
): Promise<string> {
  assertAllowedAddress(host);
  const r = await tb.exec(ns, [process.execPath, '-e', CONNECT_SOURCE, host, String(port), String(timeoutMs)], {
    allowFailure: true,
    timeoutMs: timeoutMs + 5000,
  });
  return r.stdout.trim();
}

// ---- link-layer addresses and neighbour caches ---------------------------------------------------------------

export async function macOf(tb: Testbed, ns: NsRef, iface = 'eth0'): Promise<string> {
  const r = await tb.exec(ns, ['ip', '-j', 'link', 'show', 'dev', iface]);
  const links = JSON.parse(r.stdout) as { address?: string }[];
  const mac = links[0]?.address;
  if (!mac) throw new Error(`no link-layer address on ${iface}`);
  return mac.toLowerCase();
}

/** The neighbour cache entry for `address` in `ns`: its link-layer address and state, if any. */
export async function neighbour(
  tb: Testbed,
  ns: NsRef,
  address: string,
  iface = 'eth0',
): Promise<{ lladdr?: string; state: string[] } | undefined> {
  assertAllowedAddress(address);
  const r = await tb.exec(ns, ['ip', '-j', 'neigh', 'show', 'to', address, 'dev', iface]);
  const entries = JSON.parse(r.stdout || '[]') as { dst: string; lladdr?: string; state?: string[] }[];
  const e = entries[0];
  return e ? { ...(e.lladdr ? { lladdr: e.lladdr.toLowerCase() } : {}), state: e.state ?? [] } : undefined;
}

/** Waits, bounded, until `fn` holds. */
export async function eventually(fn: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  await waitUntil(async () => (await fn()) || undefined, { timeoutMs, intervalMs: 100, what });
}

export { sleep };
