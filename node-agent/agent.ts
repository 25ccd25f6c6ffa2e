// The node agent: keeps its node lease, runs health checks, watches assignments, and makes the machine match.
// Level-triggered: every event only kicks `pass()`, which reads the whole state, plans with planAgent, and runs the
// steps. Address changes (add, renew, remove) go through one queue so that a renewal can never re-add an address
// that a release has just removed.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { setMaxListeners } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { Mirror } from '../common/etcd.js';
import type { Exec } from '../common/exec.js';
import { fingerprint } from '../common/hash.js';
import {
  AssignmentRecord,
  decode,
  GroupRecord,
  Keys,
  type HealthRecord,
  type NodeRecord,
  type ReleaseReason,
  type ReleasedRecord,
} from '../common/keyspace.js';
import type { Logger } from '../common/log.js';
import { FailoverGroupSpec, type Spec } from '../crds/failovergroup.js';
import { AddressManager, DeadlinePassedError, vipKey, vipRef, type VipRef } from './addresses.js';
import { checks as checkRegistry, type CheckFn } from './checks/index.js';
import type { AgentConfig } from './config.js';
import { GroupHealth, type GroupHealthState } from './health.js';
import { LeaseKeeper, lifetimeFor, maxLifetimeSeconds } from '../common/lease.js';
import { NO_METRICS, type AgentMetrics } from './metrics.js';
import { planAgent, type AgentStep, type Held } from './planner.js';
import { AcquireError, type GroupResource, type ResourceContext } from './resources.js';

export const VERSION = '0.1.0';

export interface AgentDeps {
  config: AgentConfig;
  client: Etcd3;
  exec: Exec;
  clock: Clock;
  log: Logger;
  /** Extra resources after the announcement (SNAT, hooks, cloud), in acquire order. */
  resources?: GroupResource[];
  metrics?: AgentMetrics;
  checkRegistry?: Record<string, CheckFn>;
  /** Path of vw-before: address commands run only while the keepalive answer still covers them (main.ts sets it). */
  deadlineExec?: string;
}

interface GroupRuntime {
  checksHash: string;
  health: GroupHealth;
  /** The verdict of the checks this runner replaced, until its own first verdict (a check edit is no failure). */
  carried?: boolean;
}

/** A group whose acquire failed is held unhealthy for this long, so that another node takes it. */
const ACQUIRE_FAILURE_HOLDDOWN_MS = 30_000;

export class Agent {
  readonly keys: Keys;
  readonly lease: LeaseKeeper;
  readonly addresses: AddressManager;
  private readonly groupsMirror: Mirror;
  private readonly assignMirror: Mirror;
  private readonly metrics: AgentMetrics;
  private readonly resources: GroupResource[];
  private readonly runtimes = new Map<string, GroupRuntime>();
  /** Groups whose addresses this process has added, with the lease the assignment named when it did. */
  private readonly held = new Map<string, Held & { refs: VipRef[]; ac: AbortController; lease: string }>();
  private readonly letGo = new Map<string, number>();
  private readonly acked = new Map<string, number>();
  private readonly seen = new Map<string, number>();
  private readonly acquireFailures = new Map<string, { until: number; message: string }>();
  private readonly ac = new AbortController();
  private shuttingDown = false;
  private passAgain = false;
  private passLoop: Promise<void> | undefined;
  private addrQueue: Promise<unknown> = Promise.resolve();
  private periodic: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(private readonly deps: AgentDeps) {
    const { config, client, exec, clock } = deps;
    this.log = deps.log;
    this.keys = new Keys(config.etcd.prefix);
    this.metrics = deps.metrics ?? NO_METRICS;
    this.lease = new LeaseKeeper(client, config.lease, clock, this.log);
    this.addresses = new AddressManager(exec, deps.deadlineExec);
    this.groupsMirror = new Mirror(client, this.keys.groupsPrefix(), this.log, { resyncMs: 60_000 });
    this.assignMirror = new Mirror(client, this.keys.assignmentsPrefix(), this.log, { resyncMs: 60_000 });
    this.resources = deps.resources ?? [];
  }

