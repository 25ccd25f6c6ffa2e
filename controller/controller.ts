// The controller: elects a leader; the leader reads groups from its source and liveness, health and assignments
// from etcd, plans with the pure planner, and writes assignments in transactions fenced on its leader key.
// Level-triggered: events only kick `pass()`; a periodic pass runs anyway.
import { setMaxListeners } from 'node:events';
import type { DeleteBuilder, Etcd3, PutBuilder } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { Mirror } from '../common/etcd.js';
import { longLifetimeExtraMs } from '../common/kernel-lifetime.js';
import { addressOverhangMs } from '../common/lease.js';
import { parseCidr } from '../common/ip.js';
import {
  AssignmentRecord,
  decode,
  DrainRecord,
  EventRecord,
  GroupRecord,
  HealthRecord,
  Keys,
  MoveRecord,
  NodeRecord,
  ReleasedRecord,
} from '../common/keyspace.js';
import type { Logger } from '../common/log.js';
import type { FailoverGroup } from '../crds/failovergroup.js';
import type { ControllerConfig } from './config.js';
import { Election, type Term } from './election.js';
import { NO_CONTROLLER_METRICS, type ControllerMetrics } from './metrics.js';
import {
  checksHash,
  findConflicts,
  plan,
  type Action,
  type CurrentAssignment,
  type GoneLease,
  type LiveNode,
  type PlanInput,
} from './planner.js';
import { NO_STATUS, type GroupSource, type StatusSink } from './sources/types.js';

export const VERSION = '0.1.0';

export interface ControllerDeps {
  config: ControllerConfig;
  client: Etcd3;
  source: GroupSource;
  status?: StatusSink;
  clock: Clock;
  log: Logger;
  metrics?: ControllerMetrics;
  /** Called when leadership is lost; the default exits the process (controller-runtime's habit). */
  onDeposed?: (why: string) => void;
}

/**
 * etcd writes in flight at once. Thousands of transactions started in one go (first placement of 1,000 groups)
 * kept the event loop and the one HTTP/2 connection busy for over a second: the leader's own keepalive answers
 * came too late and the controller deposed itself (seen in the scale benchmark, hack/bench/scale.ts).
 */
const MAX_WRITES_IN_FLIGHT = 32;

const MAX_EVENT_WRITES_IN_FLIGHT = 4;

/** Group records written per transaction (etcd takes up to 128 operations in one by default). */
const GROUP_RECORDS_PER_TXN = 100;

/** Overhang assumed for a lease the controller never saw a node record for (TTL 1 s, 1 s lifetime, 500 ms window). */
const UNKNOWN_OVERHANG_BASE_MS = 500;

export class Controller {
  readonly keys: Keys;
  readonly election: Election;
  private readonly metrics: ControllerMetrics;
  private readonly status: StatusSink;
  private readonly mirrors: Record<
    'nodes' | 'health' | 'assignments' | 'released' | 'drain' | 'moves' | 'groups',
    Mirror
  >;
  private readonly ac = new AbortController();
  private term: Term | undefined;
  /** Lease -> what its node record said, while the lease lives. */
  private readonly leaseInfo = new Map<string, { node: string; waitMs: number; ttlMs: number }>();
  private readonly gone = new Map<string, GoneLease>();
  /** group -> node -> released epoch, remembered even after the key went with its lease. */
  private readonly releasedSeen = new Map<
    string,
    Map<string, { epoch: number; at: number; reason?: string; failingSince?: number }>
  >();
  private readonly reported = new Map<string, string>();
  private readonly firstSeen = new Map<string, number>();
  private passRunning = false;
  private passAgain = false;
  private requeueTimer: NodeJS.Timeout | undefined;
  private periodic: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly writes = new Limiter(MAX_WRITES_IN_FLIGHT);
  /** Events are history: a few at a time, so that they do not hold up assignments (two requests each). */
  private readonly eventWrites = new Limiter(MAX_EVENT_WRITES_IN_FLIGHT);
  /** groups/<name> values by group object (parsed once, never changed in place): not serialized on every pass. */
  private readonly groupJson = new WeakMap<FailoverGroup, string>();
  /** Decisions of the last pass, for tests and status. */
  lastDecisions: ReturnType<typeof plan>['decisions'] = new Map();

