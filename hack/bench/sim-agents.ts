// Simulated node agents for the scale benchmark, run as one child process (dist/hack/bench/sim-agents.js).
// Each simulated agent does what a real agent does against etcd, with its own etcd client: it keeps a node lease
// (common/lease.ts, same timing as a real agent), writes nodes/<node>, writes health/<node>/<group> (healthy, with
// the checksHash the controller published in groups/<group>) for the groups that name it, and mirrors assignments/
// by list + watch. It writes nothing else and never touches addresses.
// One difference, so that one machine can play 100: the group records are watched once per process and shared
// (a real agent has its own groups/ watch; those records change only when a spec changes).
//
// argv[2]: JSON SimConfig. stdout: one JSON object per line. SIGUSR2: the victim node stops (no more keepalives,
// no watches), as if its machine died; the benchmark then revokes its lease. SIGTERM: stop.
import { pino } from 'pino';
import type { Etcd3 } from 'etcd3';
import { realClock } from '../../common/clock.js';
import { connectEtcd, Mirror } from '../../common/etcd.js';
import { decode, GroupRecord, Keys, type HealthRecord, type NodeRecord } from '../../common/keyspace.js';
import { LeaseKeeper, maxLifetimeSeconds, type LeaseTiming } from '../../common/lease.js';
import type { Logger } from '../../common/log.js';
import { retry } from '../../common/retry.js';

export interface SimConfig {
  endpoints: string[];
  /** The CA and a client certificate (the harness's etcd runs TLS with --client-cert-auth). */
  tls?: { ca: string; cert: string; key: string };
  prefix: string;
  nodes: string[];
  lease: LeaseTiming;
  /** Mirror resync period of a real agent (node-agent/agent.ts). */
  resyncMs: number;
  victim: string;
}

const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

/**
 * Group records parsed once per process (by key and revision), not once per simulated agent: 100 agents on one
 * machine would otherwise spend the CPU that 100 machines would, and starve the controller being measured.
 */
const parsed = new Map<string, { rev: number; rec: GroupRecord | undefined }>();
function groupRecord(key: string, value: string, rev: number): GroupRecord | undefined {
  const c = parsed.get(key);
  if (c && c.rev === rev) return c.rec;
  const rec = decode(GroupRecord, value);
  parsed.set(key, { rev, rec });
  return rec;
}

function namesNode(spec: unknown, node: string): boolean {
  const nodes = (spec as { nodes?: unknown } | null)?.nodes;
  return Array.isArray(nodes) && nodes.some((n) => (n as { name?: unknown } | null)?.name === node);
}

class SimAgent {
  readonly client: Etcd3;
  readonly keeper: LeaseKeeper;
  private readonly keys: Keys;
  private readonly assignments: Mirror;
  private readonly published = new Map<string, string>();
  private readonly ac = new AbortController();
  registered = false;

  constructor(
    readonly node: string,
    private readonly cfg: SimConfig,
    private readonly log: Logger,
    private readonly groups: Mirror,
  ) {
    this.keys = new Keys(cfg.prefix);
    this.client = connectEtcd({ endpoints: cfg.endpoints, tls: cfg.tls });
    this.keeper = new LeaseKeeper(this.client, cfg.lease, realClock, log.child({ node }));
    this.assignments = new Mirror(this.client, this.keys.assignmentsPrefix(), log, { resyncMs: cfg.resyncMs });
  }

  healthCount(): number {
    return this.published.size;
  }

  async start(): Promise<void> {
    const signal = this.ac.signal;
    this.assignments.start(signal);
    this.keeper.on('granted', () => {
      this.published.clear();
      this.registered = false;
      void this.register().then(() => this.publish([...this.groups.entries.keys()]));
    });
    const onGroups = (keys: string[]) => void this.publish(keys);
    this.groups.on('change', onGroups);
    signal.addEventListener('abort', () => this.groups.off('change', onGroups), { once: true });
    await this.keeper.start(signal);
  }

  stop(): void {
    this.ac.abort();
  }

  private async register(): Promise<void> {
    const lease = this.keeper.lease;
    if (!lease) return;
    const rec: NodeRecord = {
      name: this.node,
      lease,
      ttlSeconds: this.cfg.lease.ttlSeconds,
      maxLifetimeSeconds: maxLifetimeSeconds(this.cfg.lease),
      renewWindowMs: this.cfg.lease.renewWindowMs,
      addresses: [],
      interfaces: ['eth0'],
      version: 'sim',
      startedAt: Date.now(),
    };
    await retry(
      async () => {
        await this.client.put(this.keys.node(this.node)).value(JSON.stringify(rec)).lease(lease).exec();
        this.registered = true;
      },
      {
        backoff: { initialDelayMs: 200, maxDelayMs: 200 },
        clock: realClock,
        maxAttempts: 20,
        signal: this.ac.signal,
        onRetry: ({ err }) => this.log.warn({ node: this.node, err }, 'registration failed; retrying'),
      },
    ).catch(() => undefined); // gave up or stopped: the node stays unregistered, as before
  }

  /** health/<node>/<group> for every changed group record that names this node, when its checksHash is new. */
  private async publish(keys: readonly string[]): Promise<void> {
    const lease = this.keeper.lease;
    if (!lease || !this.registered) return;
    const writes: Promise<unknown>[] = [];
    for (const key of keys) {
      const e = this.groups.get(key);
      const group = key.slice(this.keys.groupsPrefix().length);
      const rec = e && groupRecord(key, e.value, e.modRevision);
      if (!rec || !namesNode(rec.spec, this.node) || this.published.get(group) === rec.checksHash) continue;
      this.published.set(group, rec.checksHash);
      const h: HealthRecord = {
        healthy: true,
        priorityDelta: 0,
        checks: [{ name: 'sim', ok: true }],
        checksHash: rec.checksHash,
        at: Date.now(),
      };
      writes.push(
        this.client
          .put(this.keys.health(group, this.node))
          .value(JSON.stringify(h))
          .lease(lease)
          .exec()
          .catch((err) => {
            this.published.delete(group);
            this.log.warn({ node: this.node, group, err }, 'health put failed');
          }),
      );
    }
    await Promise.all(writes);
  }
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as SimConfig;
  const log = pino({ level: 'warn', base: { sim: true } }, pino.destination(2));
  const groupsClient = connectEtcd({ endpoints: cfg.endpoints, tls: cfg.tls });
  const groups = new Mirror(groupsClient, new Keys(cfg.prefix).groupsPrefix(), log, { resyncMs: cfg.resyncMs });
  const ac = new AbortController();
  groups.setMaxListeners(cfg.nodes.length + 10);
  groups.start(ac.signal);
  await groups.ready;
  const agents = cfg.nodes.map((n) => new SimAgent(n, cfg, log, groups));
  await Promise.all(agents.map((a) => a.start()));
  out({ event: 'started', nodes: agents.length });
  const stats = setInterval(() => {
    out({
      event: 'stats',
      registered: agents.filter((a) => a.registered).length,
      health: agents.reduce((s, a) => s + a.healthCount(), 0),
    });
  }, 1000);
  process.on('SIGUSR2', () => {
    const v = agents.find((a) => a.node === cfg.victim);
    if (!v) return;
    const lease = v.keeper.lease;
    v.stop();
    out({ event: 'victim-stopped', node: v.node, lease });
  });
  const stop = () => {
    clearInterval(stats);
    ac.abort();
    groupsClient.close();
    for (const a of agents) {
      a.stop();
      a.client.close();
    }
    setTimeout(() => process.exit(0), 100).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(`sim-agents: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
