// A vipwarden cluster on the netns testbed: etcd, one agent per node (in its namespace), controllers in the root
// namespace reading a manifests directory, nginx on each node. Used by the e2e tests, the demo and the benchmark.
// Components run from dist/ (npm run build).
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { stringify as toYaml } from 'yaml';
import { collectStatus, type GroupStatus } from '../../cli/main.js';
import { connectEtcd } from '../../common/etcd.js';
import { setupEtcdRoles } from '../etcd/roles.js';
import { decode, EventRecord, Keys } from '../../common/keyspace.js';
import { AGENT_GLIBC_TUNABLES, AGENT_NODE_FLAGS } from '../../node-agent/node-flags.js';
import {
  createTestbed,
  startEtcd,
  startNginx,
  type EtcdCluster,
  type NginxHandle,
  type ProcHandle,
  type Testbed,
} from './index.js';
import { peerSection, writePeerKey } from './peer.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root, whether running from hack/testbed (ts) or dist/hack/testbed (js). */
export const REPO = [resolve(here, '..', '..'), resolve(here, '..', '..', '..')].find((d) =>
  existsSync(join(d, 'package.json')),
)!;
export const DIST = join(REPO, 'dist');

export interface ClusterOptions {
  name?: string;
  nodes?: number;
  ipv6?: boolean;
  etcdMembers?: 1 | 3;
  etcdHeartbeatMs?: number;
  etcdElectionMs?: number;
  /**
   * Least-privilege etcd users (deploy/etcd/setup.sh): each agent may write only its own keys, the controllers the
   * rest, the CLI user "cli" is an operator. Default false. The harness's own client stays root.
   */
  etcdRoles?: boolean;
  /** Merged into every agent's config. */
  agent?: Record<string, unknown>;
  /** Per-node additions to the agent config. */
  agentFor?: (node: string) => Record<string, unknown>;
  /** Every agent gets the failsafe peer channel (`peer:` on its node address, one key file: hack/testbed/peer.ts). */
  peer?: boolean;
  controllerReplicas?: number;
  controller?: Record<string, unknown>;
  /** Start nginx (port 80, body = node name) on every node. Default true. */
  nginx?: boolean;
  /** Start agents and controllers right away. Default true. */
  start?: boolean;
  logLevel?: string;
  /** Human-readable component logs (the demo). */
  prettyLogs?: boolean;
}

export interface Cluster {
  readonly tb: Testbed;
  readonly etcd: EtcdCluster;
  readonly client: Etcd3;
  readonly keys: Keys;
  readonly prefix: string;
  readonly groupsDir: string;
  readonly agents: Map<string, ProcHandle>;
  readonly controllers: (ProcHandle | undefined)[];
  readonly nginx: Map<string, NginxHandle>;
  agentConfigPath(node: string): string;
  startAgent(node: string): Promise<ProcHandle>;
  startController(i: number): ProcHandle;
  /** Writes a FailoverGroup document (object or YAML text) into the manifests directory. */
  applyGroup(doc: unknown, file?: string): string;
  deleteGroup(name: string): void;
  status(): Promise<{ leader: string | null; groups: GroupStatus[] }>;
  holderOf(group: string): Promise<string | null>;
  events(group?: string): Promise<EventRecord[]>;
  /** Index of the controller replica that leads, or -1. */
  leaderIndex(): Promise<number>;
  destroy(): Promise<void>;
}

export function requireBuilt(): void {
  if (!existsSync(join(DIST, 'node-agent', 'main.js')))
    throw new Error(`vipwarden is not built: run "npm run build" in ${REPO}`);
}

/** A FailoverGroup document for the testbed: one VIP (or several), nginx check, candidates with priorities. */
/** node1 > node2 > node3: the candidates most tests and the demo use. */
export const THREE_NODES: [string, number][] = [
  ['node1', 100],
  ['node2', 90],
  ['node3', 80],
];
/** node1 > node2: the two-candidate groups of many tests. */
export const TWO_NODES: [string, number][] = [
  ['node1', 100],
  ['node2', 90],
];