  constructor(private readonly deps: ControllerDeps) {
    const { config, client, clock } = deps;
    this.log = deps.log.child({ controller: config.id });
    this.keys = new Keys(config.etcd.prefix);
    this.metrics = deps.metrics ?? NO_CONTROLLER_METRICS;
    this.status = deps.status ?? NO_STATUS;
    this.election = new Election(client, this.keys, config.id, VERSION, config.lease, clock, this.log);
    const m = (p: string) => new Mirror(client, p, this.log, { resyncMs: 30_000 });
    this.mirrors = {
      nodes: m(this.keys.nodesPrefix()),
      health: m(this.keys.healthPrefix()),
      assignments: m(this.keys.assignmentsPrefix()),
      released: m(this.keys.releasedPrefix()),
      drain: m(this.keys.drainPrefix()),
      moves: m(this.keys.movesPrefix()),
      groups: m(this.keys.groupsPrefix()),
    };
  }

  isLeader(): boolean {
    return this.term !== undefined;
  }

  /** Ready (for /readyz): connected to etcd with a confirmed lease, whether leading or standing by. */
  ready(): boolean {
    return this.election.lease.isSafe();
  }

  async start(): Promise<void> {
    const signal = this.ac.signal;
    setMaxListeners(64, signal);
    this.election.on('deposed', (why) => this.deposed(why));
    this.election.on('elected', (term) => void this.lead(term));
    this.election.lease.on('granted', () => this.metrics.etcdUp(true));
    this.election.lease.on('renewed', () => this.metrics.etcdUp(true));
    this.election.lease.on('lost', () => this.metrics.etcdUp(false));
    this.metrics.leader(false);
    await this.election.start(signal);
  }

  async stop(): Promise<void> {
    this.ac.abort();
    if (this.requeueTimer) clearTimeout(this.requeueTimer);
    if (this.periodic) clearInterval(this.periodic);
    for (const m of Object.values(this.mirrors)) m.stop();
    if (this.term) await this.election.resign().catch(() => undefined);
    this.term = undefined;
  }

  private deposed(why: string): void {
    if (!this.term) return;
    this.log.error({ why }, 'leadership lost');
    this.term = undefined;
    this.metrics.leader(false);
    if (this.deps.onDeposed) this.deps.onDeposed(why);
    else process.exit(2);
  }

  private async lead(term: Term): Promise<void> {
    const signal = this.ac.signal;
    for (const m of Object.values(this.mirrors)) m.start(signal);
    await Promise.all(Object.values(this.mirrors).map((m) => m.ready));
    // Leases that ended before this term are unknown: they count as ending now (conservative).
    this.trackLeases();
    this.mirrors.nodes.on('change', () => {
      this.trackLeases();
      this.kick();
    });
    this.mirrors.released.on('change', () => {
      this.trackReleased();
      this.kick();
    });
    this.trackReleased();
    for (const k of ['health', 'assignments', 'drain', 'moves'] as const)
      this.mirrors[k].on('change', () => this.kick());
    await this.deps.source.start(signal, () => this.kick());
    this.term = term;
    this.metrics.leader(true);
    this.log.info({ source: this.deps.source.kind }, 'leading');
    this.periodic = setInterval(() => this.kick(), this.deps.config.resyncMs);
    this.kick();
  }

  /** Records when each node lease ends, with how long its addresses may outlive it (Safety 3). */
  private trackLeases(): void {
    const now = this.deps.clock.wall();
    // Forget leases that ended long ago and that no assignment names any more.
    for (const [lease, g] of this.gone) if (now - g.goneAt > 600_000) this.gone.delete(lease);
    const live = new Set<string>();
    for (const e of this.mirrors.nodes.under(this.keys.nodesPrefix())) {
      const rec = decode(NodeRecord, e.value);
      if (!rec || rec.lease !== e.lease) continue;
      live.add(rec.lease);
      this.leaseInfo.set(rec.lease, {
        node: rec.name,
        waitMs: addressOverhangMs(rec, this.deps.config.kernelSlackMs + longLifetimeExtraMs(rec.maxLifetimeSeconds)),
        ttlMs: rec.ttlSeconds * 1000,
      });
    }
    for (const [lease, info] of this.leaseInfo) {
      if (live.has(lease)) continue;
      this.leaseInfo.delete(lease);
      if (!this.gone.has(lease)) {
        this.gone.set(lease, { lease, node: info.node, goneAt: now, waitMs: info.waitMs, ttlMs: info.ttlMs });
        this.log.info({ node: info.node, lease, waitMs: info.waitMs }, 'node lease ended');
      }
    }
  }