  /** Groups currently held, with their epochs (for status and tests). */
  holdings(): Map<string, number> {
    return new Map([...this.held].map(([g, h]) => [g, h.epoch]));
  }

  /** Ready (for /readyz): both mirrors have listed etcd and the node lease is confirmed. */
  ready(): boolean {
    return this.groupsMirror.relists > 0 && this.assignMirror.relists > 0 && this.lease.isSafe() && !this.shuttingDown;
  }

  async start(): Promise<void> {
    const signal = this.ac.signal;
    setMaxListeners(64, signal);
    this.groupsMirror.start(signal);
    this.assignMirror.start(signal);
    await Promise.all([this.groupsMirror.ready, this.assignMirror.ready]);
    await this.removeStale();

    this.lease.on('granted', (lease) => {
      this.metrics.etcdUp(true);
      this.dropHeld((h) => h.lease !== lease, 'earlier-lease');
      void this.register()
        .then(() => this.publishAllHealth())
        .finally(() => this.kick());
    });
    this.lease.on('renewed', (r) => {
      this.metrics.keepaliveRtt(r.rttMs);
      this.metrics.etcdUp(true);
      this.renewAddresses();
    });
    this.lease.on('lost', (_lease, why) => {
      this.metrics.etcdUp(false);
      this.log.warn({ why }, 'lease not confirmed: letting go of every VIP');
      // At once, not behind a pass that may be waiting on something slow.
      this.dropHeld(() => true, 'lease-not-confirmed');
      this.kick();
    });
    this.groupsMirror.on('change', () => this.kick());
    this.assignMirror.on('change', () => this.kick());
    await this.lease.start(signal);
    this.periodic = setInterval(() => this.kick(), 1000);
    this.kick();
  }

  /** Graceful stop (SIGTERM): release everything, give the controller a moment to move it, revoke the lease. */
  async stop(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.log.info('shutting down: releasing every group');
    if (this.periodic) clearInterval(this.periodic);
    await this.runPass();
    const acked = new Map(this.acked);
    const deadline = this.deps.clock.mono() + this.deps.config.shutdownGraceMs;
    while (this.deps.clock.mono() < deadline && [...acked].some(([g, e]) => this.assignmentOf(g)?.epoch === e)) {
      await this.deps.clock.sleep(20);
    }
    for (const rt of this.runtimes.values()) rt.health.stop();
    await this.lease.revoke();
    this.ac.abort();
    await this.addrQueue.catch(() => undefined);
  }

  private assignmentOf(group: string): { record: AssignmentRecord; epoch: number } | undefined {
    const e = this.assignMirror.get(this.keys.assignment(group));
    if (!e) return undefined;
    const record = decode(AssignmentRecord, e.value, (why) =>
      this.log.warn({ group, why }, 'ignoring an assignment that does not parse'),
    );
    return record ? { record, epoch: e.modRevision } : undefined;
  }

  private groupSpec(group: string): Spec | undefined {
    const e = this.groupsMirror.get(this.keys.group(group));
    const rec =
      e &&
      decode(GroupRecord, e.value, (why) =>
        this.log.warn({ group, why }, 'ignoring a group record that does not parse'),
      );
    if (!rec) return undefined;
    const spec = FailoverGroupSpec.safeParse(rec.spec);
    if (!spec.success) {
      this.log.warn({ group }, 'ignoring a group spec that does not parse');
      return undefined;
    }
    return spec.data;
  }

  kick(): void {
    if (this.ac.signal.aborted) return;
    void this.runPass();
  }

  /** Runs passes until no kick came in meanwhile; a caller that kicks during a pass waits for the next one. */
  private runPass(): Promise<void> {
    if (this.passLoop) {
      this.passAgain = true;
      return this.passLoop;
    }
    this.passLoop = this.passes().finally(() => (this.passLoop = undefined));
    return this.passLoop;
  }

