// Simulated node agents for the scale benchmark, run as one child process (dist/hack/bench/sim-agents.js).
// Each simulated agent does what a real agent does against etcd, with its own etcd client: it keeps a node lease
// (common/lease.ts, same timing as a real agent), writes nodes/<node>, writes health/<node>/<group> (healthy, with
// the checksHash the controller published in groups/<group>) for the groups that name it, in transactions as a real
// agent's publisher batches them (node-agent/health-publisher.ts), and mirrors assignments/ by list + watch. It
// writes nothing else and never touches addresses.
// Differences, so that one 2-core machine can play 100 or 1,000 nodes next to etcd and the controller:
//  - the group records are watched once per process and shared (a real agent has its own groups/ watch; those
//    records change only when a spec changes);
//  - agentsPerClient agents share one etcd client (one TLS connection; their lease streams and requests are
//    multiplexed on it) instead of one connection each;
//  - only the first assignmentWatchers agents mirror assignments/ (each such watch gets every assignment event:
//    1,000 of them would make etcd and this process fan out 10 million events for 10,000 groups).
//
// argv[2]: JSON SimConfig. stdout: one JSON object per line. SIGUSR2: the victim node stops (no more keepalives,
// no watches), as if its machine died; the benchmark then revokes its lease. SIGTERM: stop.
import { bulkhead } from 'cockatiel';
import { pino } from 'pino';
import type { Etcd3 } from 'etcd3';
import { realClock } from '../../common/clock.js';
import { connectEtcd, Mirror } from '../../common/etcd.js';
import { decode, GroupRecord, Keys, type HealthRecord, type NodeRecord } from '../../common/keyspace.js';
import { LeaseKeeper, maxLifetimeSeconds, type LeaseTiming } from '../../common/lease.js';
import type { Logger } from '../../common/log.js';
import { retry } from '../../common/retry.js';
import { etcdHealthStore, MAX_BATCH_PUTS, type HealthStore } from '../../node-agent/health-publisher.js';

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
  /** Agents per etcd client (default 1: one connection each). */
  agentsPerClient?: number;
  /** How many agents (the first ones) mirror assignments/ (default: all). */
  assignmentWatchers?: number;
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

/**
 * Health transactions in flight, for the whole process. When each record was a put of its own, 100 agents writing
 * their 30 records each at once put 3,000 requests on etcd in one go; most timed out on this machine and the
 * controller placed groups without their health. (100 real agents on 100 machines would start them at once too, but
 * with 100 machines' CPU to send them.) Now an agent's changed records go up to MAX_BATCH_PUTS per transaction.
 */
const healthWrites = bulkhead(64, Infinity);
const HEALTH_ATTEMPTS = 20;
const HEALTH_RETRY_MS = 500;
const START_BATCH = 50;

function namesNode(spec: unknown, node: string): boolean {
  const nodes = (spec as { nodes?: unknown } | null)?.nodes;
  return Array.isArray(nodes) && nodes.some((n) => (n as { name?: unknown } | null)?.name === node);
}

class SimAgent {
  readonly client: Etcd3;
  readonly keeper: LeaseKeeper;
  private readonly keys: Keys;
  private readonly assignments: Mirror | undefined;
  private readonly health: Required<HealthStore>;
  private readonly published = new Map<string, string>();
  /** Failed health writes in a row, per group. */
  private readonly failures = new Map<string, number>();
  /** Group keys changed since the last batch: the next one goes on the next tick, or after the batch in flight. */
  private readonly changed = new Set<string>();
  private inFlight: Promise<void> | undefined;
  private flushScheduled = false;
  private readonly ac = new AbortController();
  registered = false;

