// The node lease, with keepalive answers tracked by us (etcd3's own `lost` fires only after 2 x TTL).
//
// Each keepalive is stamped with its send time s. An answer with TTL > 0 proves the lease lives on the server at
// least until s + TTL (the server renewed it after we sent). `validUntil` is the latest such bound. Everything the
// agent holds is bounded by it (DESIGN.md Safety 1-2).
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Clock } from './clock.js';
import { streamStuck } from './etcd-failover.js';
import type { Logger } from './log.js';
import { retry, RetryStopped, type BackoffPolicy } from './retry.js';

export interface LeaseTiming {
  ttlSeconds: number;
  keepaliveIntervalMs: number;
  /** Safety margin kept between the agent's own deadline and the lease's end on the server. */
  marginMs: number;
  /** An answer that took longer than this is not used to renew address lifetimes. */
  renewWindowMs: number;
}

export interface Renewal {
  lease: string;
  sentAt: number;
  answeredAt: number;
  validUntil: number;
  rttMs: number;
}

export interface LeaseKeeperEvents {
  granted: [lease: string];
  renewed: [r: Renewal];
  /** The lease is gone on the server (expired or revoked), or we could not keep it alive in time. */
  lost: [lease: string, why: string];
}

/** Longest address lifetime (whole seconds, at least 1) that an answer with `remainingMs` left allows. */
export function lifetimeFor(remainingMs: number, marginMs: number): number {
  return Math.max(1, Math.floor((remainingMs - marginMs) / 1000));
}

/** The longest lifetime this agent may ever set, published so the controller knows how long to wait (Safety 3). */
export function maxLifetimeSeconds(t: LeaseTiming): number {
  return lifetimeFor(t.ttlSeconds * 1000, t.marginMs);
}

/**
 * How long after the server ends this lease an address set by its agent can still exist:
 * set at most renewWindowMs after the keepalive was sent, for maxLifetime seconds, deleted by the kernel up to
 * kernelSlackMs late. The controller waits this long after the expiry before moving the group (Safety 3).
 */
export function addressOverhangMs(
  t: { ttlSeconds: number; maxLifetimeSeconds: number; renewWindowMs: number },
  kernelSlackMs: number,
): number {
  return Math.max(0, t.maxLifetimeSeconds * 1000 + t.renewWindowMs + kernelSlackMs - t.ttlSeconds * 1000);
}

interface KeepaliveStream {
  write(req: { ID: string }): void;
  end(): void;
  on(event: string, fn: (...args: never[]) => void): unknown;
  removeAllListeners(): unknown;
}

/** Grant retries: 100 ms, doubling, at most 1 s apart. */
const GRANT_BACKOFF: BackoffPolicy = { initialDelayMs: 100, maxDelayMs: 1000 };

export class LeaseKeeper extends EventEmitter<LeaseKeeperEvents> {
  lease: string | undefined;
  validUntil = 0;
  lastRttMs = 0;
  /** Send time of the keepalive behind the latest answer. */
  lastAnsweredSentAt = 0;
  private stream: KeepaliveStream | undefined;
  private pending: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private running = false;
  private granting: Promise<void> | undefined;
  /** What the lease is, in log lines: "node lease" (an agent's) or "controller lease" (the election's). */
  private readonly what: string;

  constructor(
    private readonly client: Etcd3,
    private readonly timing: LeaseTiming,
    private readonly clock: Clock,
    private readonly log: Logger,
    opts: { what?: string } = {},
  ) {
    super();
    this.what = opts.what ?? 'node lease';
  }

  /** Time left (ms) before the agent must stop holding anything, by its own reckoning. */
  safeRemainingMs(): number {
    return this.validUntil - this.timing.marginMs - this.clock.mono();
  }

  isSafe(): boolean {
    return this.lease !== undefined && this.safeRemainingMs() > 0;
  }

  async start(signal: AbortSignal): Promise<void> {
    this.running = true;
    signal.addEventListener('abort', () => this.stopTimers(), { once: true });
    await this.grant();
    this.timer = setInterval(() => this.tick(), this.timing.keepaliveIntervalMs);
  }

  private stopTimers(): void {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    if (this.deadline) clearTimeout(this.deadline);
    this.closeStream();
  }

