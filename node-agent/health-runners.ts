// The health side of the agent: one GroupHealth runner per group that names this node, restarted only when the
// group's checks change; the health record each group publishes; groups held down after a failed acquire; and the
// groups whose spec this agent cannot parse (version skew), which are never healthy here because nothing can check
// them.
import type { Clock } from '../common/clock.js';
import type { Exec } from '../common/exec.js';
import { fingerprint } from '../common/hash.js';
import type { HealthRecord } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';
import type { Spec } from '../crds/failovergroup.js';
import { checks as defaultChecks, type CheckFn } from './checks/index.js';
import { CheckPool } from './check-pool.js';
import type { ClusterView } from './cluster-view.js';
import type { AgentConfig } from './config.js';
import { GroupHealth, type GroupHealthState } from './health.js';
import type { HealthPublisher } from './health-publisher.js';
import type { AgentMetrics } from './metrics.js';
import { refusal } from './allowlist.js';

interface Runner {
  checksHash: string;
  /** Why the node-side allowlist (allowlist.ts) refuses the group here; then the runner runs no checks. */
  refused: string | undefined;
  health: GroupHealth;
  /** The verdict of the checks this runner replaced, until its own first verdict (a check edit is no failure). */
  carried?: boolean;
}

export interface HealthRunnersDeps {
  config: AgentConfig;
  view: ClusterView;
  exec: Exec;
  clock: Clock;
  log: Logger;
  metrics: AgentMetrics;
  publisher: HealthPublisher;
  checkRegistry?: Record<string, CheckFn>;
  /** Whether this node holds the group now. */
  holds: (group: string) => boolean;
  /** Called when a group's health changed (the agent runs a pass). */
  onChange: () => void;
  /** Told, on every sync, the groups that name this node (the LVS director checks their real servers). */
  onCandidates?: (groups: ReadonlyMap<string, Spec>) => void;
}

export class HealthRunners {
  private readonly runners = new Map<string, Runner>();
  /** Per group: held unhealthy until `until` (monotonic ms) after its acquire failed, and why. */
  private readonly acquireFailures = new Map<string, { until: number; message: string }>();
  /** Per group whose spec does not parse here: why. */
  readonly specErrors = new Map<string, string>();
  /** Per spec (the view hands out one object per record revision): its checks' fingerprint and allowlist refusal. */
  private readonly derived = new WeakMap<Spec, { checksHash: string; refused: string | undefined }>();

  /** The check runs, shared by the groups that name the same check (check-pool.ts). */
  private readonly pool: CheckPool;

  constructor(private readonly d: HealthRunnersDeps) {
    this.pool = new CheckPool(d.checkRegistry ?? defaultChecks, { exec: d.exec, config: d.config }, d.clock);
  }

  groups(): string[] {
    return [...this.runners.keys()];
  }

  /** Starts and stops runners to match the groups that name this node. */
  sync(): void {
    const want = new Map<string, Spec>();
    this.specErrors.clear();
    for (const g of this.d.view.groupNames()) {
      const r = this.d.view.readSpec(g);
      if (r.kind === 'error') {
        this.specErrors.set(g, r.why);
      } else if (r.kind === 'ok' && r.spec.nodes.some((n) => n.name === this.d.config.node)) want.set(g, r.spec);
    }
    this.d.onCandidates?.(want);
    const carried = new Map<string, boolean>();
    for (const [g, rt] of this.runners) {
      const spec = want.get(g);
      const d = spec && this.derivedOf(spec);
      if (!d || d.checksHash !== rt.checksHash || d.refused !== rt.refused) {
        const s = rt.health.state;
        const verdict = s.known ? s.healthy : rt.carried;
        if (spec && verdict !== undefined && rt.refused === undefined) carried.set(g, verdict);
        rt.health.stop();
        this.runners.delete(g);
        if (!spec) void this.d.publisher.forget(g);
      }
    }
    for (const [g, spec] of want) if (!this.runners.has(g)) this.startRunner(g, spec, carried.get(g));
  }