  constructor(
    readonly node: string,
    private readonly cfg: SimConfig,
    private readonly log: Logger,
    private readonly groups: Mirror,
    client: Etcd3,
    watchAssignments: boolean,
  ) {
    this.keys = new Keys(cfg.prefix);
    this.client = client;
    this.health = etcdHealthStore(client);
    this.keeper = new LeaseKeeper(this.client, cfg.lease, realClock, log.child({ node }));
    this.assignments = watchAssignments
      ? new Mirror(this.client, this.keys.assignmentsPrefix(), log, { resyncMs: cfg.resyncMs })
      : undefined;
  }

  healthCount(): number {
    return this.published.size;
  }

  async start(): Promise<void> {
    const signal = this.ac.signal;
    this.assignments?.start(signal);
    this.keeper.on('granted', () => {
      this.published.clear();
      this.registered = false;
      void this.register().then(() => this.publish([...this.groups.entries.keys()]));
    });
    const onGroups = (keys: string[]) => this.publish(keys);
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

  /** Queues changed group records for the next batch (see flush). */
  private publish(keys: readonly string[]): void {
    for (const k of keys) this.changed.add(k);
    if (this.flushScheduled || this.inFlight) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.inFlight = this.flush().finally(() => {
        this.inFlight = undefined;
        if (this.changed.size > 0 && !this.ac.signal.aborted) this.publish([]);
      });
    });
  }

  /**
   * health/<node>/<group> for every changed group record that names this node, when its checksHash is new: one
   * transaction per MAX_BATCH_PUTS records, through the process-wide bulkhead.
   */
  private async flush(): Promise<void> {
    const keys = [...this.changed];
    this.changed.clear();
    const lease = this.keeper.lease;
    if (!lease || !this.registered || this.ac.signal.aborted) return;
    const batch: { key: string; group: string; value: string }[] = [];
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
      batch.push({ key, group, value: JSON.stringify(h) });
    }
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < batch.length; i += MAX_BATCH_PUTS) {
      const chunk = batch.slice(i, i + MAX_BATCH_PUTS);
      const puts = chunk.map((c) => ({ key: this.keys.health(c.group, this.node), value: c.value, lease }));
      writes.push(
        healthWrites
          .execute(() => this.health.putMany(puts))
          .then(() => {
            for (const c of chunk) this.failures.delete(c.group);
          })
          .catch((err) => {
            // Retried, as a real agent's publisher does (node-agent/health-publisher.ts), a bounded number of times:
            // each group on its own count, the retries of one failed transaction together.
            const again: string[] = [];
            let attempt = 0;
            for (const c of chunk) {
              this.published.delete(c.group);
              const n = (this.failures.get(c.group) ?? 0) + 1;
              this.failures.set(c.group, n);
              attempt = Math.max(attempt, n);
              if (n < HEALTH_ATTEMPTS) again.push(c.key);
            }
            this.log.warn({ node: this.node, groups: chunk.length, err, attempt }, 'health transaction failed');
            if (again.length > 0 && !this.ac.signal.aborted)
              setTimeout(() => this.publish(again), HEALTH_RETRY_MS).unref();
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
  const perClient = Math.max(1, cfg.agentsPerClient ?? 1);
  const watchers = cfg.assignmentWatchers ?? cfg.nodes.length;
  const clients: Etcd3[] = [];
  const agents = cfg.nodes.map((n, i) => {
    if (i % perClient === 0) clients.push(connectEtcd({ endpoints: cfg.endpoints, tls: cfg.tls }));
    return new SimAgent(n, cfg, log, groups, clients[clients.length - 1]!, i < watchers);
  });
  // Started a batch at a time: 1,000 lease grants and 100 TLS handshakes at once timed out and retried for minutes.
  for (let i = 0; i < agents.length; i += START_BATCH)
    await Promise.all(agents.slice(i, i + START_BATCH).map((a) => a.start()));
  out({
    event: 'started',
    nodes: agents.length,
    clients: clients.length,
    assignmentWatchers: Math.min(watchers, agents.length),
  });
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
    for (const a of agents) a.stop();
    for (const c of clients) c.close();
    setTimeout(() => process.exit(0), 100).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(`sim-agents: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