  /** Stops keeping the lease alive without revoking it: it ends with its TTL (its keys with it). */
  stop(): void {
    this.stopTimers();
  }

  /**
   * Revokes the lease (graceful shutdown): its keys go at once. A grant still in flight is waited for and its lease
   * revoked too (a lease lost just before the stop is re-granted; without this its keys, the node record among them,
   * outlived the agent by a TTL). A failed revoke is tried again, for at most about a second, and then logged: the
   * keys then go with the TTL.
   */
  async revoke(): Promise<void> {
    this.stopTimers();
    if (this.granting) await this.granting.catch(() => undefined);
    const lease = this.lease;
    this.lease = undefined;
    this.validUntil = 0;
    if (lease) await this.revokeId(lease);
  }

  private async revokeId(id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.leaseClient.leaseRevoke({ ID: id });
        this.log.info({ lease: id }, `${this.what} revoked`);
        return;
      } catch (err) {
        // etcd answers "requested lease not found" for a lease already gone: that is done too.
        if (err instanceof Error && /lease not found/i.test(err.message)) return;
        if (attempt >= 4) {
          this.log.warn({ err, lease: id }, `${this.what} revoke failed; its keys go when its TTL ends`);
          return;
        }
        await this.clock.sleep(100 * attempt).catch(() => undefined);
      }
    }
  }

  private async grant(): Promise<void> {
    if (this.granting) return this.granting;
    this.granting = retry(
      async () => {
        const sentAt = this.clock.mono();
        const res = await this.client.leaseClient.leaseGrant({ TTL: this.timing.ttlSeconds, ID: 0 });
        if (res.error) throw new Error(res.error);
        if (!this.running) {
          // Stopped while the grant was in flight: nobody will keep this lease alive, and nothing may be put under it.
          await this.revokeId(String(res.ID));
          return;
        }
        this.lease = String(res.ID);
        this.validUntil = sentAt + Number(res.TTL) * 1000;
        // Answers for another lease say nothing about this one.
        this.lastAnsweredSentAt = 0;
        this.pending = [];
        this.closeStream();
        this.log.info({ lease: this.lease, ttl: Number(res.TTL) }, `${this.what} granted`);
        this.armDeadline();
        this.emit('granted', this.lease);
      },
      {
        backoff: GRANT_BACKOFF,
        clock: this.clock,
        stopped: () => !this.running,
        onRetry: ({ err }) => this.log.warn({ err }, `${this.what} grant failed; retrying`),
      },
    )
      .catch((err: unknown) => {
        if (!(err instanceof RetryStopped)) throw err;
      })
      .finally(() => (this.granting = undefined));
    return this.granting;
  }

  private closeStream(): void {
    const s = this.stream;
    this.stream = undefined;
    this.pending = [];
    if (s) {
      s.removeAllListeners();
      s.on('error', () => undefined);
      try {
        s.end();
      } catch {
        /* already closed */
      }
    }
  }

  private async openStream(): Promise<void> {
    const s = (await this.client.leaseClient.leaseKeepAlive()) as unknown as KeepaliveStream;
    if (!this.running) {
      s.end();
      return;
    }
    this.stream = s;
    s.on('data', (res: { ID: string; TTL: string }) => this.onAnswer(s, res));
    s.on('error', (err: unknown) => {
      if (this.stream === s) {
        this.log.warn({ err }, 'keepalive stream failed');
        this.closeStream();
      }
    });
    s.on('end', () => {
      if (this.stream === s) this.closeStream();
    });
  }

  /**
   * How long the oldest keepalive may go unanswered before its stream counts as stuck: the renew window (an older
   * answer renews no address) and one interval, at least 500 ms (short leases on a loaded machine would otherwise
   * replace streams that are merely slow), doubled after each stuck stream up to 4 s (a slow but live etcd still
   * gets its answers through), back to the first value on an answer.
   */
  private stuckAfterMs(): number {
    const base = Math.max(500, this.timing.renewWindowMs + this.timing.keepaliveIntervalMs);
    return Math.min(base * 2 ** this.stuckInARow, Math.max(base, 4000));
  }

  private stuckInARow = 0;

  private opening = false;
  private tick(): void {
    if (!this.running || !this.lease || this.granting) return;
    if (!this.stream) {
      if (this.opening) return;
      this.opening = true;
      this.openStream()
        .then(() => this.send())
        .catch((err) => this.log.warn({ err }, 'keepalive stream could not open'))
        .finally(() => (this.opening = false));
      return;
    }
    this.send();
  }

  private send(): void {
    if (!this.stream || !this.lease) return;
    // Answers come back in order on one stream: remember each send time. Never drop one: an answer matched to a
    // later send time would overstate the lease. A stream whose oldest request is unanswered for longer than an
    // answer is of use (the renew window), or with many unanswered requests, is replaced instead: on another member
    // (a dead, frozen or leaderless one does not answer), at once.
    const now = this.clock.mono();
    const oldest = this.pending[0];
    if (this.pending.length >= 8 || (oldest !== undefined && now - oldest > this.stuckAfterMs())) {
      const member = streamStuck(this.client, this.stream);
      this.log.warn(
        { unanswered: this.pending.length, oldestMs: oldest === undefined ? 0 : now - oldest, member },
        'keepalive stream stuck; reopening on another etcd member',
      );
      this.stuckInARow = Math.min(this.stuckInARow + 1, 8);
      this.closeStream();
      this.tick();
      return;
    }
    this.pending.push(now);
    try {
      this.stream.write({ ID: this.lease });
    } catch (err) {
      this.log.warn({ err }, 'keepalive write failed');
      this.closeStream();
    }
  }

  private onAnswer(s: unknown, res: { ID: string; TTL: string }): void {
    if (s !== this.stream) return;
    const sentAt = this.pending.shift();
    if (sentAt === undefined || String(res.ID) !== this.lease) return;
    const now = this.clock.mono();
    const ttl = Number(res.TTL);
    if (!(ttl > 0)) {
      this.onLost('lease expired on the server');
      return;
    }
    const rtt = now - sentAt;
    this.lastRttMs = rtt;
    this.stuckInARow = 0;
    const validUntil = sentAt + ttl * 1000;
    if (sentAt > this.lastAnsweredSentAt) this.lastAnsweredSentAt = sentAt;
    if (validUntil > this.validUntil) this.validUntil = validUntil;
    this.armDeadline();
    this.emit('renewed', { lease: this.lease, sentAt, answeredAt: now, validUntil: this.validUntil, rttMs: rtt });
  }

  /**
   * Addresses may be set only right after an answer: its keepalive was sent at most renewWindowMs ago, so that
   * an address lifetime set now ends within the overhang the controller waits for (Safety 2-3).
   */
  isFresh(): boolean {
    return this.isSafe() && this.clock.mono() - this.lastAnsweredSentAt <= this.timing.renewWindowMs;
  }

  /** Resolves true once an answer is fresh enough to set addresses, sending a keepalive at once if needed. */
  async ensureFresh(timeoutMs = this.timing.renewWindowMs): Promise<boolean> {
    if (this.isFresh()) return true;
    if (!this.running || !this.lease) return false;
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(t);
        this.off('renewed', onRenew);
        resolve(ok);
      };
      const onRenew = () => {
        if (this.isFresh()) done(true);
      };
      const t = setTimeout(() => done(this.isFresh()), timeoutMs);
      this.on('renewed', onRenew);
      this.tick();
    });
  }

  /** Fires when no answer came in time: from then on the agent must hold nothing. */
  private armDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    const ms = Math.max(0, this.safeRemainingMs());
    this.deadline = setTimeout(() => {
      this.deadline = undefined;
      if (!this.running) return;
      // Timers run on the event loop's cached time, which can lag the monotonic clock: a timer may fire while a
      // little safe time is left. Then wait for the rest; never leave the deadline unarmed while a lease is held.
      if (this.safeRemainingMs() <= 0) this.emit('lost', this.lease ?? '', 'no keepalive answer in time');
      else this.armDeadline();
    }, ms + 1);
  }

  private onLost(why: string): void {
    const old = this.lease;
    this.log.warn({ lease: old, why }, 'node lease lost; granting a new one');
    this.lease = undefined;
    this.validUntil = 0;
    this.lastAnsweredSentAt = 0;
    this.closeStream();
    this.emit('lost', old ?? '', why);
    void this.grant();
  }
}
