// The controller: elects a leader; the leader reads groups from its source and liveness, health and assignments
// from etcd, plans with the pure planner, and writes assignments in transactions fenced on its leader key.
// Level-triggered: events only kick `pass()`; a periodic pass runs anyway. This file is the lifecycle and the pass
// loop; the leader's memory (memory.ts), the planner's input (input.ts) and the fenced writes (writer.ts) live apart.
import { setMaxListeners } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { Mirror } from '../common/etcd.js';
import { failsafeState, type FailsafeState } from '../common/failsafe-status.js';
import { Keys, NodeRecord } from '../common/keyspace.js';
import { arbiterLossOf, type FailoverGroup } from '../crds/failovergroup.js';
import type { Logger } from '../common/log.js';
import { VERSION } from '../common/version.js';
import type { ControllerConfig } from './config.js';
import { Election, type Term } from './election.js';
import { buildInput, groupsFromEtcd, selectGroups, type Mirrors } from './input.js';
import { KeptEvents } from './kept.js';
import { LeaderMemory } from './memory.js';
import { HeartbeatMonitor, type Revocable } from './heartbeats.js';
import { Compactor } from './compactor.js';
import { revocable } from '../common/fence.js';
import { AssignmentRecord } from '../common/keyspace.js';
import { OutageHistory } from './outages.js';
import { NO_CONTROLLER_METRICS, type ControllerMetrics } from './metrics.js';
import { decodeEntry } from './parsed.js';
import { planYielding, type Action, type CurrentAssignment, type plan } from './planner.js';
import { NO_STATUS, type GroupSource, type StatusSink } from './sources/types.js';
import { FencedWriter, isDeferrable } from './writer.js';

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

type Outcome = 'ok' | 'requeue' | 'conflict' | 'error';

/**
 * How long lead() waits for the source's first list before leading from the group records in etcd. An API server
 * that is down at election must not stop the leader from failing groups over (issue 15.8).
 */
const SOURCE_START_TIMEOUT_MS = 2000;
/** After a pass that wrote, the next one starts within this (controller.ts kickSoon). */
const FOLLOW_UP_PASS_MS = 50;
/** How long a pass waits for etcd's word on leases whose keys just vanished (LeaderMemory.answers). */
const VANISHED_LEASE_WAIT_MS = 150;