  private startRunner(g: string, spec: Spec, carried?: boolean): void {
    const { config, exec, clock, log } = this.d;
    // A refused group's checks never run: their targets may be what the allowlist refused.
    const { checksHash, refused } = this.derivedOf(spec);
    const checks = refused === undefined ? spec.checks : [];
    const registry = this.d.checkRegistry ?? defaultChecks;
    const health = new GroupHealth(g, checks, registry, { exec, config }, clock, log, this.pool);
    const rt: Runner = {
      checksHash,
      refused,
      health,
      carried: refused === undefined ? carried : undefined,
    };
    if (refused !== undefined) log.warn({ group: g, why: refused }, 'refusing the group: agent.yaml does not allow it');
    this.runners.set(g, rt);
    health.on('change', (state) => {
      if (this.runners.get(g) !== rt) return;
      // A holder that turns unhealthy publishes its health together with its release (one transaction),
      // so that the controller moves the group at once instead of first asking for the release.
      if (!(this.d.holds(g) && !state.healthy)) void this.publish(g);
      this.d.onChange();
    });
    health.on('result', (check, ok, latency) => this.d.metrics.checkResult(g, check, ok, latency));
    health.start();
    void this.publish(g);
  }

  private derivedOf(spec: Spec): { checksHash: string; refused: string | undefined } {
    let d = this.derived.get(spec);
    if (!d) {
      d = { checksHash: fingerprint(spec.checks), refused: refusal(this.d.config, spec, this.d.config.interface) };
      this.derived.set(spec, d);
    }
    return d;
  }

  stopAll(): void {
    for (const rt of this.runners.values()) rt.health.stop();
  }

  /**
   * A graceful stop: from now on every group is unhealthy here, with a failing check that says why. The release
   * writes this health in the same transaction, and the node is no candidate for a failback while it stops (a CI
   * run had the controller fail a group back to a node in its shutdown grace, then move it again as lease-expired).
   */
  drain(message: string): void {
    this.draining = message;
  }

  private draining: string | undefined;

  /** Why the group is unhealthy here whatever its checks say: a stop (drain), or a failed acquire's hold-down. */
  private heldDown(group: string): { name: string; message: string } | undefined {
    if (this.draining !== undefined) return { name: 'shutdown', message: this.draining };
    const f = this.acquireFailures.get(group);
    return f && f.until > this.d.clock.mono() ? { name: 'acquire', message: f.message } : undefined;
  }

  /** Healthy here. A group without a runner counts as healthy only when it has no record (it is being deleted). */
  isHealthy(group: string): boolean {
    if (this.heldDown(group) || this.specErrors.has(group)) return false;
    const rt = this.runners.get(group);
    if (!rt) return this.d.view.readSpec(group).kind === 'absent';
    if (rt.refused !== undefined) return false;
    const s = rt.health.state;
    return s.known ? s.healthy : (rt.carried ?? false);
  }

  private state(group: string): GroupHealthState | undefined {
    const rt = this.runners.get(group);
    if (!rt) return undefined;
    const s = rt.health.state;
    if (rt.refused !== undefined)
      return { ...s, healthy: false, checks: [...s.checks, { name: 'allowlist', ok: false, message: rt.refused }] };
    const f = this.heldDown(group);
    if (f) return { ...s, healthy: false, checks: [...s.checks, { name: f.name, ok: false, message: f.message }] };
    return s;
  }

  record(group: string): HealthRecord | undefined {
    const rt = this.runners.get(group);
    const s = this.state(group);
    if (!rt || !s || !s.known) return undefined;
    return {
      healthy: s.healthy,
      priorityDelta: s.priorityDelta,
      checks: s.checks,
      checksHash: rt.checksHash,
      at: this.d.clock.wall(),
      ...(s.failingSince !== undefined ? { failingSince: s.failingSince } : {}),
    };
  }

  publish(group: string): Promise<void> {
    const rec = this.record(group);
    return rec ? this.d.publisher.publish(group, rec) : Promise.resolve();
  }

  /** An acquire failed: the group is unhealthy here for `holdDownMs`, so that another node takes it. */
  failAcquire(group: string, message: string, holdDownMs: number): void {
    this.acquireFailures.set(group, { until: this.d.clock.mono() + holdDownMs, message });
    setTimeout(() => {
      void this.publish(group);
      this.d.onChange();
    }, holdDownMs + 10).unref();
  }
}