  private trackReleased(): void {
    for (const e of this.mirrors.released.under(this.keys.releasedPrefix())) {
      const { group, node } = this.keys.releasedParts(e.key) ?? {};
      const rec = decode(ReleasedRecord, e.value);
      if (!group || !node || !rec) continue;
      let m = this.releasedSeen.get(group);
      if (!m) this.releasedSeen.set(group, (m = new Map()));
      const prev = m.get(node);
      if (!prev || prev.epoch < rec.epoch)
        m.set(node, { epoch: rec.epoch, at: rec.at, reason: rec.reason, failingSince: rec.failingSince });
    }
  }

  kick(): void {
    if (!this.term || this.ac.signal.aborted) return;
    void this.runPass();
  }

  private async runPass(): Promise<void> {
    if (this.passRunning) {
      this.passAgain = true;
      return;
    }
    this.passRunning = true;
    try {
      do {
        this.passAgain = false;
        const t0 = this.deps.clock.mono();
        let outcome: 'ok' | 'requeue' | 'conflict' | 'error' = 'ok';
        try {
          outcome = await this.pass();
        } catch (err) {
          outcome = 'error';
          this.log.error({ err: String(err) }, 'reconcile pass failed');
        }
        this.metrics.reconcile(this.deps.clock.mono() - t0, outcome);
        if (outcome === 'conflict' || outcome === 'error') {
          setTimeout(() => this.kick(), outcome === 'error' ? 500 : 20);
        }
      } while (this.passAgain && this.term && !this.ac.signal.aborted);
    } finally {
      this.passRunning = false;
    }
  }

  /** Builds the planner's input from the mirrors and the source. */
  private input(groups: Map<string, FailoverGroup>, frozen: Set<string>): PlanInput {
    const now = this.deps.clock.wall();
    const nodes = new Map<string, LiveNode>();
    for (const e of this.mirrors.nodes.under(this.keys.nodesPrefix())) {
      const rec = decode(NodeRecord, e.value, (why) =>
        this.log.warn({ key: e.key, why }, 'ignoring a node record that does not parse'),
      );
      if (rec && rec.lease === e.lease)
        nodes.set(rec.name, {
          name: rec.name,
          lease: rec.lease,
          ttlSeconds: rec.ttlSeconds,
          maxLifetimeSeconds: rec.maxLifetimeSeconds,
        });
    }
    const health = new Map<string, Map<string, HealthRecord>>();
    for (const e of this.mirrors.health.under(this.keys.healthPrefix())) {
      const { group, node } = this.keys.healthParts(e.key) ?? {};
      const rec = decode(HealthRecord, e.value, (why) =>
        this.log.warn({ key: e.key, why }, 'ignoring a health record that does not parse'),
      );
      if (!group || !node || !rec) continue;
      // Health is only as alive as the lease it was written under.
      if (nodes.get(node)?.lease !== e.lease) continue;
      let m = health.get(group);
      if (!m) health.set(group, (m = new Map()));
      m.set(node, rec);
    }
    const assignments = new Map<string, CurrentAssignment>();
    for (const e of this.mirrors.assignments.under(this.keys.assignmentsPrefix())) {
      const group = e.key.slice(this.keys.assignmentsPrefix().length);
      const rec = decode(AssignmentRecord, e.value, (why) =>
        this.log.warn({ key: e.key, why }, 'ignoring an assignment that does not parse'),
      );
      if (rec) assignments.set(group, { record: rec, epoch: e.modRevision });
      // A holder lease the controller never saw end: it ends now, with the most conservative overhang.
      if (rec?.holderLease && !nodesHaveLease(nodes, rec.holderLease) && !this.gone.has(rec.holderLease)) {
        const waitMs =
          this.leaseInfo.get(rec.holderLease)?.waitMs ?? UNKNOWN_OVERHANG_BASE_MS + this.deps.config.kernelSlackMs;
        this.gone.set(rec.holderLease, { lease: rec.holderLease, node: rec.holder ?? '', goneAt: now, waitMs });
      }
    }
    const drained = new Set<string>();
    for (const e of this.mirrors.drain.under(this.keys.drainPrefix()))
      if (decode(DrainRecord, e.value)) drained.add(e.key.slice(this.keys.drainPrefix().length));
    const pins = new Map<string, MoveRecord>();
    for (const e of this.mirrors.moves.under(this.keys.movesPrefix())) {
      const rec = decode(MoveRecord, e.value);
      if (rec) pins.set(e.key.slice(this.keys.movesPrefix().length), rec);
    }
    for (const g of groups.keys()) if (!this.firstSeen.has(g)) this.firstSeen.set(g, now);
    for (const g of this.firstSeen.keys()) if (!groups.has(g)) this.firstSeen.delete(g);
    return {
      now,
      leader: this.deps.config.id,
      groups,
      frozen,
      nodes,
      gone: this.gone,
      health,
      assignments,
      released: this.releasedSeen,
      drained,
      pins,
      firstSeen: this.firstSeen,
      settleMs: this.deps.config.settleMs,
    };
  }