  private async passes(): Promise<void> {
    do {
      this.passAgain = false;
      const t0 = this.deps.clock.mono();
      try {
        await this.pass();
        this.metrics.reconcile(this.deps.clock.mono() - t0, 'ok');
      } catch (err) {
        this.metrics.reconcile(this.deps.clock.mono() - t0, 'error');
        this.log.error({ err: String(err) }, 'reconcile pass failed');
      }
    } while (this.passAgain && !this.ac.signal.aborted);
  }

  private async pass(): Promise<void> {
    this.syncHealthRunners();
    const assignments = new Map<string, { record: AssignmentRecord; epoch: number }>();
    for (const e of this.assignMirror.under(this.keys.assignmentsPrefix())) {
      const g = e.key.slice(this.keys.assignmentsPrefix().length);
      const a = this.assignmentOf(g);
      if (a) assignments.set(g, a);
    }
    const healthy = new Map<string, boolean>();
    for (const g of new Set([...assignments.keys(), ...this.held.keys()])) healthy.set(g, this.isHealthy(g));
    const steps = planAgent({
      node: this.deps.config.node,
      lease: this.lease.lease,
      leaseSafe: this.lease.isSafe(),
      shuttingDown: this.shuttingDown,
      assignments,
      healthy,
      held: this.held,
      letGo: this.letGo,
      acked: this.acked,
      seen: this.seen,
    });
    // Groups are independent: their steps run side by side, so a slow acquire never delays a release.
    steps.sort((a, b) => order(a) - order(b));
    await Promise.all(
      steps.map((s) =>
        this.execute(s).catch((err) =>
          this.log.error(
            { err: String(err), group: s.group, epoch: 'epoch' in s ? s.epoch : s.ackEpoch, step: s.type },
            'step failed',
          ),
        ),
      ),
    );
    if (steps.some((s) => s.type === 'acquire' || s.type === 'update')) await this.saveState();
  }

  private isHealthy(group: string): boolean {
    const f = this.acquireFailures.get(group);
    if (f && f.until > this.deps.clock.mono()) return false;
    const rt = this.runtimes.get(group);
    if (!rt) return this.groupSpec(group) === undefined ? true : false;
    const s = rt.health.state;
    return s.known ? s.healthy : (rt.carried ?? false);
  }

  private healthState(group: string): GroupHealthState | undefined {
    const rt = this.runtimes.get(group);
    if (!rt) return undefined;
    const s = rt.health.state;
    const f = this.acquireFailures.get(group);
    if (f && f.until > this.deps.clock.mono()) {
      return { ...s, healthy: false, checks: [...s.checks, { name: 'acquire', ok: false, message: f.message }] };
    }
    return s;
  }

  /** One health runner per group that names this node; restarted only when the group's checks change. */
  private syncHealthRunners(): void {
    const want = new Map<string, Spec>();
    for (const e of this.groupsMirror.under(this.keys.groupsPrefix())) {
      const g = e.key.slice(this.keys.groupsPrefix().length);
      const spec = this.groupSpec(g);
      if (spec && spec.nodes.some((n) => n.name === this.deps.config.node)) want.set(g, spec);
    }
    const carried = new Map<string, boolean>();
    for (const [g, rt] of this.runtimes) {
      const spec = want.get(g);
      if (!spec || fingerprint(spec.checks) !== rt.checksHash) {
        const s = rt.health.state;
        const verdict = s.known ? s.healthy : rt.carried;
        if (spec && verdict !== undefined) carried.set(g, verdict);
        rt.health.stop();
        this.runtimes.delete(g);
        if (!spec) void this.deleteHealth(g);
      }
    }
    for (const [g, spec] of want) {
      if (this.runtimes.has(g)) continue;
      const health = new GroupHealth(
        g,
        spec.checks,
        this.deps.checkRegistry ?? checkRegistry,
        { exec: this.deps.exec, config: this.deps.config },
        this.deps.clock,
        this.log,
      );
      const rt: GroupRuntime = { checksHash: fingerprint(spec.checks), health, carried: carried.get(g) };
      this.runtimes.set(g, rt);
      health.on('change', (state) => {
        if (this.runtimes.get(g) !== rt) return;
        // A holder that turns unhealthy publishes its health together with its release (one transaction),
        // so that the controller moves the group at once instead of first asking for the release.
        if (!(this.held.has(g) && !state.healthy)) void this.publishHealth(g);
        this.kick();
      });
      health.on('result', (check, ok, latency) => this.metrics.checkResult(g, check, ok, latency));
      health.start();
      void this.publishHealth(g);
    }
  }

