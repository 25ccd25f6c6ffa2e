// A node lease for tests without etcd: the test says which keepalives were answered; freshness and safety follow
// LeaseKeeper's rules (common/lease.ts) on the test's clock.
import type { Clock } from '../../common/clock.js';
import type { LeaseView } from '../holdings.js';

export class FakeLease implements LeaseView {
  lease: string | undefined = '1';
  validUntil = 0;
  lastAnsweredSentAt = -Infinity;
  constructor(
    private readonly clock: Pick<Clock, 'mono'>,
    private readonly timing: { ttlMs: number; marginMs: number; windowMs: number },
  ) {}
  /** A keepalive sent `ago` ms before now was answered with the full TTL. */
  answer(ago = 0): void {
    this.answerSentAt(this.clock.mono() - ago);
  }
  /** A keepalive sent at `sentAt` was answered with the full TTL. */
  answerSentAt(sentAt: number): void {
    this.lastAnsweredSentAt = sentAt;
    this.validUntil = Math.max(this.validUntil, sentAt + this.timing.ttlMs);
  }
  isSafe(): boolean {
    return this.lease !== undefined && this.validUntil - this.timing.marginMs - this.clock.mono() > 0;
  }
  isFresh(): boolean {
    return this.isSafe() && this.clock.mono() - this.lastAnsweredSentAt <= this.timing.windowMs;
  }
  ensureFresh(): Promise<boolean> {
    return Promise.resolve(this.isFresh());
  }
}
