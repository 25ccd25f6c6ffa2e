// Health checks with rise/fall hysteresis, run apart from the decision logic (keepalived's habit).
// One GroupHealth per group the node is a candidate for; it gets each check's results from a CheckPool (one run
// loop per distinct check, check-pool.ts) and reports the group's state (healthy, keepalived-style priority delta) whenever it changes.
import { EventEmitter } from 'node:events';
import type { Clock } from '../common/clock.js';
import type { CheckResult } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';
import type { HealthCheckSpec } from '../crds/failovergroup.js';
import type { CheckDeps, CheckFn, CheckOutcome } from './checks/index.js';
import { CheckPool } from './check-pool.js';

export interface CheckState {
  /** undefined until the first result: the first result decides, hysteresis applies after. */
  ok: boolean | undefined;
  successes: number;
  failures: number;
  /** Wall time of the first failure of the current failure streak. */
  firstFailAt?: number;
  message?: string;
  latencyMs?: number;
}

/** Pure hysteresis step. */
export function step(
  s: CheckState,
  outcome: CheckOutcome,
  rise: number,
  fall: number,
  now: number,
  latencyMs?: number,
): CheckState {
  const next: CheckState = {
    ok: s.ok,
    successes: outcome.ok ? s.successes + 1 : 0,
    failures: outcome.ok ? 0 : s.failures + 1,
    firstFailAt: outcome.ok ? undefined : (s.firstFailAt ?? now),
    message: outcome.message,
    latencyMs,
  };
  if (s.ok === undefined) next.ok = outcome.ok;
  else if (s.ok && next.failures >= fall) next.ok = false;
  else if (!s.ok && next.successes >= rise) next.ok = true;
  return next;
}

export interface GroupHealthState {
  /** False until every check has a first result. */
  known: boolean;
  healthy: boolean;
  priorityDelta: number;
  checks: CheckResult[];
  failingSince?: number;
}

/** Folds check states into the group's state: weight-0 checks are required; weights add to priority. */
export function summarize(
  specs: readonly HealthCheckSpec[],
  states: ReadonlyMap<string, CheckState>,
): GroupHealthState {
  let known = true;
  let healthy = true;
  let delta = 0;
  let failingSince: number | undefined;
  const checks: CheckResult[] = [];
  for (const c of specs) {
    const s = states.get(c.name);
    if (!s || s.ok === undefined) {
      known = false;
      checks.push({ name: c.name, ok: false, message: 'no result yet' });
      continue;
    }
    checks.push({ name: c.name, ok: s.ok, message: s.message, latencyMs: s.latencyMs });
    if (c.weight === 0) {
      if (!s.ok) {
        healthy = false;
        if (s.firstFailAt !== undefined) failingSince = Math.min(failingSince ?? Infinity, s.firstFailAt);
      }
    } else if (c.weight > 0 && s.ok) delta += c.weight;
    else if (c.weight < 0 && !s.ok) delta += c.weight;
  }
  return { known, healthy: known && healthy, priorityDelta: delta, checks, failingSince };
}

export interface GroupHealthEvents {
  change: [state: GroupHealthState];
  result: [check: string, ok: boolean, latencyMs: number];
}

export class GroupHealth extends EventEmitter<GroupHealthEvents> {
  private readonly states = new Map<string, CheckState>();
  private readonly unsubscribe: (() => void)[] = [];
  private stopped = false;
  private last: GroupHealthState | undefined;
  private readonly pool: CheckPool;

  /** `pool`: where the checks run, shared with other groups (HealthRunners); default: a pool of this group's own. */
  constructor(
    readonly group: string,
    readonly specs: readonly HealthCheckSpec[],
    registry: Record<string, CheckFn>,
    deps: CheckDeps,
    private readonly clock: Clock,
    private readonly log: Logger,
    pool?: CheckPool,
  ) {
    super();
    this.pool = pool ?? new CheckPool(registry, deps, clock);
  }

  get state(): GroupHealthState {
    return this.last ?? summarize(this.specs, this.states);
  }

  start(): void {
    this.last = summarize(this.specs, this.states);
    for (const spec of this.specs)
      this.unsubscribe.push(this.pool.subscribe(spec, (outcome, latency) => this.onResult(spec, outcome, latency)));
  }

  stop(): void {
    this.stopped = true;
    for (const u of this.unsubscribe.splice(0)) u();
  }

  private onResult(spec: HealthCheckSpec, outcome: CheckOutcome, latency: number): void {
    if (this.stopped) return;
    this.emit('result', spec.name, outcome.ok, latency);
    const prev = this.states.get(spec.name) ?? { ok: undefined, successes: 0, failures: 0 };
    const next = step(prev, outcome, spec.rise, spec.fall, this.clock.wall(), latency);
    this.states.set(spec.name, next);
    if (prev.ok !== next.ok)
      this.log.info({ group: this.group, check: spec.name, ok: next.ok, message: next.message }, 'check changed state');
    const summary = summarize(this.specs, this.states);
    if (!this.last || changed(this.last, summary)) {
      this.last = summary;
      this.emit('change', summary);
    } else {
      this.last = summary;
    }
  }
}

function changed(a: GroupHealthState, b: GroupHealthState): boolean {
  return (
    a.known !== b.known ||
    a.healthy !== b.healthy ||
    a.priorityDelta !== b.priorityDelta ||
    a.checks.length !== b.checks.length ||
    a.checks.some((c, i) => c.ok !== b.checks[i]?.ok)
  );
}