  private async register(): Promise<void> {
    const lease = this.lease.lease;
    if (!lease) return;
    const c = this.deps.config;
    const rec: NodeRecord = {
      name: c.node,
      lease,
      ttlSeconds: c.lease.ttlSeconds,
      maxLifetimeSeconds: maxLifetimeSeconds(c.lease),
      renewWindowMs: c.lease.renewWindowMs,
      addresses: [],
      interfaces: [c.interface],
      version: VERSION,
      startedAt: this.deps.clock.wall(),
    };
    try {
      await this.deps.client.put(this.keys.node(c.node)).value(JSON.stringify(rec)).lease(lease).exec();
      this.log.info({ lease }, 'node registered');
    } catch (err) {
      this.log.warn({ err: String(err) }, 'node registration failed; retrying');
      await this.deps.clock.sleep(200);
      if (this.lease.lease === lease) return this.register();
    }
  }

  private publishAllHealth(): Promise<unknown> {
    return Promise.all([...this.runtimes.keys()].map((g) => this.publishHealth(g)));
  }

  private healthRecord(group: string): HealthRecord | undefined {
    const rt = this.runtimes.get(group);
    const s = this.healthState(group);
    if (!rt || !s || !s.known) return undefined;
    return {
      healthy: s.healthy,
      priorityDelta: s.priorityDelta,
      checks: s.checks,
      checksHash: rt.checksHash,
      at: this.deps.clock.wall(),
      ...(s.failingSince !== undefined ? { failingSince: s.failingSince } : {}),
    };
  }

  private async publishHealth(group: string): Promise<void> {
    const lease = this.lease.lease;
    const rec = this.healthRecord(group);
    if (!lease || !rec) return;
    try {
      await this.deps.client
        .put(this.keys.health(group, this.deps.config.node))
        .value(JSON.stringify(rec))
        .lease(lease)
        .exec();
    } catch (err) {
      this.log.warn({ err: String(err), group }, 'could not publish health');
    }
  }

  private async deleteHealth(group: string): Promise<void> {
    await this.deps.client
      .delete()
      .key(this.keys.health(group, this.deps.config.node))
      .exec()
      .catch(() => undefined);
  }

  /** released/<group>/<node> for an epoch, in one transaction with the health that explains it. */
  private async writeReleased(group: string, epoch: number, reason: ReleaseReason): Promise<void> {
    const lease = this.lease.lease;
    if (!lease) throw new Error('no lease to write the release under');
    const health = this.healthRecord(group);
    const rec: ReleasedRecord = {
      epoch,
      at: this.deps.clock.wall(),
      reason,
      ...(health && !health.healthy && health.failingSince !== undefined ? { failingSince: health.failingSince } : {}),
    };
    const releasedKey = this.keys.released(group, this.deps.config.node);
    const ops = [this.deps.client.put(releasedKey).value(JSON.stringify(rec)).lease(lease)];
    if (health)
      ops.unshift(
        this.deps.client.put(this.keys.health(group, this.deps.config.node)).value(JSON.stringify(health)).lease(lease),
      );
    // A transaction needs a comparison; this one always holds.
    await this.deps.client
      .if(releasedKey, 'Mod', '>', -1)
      .then(...ops)
      .commit();
    this.acked.set(group, epoch);
  }

