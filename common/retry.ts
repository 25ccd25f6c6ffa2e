// Retry with backoff: the one loop every "try again" in vipwarden goes through. The delays come from cockatiel's
// exponential backoff (its generators, with an injectable random source for the jitter); the waits go through the
// injected Clock, so the loops are tested on fake time.
import { ExponentialBackoff, noJitterGenerator, type GeneratorFn, type IBackoff } from 'cockatiel';
import type { Clock } from './clock.js';

export interface BackoffPolicy {
  /** The first delay. */
  initialDelayMs: number;
  /** No delay is longer than this. */
  maxDelayMs: number;
  /** 'none': initial, 2x, 4x ... (default). 'half': each step drawn from [0.5, 1) of that. */
  jitter?: 'none' | 'half';
  /** For the jitter; Math.random by default. */
  random?: () => number;
}

function generator(p: BackoffPolicy): GeneratorFn<number> {
  if (p.jitter !== 'half') return noJitterGenerator;
  const random = p.random ?? Math.random;
  return (attempts, options) => {
    const [step, next] = noJitterGenerator(attempts, options);
    return [Math.round(step * (0.5 + random() / 2)), next];
  };
}

function factory(p: BackoffPolicy): ExponentialBackoff<number> {
  return new ExponentialBackoff({ generator: generator(p), initialDelay: p.initialDelayMs, maxDelay: p.maxDelayMs });
}

/** The delay after the `attempt`-th failure (1-based), pure given the policy's `random`. */
export function backoffDelay(attempt: number, p: BackoffPolicy): number {
  let b: IBackoff<unknown> = factory(p).next();
  for (let i = 1; i < attempt; i++) b = b.next(undefined);
  return b.duration;
}

/** A backoff that remembers where it is: `next()` after each failure, `reset()` after a success. */
export class Backoff {
  private readonly factory: ExponentialBackoff<number>;
  private current: IBackoff<unknown> | undefined;

  constructor(policy: BackoffPolicy) {
    this.factory = factory(policy);
  }

  next(): number {
    this.current = this.current ? this.current.next(undefined) : this.factory.next();
    return this.current.duration;
  }

  reset(): void {
    this.current = undefined;
  }
}

/** Thrown by `retry` when it stops because the signal was aborted or `stopped()` said so. */
export class RetryStopped extends Error {
  constructor(readonly attempts: number) {
    super(`stopped after ${attempts} attempt(s)`);
    this.name = 'RetryStopped';
  }
}

export interface RetryOptions {
  backoff: BackoffPolicy;
  clock: Pick<Clock, 'sleep'>;
  /** Infinity by default: try until it works or the loop is stopped. */
  maxAttempts?: number;
  signal?: AbortSignal;
  /** Checked before every attempt and after every failure; true ends the loop with RetryStopped. */
  stopped?: () => boolean;
  /** False: the error is thrown at once (default: every error is retried). */
  retryable?: (err: unknown) => boolean;
  /** A wait the error itself asks for (a Retry-After header); the longer of it and the backoff is taken. */
  delayHint?: (err: unknown) => number | undefined;
  /** Called before each wait, e.g. to log with `{ err }`. */
  onRetry?: (info: { err: unknown; attempt: number; delayMs: number }) => void;
}

/**
 * Runs `fn(attempt)` until it resolves. A failure is retried after the backoff's delay while attempts are left and
 * the error is retryable; the last error is thrown otherwise.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  const max = o.maxAttempts ?? Infinity;
  const stopped = () => o.signal?.aborted === true || o.stopped?.() === true;
  const backoff = new Backoff(o.backoff);
  for (let attempt = 1; ; attempt++) {
    if (stopped()) throw new RetryStopped(attempt - 1);
    try {
      return await fn(attempt);
    } catch (err) {
      if (stopped()) throw new RetryStopped(attempt);
      if (attempt >= max || !(o.retryable?.(err) ?? true)) throw err;
      const delayMs = Math.min(Math.max(o.delayHint?.(err) ?? 0, backoff.next()), o.backoff.maxDelayMs);
      o.onRetry?.({ err, attempt, delayMs });
      await o.clock.sleep(delayMs, o.signal);
    }
  }
}