export class Controller {
  readonly keys: Keys;
  readonly election: Election;
  private readonly metrics: ControllerMetrics;
  private readonly status: StatusSink;
  private readonly mirrors: Mirrors;
  private readonly memory: LeaderMemory;
  private readonly heartbeats: HeartbeatMonitor;
  private readonly compactor: Compactor;
  private revocableCache: Revocable[] | undefined;
  private readonly writer: FencedWriter;
  private readonly outages: OutageHistory;
  private readonly outageRetry = new Set<string>();
  private readonly kept: KeptEvents;
  private readonly ac = new AbortController();
  private term: Term | undefined;
  private passRunning = false;
  /** Groups whose deferred writes (promise-set rewrites) are in flight: not planned until they are done. */
  private deferred: Set<string> | undefined;
  private passAgain = false;
  private requeueTimer: NodeJS.Timeout | undefined;
  /** The follow-up pass after a write (kickSoon). */
  private soon: NodeJS.Timeout | undefined;
  private periodic: NodeJS.Timeout | undefined;
  private readonly log: Logger;
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
      presence: m(this.keys.presencePrefix()),
      promisesets: m(this.keys.promiseSetsPrefix()),
    };
    this.memory = new LeaderMemory({
      clock,
      log: this.log,
      keys: this.keys,
      kernelSlackMs: config.kernelSlackMs,
      askLease: (lease) => leaseTimeToLive(client, lease),
      listLeases: async () => new Set((await client.leaseClient.leaseLeases()).leases.map((l) => l.ID)),
      onChange: () => this.kick(),
    });
    this.heartbeats = new HeartbeatMonitor({
      client,
      keys: this.keys,
      clock,
      log: this.log,
      misses: config.heartbeatMisses,
      nodes: () => this.revocableNodes(),
      leading: () => this.term !== undefined && this.election.provable(),
      onRevoked: (lease, node) => {
        this.metrics.revoked?.(node);
        this.memory.revoked(lease);
      },
    });
    this.compactor = new Compactor({
      client,
      probeKey: this.keys.nodesPrefix(),
      log: this.log,
      intervalMs: config.compactionIntervalSeconds * 1000,
      leading: () => this.term !== undefined && this.election.provable(),
      onCompacted: (rev) => this.metrics.compacted?.(rev),
    });
    this.outages = new OutageHistory({ keys: this.keys, log: this.log });
    this.kept = new KeptEvents(this.keys);
    this.writer = new FencedWriter({
      client,
      keys: this.keys,
      clock,
      log: this.log,
      metrics: this.metrics,
      status: this.status,
      eventsPerGroup: config.eventsPerGroup,
      onDeposed: (why) => this.deposed(why),
    });
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
    this.metrics.bindEtcdUp?.(() => this.ready());
    this.metrics.leader(false);
    // While the election runs: the files of the directory source read and parsed (~1 s for 1,000 on a loaded machine).
    this.deps.source.prefetch?.();
    await this.election.start(signal);
  }

  async stop(): Promise<void> {
    this.ac.abort();
    if (this.requeueTimer) clearTimeout(this.requeueTimer);
    if (this.soon) clearTimeout(this.soon);
    if (this.periodic) clearInterval(this.periodic);
    for (const m of Object.values(this.mirrors)) m.stop();
    this.memory.stop();
    this.heartbeats.stop();
    this.compactor.stop();
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
    // The source lists while the mirrors do (its changes wake no pass before this.term is set).
    const started = this.deps.source.start(signal, () => this.kick());
    started.catch((err: unknown) => this.log.error({ err }, 'the group source failed to start'));
    await Promise.all(Object.values(this.mirrors).map((m) => m.ready));
    // Whether a lease ended is asked of etcd on each pass (buildInput), and the answer wakes the next one.
    const released = () => this.mirrors.released.under(this.keys.releasedPrefix());
    this.mirrors.released.on('change', () => {
      this.memory.trackReleased(released());
      this.kick();
    });
    this.memory.trackReleased(released());
    // A node key that vanished: etcd is asked about its lease at once, not when the next pass starts (a pass in
    // flight takes ~0.3 s at 10,000 groups: scale benchmark), so that the pass this wakes (registered after this
    // listener) has the answer sooner.
    this.mirrors.nodes.on('change', (changed: readonly string[]) => {
      if (changed.some((k) => this.mirrors.nodes.get(k) === undefined)) {
        this.memory.observe(
          this.mirrors.nodes.under(this.keys.nodesPrefix()),
          this.mirrors.assignments.under(this.keys.assignmentsPrefix()),
        );
      }
    });
    for (const k of ['nodes', 'health', 'drain', 'moves'] as const) this.mirrors[k].on('change', () => this.kick());
    // This leader's own writes coming back wake no pass (writer.ts ownEcho): the pass after a write is asked for
    // by the pass that wrote (kickSoon).
    for (const k of ['assignments', 'promisesets'] as const)
      this.mirrors[k].on('change', (changed: readonly string[]) => {
        if (!this.writer.ownEcho(k, this.mirrors[k], changed)) this.kick();
      });
    for (const k of ['nodes', 'assignments'] as const)
      this.mirrors[k].on('change', () => (this.revocableCache = undefined));
    const timedOut = await Promise.race([
      started.then(
        () => false,
        () => true,
      ),
      this.deps.clock.sleep(SOURCE_START_TIMEOUT_MS, signal).then(() => true),
    ]);
    if (signal.aborted) return;
    if (timedOut)
      this.log.warn(
        { source: this.deps.source.kind, waitedMs: SOURCE_START_TIMEOUT_MS },
        'the group source has not listed yet; leading from the group records in etcd until it does',
      );
    this.term = term;
    this.metrics.leader(true);
    this.log.info({ source: this.deps.source.kind }, 'leading');
    this.mirrors.presence.on('change', () => this.recordOutages());
    this.recordOutages();
    // History: keeps through an etcd outage that the agents report (failsafe).
    const kept = () => {
      if (!this.term) return;
      for (const k of this.kept.observe(this.mirrors.nodes.under(this.keys.nodesPrefix())))
        this.writer.event(this.term, k.event, k.key);
    };
    this.mirrors.nodes.on('change', kept);
    kept();
    this.periodic = setInterval(() => this.kick(), this.deps.config.resyncMs);
    this.kick();
    this.compactor.start(signal);
    this.heartbeats
      .start(signal)
      .catch((err: unknown) => this.log.error({ err }, 'the heartbeat watch failed to start; lease TTLs detect alone'));
  }

  /** The nodes whose record lets a leader revoke their lease (common/fence.ts `revocable`), and whether they hold. */
  private revocableNodes(): Revocable[] {
    // Asked every 10 ms: parsed again only when the node records or the assignments changed.
    this.revocableCache ??= this.readRevocable();
    return this.revocableCache.filter((n) => !this.memory.isGone(n.lease));
  }

  private readRevocable(): Revocable[] {
    const holders = new Set<string>();
    for (const e of this.mirrors.assignments.under(this.keys.assignmentsPrefix())) {
      const rec = decodeEntry(AssignmentRecord, e);
      if (rec?.holderLease) holders.add(rec.holderLease);
    }
    const out: Revocable[] = [];
    for (const e of this.mirrors.nodes.under(this.keys.nodesPrefix())) {
      const rec = decodeEntry(NodeRecord, e);
      if (!rec || rec.lease !== e.lease || !revocable(rec)) continue;
      out.push({
        node: rec.name,
        lease: rec.lease,
        heartbeatMs: rec.fence!.heartbeatMs!,
        holds: holders.has(rec.lease),
      });
    }
    return out;
  }

  private kickSoon(): void {
    this.soon ??= setTimeout(() => {
      this.soon = undefined;
      this.kick();
    }, FOLLOW_UP_PASS_MS);
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
        let outcome: Outcome = 'ok';
        try {
          outcome = await this.pass();
        } catch (err) {
          outcome = 'error';
          this.log.error({ err }, 'reconcile pass failed');
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

  private async pass(): Promise<Outcome> {
    const term = this.term;
    if (!term) return 'ok';
    // Through an etcd election the term lives on, but nothing is written until an answer proves the lease again.
    if (!this.election.provable()) return (this.requeueAt(this.deps.clock.mono() + 100), 'requeue');
    // Until the source has listed once, the groups published in etcd stand in for it (nothing counts as deleted).
    const synced = this.deps.source.synced?.() ?? true;
    const sourceGroups = synced ? this.deps.source.list() : groupsFromEtcd(this.keys, this.mirrors.groups, this.log);
    const sel = selectGroups(sourceGroups, this.mirrors.assignments.under(this.keys.assignmentsPrefix()));
    this.metrics.groups(sel.groups.size, sel.frozen.size);

    await this.writer.publishGroups(term, sel.groups, this.mirrors);
    // A node's keys that vanished: etcd was asked whether its lease ended (as the nodes/ watch showed it, and again
    // in buildInput), and the pass waits a little for the answer, so that it can move the node's groups itself.
    await this.memory.answers(VANISHED_LEASE_WAIT_MS);
    const input = buildInput(
      {
        keys: this.keys,
        mirrors: this.mirrors,
        memory: this.memory,
        log: this.log,
        leader: this.deps.config.id,
        settleMs: this.deps.config.settleMs,
        now: this.deps.clock.wall(),
        mono: this.deps.clock.mono(),
        ownWrites: this.writer.ownWrites(this.mirrors.assignments.revision),
      },
      // A group whose deferred write is in flight is planned once it is done (planned from the epoch before it, it
      // would only fail its compare).
      this.deferred ? { ...sel, frozen: new Set([...sel.frozen, ...this.deferred]) } : sel,
    );
    // A lost node's groups are planned first and written at once, while the others are planned (planYielding).
    let early: Promise<('ok' | 'conflict')[]> | undefined;
    const earlyActions = new Set<Action>();
    const p = await planYielding(input, {
      urgent: (actions) => {
        const now = actions.filter((a) => !isDeferrable(a));
        for (const a of now) earlyActions.add(a);
        if (!now.length) return;
        early = this.writer.applyAll(term, now);
        early.catch(() => undefined); // awaited below, after the others' writes: not an unhandled rejection meanwhile
      },
    });
    this.lastDecisions = p.decisions;

    let outcome: Outcome = 'ok';
    // Promise-set rewrites go in the background (writer.ts isDeferrable): the next pass, which may move a lost
    // node's groups, does not wait for them. Every write is fenced and compared as ever; a write planned later is
    // all this changes (rule 1's new epoch comes as from a slower leader).
    const now = p.actions.filter((a) => !isDeferrable(a) && !earlyActions.has(a));
    const later = p.actions.filter(isDeferrable);
    const results = [...(await this.writer.applyAll(term, now)), ...((await early) ?? [])];
    // After the pass's own writes: batching 9,990 rewrites takes ~20-40 ms of CPU, which must not delay those.
    if (later.length) this.writeDeferred(term, later);
    if (results.includes('conflict')) outcome = 'conflict';
    // What this pass wrote is planned from by the next pass (ownWrites), which its echo no longer starts: one is
    // asked for shortly (coalescing with whatever else comes meanwhile), not at once, so that the watches (health
    // in a cold placement) are read between passes.
    if (results.includes('ok')) this.kickSoon();
    this.writer.collectPromiseSets(term, this.mirrors);

    if (!synced) return p.requeueAt !== undefined ? (this.requeueAt(p.requeueAt), 'requeue') : outcome;
    // Status back to the source (Kubernetes), only when something changed. A group held back for this pass only (its
    // promise set not read yet, a deferred write in flight) has no decision: its status waits for the next one.
    for (const s of sourceGroups) {
      if (input.frozen.has(s.name) && !sel.frozen.has(s.name)) continue;
      const failsafe = this.failsafeOf(s.name, s.group, input.assignments.get(s.name));
      const report = {
        decision: p.decisions.get(s.name),
        rejected: sel.rejected.get(s.name) ?? (s.error ? s.error.message : undefined),
        source: s,
        ...(failsafe ? { failsafe } : {}),
      };
      // Plain JSON is enough to tell a change (the planner builds these objects in a fixed order), and it costs
      // far less than a sorted-key hash for every group on every pass.
      const fp = JSON.stringify({ d: report.decision, r: report.rejected, g: s.generation, f: failsafe });
      if (!this.memory.statusChanged(s.name, fp)) continue;
      void this.status
        .report(s.name, report)
        .catch((err: unknown) => this.log.warn({ group: s.name, err }, 'status update failed'));
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
          .catch((err: unknown) => this.log.warn({ group: s.name, err }, 'finalize failed'));
      }
    }
    const names = new Set(sourceGroups.map((s) => s.name));
    this.memory.forgetStatus(names);
    this.outages.keepOnly(names);

    if (p.requeueAt !== undefined) {
      outcome = outcome === 'ok' ? 'requeue' : outcome;
      this.requeueAt(p.requeueAt);
    }
    return outcome;
  }

  /**
   * Writes deferrable actions in the background, one set of them at a time: while one is in flight the next pass
   * plans none of its groups, and its end asks for a pass (which plans what is still due). Actions planned while one
   * is in flight are dropped: they are planned again then.
   */
  private writeDeferred(term: Term, actions: readonly Action[]): void {
    if (this.deferred) return;
    const groups = new Set(actions.map((a) => a.group));
    this.deferred = groups;
    // A batch that is done frees its groups at once (its writes are in ownWrites): a lost node's group waits for
    // its own batch at most, not for the whole set.
    const settled = (gs: readonly string[]) => {
      for (const g of gs) groups.delete(g);
      // A group of a holder whose lease ended meanwhile is planned now, not when the whole lane is done.
      if (gs.some((g) => this.holderGone(g))) this.kick();
    };
    void this.writer
      .applyAll(term, actions, { deferred: true, settled })
      .catch((err: unknown) => this.log.warn({ err }, 'deferred assignment writes failed'))
      .finally(() => {
        if (this.deferred === groups) this.deferred = undefined;
        this.kick();
      });
  }

  /** Whether etcd said the lease of the group's holder (as this leader last wrote or read it) ended. */
  private holderGone(group: string): boolean {
    const own = this.writer.ownWrites(this.mirrors.assignments.revision).get(group)?.record;
    const e = this.mirrors.assignments.get(this.keys.assignment(group));
    const lease = own?.holderLease ?? (e ? decodeEntry(AssignmentRecord, e)?.holderLease : undefined);
    return typeof lease === 'string' && this.memory.isGone(lease);
  }

  /** History: the periods with a VIP on no node that the agents' presence records show (controller/outages.ts). */
  /** For the FailoverGroup's Failsafe condition: can the holder keep the group through an etcd outage now? */
  private failsafeOf(
    name: string,
    group: FailoverGroup | undefined,
    cur: CurrentAssignment | undefined,
  ): FailsafeState | undefined {
    const holder = cur?.record.holder;
    if (!group || !holder) return undefined;
    const e = this.mirrors.nodes.get(this.keys.node(holder));
    const rec = e ? decodeEntry(NodeRecord, e) : undefined;
    const f = rec && rec.lease === e?.lease && rec.lease === cur.record.holderLease ? rec.failsafe : undefined;
    return failsafeState(arbiterLossOf(group.spec), name, cur.epoch, cur.record, f);
  }

  private recordOutages(): void {
    const term = this.term;
    if (!term) return;
    const groups = this.outages.observe(this.mirrors.presence.under(this.keys.presencePrefix()));
    for (const g of this.outageRetry) groups.add(g);
    this.outageRetry.clear();
    for (const o of this.outages.pending(groups))
      void this.writer
        .outage(term, o)
        .then(() => this.outages.wrote(o.record.group, o.key, o.json))
        .catch((err: unknown) => {
          this.outageRetry.add(o.record.group); // with the next change
          this.log.warn({ err, group: o.record.group }, 'could not record an outage');
        });
  }

  /** `at` is monotonic, like every wait of the planner. */
  private requeueAt(at: number): void {
    if (this.requeueTimer) clearTimeout(this.requeueTimer);
    const ms = Math.max(0, at - this.deps.clock.mono()) + 1;
    this.requeueTimer = setTimeout(() => this.kick(), ms);
  }
}

/** A lease's remaining TTL in seconds as etcd answers it: -1 when it does not exist (expired and revoked). */
async function leaseTimeToLive(client: Etcd3, lease: string): Promise<number> {
  try {
    const res = await client.leaseClient.leaseTimeToLive({ ID: lease, keys: false });
    return Number(res.TTL);
  } catch (err) {
    // Older servers answer "not found" with an error instead of TTL -1.
    if (/lease not found/i.test(String((err as Error)?.message ?? err))) return -1;
    throw err;
  }
}
