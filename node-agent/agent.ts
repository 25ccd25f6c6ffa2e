// The node agent: keeps its node lease, runs health checks, watches assignments, and makes the machine match.
// Level-triggered: every event only kicks `pass()`, which reads the whole state, plans with planAgent, and hands each
// group's step to that group's lane. Lanes run side by side and a pass never waits for one, so a slow step (a hook,
// a cloud call, an etcd write) of one group never delays another group's steps. Holdings owns the addresses
// (Safety 1-2); steps.ts runs the steps; health-runners.ts and health-publisher.ts the health side; registration.ts
// the node record; leftovers.ts what an earlier run left behind.
import { setMaxListeners } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import type { Exec } from '../common/exec.js';
import { Keys } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';
import { LeaseKeeper } from '../common/lease.js';
import { Heartbeat } from './heartbeat.js';
import { PassLoop } from '../common/pass-loop.js';
import { VERSION } from '../common/version.js';
import type { AddressManager } from './addresses.js';
import type { CheckFn } from './checks/index.js';
import { ClusterView } from './cluster-view.js';
import { fenceOptions, type AgentConfig } from './config.js';
import { etcdHealthStore, HealthPublisher } from './health-publisher.js';
import { HealthRunners } from './health-runners.js';
import type { Spec } from '../crds/failovergroup.js';
import { Holdings } from './holdings.js';
import { removeLeftovers, StateFile } from './leftovers.js';
import { NO_METRICS, type AgentMetrics } from './metrics.js';
import { vipProblems } from './allowlist.js';
import { agentFailsafe } from './failsafe/agent-part.js';
import type { PeerTransport } from './failsafe/transport.js';
import { planAgent, type AgentStep } from './planner.js';
import { NodeRegistration } from './registration.js';
import { Renewals } from './renewal.js';
import type { GroupResource } from './resources.js';
import { GroupSteps } from './steps.js';

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
  /** The LVS director (node-agent/lvs): told every group that names this node, so that standbys check too. */
  lvs?: { setCandidates(groups: ReadonlyMap<string, Spec>): void };
  /** Path of vw-before: address commands run only while the keepalive answer still covers them (main.ts sets it). */
  deadlineExec?: string;
  /** Every health record is written again this often (ms; default 15 s). */
  healthRepublishMs?: number;
  /** The failsafe peer channel (agent.yaml `peer:`): with it, failsafe groups are kept through etcd outages. */
  peer?: PeerTransport;
}

export class Agent {
  readonly keys: Keys;
  readonly lease: LeaseKeeper;
  readonly holdingsOwner: Holdings;
  private readonly view: ClusterView;
  private readonly metrics: AgentMetrics;
  private readonly publisher: HealthPublisher;
  private readonly health: HealthRunners;
  private readonly registration: NodeRegistration;
  private readonly steps: GroupSteps;
  private readonly state: StateFile;
  /** When address lifetimes are renewed: at each answer, and topped up before it stops being fresh. */
  private readonly renewals: Renewals;
  private readonly resources: GroupResource[];
  /** Per group, the step (or leaving retry) in flight: the group gets no other step until it ends. */
  private readonly lanes = new Map<string, Promise<void>>();
  /** Groups a pass skipped because their lane was busy: the lane's end runs another pass. */
  private readonly skipped = new Set<string>();
  private readonly ac = new AbortController();
  private shuttingDown = false;
  /** The lease the node record was last written under: nothing is written for this node before that. */
  private registeredLease: string | undefined;
  /** No pass runs before the node name is ours (a second agent with a taken name must change nothing). */
  private started = false;
  private readonly passLoop = new PassLoop({
    pass: () => this.timedPass(),
    active: () => this.started && !this.ac.signal.aborted,
  });
  private periodic: NodeJS.Timeout | undefined;
  private firstRegistration: Promise<void> | undefined;
  private readonly log: Logger;
  private readonly failsafe: ReturnType<typeof agentFailsafe>;
  /** fence.heartbeatMs: the heartbeat key the leader watches (node-agent/heartbeat.ts). */
  readonly heartbeat: Heartbeat | undefined;