export function webGroup(opts: {
  name?: string;
  vips: string[];
  /** [name, priority]; default THREE_NODES. */
  nodes?: [string, number][];
  failback?: 'auto' | 'manual';
  intervalMs?: number;
  fall?: number;
  rise?: number;
  checks?: unknown[];
  extra?: Record<string, unknown>;
}): Record<string, unknown> {
  const interval = opts.intervalMs ?? 100;
  return {
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name: opts.name ?? 'web' },
    spec: {
      vips: opts.vips.map((address) => ({ address })),
      nodes: (opts.nodes ?? THREE_NODES).map(([name, priority]) => ({ name, priority })),
      checks: opts.checks ?? [
        {
          name: 'nginx',
          type: 'http',
          http: { port: 80, path: '/' },
          intervalMs: interval,
          timeoutMs: Math.min(interval, 200),
          rise: opts.rise ?? 2,
          fall: opts.fall ?? 2,
        },
      ],
      failback: opts.failback ?? 'auto',
      ...(opts.extra ?? {}),
    },
  };
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  requireBuilt();
  const n = opts.nodes ?? 3;
  const tb = await createTestbed({ name: opts.name ?? 'e2e', nodes: n, ipv6: opts.ipv6 });
  let etcd: EtcdCluster | undefined;
  let client: Etcd3 | undefined;
  try {
    etcd = await startEtcd({
      members: opts.etcdMembers ?? 1,
      host: '127.0.0.1',
      extraHosts: [tb.bridgeIp],
      heartbeatMs: opts.etcdHeartbeatMs,
      electionMs: opts.etcdElectionMs,
    });
    const prefix = '/vipwarden/';
    const keys = new Keys(prefix);
    if (opts.etcdRoles) {
      await setupEtcdRoles(etcd, {
        prefix,
        nodes: tb.nodes.map((x) => x.name),
        controllers: Array.from({ length: Math.max(4, opts.controllerReplicas ?? 1) }, (_, i) => `controller-${i}`),
        readers: ['reader'],
        operators: ['cli'],
      });
    }
    client = connectEtcd(etcd.clientConfig());
    const groupsDir = join(tb.dir, 'groups');
    mkdirSync(groupsDir, { recursive: true });
    const agents = new Map<string, ProcHandle>();
    const controllers: (ProcHandle | undefined)[] = [];
    const nginx = new Map<string, NginxHandle>();
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      ...(opts.prettyLogs ? { VIPWARDEN_LOG_PRETTY: '1' } : {}),
    };
    // VIPWARDEN_TESTBED_AGENT=/path/to/vipwarden-agent runs that executable (the single executable that the .deb and
    // the image ship, hack/package/sea.sh) instead of dist/node-agent/main.js; it reads the agent's flags from
    // NODE_OPTIONS, as under the systemd unit. Both get the unit's GLIBC_TUNABLES.
    const agentExe = process.env.VIPWARDEN_TESTBED_AGENT;
    const agentCommand = agentExe
      ? [agentExe]
      : [process.execPath, ...AGENT_NODE_FLAGS, join(DIST, 'node-agent', 'main.js')];
    const agentEnv = {
      ...env,
      GLIBC_TUNABLES: AGENT_GLIBC_TUNABLES,
      ...(agentExe ? { NODE_OPTIONS: AGENT_NODE_FLAGS.join(' ') } : {}),
    };
    const e = etcd;
    const c = client;

    const agentConfigPath = (node: string) => join(tb.dir, `agent-${node}.yaml`);
    const peerKey = opts.peer ? writePeerKey(tb.dir) : undefined;
    const writeAgentConfig = (node: string) => {
      const cfg = {
        node,
        // Agents reach etcd over the bridge, each with a client certificate of its own (CN = node name).
        etcd: { ...e.clientConfig({ user: node, host: tb.bridgeIp }), prefix },
        interface: 'eth0',
        // The node-side allowlist: the testbed's networks only (RULES.md network rule).
        vipRanges: ['198.18.0.0/15', '2001:2::/48'],
        allow: { snatDestinations: ['198.18.0.0/15', '2001:2::/48'], checkTargets: ['198.18.0.0/15', '2001:2::/48'] },
        stateDir: join(tb.dir, 'state'),
        logLevel: opts.logLevel ?? 'info',
        ...(peerKey ? { peer: peerSection(tb, node, peerKey) } : {}),
        ...(opts.agent ?? {}),
        ...(opts.agentFor?.(node) ?? {}),
      };
      writeFileSync(agentConfigPath(node), toYaml(cfg));
    };
    const startAgent = async (node: string): Promise<ProcHandle> => {
      const old = agents.get(node);
      if (old && !old.exited) throw new Error(`agent on ${node} is still running`);
      writeAgentConfig(node);
      const p = tb.spawn(node, [...agentCommand, '--config', agentConfigPath(node)], {
        name: 'agent',
        env: agentEnv,
      });
      agents.set(node, p);
      return p;
    };
    const startController = (i: number): ProcHandle => {
      const old = controllers[i];
      if (old && !old.exited) throw new Error(`controller ${i} is still running`);
      const path = join(tb.dir, `controller-${i}.yaml`);
      writeFileSync(
        path,
        toYaml({
          id: `controller-${i}`,
          etcd: { ...e.clientConfig({ user: `controller-${i}` }), prefix },
          source: { directory: groupsDir },
          logLevel: opts.logLevel ?? 'info',
          ...(opts.controller ?? {}),
        }),
      );
      const p = tb.spawn(null, [process.execPath, join(DIST, 'controller', 'main.js'), '--config', path], {
        name: `controller-${i}`,
        env,
      });
      controllers[i] = p;
      return p;
    };
    if (opts.nginx !== false) {
      for (const node of tb.nodes) nginx.set(node.name, await startNginx(tb, node));
    }
    if (opts.start !== false) {
      for (const node of tb.nodes) await startAgent(node.name);
      for (let i = 0; i < (opts.controllerReplicas ?? 1); i++) startController(i);
    }

    const cluster: Cluster = {
      tb,
      etcd: e,
      client: c,
      keys,
      prefix,
      groupsDir,
      agents,
      controllers,
      nginx,
      agentConfigPath,
      startAgent,
      startController,
      applyGroup(doc, file) {
        const text = typeof doc === 'string' ? doc : toYaml(doc);
        const name = file ?? `${(doc as { metadata?: { name?: string } })?.metadata?.name ?? 'group'}.yaml`;
        const path = join(groupsDir, name);
        // Write then rename, so that the controller never reads half a file.
        writeFileSync(`${path}.tmp`, text);
        renameSync(`${path}.tmp`, path);
        return path;
      },
      deleteGroup(name) {
        rmSync(join(groupsDir, `${name}.yaml`), { force: true });
      },
      status: () => collectStatus(c, keys),
      async holderOf(group) {
        const s = await collectStatus(c, keys);
        return s.groups.find((g) => g.group === group)?.holder ?? null;
      },
      async events(group) {
        const read = async () =>
          Object.values(await c.getAll().prefix(keys.eventsPrefix(group)).strings())
            .map((v) => decode(EventRecord, v))
            .filter((x): x is EventRecord => x !== undefined)
            .sort((a, b) => a.epoch - b.epoch);
        // The leader writes an assignment's event on its own, after the assignment (controller/writer.ts): wait
        // (bounded) for the current assignment's event, so that a test reading right after a move sees it.
        const deadline = Date.now() + 10_000;
        for (;;) {
          const evs = await read();
          const kv = group === undefined ? undefined : (await c.get(keys.assignment(group)).exec()).kvs[0];
          const epoch = kv ? Number(kv.mod_revision) : undefined;
          if (epoch === undefined || evs.some((e) => e.epoch >= epoch) || Date.now() > deadline) return evs;
          await new Promise((r) => setTimeout(r, 50));
        }
      },
      async leaderIndex() {
        const v = await c.get(keys.leader()).string();
        if (!v) return -1;
        const id = (JSON.parse(v) as { id: string }).id;
        return Number(id.replace('controller-', ''));
      },
      async destroy() {
        await Promise.all(controllers.map((p) => p?.stop({ timeoutMs: 3000 }).catch(() => undefined)));
        await Promise.all([...agents.values()].map((p) => p.stop({ timeoutMs: 3000 }).catch(() => undefined)));
        c.close();
        await e.stop().catch(() => undefined);
        await tb.destroy();
      },
    };
    return cluster;
  } catch (err) {
    client?.close();
    await etcd?.stop().catch(() => undefined);
    await tb.destroy();
    throw err;
  }
}
