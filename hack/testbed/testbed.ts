// A netns testbed: one Linux bridge in the root namespace with 198.18.K.0/24 (and optionally
// 2001:2:0:K::/64), N node namespaces and one client namespace wired to it by veth pairs.
//
//   root ns: vwbrK 198.18.K.1 ── vwKn1 ═ eth0 198.18.K.11 (vwK-node1)
//                              ├─ vwKn2 ═ eth0 198.18.K.12 (vwK-node2)
//                              └─ vwKc  ═ eth0 198.18.K.200 (vwK-client)
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupLeftovers, listClaims, teardownTestbed, teardownTestbedSync } from './cleanup.js';
import {
  MAX_NODES,
  TESTBED_DIR_PREFIX,
  bridgeName,
  clientHostVeth,
  clientNetns,
  hostV4,
  hostV6,
  nodeHostVeth,
  nodeNetns,
  subnetV4,
  subnetV6,
} from './names.js';
import { allocate } from './alloc.js';
import { type ProcHandle, spawnLogged } from './proc.js';
import { onExitCleanup } from './registry.js';
import { type RunResult, requireRoot, run } from './util.js';

export interface TestbedNode {
  /** `node1`, `node2`, ... or `client`. */
  name: string;
  netns: string;
  ip: string;
  ip6?: string;
  iface: 'eth0';
  /** Host-side veth in the root namespace, attached to the bridge. */
  hostVeth: string;
}

/** A namespace given as a node, a node name (`node2`, `client`), a netns name, or null (root namespace). */
export type NsRef = TestbedNode | string | null;

export interface TestbedSpawnOptions {
  /** Used in log file names; default: basename of argv[0]. */
  name?: string;
  /** 'pipe' exposes `handle.stdout`; default writes stdout to a log file. */
  stdout?: 'file' | 'pipe';
  env?: Record<string, string>;
}

export interface Testbed {
  /** K: the third octet of 198.18.K.0/24. */
  readonly id: number;
  readonly name: string;
  /** Working dir: logs, configs. Removed by destroy() unless keepDir. */
  readonly dir: string;
  readonly bridge: string;
  readonly bridgeIp: string;
  readonly bridgeIp6?: string;
  /** `198.18.K.0/24` */
  readonly subnet: string;
  readonly subnet6?: string;
  readonly prefixLen: 24;
  readonly prefixLen6: 64;
  readonly nodes: readonly TestbedNode[];
  readonly client: TestbedNode;
  /** Every namespace of this testbed (nodes then client). */
  readonly namespaces: readonly string[];
  /** Node by name (`node1`, `client`, netns name) or 0-based index. */
  node(ref: string | number): TestbedNode;
  /** Suggested VIP i (0-based): 198.18.K.(100+i). */
  vip(i: number): string;
  /** Suggested IPv6 VIP i: 2001:2:0:K::(100+i). Requires ipv6. */
  vip6(i: number): string;
  exec(ns: NsRef, argv: readonly string[], opts?: { allowFailure?: boolean; timeoutMs?: number }): Promise<RunResult>;
  /** Starts a long-running process in `ns`; killed by destroy(). */
  spawn(ns: NsRef, argv: readonly string[], opts?: TestbedSpawnOptions): ProcHandle;
  /** Detaches the node's host-side veth from the bridge; the node's eth0 stays UP. */
  cutLink(node: NsRef): Promise<void>;
  restoreLink(node: NsRef): Promise<void>;
  isCut(node: NsRef): boolean;
  /** Kills spawned processes, removes namespaces, veths, bridge, dir and claim. Idempotent. */
  destroy(): Promise<void>;
}

export interface CreateTestbedOptions {
  /** Label for logs and the claim file ([a-z0-9-], ≤ 24 chars). */
  name?: string;
  nodes: number;
  ipv6?: boolean;
  /** Keep the working dir (logs) after destroy(). Default: env VIPWARDEN_KEEP_TESTBED_LOGS=1. */
  keepDir?: boolean;
  /** Leave the testbed in place when this process exits (cli `up`); remove with `down`. */
  persistent?: boolean;
}

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,23}$/;