  constructor(private readonly deps: AgentDeps) {
    const { config, client, exec, clock } = deps;
    const log = (this.log = deps.log);
    this.keys = new Keys(config.etcd.prefix);
    this.metrics = deps.metrics ?? NO_METRICS;
    this.resources = deps.resources ?? [];
    this.lease = new LeaseKeeper(client, config.lease, clock, log);
    this.holdingsOwner = new Holdings({
      exec,
      clock,
      lease: this.lease,
      timing: config.lease,
      log,
      deadlineExec: deps.deadlineExec,
      fence: fenceOptions(config),
      // The history (issue 15.14): the addresses were gone from their lifetime's end until this renewal.
      onLapsed: (group, epoch, endedAt) => {
        this.steps.presence.record(group, { kind: 'remove', epoch, reason: 'lease-not-confirmed', mono: endedAt });
        this.steps.presence.record(group, { kind: 'add', epoch, reason: this.view.assignment(group)?.record.reason });
      },
    });
    this.renewals = new Renewals({ holdings: this.holdingsOwner, clock, windowMs: config.lease.renewWindowMs, log });
    const heartbeatMs = fenceOptions(config)?.heartbeatMs;
    this.heartbeat = heartbeatMs
      ? new Heartbeat({
          client,
          key: this.keys.heartbeat(config.node),
          intervalMs: heartbeatMs,
          // Only under the lease the node record is registered under: the leader reads the two together.
          lease: () => (this.registeredLease === this.lease.lease ? this.registeredLease : undefined),
          log,
        })
      : undefined;
    this.view = new ClusterView(client, this.keys, log);
    this.state = new StateFile(config.stateDir, config.node, log);
    this.registration = new NodeRegistration({ client, keys: this.keys, config, clock, log, version: VERSION });
    this.publisher = new HealthPublisher({
      store: etcdHealthStore(client),
      keyOf: (g) => this.keys.health(g, config.node),
      lease: () => (this.registeredLease === this.lease.lease ? this.registeredLease : undefined),
      clock,
      log,
      republishMs: deps.healthRepublishMs,
    });
    this.health = new HealthRunners({
      ...deps,
      view: this.view,
      metrics: this.metrics,
      publisher: this.publisher,
      holds: (g) => this.holdingsOwner.get(g) !== undefined,
      onChange: () => this.kick(),
      onCandidates: (groups) => deps.lvs?.setCandidates(groups),
    });
    this.steps = new GroupSteps({
      ...deps,
      keys: this.keys,
      lease: this.lease,
      holdings: this.holdingsOwner,
      view: this.view,
      health: this.health,
      publisher: this.publisher,
      resources: this.resources,
      metrics: this.metrics,
      kick: (afterMs) => (afterMs ? setTimeout(() => this.kick(), afterMs).unref() : this.kick()),
      saveState: () => this.state.save(this.holdingsOwner.allRefs()),
    });
    this.failsafe = agentFailsafe(deps.peer, {
      ...deps,
      agent: this,
      view: this.view,
      registration: this.registration,
    });
  }

  get addresses(): AddressManager {
    return this.holdingsOwner.addresses;
  }

  /** Groups currently held, with their epochs (for status and tests). */
  holdings(): Map<string, number> {
    return new Map([...this.holdingsOwner.plannerView()].map(([g, h]) => [g, h.epoch]));
  }

  /** Ready (for /readyz): both mirrors have listed etcd and the node lease is confirmed. */
  ready(): boolean {
    return this.view.listed() && this.lease.isSafe() && !this.shuttingDown;
  }

