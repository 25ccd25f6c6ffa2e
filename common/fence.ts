// The fast fence's numbers (docs/design.md "Fast fence"), shared by the agent (what it sets, what it publishes) and
// the controller (how long it waits after a lease ended). Pure.
import type { LeaseTiming } from './lease.js';

/**
 * How much later than asked the kernel may end a fence element, in the worst case over HZ 100..1000:
 * nf_tables converts the timeout to whole jiffies (rounded down) from the transaction's start stamp and a lookup
 * compares with `jiffies`, which lags real time by up to a tick: at most 2 ticks (20 ms at HZ=100); the stamp is
 * at most 20 ms after the helper's clock reading (a slower send is set again, shortened by its time, or closed:
 * node-agent/native/fence.c FENCE_ACT_NS); 10 ms for clock rate differences and scheduling. Not the address lifetime's 1200 ms: no
 * worker, checked at every lookup.
 */
export const FENCE_SLACK_MS = 50;

/**
 * The window heartbeats pair with by default. After a revocation the leader waits window + slack
 * (revokedFenceWaitMs), so the window is most of a hard failover: detection (3 x 50 ms) + 1150 + 50 + ~20 ms, about
 * 1.4 s. A pause in keepalive answers shorter than the window less one keepalive interval costs nothing: an etcd
 * election with the documented timing (docs/etcd.md: leaderless 300-600 ms after its leader died), and the 1 s
 * freeze of test/e2e/etcd-pause.test.ts (keepalives every 50 ms there).
 */
export const HEARTBEAT_FENCE_WINDOW_MS = 1150;

/**
 * The default fence window. Without heartbeats: as long as the lease proves (an element never outlives the lease it
 * came from), which is free (the controller's wait after the lease's end stays 0) and lets the old holder answer
 * longest. With heartbeats: HEARTBEAT_FENCE_WINDOW_MS, but never past what the lease proves, and never shorter than
 * two keepalive intervals after the renew window (one answer may be missed without closing the fence).
 */
export function defaultFenceWindowMs(
  t: Pick<LeaseTiming, 'ttlSeconds' | 'marginMs'> & Partial<Pick<LeaseTiming, 'renewWindowMs' | 'keepaliveIntervalMs'>>,
  heartbeats = false,
): number {
  const proven = t.ttlSeconds * 1000 - t.marginMs;
  if (!heartbeats) return proven;
  const least = (t.renewWindowMs ?? 0) + 2 * (t.keepaliveIntervalMs ?? 0);
  return Math.min(proven, Math.max(HEARTBEAT_FENCE_WINDOW_MS, least));
}

/** Why a fence window does not fit the lease timing, or undefined when it does. */
export function fenceTimingProblem(windowMs: number, t: LeaseTiming): string | undefined {
  if (windowMs > t.ttlSeconds * 1000 - t.marginMs)
    return `fence window ${windowMs} ms must not exceed ttlSeconds * 1000 - marginMs (${t.ttlSeconds * 1000 - t.marginMs} ms): an element would outlive the lease that proved it`;
  if (windowMs < t.renewWindowMs + t.keepaliveIntervalMs)
    return `fence window ${windowMs} ms must be at least renewWindowMs + keepaliveIntervalMs (${t.renewWindowMs + t.keepaliveIntervalMs} ms): the fence would close between two renewals`;
  return undefined;
}

/** Monotonic ms at which a fence element set on the proof of a keepalive sent at `sentAt` must have ended. */
export function fenceExpiresAt(sentAt: number, windowMs: number): number {
  return sentAt + windowMs;
}

/**
 * How long after the server ended a lease a fence element set on it can still be open (the controller's wait,
 * Safety 3, for a holder whose node record says its VIPs are fenced): the element ends by s + window + slack for
 * a keepalive sent at s, and the server keeps the lease at least until s + TTL.
 */
export function fenceOverhangMs(t: { ttlSeconds: number; fenceWindowMs: number }, slackMs = FENCE_SLACK_MS): number {
  return Math.max(0, t.fenceWindowMs + slackMs - t.ttlSeconds * 1000);
}

/**
 * Heartbeats (docs/design.md "Fast fence", "Detection faster than the lease"): an agent whose node record says
 * `fence.heartbeatMs` puts its heartbeat key that often, and the leading controller revokes the lease of a holder
 * whose heartbeats stopped. A failsafe agent (maxKeepMs > 0) keeps by promises past its lease, so it is never
 * revoked. Every controller version that can revoke decides with this one function, from the record alone.
 */
export function revocable(rec: {
  fence?: { windowMs: number; heartbeatMs?: number | undefined } | undefined;
  failsafe?: { maxKeepMs: number } | undefined;
}): boolean {
  return rec.fence?.heartbeatMs !== undefined && !((rec.failsafe?.maxKeepMs ?? 0) > 0);
}

/**
 * How long after the controller heard that a revocable holder's lease ended its fence can still be open: the whole
 * window and the slack, not fenceOverhangMs. A revocation ends the lease early, so the server no longer keeps it
 * until s + TTL for the last answered keepalive s; it only kept it past s (it answered that keepalive before the
 * lease ended, else the answer was TTL 0 and proved nothing). So s < E <= goneAt, and the element from that proof
 * closes by s + window + slack < goneAt + window + slack. The same holds for an expiry, so the wait does not depend
 * on which it was, nor on which leader revoked.
 */
export function revokedFenceWaitMs(windowMs: number, slackMs = FENCE_SLACK_MS): number {
  return windowMs + slackMs;
}
