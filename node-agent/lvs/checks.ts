// Real-server checks: every director (holder and standbys) runs each virtual service's check against each of its
// real servers, so that a new director starts with a warm view. The checks themselves are the agent's
// (node-agent/checks: http, tcp, mysql) pointed at the real server; hysteresis is health.ts's `step` (rise/fall).
import { EventEmitter } from 'node:events';
import type { Clock } from '../../common/clock.js';
import { fingerprint } from '../../common/hash.js';
import type { Logger } from '../../common/log.js';
import type { HealthCheckSpec } from '../../crds/failovergroup.js';
import type { RealServerCheckSpec } from '../../crds/virtualserver.js';
import type { CheckDeps, CheckFn, CheckOutcome } from '../checks/index.js';
import { step, type CheckState } from '../health.js';

export interface CheckTarget {
  /** realServerId(): "<group>/<service>/<address:port>". */
  id: string;
  address: string;
  /** The real server's port; the check's own port wins. */
  port: number;
  check: RealServerCheckSpec;
}

/** May the agent probe this address? (the node allowlist: a refusal is a failed check, with the reason). */
export type TargetPolicy = (address: string, port: number) => string | undefined;

/** The agent's check spec for one real server: the same http / tcp / mysql code as the group checks. */
export function checkSpecFor(t: CheckTarget): HealthCheckSpec {
  const c = t.check;
  const port = c.port ?? t.port;
  const base = {
    name: 'real-server',
    type: c.type,
    intervalMs: c.intervalMs,
    timeoutMs: c.timeoutMs,
    rise: c.rise,
    fall: c.fall,
    weight: 0,
  } as const;
  switch (c.type) {
    case 'http':
      return {
        ...base,
        http: {
          port,
          host: t.address,
          path: c.http?.path ?? '/',
          scheme: c.http?.scheme ?? 'http',
          ...(c.http?.expectStatus ? { expectStatus: c.http.expectStatus } : {}),
          ...(c.http?.expectBody !== undefined ? { expectBody: c.http.expectBody } : {}),
        },
      };
    case 'tcp':
      return { ...base, tcp: { port, host: t.address } };
    case 'mysql':
      return {
        ...base,
        mysql: { host: t.address, port, ...(c.mysql?.credentials ? { credentials: c.mysql.credentials } : {}) },
      };
  }
}

interface Runner {
  hash: string;
  ac: AbortController;
  state: CheckState;
}

export interface RealServerChecksEvents {
  /** A real server went up or down (after rise/fall), or had its first result. */
  change: [id: string, ok: boolean, message: string | undefined];
  result: [id: string, ok: boolean, latencyMs: number];
}

export class RealServerChecks extends EventEmitter<RealServerChecksEvents> {
  private readonly runners = new Map<string, Runner>();
  private signal: AbortSignal | undefined;

  constructor(
    private readonly deps: {
      registry: Record<string, CheckFn>;
      checkDeps: CheckDeps;
      clock: Clock;
      log: Logger;
      policy?: TargetPolicy;
    },
  ) {
    super();
  }

  start(signal: AbortSignal): void {
    this.signal = signal;
    signal.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    for (const r of this.runners.values()) r.ac.abort();
    this.runners.clear();
  }

  /** Up (true), down (false) or no result yet (undefined). */
  health(id: string): boolean | undefined {
    return this.runners.get(id)?.state.ok;
  }

  message(id: string): string | undefined {
    return this.runners.get(id)?.state.message;
  }

  /** Runs exactly these targets: new ones start, changed ones restart, others stop. Keeps state of the rest. */
  sync(targets: readonly CheckTarget[]): void {
    if (!this.signal || this.signal.aborted) return;
    const want = new Map(targets.map((t) => [t.id, t]));
    for (const [id, r] of this.runners) {
      const t = want.get(id);
      if (!t || fingerprint(checkSpecFor(t)) !== r.hash) {
        r.ac.abort();
        this.runners.delete(id);
      }
    }
    for (const [id, t] of want) {
      if (this.runners.has(id)) continue;
      const spec = checkSpecFor(t);
      const r: Runner = {
        hash: fingerprint(spec),
        ac: new AbortController(),
        state: { ok: undefined, successes: 0, failures: 0 },
      };
      this.runners.set(id, r);
      void this.loop(t, spec, r);
    }
  }

  private async loop(t: CheckTarget, spec: HealthCheckSpec, r: Runner): Promise<void> {
    const { clock, registry, checkDeps, policy, log } = this.deps;
    const signal = r.ac.signal;
    const fn = registry[spec.type];
    while (!signal.aborted) {
      const started = clock.mono();
      let outcome: CheckOutcome;
      const refused = policy?.(t.address, spec.http?.port ?? spec.tcp?.port ?? spec.mysql?.port ?? t.port);
      if (refused !== undefined) outcome = { ok: false, message: refused };
      else if (!fn) outcome = { ok: false, message: `unknown check type ${spec.type}` };
      else {
        const run = AbortSignal.any([signal, AbortSignal.timeout(spec.timeoutMs)]);
        try {
          outcome = await Promise.race([
            fn(spec, checkDeps, run),
            new Promise<CheckOutcome>((resolve) =>
              run.addEventListener('abort', () => resolve({ ok: false, message: 'timeout' }), { once: true }),
            ),
          ]);
        } catch (err) {
          outcome = { ok: false, message: String(err) };
        }
      }
      if (signal.aborted) return;
      const latency = clock.mono() - started;
      const prev = r.state;
      r.state = step(prev, outcome, spec.rise, spec.fall, clock.wall(), latency);
      this.emit('result', t.id, outcome.ok, latency);
      if (prev.ok !== r.state.ok) {
        log.info({ realServer: t.id, up: r.state.ok, message: r.state.message }, 'real server changed state');
        this.emit('change', t.id, r.state.ok === true, r.state.message);
      }
      await clock.sleep(Math.max(0, spec.intervalMs - (clock.mono() - started)), signal);
    }
  }
}
