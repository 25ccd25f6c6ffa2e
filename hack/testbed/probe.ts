// HTTP probe from the client namespace: a FRESH TCP connection to target:port every intervalMs,
// `GET /`, recording when it started (CLOCK_MONOTONIC ms, comparable with the sampler and monoMs()),
// whether it answered 200 and with which body (the node name served by nginx).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PROBE_RUNNER_SOURCE } from './probe-runner.js';
import { stopAndDrain, type ProcHandle } from './proc.js';
import type { Testbed } from './testbed.js';
import { assertAllowedAddress, withTimeout } from './util.js';

export interface Sample {
  seq: number;
  /** Start of the attempt, ms on CLOCK_MONOTONIC. */
  t: number;
  /** When the answer or error came. */
  tEnd: number;
  ok: boolean;
  /** Response body, trimmed (the node name). */
  body?: string;
  /** `timeout`, `ECONNREFUSED`, `EHOSTUNREACH`, `status 502`, ... */
  error?: string;
}

export interface ProbeOptions {
  /** VIP (IPv4 or IPv6) to connect to. */
  target: string;
  port?: number;
  /** Default 10 ms. */
  intervalMs?: number;
  /** Default 100 ms. */
  timeoutMs?: number;
  /** Hard bound on run time; default 60 s, at most 30 min. */
  maxDurationMs?: number;
  /** Hard bound on attempts; default maxDurationMs / intervalMs + 1. */
  maxCount?: number;
  /** Namespace to run in; default the testbed's client. */
  from?: string;
}

export interface Probe {
  readonly pid: number;
  /** Samples so far, sorted by seq. */
  samples(): Sample[];
  /** Resolves with the first sample (arrived after this call, or already there if `includePast`) that matches. */
  waitFor(pred: (s: Sample) => boolean, timeoutMs: number, opts?: { includePast?: boolean }): Promise<Sample>;
  /** Stops (finishes in-flight attempts) and returns every sample. */
  stop(): Promise<Sample[]>;
  readonly done: Promise<void>;
}

export async function startProbe(tb: Testbed, opts: ProbeOptions): Promise<Probe> {
  assertAllowedAddress(opts.target);
  const port = opts.port ?? 80;
  const intervalMs = opts.intervalMs ?? 10;
  const timeoutMs = opts.timeoutMs ?? 100;
  const maxDurationMs = opts.maxDurationMs ?? 60_000;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`startProbe: invalid port ${port}`);
  if (!(intervalMs >= 1 && intervalMs <= 10_000)) throw new Error(`startProbe: intervalMs out of range: ${intervalMs}`);
  if (!(timeoutMs >= 1 && timeoutMs <= 30_000)) throw new Error(`startProbe: timeoutMs out of range: ${timeoutMs}`);
  if (!(maxDurationMs > 0 && maxDurationMs <= 30 * 60_000))
    throw new Error(`startProbe: maxDurationMs out of range: ${maxDurationMs}`);
  const maxCount = opts.maxCount ?? Math.ceil(maxDurationMs / intervalMs) + 1;
  const script = join(tb.dir, 'probe-runner.mjs');
  writeFileSync(script, PROBE_RUNNER_SOURCE);
  const cfg = {
    target: opts.target,
    port,
    intervalMs,
    timeoutMs,
    maxDurationMs,
    maxCount,
    maxInflight: Math.ceil(timeoutMs / intervalMs) + 8,
  };
  const proc: ProcHandle = tb.spawn(opts.from ?? tb.client, [process.execPath, script, JSON.stringify(cfg)], {
    name: 'probe',
    stdout: 'pipe',
  });
  const stdout = proc.stdout;
  if (!stdout) throw new Error('startProbe: no stdout pipe');

  const samples: Sample[] = [];
  const listeners = new Set<(s: Sample) => void>();
  let readyResolve: (() => void) | undefined;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const rl = createInterface({ input: stdout });
  rl.on('line', (line) => {
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      return;
    }
    if (typeof o !== 'object' || o === null) return;
    const rec = o as Record<string, unknown>;
    if (rec['ready'] === true) {
      readyResolve?.();
      return;
    }
    if (typeof rec['seq'] !== 'number' || typeof rec['t'] !== 'number' || typeof rec['ok'] !== 'boolean') return;
    const s: Sample = {
      seq: rec['seq'],
      t: rec['t'],
      tEnd: typeof rec['tEnd'] === 'number' ? rec['tEnd'] : rec['t'],
      ok: rec['ok'],
      ...(typeof rec['body'] === 'string' ? { body: rec['body'] } : {}),
      ...(typeof rec['error'] === 'string' ? { error: rec['error'] } : {}),
    };
    samples.push(s);
    for (const l of [...listeners]) l(s);
  });
  const done = proc.done.then(() => undefined);
  const started = await withTimeout(Promise.race([ready.then(() => true), done.then(() => false)]), 10_000, false);
  if (!started) {
    await proc.stop({ signal: 'SIGKILL' });
    throw new Error(`probe did not start in ${opts.from ?? tb.client.netns}; see ${proc.stderrLog}`);
  }
  const sorted = (): Sample[] => [...samples].sort((a, b) => a.seq - b.seq);

  return {
    pid: proc.pid,
    samples: sorted,
    done,
    waitFor(pred, waitMs, o = {}) {
      if (o.includePast) {
        const hit = sorted().find(pred);
        if (hit) return Promise.resolve(hit);
      }
      return new Promise<Sample>((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(l);
          const last = samples[samples.length - 1];
          reject(
            new Error(`probe: no matching sample within ${waitMs} ms (last: ${last ? JSON.stringify(last) : 'none'})`),
          );
        }, waitMs);
        const l = (s: Sample): void => {
          if (!pred(s)) return;
          clearTimeout(timer);
          listeners.delete(l);
          resolve(s);
        };
        listeners.add(l);
        void done.then(() => {
          if (!listeners.has(l)) return;
          clearTimeout(timer);
          listeners.delete(l);
          reject(new Error('probe: ended before a matching sample'));
        });
      });
    },
    async stop() {
      await stopAndDrain(proc, rl, timeoutMs + 2000);
      return sorted();
    },
  };
}

