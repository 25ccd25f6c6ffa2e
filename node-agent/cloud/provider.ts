// Cloud floating IPs: the interface each provider implements (one file per cloud), and the provider-neutral
// "make the floating IP point at this machine" loop with its retries. The loop, not the provider, decides when to
// stop: as soon as the assignment that asked for it is no longer current (DESIGN.md Safety 5), or the budget of
// attempts is spent.
import { readFile } from 'node:fs/promises';
import type { Clock } from '../../common/clock.js';
import type { Logger } from '../../common/log.js';
import { backoffDelay, retry, RetryStopped } from '../../common/retry.js';
import type { AgentConfig } from '../config.js';

/** What a cloud must offer: who am I, where does the IP point, point it at me. */
export interface FloatingIpProvider {
  readonly name: string;
  /** This machine's id at the provider (from the agent configuration, else the metadata service). */
  self(signal: AbortSignal): Promise<string>;
  /** The instance the floating IP points at now, or null when unassigned. */
  holderOf(ip: string, signal: AbortSignal): Promise<string | null>;
  /** Asks the provider to point the IP at `instance` and resolves once the provider reports it done. */
  assign(ip: string, instance: string, signal: AbortSignal): Promise<void>;
}

/** What a provider file gets to build its provider from. */
export interface ProviderDeps {
  /** agent.yaml's `cloud` section; each provider reads its own part (e.g. cloud.digitalocean). */
  cloud: AgentConfig['cloud'];
  /** Reads the API token now (so that a rotated token file is picked up). */
  token(): Promise<string>;
  requestTimeoutMs: number;
  clock: Clock;
  fetch: typeof fetch;
}

export type ProviderFactory = (deps: ProviderDeps) => FloatingIpProvider;

/** An answer from a cloud API (or the lack of one), classified for the retry loop. */
export class CloudApiError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    /** From a Retry-After (or provider-specific) header. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'CloudApiError';
  }
}

/** Statuses worth another try: rate limits, conflicts with an action in progress, server-side trouble. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 422 || status === 423 || status === 429 || status >= 500;
}

export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : Math.max(0, t - nowMs);
}

export interface RetryPolicy {
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

/** Exponential backoff with jitter in [0.5, 1) of the step (pure, given `random`). */
export function backoffMs(attempt: number, p: RetryPolicy, random: () => number = Math.random): number {
  return backoffDelay(Math.max(1, attempt), { ...p, jitter: 'half', random });
}

export type EnsureOutcome =
  { result: 'already' | 'assigned'; instance: string; attempts: number } | { result: 'superseded'; attempts: number };

export interface EnsureOptions {
  provider: FloatingIpProvider;
  ip: string;
  /** False once the assignment that asked for this has moved on. */
  isCurrent(): boolean;
  signal: AbortSignal;
  retry: RetryPolicy;
  clock: Clock;
  log: Logger;
  random?: () => number;
}

/**
 * Makes the floating IP point at this machine: look, assign if needed, look again. Checks the epoch before every
 * call that changes anything; retries what is retryable with backoff; throws the last error once the attempts are
 * spent or on an error that no retry can fix (bad token, unknown IP).
 */
export async function ensureAssigned(o: EnsureOptions): Promise<EnsureOutcome> {
  let assignedOnce = false;
  let attempts = 0;
  const superseded = () => !o.isCurrent() || o.signal.aborted;
  try {
    return await retry<EnsureOutcome>(
      async (attempt) => {
        attempts = attempt;
        const self = await o.provider.self(o.signal);
        const holder = await o.provider.holderOf(o.ip, o.signal);
        if (holder === self)
          return { result: assignedOnce ? 'assigned' : 'already', instance: self, attempts: attempt };
        if (superseded()) return { result: 'superseded', attempts: attempt };
        o.log.info(
          { provider: o.provider.name, ip: o.ip, from: holder, to: self, attempt },
          'pointing the floating IP at this node',
        );
        await o.provider.assign(o.ip, self, o.signal);
        assignedOnce = true;
        // Only what the provider reports afterwards counts (another node's call may have landed after ours).
        const after = await o.provider.holderOf(o.ip, o.signal);
        if (after === self) return { result: 'assigned', instance: self, attempts: attempt };
        throw new CloudApiError(`after the assign, ${o.ip} points at ${after ?? 'nothing'}, not ${self}`, true);
      },
      {
        backoff: { ...o.retry, jitter: 'half', random: o.random },
        clock: o.clock,
        maxAttempts: o.retry.maxAttempts,
        signal: o.signal,
        stopped: () => !o.isCurrent(),
        retryable: (err) => (err instanceof CloudApiError ? err.retryable : true),
        delayHint: (err) => (err instanceof CloudApiError ? err.retryAfterMs : undefined),
        onRetry: ({ err, attempt, delayMs }) =>
          o.log.warn(
            { provider: o.provider.name, ip: o.ip, attempt, err, retryInMs: delayMs },
            'floating IP call failed; retrying',
          ),
      },
    );
  } catch (err) {
    if (err instanceof RetryStopped) return { result: 'superseded', attempts: err.attempts };
    if (superseded()) return { result: 'superseded', attempts };
    throw err instanceof Error ? err : new Error(`floating IP ${o.ip}: gave up after ${o.retry.maxAttempts} attempts`);
  }
}

/** A token file: one line, no whitespace inside. */
export async function readTokenFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new CloudApiError(`cannot read token file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, false);
  }
  const token = text.trim();
  if (token === '' || /\s/.test(token))
    throw new CloudApiError(`token file ${path} must hold one token on one line`, false);
  return token;
}