export async function createTestbed(opts: CreateTestbedOptions): Promise<Testbed> {
  requireRoot('createTestbed');
  const nodeCount = opts.nodes;
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > MAX_NODES) {
    throw new Error(`createTestbed: nodes must be an integer in 1..${MAX_NODES}, got ${nodeCount}`);
  }
  const name = opts.name ?? 'testbed';
  if (!NAME_RE.test(name)) throw new Error(`createTestbed: invalid name ${JSON.stringify(name)}`);
  const ipv6 = opts.ipv6 ?? false;
  const keepDir = opts.keepDir ?? process.env['VIPWARDEN_KEEP_TESTBED_LOGS'] === '1';

  // Crashed runs' leftovers would otherwise pin subnets forever; this removes only dead owners' things.
  await cleanupLeftovers().catch(() => undefined);

  const k = await allocate((kk) => ({
    k: kk,
    pid: process.pid,
    persistent: opts.persistent ?? false,
    name,
    dir: `${TESTBED_DIR_PREFIX}${kk}-${randomBytes(4).toString('hex')}`,
    nodes: nodeCount,
    ipv6,
    createdAt: new Date().toISOString(),
  }));
  const claim = listClaims().find((c) => c.k === k && c.pid === process.pid);
  if (!claim) throw new Error(`createTestbed: lost claim for K=${k}`);
  mkdirSync(claim.dir, { recursive: true });

  const bridge = bridgeName(k);
  const mk = (i: number): TestbedNode => ({
    name: `node${i}`,
    netns: nodeNetns(k, i),
    ip: hostV4(k, 10 + i),
    ...(ipv6 ? { ip6: hostV6(k, 10 + i) } : {}),
    iface: 'eth0',
    hostVeth: nodeHostVeth(k, i),
  });
  const nodes = Array.from({ length: nodeCount }, (_, j) => mk(j + 1));
  const client: TestbedNode = {
    name: 'client',
    netns: clientNetns(k),
    ip: hostV4(k, 200),
    ...(ipv6 ? { ip6: hostV6(k, 200) } : {}),
    iface: 'eth0',
    hostVeth: clientHostVeth(k),
  };
  const all = [...nodes, client];
  const procs = new Set<ProcHandle>();
  const cut = new Set<string>();

  const unregister = opts.persistent
    ? () => undefined
    : onExitCleanup(`testbed ${k}`, () =>
        teardownTestbedSync(k, {
          netns: all.map((n) => n.netns),
          links: [...all.map((n) => n.hostVeth), bridge],
          pids: [...procs].filter((p) => !p.exited).map((p) => p.pid),
          dir: claim.dir,
          keepDir,
        }),
      );

  try {
    await run([
      'ip',
      'link',
      'add',
      bridge,
      'type',
      'bridge',
      'nf_call_iptables',
      '0',
      'nf_call_ip6tables',
      '0',
      'nf_call_arptables',
      '0',
      'mcast_snooping',
      '0',
    ]);
    await run(['ip', 'addr', 'add', `${hostV4(k, 1)}/24`, 'dev', bridge]);
    if (ipv6) await run(['ip', '-6', 'addr', 'add', `${hostV6(k, 1)}/64`, 'dev', bridge, 'nodad']);
    await run(['ip', 'link', 'set', bridge, 'up']);
    await Promise.all(all.map((n) => setupNamespace(n, bridge)));
  } catch (e) {
    await teardownTestbed(k, { dir: claim.dir }).catch(() => undefined);
    unregister();
    throw e;
  }

  const resolve = (ref: NsRef): TestbedNode | null => {
    if (ref === null) return null;
    if (typeof ref !== 'string') {
      if (!all.includes(ref)) throw new Error(`not a node of testbed ${k}: ${ref.name}`);
      return ref;
    }
    const n = all.find((x) => x.name === ref || x.netns === ref);
    if (!n) throw new Error(`testbed ${k} has no node ${JSON.stringify(ref)}`);
    return n;
  };
  let spawnSeq = 0;
  let destroyed: Promise<void> | undefined;

  const tb: Testbed = {
    id: k,
    name,
    dir: claim.dir,
    bridge,
    bridgeIp: hostV4(k, 1),
    ...(ipv6 ? { bridgeIp6: hostV6(k, 1), subnet6: subnetV6(k) } : {}),
    subnet: subnetV4(k),
    prefixLen: 24,
    prefixLen6: 64,
    nodes,
    client,
    namespaces: all.map((n) => n.netns),
    node(ref) {
      if (typeof ref === 'number') {
        const n = nodes[ref];
        if (!n) throw new Error(`testbed ${k} has no node index ${ref}`);
        return n;
      }
      return resolve(ref) as TestbedNode;
    },
    vip(i) {
      if (!Number.isInteger(i) || i < 0 || i > 49) throw new Error(`vip index out of range 0..49: ${i}`);
      return hostV4(k, 100 + i);
    },
    vip6(i) {
      if (!ipv6) throw new Error('vip6: testbed was created without ipv6');
      if (!Number.isInteger(i) || i < 0 || i > 49) throw new Error(`vip index out of range 0..49: ${i}`);
      return hostV6(k, 100 + i);
    },
    exec(ns, argv, o = {}) {
      if (destroyed) throw new Error(`testbed ${k} is destroyed`);
      const n = resolve(ns);
      return run(n ? ['ip', 'netns', 'exec', n.netns, ...argv] : [...argv], o);
    },
    spawn(ns, argv, o = {}) {
      if (destroyed) throw new Error(`testbed ${k} is destroyed`);
      const n = resolve(ns);
      const base = (o.name ?? (argv[0] ?? 'proc').split('/').pop() ?? 'proc').replace(/[^A-Za-z0-9_.-]/g, '_');
      const seq = ++spawnSeq;
      const stem = join(claim.dir, `${n ? n.name : 'root'}.${base}.${seq}`);
      const h = spawnLogged(argv, {
        name: `${n ? n.name : 'root'}/${base}`,
        netns: n ? n.netns : null,
        stdout: o.stdout ?? 'file',
        stdoutLog: `${stem}.out.log`,
        stderrLog: `${stem}.err.log`,
        ...(o.env ? { env: o.env } : {}),
      });
      procs.add(h);
      void h.done.then(() => procs.delete(h));
      return h;
    },
    async cutLink(ref) {
      const n = resolve(ref);
      if (!n) throw new Error('cutLink: root namespace has no link to cut');
      await run(['ip', 'link', 'set', n.hostVeth, 'nomaster']);
      cut.add(n.name);
    },
    async restoreLink(ref) {
      const n = resolve(ref);
      if (!n) throw new Error('restoreLink: root namespace has no link');
      await run(['ip', 'link', 'set', n.hostVeth, 'master', bridge]);
      await run(['ip', 'link', 'set', n.hostVeth, 'up']);
      cut.delete(n.name);
    },
    isCut(ref) {
      const n = resolve(ref);
      return n ? cut.has(n.name) : false;
    },
    destroy() {
      destroyed ??= (async () => {
        await Promise.all([...procs].map((p) => p.stop({ timeoutMs: 2000 })));
        await teardownTestbed(k, { dir: claim.dir, keepDir });
        unregister();
      })();
      return destroyed;
    },
  };
  return tb;
}

async function setupNamespace(n: TestbedNode, bridge: string): Promise<void> {
  await run(['ip', 'netns', 'add', n.netns]);
  // No duplicate address detection: addresses (and VIPs moved by hand) are usable at once.
  await run([
    'ip',
    'netns',
    'exec',
    n.netns,
    'sysctl',
    '-qw',
    'net.ipv6.conf.all.accept_dad=0',
    'net.ipv6.conf.default.accept_dad=0',
  ]);
  await run(['ip', 'link', 'add', n.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.netns]);
  await run(['ip', 'link', 'set', n.hostVeth, 'master', bridge, 'up']);
  await run(['ip', '-n', n.netns, 'link', 'set', 'lo', 'up']);
  await run(['ip', '-n', n.netns, 'addr', 'add', `${n.ip}/24`, 'dev', 'eth0']);
  if (n.ip6) await run(['ip', '-n', n.netns, '-6', 'addr', 'add', `${n.ip6}/64`, 'dev', 'eth0', 'nodad']);
  await run(['ip', '-n', n.netns, 'link', 'set', 'eth0', 'up']);
}

export { listTestbeds } from './alloc.js';