// ---- pure helpers --------------------------------------------------------------------------------

export interface Outage {
  /** Start time of the last successful attempt before the first failure after the fault. */
  lastOkBefore: Sample | undefined;
  /** Start time of the first successful attempt after that failure (undefined: never recovered). */
  firstOkAfter: Sample | undefined;
  /** firstOkAfter.t - lastOkBefore.t; 0 when no attempt failed after the fault; Infinity if never recovered. */
  durationMs: number;
  /** Failed attempts in between. */
  failed: number;
  /** Who answered before and after. */
  bodyBefore: string | undefined;
  bodyAfter: string | undefined;
}

/**
 * Client-visible outage around a fault injected at `faultT` (monotonic ms): from the last successful
 * answer before the first failure at or after `faultT` to the first successful answer after that failure.
 * Successes right after faultT (old holder still answering) do not end the outage early.
 */
export function outageAround(samples: readonly Sample[], faultT: number): Outage {
  const s = [...samples].sort((a, b) => a.t - b.t);
  const firstFail = s.findIndex((x) => x.t >= faultT && !x.ok);
  if (firstFail < 0) {
    const before = [...s].reverse().find((x) => x.ok && x.t < faultT);
    const after = s.find((x) => x.ok && x.t >= faultT);
    return {
      lastOkBefore: before,
      firstOkAfter: after,
      durationMs: 0,
      failed: 0,
      bodyBefore: before?.body,
      bodyAfter: after?.body,
    };
  }
  let lastOk: Sample | undefined;
  for (let i = firstFail - 1; i >= 0; i--) {
    const x = s[i];
    if (x?.ok) {
      lastOk = x;
      break;
    }
  }
  let firstOk: Sample | undefined;
  let failed = 0;
  for (let i = firstFail; i < s.length; i++) {
    const x = s[i] as Sample;
    if (x.ok) {
      firstOk = x;
      break;
    }
    failed++;
  }
  const start = lastOk?.t ?? faultT;
  return {
    lastOkBefore: lastOk,
    firstOkAfter: firstOk,
    durationMs: firstOk ? firstOk.t - start : Infinity,
    failed,
    bodyBefore: lastOk?.body,
    bodyAfter: firstOk?.body,
  };
}

/**
 * The longest time the client went without an answer in a run of failures that ended after `t0` (or is still going
 * on): from the last answer before it to the first after it (or the last attempt). Unlike outageAround, a short loss
 * first does not hide a longer one later.
 */
export function longestLoss(samples: readonly Sample[], t0: number): number {
  const s = [...samples].sort((a, b) => a.t - b.t);
  let lastOk: number | undefined;
  let failing = false;
  let worst = 0;
  for (const x of s) {
    if (x.ok) {
      if (failing && lastOk !== undefined && x.t >= t0) worst = Math.max(worst, x.t - lastOk);
      lastOk = x.t;
      failing = false;
    } else failing = true;
  }
  if (failing && lastOk !== undefined) worst = Math.max(worst, (s[s.length - 1]?.t ?? lastOk) - lastOk);
  return Math.round(worst);
}

/** How many successful answers each body (node name) gave. */
export function answeredBy(samples: readonly Sample[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) if (s.ok && s.body !== undefined) out[s.body] = (out[s.body] ?? 0) + 1;
  return out;
}

export interface Run {
  /** Node name that answered, or null for a run of failures. */
  body: string | null;
  from: number;
  to: number;
  count: number;
}

/** Consecutive runs of the same answer (or of failures), in time order. */
export function runsOf(samples: readonly Sample[]): Run[] {
  const runs: Run[] = [];
  for (const s of [...samples].sort((a, b) => a.t - b.t)) {
    const body = s.ok ? (s.body ?? '') : null;
    const last = runs[runs.length - 1];
    if (last && last.body === body) {
      last.to = s.t;
      last.count++;
    } else runs.push({ body, from: s.t, to: s.t, count: 1 });
  }
  return runs;
}
