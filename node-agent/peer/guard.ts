// What stands between a datagram and the handler besides the MAC: a per-source rate limit (applied before any
// cryptography), a timestamp window with a nonce cache (replays), and the log and metric of every refusal.
import type { Logger } from '../../common/log.js';
import type { RejectReason } from './envelope.js';

/** Token bucket per source address. Forgetting an idle source only gives it a full bucket again. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly o: { ratePerSecond: number; burst: number; maxSources?: number },
    private readonly now: () => number,
  ) {}

  allow(source: string): boolean {
    const t = this.now();
    let b = this.buckets.get(source);
    if (!b) {
      if (this.buckets.size >= (this.o.maxSources ?? 4096)) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.o.burst, at: t };
      this.buckets.set(source, b);
    }
    b.tokens = Math.min(this.o.burst, b.tokens + ((t - b.at) / 1000) * this.o.ratePerSecond);
    b.at = t;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/**
 * Replays: a message is fresh when its timestamp is within maxSkewMs of our clock and its nonce was not seen from
 * that sender; nonces are kept until their timestamp has left the window, so a replay is refused either way. The
 * cache is bounded: when full, new messages are refused ('busy') rather than old nonces forgotten early.
 */
export class ReplayGuard {
  private readonly seen = new Map<string, number>(); // from + nonce -> expiry (wall ms)
  private lastSweep = 0;

  constructor(
    private readonly o: { maxSkewMs: number; maxEntries?: number },
    private readonly now: () => number,
  ) {}

  check(from: string, nonce: string, ts: number): RejectReason | undefined {
    const t = this.now();
    if (Math.abs(t - ts) > this.o.maxSkewMs) return 'stale';
    this.sweep(t);
    const id = `${from}\n${nonce}`;
    if (this.seen.has(id)) return 'replay';
    if (this.seen.size >= (this.o.maxEntries ?? 100_000)) return 'busy';
    this.seen.set(id, ts + this.o.maxSkewMs);
    return undefined;
  }

  get size(): number {
    return this.seen.size;
  }

  private sweep(t: number): void {
    if (t - this.lastSweep < 1000 && this.seen.size < (this.o.maxEntries ?? 100_000)) return;
    this.lastSweep = t;
    for (const [id, exp] of this.seen) if (exp < t) this.seen.delete(id);
  }
}

export interface PeerMetrics {
  rejected(reason: RejectReason): void;
  /** A request served (answered or not), or a request sent and how it ended. */
  request(kind: 'served' | 'answered' | 'timeout'): void;
}
export const NO_PEER_METRICS: PeerMetrics = { rejected: () => undefined, request: () => undefined };

/** Every refusal counted; logged at most once per reason per interval, with how many were not logged. */
export class RejectLog {
  private readonly last = new Map<RejectReason, { at: number; suppressed: number }>();
  readonly counts = new Map<RejectReason, number>();

  constructor(
    private readonly log: Logger,
    private readonly metrics: PeerMetrics,
    private readonly now: () => number,
    private readonly intervalMs = 10_000,
  ) {}

  reject(reason: RejectReason, source: string, detail: string): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    this.metrics.rejected(reason);
    const t = this.now();
    const l = this.last.get(reason);
    if (l && t - l.at < this.intervalMs) {
      l.suppressed++;
      return;
    }
    this.last.set(reason, { at: t, suppressed: 0 });
    this.log.warn(
      { reason, source, detail: detail.slice(0, 200), suppressed: l?.suppressed || undefined },
      'peer message rejected',
    );
  }
}
