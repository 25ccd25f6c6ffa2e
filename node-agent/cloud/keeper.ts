// Keeping the floating IP in line while this node holds the group. A cloud API has no conditional assign: an old
// holder's assign call that the API runs late (a retry in flight, a queued action) can point the IP back at the old
// holder after the new holder's call. So the holder looks at the assignment on a period and points the IP at itself
// again when it points elsewhere, but only while its epoch is still current (DESIGN.md Safety 5): a node that no
// longer holds the current epoch never calls assign, so the period cannot become a late call of its own.
import { Counter, type Registry } from 'prom-client';
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/log.js';
import { ensureAssigned, type FloatingIpProvider, type RetryPolicy } from './provider.js';

export interface KeepOptions {
  provider: FloatingIpProvider;
  ip: string;
  /** False once the assignment that asked for this has moved on. */
  isCurrent(): boolean;
  /** Aborted by a release or a lost lease: the period ends. */
  signal: AbortSignal;
  /** Resolves true when a fresh keepalive answer shows this node's lease alive (ResourceContext.confirmLease). */
  confirm?(): Promise<boolean>;
  periodMs: number;
  retry: RetryPolicy;
  clock: Clock;
  log: Logger;
  /** Called once per re-assert, before the assign (the IP pointed at `from`, not at this node). */
  onReassert?(from: string | null, to: string): void;
  random?: () => number;
}

export type KeepEnd = 'released' | 'superseded';

/** Checks the floating IP every `periodMs` until the signal aborts or the epoch moves on; never throws. */
export async function keepInLine(o: KeepOptions): Promise<KeepEnd> {
  const stop = (): KeepEnd | undefined => (o.signal.aborted ? 'released' : !o.isCurrent() ? 'superseded' : undefined);
  for (;;) {
    await o.clock.sleep(o.periodMs, o.signal);
    const early = stop();
    if (early) return early;
    let self: string;
    let holder: string | null;
    try {
      self = await o.provider.self(o.signal);
      holder = await o.provider.holderOf(o.ip, o.signal);
    } catch (err) {
      const end = stop();
      if (end) return end;
      o.log.warn({ err, nextCheckInMs: o.periodMs }, 'floating IP check failed');
      continue;
    }
    if (holder === self) continue;
    // Checked again after the look: the answer may have taken long, and the epoch may have moved on meanwhile. A
    // timer that fires as a frozen agent wakes sees its old view; the lease must answer before anything changes.
    const confirmed = o.confirm ? await o.confirm().catch(() => false) : true;
    const end = stop();
    if (end) return end;
    if (!confirmed) {
      o.log.warn(
        { provider: o.provider.name, ip: o.ip, from: holder, nextCheckInMs: o.periodMs },
        'floating IP points elsewhere, but no fresh keepalive answer confirms this node’s lease: not re-asserting',
      );
      continue;
    }
    o.log.warn(
      { provider: o.provider.name, ip: o.ip, from: holder, to: self },
      'floating IP points elsewhere while this node holds the current epoch: re-asserting',
    );
    o.onReassert?.(holder, self);
    try {
      const out = await ensureAssigned({ ...o });
      if (out.result === 'superseded') return stop() ?? 'superseded';
      o.log.info({ result: out.result, attempts: out.attempts }, 'floating IP re-asserted');
    } catch (err) {
      o.log.error({ err, nextCheckInMs: o.periodMs }, 'floating IP re-assert failed');
    }
  }
}

/** vipwarden_cloud_floating_ip_reasserts_total{group,provider}, registered once per registry. */
export function reassertCounter(registry: Registry): Counter<'group' | 'provider'> {
  const name = 'vipwarden_cloud_floating_ip_reasserts_total';
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<'group' | 'provider'>;
  return new Counter({
    name,
    help: 'Times the holder found its group’s floating IP pointing elsewhere and pointed it at itself again.',
    labelNames: ['group', 'provider'],
    registers: [registry],
  });
}