  /** Starts the agent; refuses (throws) when another live agent is registered under this node name. */
  async start(): Promise<void> {
    const signal = this.ac.signal;
    setMaxListeners(64, signal);
    signal.addEventListener('abort', () => this.renewals.stop(), { once: true });
    await this.registration.claimName(signal);
    await this.view.start(signal);
    // Checks start now, so that their first results are in by the time the node is registered (nothing is
    // published before that).
    this.health.sync();
    await this.holdingsOwner.fence?.setup(); // before any address: every VIP is gated from its first add
    await removeLeftovers(
      { addresses: this.addresses, resources: this.resources, state: this.state, log: this.log },
      this.view.knownVips(this.deps.config.interface),
    );
    this.publisher.start(signal);
    // The gauge tells what /readyz's etcd part tells: the node lease is proven alive now.
    this.metrics.bindEtcdUp?.(() => this.lease.isSafe());
    this.lease.on('granted', (lease) => this.onGranted(lease));
    this.lease.on('renewed', (r) => {
      this.metrics.keepaliveRtt(r.rttMs);
      this.metrics.etcdUp(true);
      this.renewals.onAnswer(this.lease.lastAnsweredSentAt);
    });
    this.lease.on('lost', (_lease, why) => {
      this.metrics.etcdUp(false);
      const kept = this.failsafe?.keptGroups() ?? new Set<string>();
      this.log.warn(
        { why, kept: [...kept] },
        `lease not confirmed: letting go of every VIP${kept.size ? ' not kept by failsafe' : ''}`,
      );
      // At once, not behind a pass that may be waiting on something slow.
      this.steps.dropLease((_lease, group) => !kept.has(group), 'lease-not-confirmed');
      this.kick();
    });
    this.view.onChange(() => this.kick());
    this.failsafe?.startAll(signal);
    await this.lease.start(signal);
    try {
      await this.firstRegistration;
    } catch (err) {
      this.ac.abort();
      await this.lease.revoke();
      throw err;
    }
    this.started = true;
    this.heartbeat?.start();
    signal.addEventListener('abort', () => this.heartbeat?.stop(), { once: true });
    this.periodic = setInterval(() => this.kick(), 1000);
    this.kick();
  }

  private onGranted(lease: string): void {
    this.metrics.etcdUp(true);
    this.steps.dropLease((l) => l !== lease, 'earlier-lease');
    const registered = this.register(lease);
    this.firstRegistration ??= registered;
    void registered
      .then(() => this.publisher.republishAll())
      .catch(() => undefined)
      .finally(() => this.kick());
  }

  /** Registers under `lease`, retrying failed writes; a name taken by another live agent is not retried. */
  private async register(lease: string): Promise<void> {
    for (;;) {
      try {
        await this.registration.register(lease);
        if (this.lease.lease === lease) this.registeredLease = lease;
        return;
      } catch (err) {
        if (err instanceof Error && err.name === 'NodeNameTakenError') {
          this.log.error({ err }, 'node name taken by another agent: not registering');
          throw err;
        }
        this.log.warn({ err }, 'node registration failed; retrying');
        await this.deps.clock.sleep(200, this.ac.signal);
        if (this.lease.lease !== lease || this.ac.signal.aborted) return;
      }
    }
  }

  /** Graceful stop (SIGTERM): release everything, give the controller a moment to move it, revoke the lease. */
  async stop(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.log.info('shutting down: releasing every group');
    // Unhealthy everywhere from here, so no candidate while the grace runs: a held group's release carries that
    // health in its transaction (published alone first it could make the controller ask for an 'unhealthy' release);
    // the others are published now.
    this.health.drain('the agent is shutting down');
    const held = new Set([...this.holdingsOwner.groups(), ...this.holdingsOwner.leavingGroups()]);
    for (const g of this.health.groups()) if (!held.has(g)) void this.health.publish(g).catch(() => undefined);
    if (this.periodic) clearInterval(this.periodic);
    const deadline = this.deps.clock.mono() + this.deps.config.shutdownGraceMs;
    // Release passes until nothing is held or leaving and no step is in flight (bounded by the grace).
    for (;;) {
      await this.runPass();
      await Promise.all([...this.lanes.values()]);
      const left = this.holdingsOwner.groups().length + this.holdingsOwner.leavingGroups().size;
      if (left === 0 || this.deps.clock.mono() >= deadline) break;
      await this.deps.clock.sleep(20);
    }
    const acked = new Map(this.steps.releaseKeyEpoch);
    while (this.deps.clock.mono() < deadline && [...acked].some(([g, e]) => this.view.assignment(g)?.epoch === e)) {
      await this.deps.clock.sleep(20);
    }
    this.health.stopAll();
    this.publisher.stop();
    this.heartbeat?.stop();
    // Whatever the grace left on the machine goes before the lease does. A revocation ends the lease before
    // s + TTL, and for a holder without heartbeats the controller's wait counts from there (docs/design.md "Fast
    // fence"): an address or fence element still up would outlive it. What cannot be removed keeps the lease, which
    // then runs out with its TTL as after a crash.
    if (!(await this.dropEverything(1000))) {
      this.log.error(
        { groups: [...this.holdingsOwner.groups(), ...this.holdingsOwner.leavingGroups()] },
        'addresses still on the machine after the grace: not revoking the lease, it ends with its TTL',
      );
      this.lease.stop();
    } else await this.lease.revoke();
    this.ac.abort();
    await this.holdingsOwner.idle();
  }