  private async pass(): Promise<'ok' | 'requeue' | 'conflict' | 'error'> {
    const term = this.term;
    if (!term) return 'ok';
    const sourceGroups = this.deps.source.list();
    const assignedVips = new Map<string, string[]>();
    for (const e of this.mirrors.assignments.under(this.keys.assignmentsPrefix())) {
      const rec = decode(AssignmentRecord, e.value);
      if (rec)
        assignedVips.set(
          rec.group,
          rec.vips.map((v) => addressOf(v.address)),
        );
    }
    const candidates = sourceGroups.filter((s) => s.group && !s.deleting);
    const rejected = findConflicts(
      candidates.map((s) => ({
        name: s.name,
        vips: s.group!.spec.vips.map((v) => addressOf(v.address)),
        createdAt: s.createdAt,
      })),
      assignedVips,
    );
    const groups = new Map<string, FailoverGroup>();
    const frozen = new Set<string>();
    for (const s of sourceGroups) {
      if (s.deleting) continue;
      if (!s.group) {
        // Invalid and never valid: nothing to place, but an assignment it may have had stays as it is.
        frozen.add(s.name);
        continue;
      }
      if (rejected.has(s.name)) frozen.add(s.name);
      else groups.set(s.name, s.group);
    }
    this.metrics.groups(groups.size, frozen.size);

    await this.publishGroups(term, groups);
    const input = this.input(groups, frozen);
    const p = plan(input);
    this.lastDecisions = p.decisions;

    let outcome: 'ok' | 'requeue' | 'conflict' = 'ok';
    const results = await Promise.all(p.actions.map((a) => this.writes.run(() => this.apply(term, a))));
    if (results.includes('conflict')) outcome = 'conflict';

    // Status back to the source (Kubernetes), only when something changed.
    const bySource = new Map(sourceGroups.map((s) => [s.name, s]));
    for (const s of sourceGroups) {
      const report = {
        decision: p.decisions.get(s.name),
        rejected: rejected.get(s.name) ?? (s.error ? s.error.message : undefined),
        source: s,
      };
      // Plain JSON is enough to tell a change (the planner builds these objects in a fixed order), and it costs
      // far less than a sorted-key hash for every group on every pass.
      const fp = JSON.stringify({ d: report.decision, r: report.rejected, g: s.generation });
      if (this.reported.get(s.name) === fp) continue;
      this.reported.set(s.name, fp);
      void this.status
        .report(s.name, report)
        .catch((err) => this.log.warn({ group: s.name, err: String(err) }, 'status update failed'));
    }
    for (const [g, d] of p.decisions)
      this.metrics.holder(
        g,
        d.holder,
        d.nodes.map((n) => n.name),
      );
    // Deleted groups whose assignment is gone may let their object go.
    for (const s of sourceGroups) {
      if (s.deleting && !input.assignments.has(s.name) && !p.actions.some((a) => a.group === s.name)) {
        void this.status
          .finalize(s.name)
          .catch((err) => this.log.warn({ group: s.name, err: String(err) }, 'finalize failed'));
      }
    }
    for (const name of this.reported.keys()) if (!bySource.has(name)) this.reported.delete(name);

    if (p.requeueAt !== undefined) {
      outcome = outcome === 'ok' ? 'requeue' : outcome;
      this.requeueAt(p.requeueAt);
    }
    return outcome;
  }

  private requeueAt(at: number): void {
    if (this.requeueTimer) clearTimeout(this.requeueTimer);
    const ms = Math.max(0, at - this.deps.clock.wall()) + 1;
    this.requeueTimer = setTimeout(() => this.kick(), ms);
  }

