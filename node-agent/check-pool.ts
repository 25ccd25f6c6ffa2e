// Check runs, shared: groups of one agent that name the same check (same type, target, interval and timeout) get
// the results of one run loop, as keepalived's instances share one vrrp_script. Each group keeps its own rise/fall
// hysteresis, weight and name (GroupHealth); what a run does reads none of those, so one run serves them all.
// Ten groups checking the same local service every 100 ms make 10 requests a second, not 100.
import type { Clock } from '../common/clock.js';
import { stableJson } from '../common/hash.js';
import type { HealthCheckSpec } from '../crds/failovergroup.js';
import type { CheckDeps, CheckFn, CheckOutcome } from './checks/index.js';

export type CheckListener = (outcome: CheckOutcome, latencyMs: number) => void;

interface Loop {
  listeners: Set<CheckListener>;
  ac: AbortController;
  /** The latest run's result: a group that joins a running loop starts from it instead of waiting a run. */
  last?: { outcome: CheckOutcome; latencyMs: number };
}

/** What a run depends on: everything of the spec except the group-side name, weight, rise and fall. */
export function runKey(spec: HealthCheckSpec): string {
  return stableJson({ ...spec, name: undefined, weight: undefined, rise: undefined, fall: undefined });
}

/**
 * One attempt, bounded by the spec's timeout and by `signal`. The timeout is a timer cleared when the attempt ends:
 * AbortSignal.timeout's timer was never cleared, so every attempt (10 a second for a 100 ms check) also fired an
 * abort 100 ms later, with its DOMException and abort listeners, after the attempt had already answered.
 */
export async function runCheck(
  fn: CheckFn | undefined,
  spec: HealthCheckSpec,
  deps: CheckDeps,
  signal: AbortSignal,
): Promise<CheckOutcome> {
  if (!fn) return { ok: false, message: `unknown check type ${spec.type}` };
  const run = new AbortController();
  const stop = () => run.abort(signal.reason);
  if (signal.aborted) stop();
  else signal.addEventListener('abort', stop, { once: true });
  const timer = setTimeout(() => run.abort(new DOMException('check timed out', 'TimeoutError')), spec.timeoutMs);
  try {
    return await Promise.race([
      fn(spec, deps, run.signal),
      new Promise<CheckOutcome>((resolve) => {
        if (run.signal.aborted) resolve({ ok: false, message: 'timeout' });
        run.signal.addEventListener('abort', () => resolve({ ok: false, message: 'timeout' }), { once: true });
      }),
    ]);
  } catch (err) {
    return { ok: false, message: String(err) };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', stop);
  }
}

export class CheckPool {
  private readonly loops = new Map<string, Loop>();

  constructor(
    private readonly registry: Record<string, CheckFn>,
    private readonly deps: CheckDeps,
    private readonly clock: Clock,
  ) {}

  /** Loops running now (one per distinct check). */
  get size(): number {
    return this.loops.size;
  }

  /** Calls `listener` with every result of `spec`'s runs until the returned function is called. */
  subscribe(spec: HealthCheckSpec, listener: CheckListener): () => void {
    const key = runKey(spec);
    const running = this.loops.get(key);
    const l: Loop = running ?? { listeners: new Set(), ac: new AbortController() };
    l.listeners.add(listener);
    if (!running) {
      this.loops.set(key, l);
      void this.run(spec, l);
    } else if (l.last) {
      const { outcome, latencyMs } = l.last;
      queueMicrotask(() => {
        if (l.listeners.has(listener)) listener(outcome, latencyMs);
      });
    }
    return () => {
      if (!l.listeners.delete(listener) || l.listeners.size > 0) return;
      l.ac.abort();
      if (this.loops.get(key) === l) this.loops.delete(key);
    };
  }

  private async run(spec: HealthCheckSpec, loop: Loop): Promise<void> {
    const fn = this.registry[spec.type];
    const signal = loop.ac.signal;
    // A lazily loaded check's module, before the first attempt and its timeout (a failed load fails the attempts).
    if (fn?.load) await fn.load().catch(() => undefined);
    while (!signal.aborted) {
      const started = this.clock.mono();
      const outcome = await runCheck(fn, spec, this.deps, signal);
      if (signal.aborted) return;
      const latencyMs = this.clock.mono() - started;
      loop.last = { outcome, latencyMs };
      for (const l of [...loop.listeners]) l(outcome, latencyMs);
      // Fixed rate: the next run starts one interval after this one started.
      const wait = Math.max(0, spec.intervalMs - (this.clock.mono() - started));
      await this.clock.sleep(wait, signal);
    }
  }
}