  private refsOf(record: AssignmentRecord): VipRef[] {
    return record.vips.map((v) => vipRef(v.address, v.interface ?? this.deps.config.interface));
  }

  private ctx(group: string, epoch: number, refs: VipRef[], signal: AbortSignal): ResourceContext {
    return {
      group,
      node: this.deps.config.node,
      epoch,
      vips: refs,
      spec: this.groupSpec(group),
      isCurrent: () =>
        this.held.get(group)?.epoch === epoch || (this.held.has(group) && this.assignmentOf(group)?.epoch === epoch),
      signal,
      log: this.log.child({ group, epoch }),
    };
  }

  private withAddresses<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.addrQueue.then(fn, fn);
    this.addrQueue = run.catch(() => undefined);
    return run;
  }

  private async execute(step: AgentStep): Promise<void> {
    const log = this.log.child({ group: step.group });
    switch (step.type) {
      case 'acquire': {
        const t0 = this.deps.clock.mono();
        if (!(await this.lease.ensureFresh())) {
          log.warn({ epoch: step.epoch }, 'no fresh keepalive answer: not adding addresses yet');
          setTimeout(() => this.kick(), 50);
          return;
        }
        const refs = this.refsOf(step.record);
        const ac = new AbortController();
        this.seen.set(step.group, step.epoch);
        const lease = step.record.holderLease;
        if (!lease || lease !== this.lease.lease) return;
        this.held.set(step.group, {
          epoch: step.epoch,
          vips: refs.map(vipKey),
          specHash: step.record.specHash,
          refs,
          ac,
          lease,
        });
        const tFresh = this.deps.clock.mono();
        await this.withAddresses(async () => {
          log.debug(
            { freshMs: Math.round(tFresh - t0), queuedMs: Math.round(this.deps.clock.mono() - tFresh) },
            'adding addresses',
          );
          // Re-check under the queue: a release or a lost lease may have come in between.
          if (this.held.get(step.group)?.epoch !== step.epoch) return;
          await this.setAddresses(refs, lease);
        });
        if (this.held.get(step.group)?.epoch !== step.epoch) return;
        log.info(
          {
            epoch: step.epoch,
            vips: refs.map((r) => r.address),
            reason: step.record.reason,
            tookMs: Math.round(this.deps.clock.mono() - t0),
          },
          'acquired',
        );
        this.metrics.holder(step.group, true);
        this.metrics.transition(step.group, 'acquire', step.record.reason);
        if (step.record.detectedAt)
          this.metrics.failoverOutage(step.group, Math.max(0, this.deps.clock.wall() - step.record.detectedAt) / 1000);
        await this.acquireResources(step.group, step.epoch, refs, ac.signal);
        return;
      }
      case 'update': {
        const h = this.held.get(step.group);
        if (!h) return;
        const refs = this.refsOf(step.record);
        const keys = new Set(refs.map(vipKey));
        const gone = h.refs.filter((r) => !keys.has(vipKey(r)));
        const specChanged = h.specHash !== step.record.specHash;
        this.seen.set(step.group, step.epoch);
        h.epoch = step.epoch;
        h.refs = refs;
        h.vips = [...keys];
        h.specHash = step.record.specHash;
        await this.withAddresses(async () => {
          await this.addresses.remove(gone);
          if (this.held.get(step.group) !== h || !this.lease.isSafe()) return;
          if (await this.lease.ensureFresh()) await this.setAddresses(refs, h.lease);
        });
        log.info(
          { epoch: step.epoch, vips: refs.map((r) => r.address), removed: gone.map((r) => r.address) },
          'assignment updated',
        );
        if (specChanged) {
          h.ac.abort();
          h.ac = new AbortController();
          await this.releaseResources(step.group, step.epoch, refs, true);
          await this.acquireResources(step.group, step.epoch, refs, h.ac.signal);
        }
        return;
      }
      case 'release': {
        const h = this.held.get(step.group);
        if (!h) return;
        if (step.ackEpoch !== undefined) this.letGo.set(step.group, step.ackEpoch);
        this.held.delete(step.group);
        h.ac.abort();
        await this.withAddresses(() => this.addresses.remove(h.refs));
        log.info({ epoch: h.epoch, reason: step.reason }, 'released');
        this.metrics.holder(step.group, false);
        this.metrics.transition(step.group, 'release', step.reason);
        if (step.ackEpoch !== undefined) await this.writeReleased(step.group, step.ackEpoch, step.reason);
        await this.releaseResources(step.group, h.epoch, h.refs, false);
        await this.saveState();
        return;
      }
      case 'ack': {
        this.letGo.set(step.group, step.epoch);
        await this.writeReleased(step.group, step.epoch, step.reason);
        log.info({ epoch: step.epoch, reason: step.reason }, 'told the controller this node will not hold it');
        return;
      }
    }
  }

  private async acquireResources(group: string, epoch: number, refs: VipRef[], signal: AbortSignal): Promise<void> {
    for (const r of this.resources) {
      if (this.held.get(group)?.epoch !== epoch) return;
      try {
        await r.acquire(this.ctx(group, epoch, refs, signal));
      } catch (err) {
        const e = err instanceof AcquireError ? err : new AcquireError(r.name, group, err);
        this.log.error({ group, epoch, err: e.message }, 'acquire failed: releasing the group');
        this.acquireFailures.set(group, {
          until: this.deps.clock.mono() + ACQUIRE_FAILURE_HOLDDOWN_MS,
          message: e.message,
        });
        setTimeout(() => {
          void this.publishHealth(group);
          this.kick();
        }, ACQUIRE_FAILURE_HOLDDOWN_MS + 10);
        this.kick();
        return;
      }
    }
  }

  private async releaseResources(group: string, epoch: number, refs: VipRef[], _forUpdate: boolean): Promise<void> {
    const ac = new AbortController();
    for (const r of [...this.resources].reverse()) {
      try {
        await r.release(this.ctx(group, epoch, refs, ac.signal));
      } catch (err) {
        this.log.error({ group, epoch, resource: r.name, err: String(err) }, 'release of a resource failed');
      }
    }
  }

  /**
   * Adds or renews addresses with a kernel lifetime proven by a fresh keepalive answer (Safety 2). Runs inside the
   * address queue. The command carries a deadline (the end of the answer's fresh window) that vw-before checks in
   * the forked process itself, so a command decided before the agent was frozen never runs after it wakes.
   * Freshness is checked again after the command as well: without vw-before (unit tests) that is the only guard.
   */
  private async setAddresses(refs: VipRef[], lease: string): Promise<boolean> {
    // Freshness is only evidence for the lease the answers were for: addresses held under an earlier lease
    // (this process was frozen, its lease ended, it got a new one) must never be renewed with it.
    if (refs.length === 0 || lease !== this.lease.lease || !this.lease.isFresh()) return false;
    const lifetime = lifetimeFor(this.lease.validUntil - this.deps.clock.mono(), this.deps.config.lease.marginMs);
    const deadlineMs = this.lease.lastAnsweredSentAt + this.deps.config.lease.renewWindowMs;
    try {
      await this.addresses.ensure(refs, lifetime, { deadlineMs });
    } catch (err) {
      if (!(err instanceof DeadlinePassedError)) throw err;
      this.log.warn(
        { vips: refs.map((r) => r.address) },
        'address command would have run after its keepalive answer stopped covering it: not run',
      );
      return false;
    }
    if (this.lease.isFresh() && lease === this.lease.lease) return true;
    this.log.error(
      { vips: refs.map((r) => r.address) },
      'address command finished after the keepalive answer stopped covering it: removing the addresses',
    );
    await this.addresses.remove(refs);
    return false;
  }

  /**
   * Lets go of held groups without telling the controller (it cannot be told: the lease is not confirmed, or is
   * not the one the assignment named). Their addresses leave through the address queue, ahead of any renewal
   * queued after this call.
   */
  private dropHeld(which: (h: { lease: string }) => boolean, reason: ReleaseReason): void {
    for (const [group, h] of [...this.held]) {
      if (!which(h)) continue;
      this.held.delete(group);
      h.ac.abort();
      this.log.warn({ group, epoch: h.epoch, reason }, 'released');
      this.metrics.holder(group, false);
      this.metrics.transition(group, 'release', reason);
      void this.withAddresses(() => this.addresses.remove(h.refs))
        .then(() => this.releaseResources(group, h.epoch, h.refs, false))
        .catch((err) => this.log.error({ group, epoch: h.epoch, err: String(err) }, 'removing addresses failed'));
    }
  }

  /** After each answered keepalive: extend every held address's kernel lifetime (Safety 2). */
  private renewAddresses(): void {
    if (this.held.size === 0) return;
    void this.withAddresses(async () => {
      const lease = this.lease.lease;
      if (!lease) return;
      await this.setAddresses(
        [...this.held.values()].filter((h) => h.lease === lease).flatMap((h) => h.refs),
        lease,
      );
    }).catch((err) => this.log.error({ err: String(err) }, 'renewing address lifetimes failed'));
  }

  private statePath(): string {
    return `${this.deps.config.stateDir}/${this.deps.config.node}.json`;
  }

  private async saveState(): Promise<void> {
    const vips = [...this.held.values()].flatMap((h) =>
      h.refs.map((r) => ({ address: `${r.address}/${r.prefix}`, iface: r.iface })),
    );
    try {
      await mkdir(this.deps.config.stateDir, { recursive: true });
      await writeFile(this.statePath(), JSON.stringify({ vips }));
    } catch (err) {
      this.log.warn({ err: String(err) }, 'could not save state');
    }
  }

  /**
   * At start this process holds nothing. Any VIP of ours still on an interface (finite lifetime, known from the
   * groups, the assignments or our state file) is left over from an earlier run: remove it.
   */
  private async removeStale(): Promise<void> {
    const known = new Map<string, VipRef>();
    const add = (cidr: string, iface: string) => {
      try {
        const r = vipRef(cidr, iface);
        known.set(r.address, r);
      } catch {
        /* not ours to judge */
      }
    };
    for (const e of this.groupsMirror.under(this.keys.groupsPrefix())) {
      const spec = this.groupSpec(e.key.slice(this.keys.groupsPrefix().length));
      for (const v of spec?.vips ?? []) add(v.address, v.interface ?? this.deps.config.interface);
    }
    for (const e of this.assignMirror.under(this.keys.assignmentsPrefix())) {
      const a = decode(AssignmentRecord, e.value);
      for (const v of a?.vips ?? []) add(v.address, v.interface ?? this.deps.config.interface);
    }
    try {
      const saved = JSON.parse(await readFile(this.statePath(), 'utf8')) as {
        vips?: { address: string; iface: string }[];
      };
      for (const v of saved.vips ?? []) add(v.address, v.iface);
    } catch {
      /* no state file */
    }
    const local = await this.addresses.list();
    const stale = local.filter((l) => known.get(l.address)?.iface === l.iface && l.validLft !== null);
    const foreign = local.filter((l) => known.has(l.address) && l.validLft === null);
    for (const f of foreign)
      this.log.warn(
        { vip: f.address, iface: f.iface },
        'a VIP is configured permanently on this node by someone else: not touching it',
      );
    if (stale.length) {
      this.log.info({ vips: stale.map((s) => s.address) }, 'removing VIPs left over from an earlier run');
      await this.addresses.remove(stale);
    }
    for (const r of this.resources) await r.cleanupStale?.(new Set(), this.log);
    await this.saveState();
  }
}

function order(s: AgentStep): number {
  return s.type === 'release' ? 0 : s.type === 'ack' ? 1 : s.type === 'update' ? 2 : 3;
}
