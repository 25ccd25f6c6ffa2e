// When the holder's address lifetimes are renewed (DESIGN.md Safety 2; docs/design.md "etcd leader elections"): at
// once after every keepalive answer, and once more just before that answer stops being fresh if no newer answer
// came by then (the top-up).
//
// Kernel lifetimes are whole seconds. A renewal right after an answer sent at s sets one that ends at s + rtt + L
// (L = 1 s with the default 2 s lease); the same lifetime set at s + window - guard ends window - guard - rtt later
// (about 400 ms with the default 500 ms window). That is margin for a pause in the answers, which an etcd leader
// election causes: the CI once lost a VIP for 260 ms there, the address deleted by the kernel 980 ms after its last
// renewal. The top-up changes no bound: Safety 3's overhang already allows an address set as late as s + window with
// the longest lifetime, the command carries the same deadline (vw-before refuses it after s + window), and
// Holdings.renew() checks freshness and the lease as for every renewal. In steady state the next answer comes
// before the top-up is due and cancels it, so it costs nothing; it runs only when answers stop.
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/log.js';

/** Runs `fn` after `ms`; returns a function that cancels it. */
export type Schedule = (fn: () => void, ms: number) => () => void;

export const realSchedule: Schedule = (fn, ms) => {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
};

/** How long before the fresh window ends the top-up starts: time for the command to reach vw-before. */
export function topUpGuardMs(windowMs: number): number {
  return Math.min(100, Math.floor(windowMs / 2));
}

/** A top-up due sooner than this after the answer's own renewal would gain too little to be worth a command. */
const MIN_TOPUP_GAIN_MS = 50;

export interface RenewalsDeps {
  /** Holdings: renew() sets every held address's lifetime from the freshest answer, if it is still fresh. */
  holdings: { renew(): Promise<boolean> };
  clock: Clock;
  /** The lease's renewWindowMs: how long after its send time an answer may still set addresses. */
  windowMs: number;
  log: Logger;
  schedule?: Schedule;
}

export class Renewals {
  private cancelTopUp: (() => void) | undefined;
  private stopped = false;
  /** Top-ups that ran (no newer answer came in time), for the tests and the log. */
  topUps = 0;

  constructor(private readonly deps: RenewalsDeps) {}

  /** A keepalive answer came; `sentAt` is the send time of the freshest answered keepalive. */
  onAnswer(sentAt: number): void {
    if (this.stopped) return;
    this.cancelTopUp?.();
    this.cancelTopUp = undefined;
    this.run('answer');
    const { windowMs, clock } = this.deps;
    const delay = sentAt + windowMs - topUpGuardMs(windowMs) - clock.mono();
    if (delay < MIN_TOPUP_GAIN_MS) return;
    this.cancelTopUp = (this.deps.schedule ?? realSchedule)(() => {
      this.cancelTopUp = undefined;
      if (this.stopped) return;
      this.topUps++;
      this.deps.log.debug({ sentAt }, 'no newer keepalive answer: topping up address lifetimes');
      this.run('top-up');
    }, delay);
  }

  stop(): void {
    this.stopped = true;
    this.cancelTopUp?.();
    this.cancelTopUp = undefined;
  }

  private run(why: 'answer' | 'top-up'): void {
    this.deps.holdings.renew().catch((err) => this.deps.log.error({ err, why }, 'renewing address lifetimes failed'));
  }
}