  /** groups/<name>: the validated spec, for the agents' health checks. Written only when it changed. */
  private async publishGroups(term: Term, groups: Map<string, FailoverGroup>): Promise<void> {
    const ops: (() => PutBuilder | DeleteBuilder)[] = [];
    for (const [name, g] of groups) {
      let value = this.groupJson.get(g);
      if (value === undefined) {
        const rec: GroupRecord = { name, generation: g.generation, spec: g.spec, checksHash: checksHash(g) };
        this.groupJson.set(g, (value = JSON.stringify(rec)));
      }
      const cur = this.mirrors.groups.get(this.keys.group(name));
      if (cur?.value === value) continue;
      ops.push(() => this.deps.client.put(this.keys.group(name)).value(value));
    }
    for (const e of this.mirrors.groups.under(this.keys.groupsPrefix())) {
      const name = e.key.slice(this.keys.groupsPrefix().length);
      // Keep the record while an assignment exists: the holder still needs it to release hooks and SNAT.
      if (!groups.has(name) && !this.mirrors.assignments.get(this.keys.assignment(name))) {
        ops.push(() => this.deps.client.delete().key(e.key));
      }
    }
    // Many records per fenced transaction: one transaction each made a cold start with 1,000 groups spend
    // seconds publishing them before any agent could report health (scale benchmark).
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < ops.length; i += GROUP_RECORDS_PER_TXN) {
      const batch = ops.slice(i, i + GROUP_RECORDS_PER_TXN);
      writes.push(
        this.writes.run(() =>
          this.fenced(term)
            .then(...batch.map((op) => op()))
            .commit(),
        ),
      );
    }
    await Promise.all(writes);
  }

  private fenced(term: Term) {
    return this.deps.client.if(this.keys.leader(), 'Create', '==', term.revision);
  }

  /** One fenced transaction per action: the leader key must still be ours and the assignment unchanged. */
  private async apply(term: Term, a: Action): Promise<'ok' | 'conflict'> {
    const key = this.keys.assignment(a.group);
    const txn = this.fenced(term).and(key, 'Mod', '==', a.expectEpoch);
    const op =
      a.type === 'put' ? this.deps.client.put(key).value(JSON.stringify(a.record)) : this.deps.client.delete().key(key);
    const res = await txn.then(op).commit();
    if (!res.succeeded) {
      const leader = await this.deps.client.get(this.keys.leader()).exec();
      const kv = leader.kvs[0];
      if (!kv || Number(kv.create_revision) !== term.revision) {
        this.deposed('leader key is no longer ours');
      } else {
        this.log.info({ group: a.group, epoch: a.expectEpoch }, 'assignment changed under us; planning again');
      }
      return 'conflict';
    }
    const epoch = Number(res.header.revision);
    const log = this.log.child({ group: a.group, epoch });
    if (a.type === 'put') {
      const r = a.record;
      log.info(
        { node: r.holder, holder: r.holder, release: r.release, reason: r.reason },
        r.release ? 'asked holder to release' : 'assignment written',
      );
    } else {
      log.info('assignment deleted');
    }
    if (a.event) {
      const ev: EventRecord = { group: a.group, ...a.event, at: this.deps.clock.wall(), epoch };
      log.info(
        { from: ev.from, to: ev.to, reason: ev.reason, detectMs: ev.detectMs, outageMs: ev.outageMs },
        'failover',
      );
      this.metrics.transition(a.group, ev.reason);
      void this.eventWrites
        .run(() => this.recordEvent(term, ev))
        .catch((err) => log.warn({ err: String(err) }, 'could not record the event'));
      void this.status.event(a.group, ev).catch((err) => log.warn({ err: String(err) }, 'could not publish the event'));
    }
    return 'ok';
  }

  /** events/<group>/<epoch>, bounded to the newest eventsPerGroup entries. */
  private async recordEvent(term: Term, ev: EventRecord): Promise<void> {
    await this.fenced(term)
      .then(this.deps.client.put(this.keys.event(ev.group, ev.epoch)).value(JSON.stringify(ev)))
      .commit();
    const keys = await this.deps.client.getAll().prefix(this.keys.eventsPrefix(ev.group)).sort('Key', 'Ascend').keys();
    const excess = keys.length - this.deps.config.eventsPerGroup;
    if (excess > 0) {
      const ops = keys.slice(0, excess).map((k) => this.deps.client.delete().key(k));
      await this.fenced(term)
        .then(...ops)
        .commit();
    }
  }
}

/** At most `limit` tasks running at once; the others wait their turn in order. */
class Limiter {
  private running = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    // A finishing task hands its slot straight to the next waiter.
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

function nodesHaveLease(nodes: ReadonlyMap<string, LiveNode>, lease: string): boolean {
  for (const n of nodes.values()) if (n.lease === lease) return true;
  return false;
}

function addressOf(cidr: string): string {
  const c = parseCidr(cidr);
  return typeof c === 'string' ? cidr : c.address;
}