  /** Lets go of every group at once and retries the removals for up to `ms`; true once nothing is left. */
  private async dropEverything(ms: number): Promise<boolean> {
    const left = () => this.holdingsOwner.groups().length + this.holdingsOwner.leavingGroups().size;
    if (left() === 0) return true;
    this.steps.dropLease(() => true, 'shutting-down');
    const until = this.deps.clock.mono() + ms;
    for (;;) {
      await Promise.all([...this.lanes.values()]);
      for (const g of [...this.holdingsOwner.leavingGroups()]) await this.holdingsOwner.retryLeaving(g);
      if (left() === 0) return true;
      if (this.deps.clock.mono() >= until) return false;
      await this.deps.clock.sleep(50);
    }
  }

  kick(): void {
    void this.passLoop.kick();
  }

  /** A pass; a caller that kicks during a pass waits for the next one. */
  private runPass(): Promise<void> {
    return this.passLoop.kick();
  }

  private async timedPass(): Promise<void> {
    const t0 = this.deps.clock.mono();
    try {
      await this.pass();
      this.metrics.reconcile(this.deps.clock.mono() - t0, 'ok');
    } catch (err) {
      this.metrics.reconcile(this.deps.clock.mono() - t0, 'error');
      this.log.error({ err }, 'reconcile pass failed');
    }
  }

  private async pass(): Promise<void> {
    this.health.sync();
    const specErrors = this.health.specErrors;
    const specErrorList = [...specErrors].map(([group, why]) => ({ group, why }));
    void this.registration
      .setSpecErrors(specErrorList, this.lease.lease)
      .catch((err) => this.log.warn({ err }, 'could not publish the groups this agent cannot parse'));
    const assignments = this.view.allAssignments();
    const held = this.holdingsOwner.plannerView();
    const leaving = this.holdingsOwner.leavingGroups();
    const healthy = new Map<string, boolean>();
    for (const g of new Set([...assignments.keys(), ...held.keys()])) {
      // The node-side allowlist (allowlist.ts): the group's spec is checked in HealthRunners; the assignment's own
      // VIPs (what the agent would add) are checked here, so that not even a forged assignment is held.
      const a = assignments.get(g);
      const vipsRefused =
        a !== undefined && vipProblems(this.deps.config, a.record.vips, this.deps.config.interface).length > 0;
      healthy.set(g, this.health.isHealthy(g) && !vipsRefused);
    }
    const steps = planAgent({
      node: this.deps.config.node,
      lease: this.lease.lease,
      leaseSafe: this.lease.isSafe(),
      shuttingDown: this.shuttingDown,
      assignments,
      healthy,
      held,
      leaving,
      specErrors,
      relinquishedEpoch: this.steps.relinquishedEpoch,
      releaseKeyEpoch: this.steps.releaseKeyEpoch,
      newestEpoch: this.steps.newestEpoch,
      kept: this.failsafe?.keptGroups(),
    });
    for (const g of leaving) this.inLane(g, () => this.steps.retryLeaving(g), 'removal retry');
    for (const s of steps)
      if (!this.failsafe?.blocksStep(s)) this.inLane(s.group, () => this.steps.run(s), s.type, stepEpoch(s));
  }

  /** Runs `fn` in the group's lane, unless a step of that group is still in flight (its end runs another pass). */
  private inLane(group: string, fn: () => Promise<void>, step: string, epoch?: number): void {
    if (this.lanes.has(group)) {
      this.skipped.add(group);
      return;
    }
    const run = fn()
      .catch((err) => this.log.error({ err, group, epoch, step }, 'step failed'))
      .finally(() => {
        this.lanes.delete(group);
        if (this.skipped.delete(group)) this.kick();
      });
    this.lanes.set(group, run);
  }
}

function stepEpoch(s: AgentStep): number | undefined {
  return 'epoch' in s ? s.epoch : s.ackEpoch;
}
