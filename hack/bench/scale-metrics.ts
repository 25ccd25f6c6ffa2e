// What the scale benchmark (scale.ts) measures with, pure parsers first: the controller's reconcile-pass histogram
// and log milestones, /proc CPU and memory of a process, and etcd's gRPC request counters.
import { readFileSync } from 'node:fs';
import { monoMs, sleep } from '../testbed/index.js';
import { run } from '../testbed/util.js';
import { ratePerSecond } from './stats.js';
import type { ProcSample } from './scale-types.js';

let clkTck = 100;

/** Reads the clock tick rate that /proc/<pid>/stat counts CPU time in (100 when getconf cannot say). */
export async function readClockTicks(): Promise<void> {
  clkTck = Number((await run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
}

export interface PassStats {
  count: number;
  sumSeconds: number;
  /** Cumulative counts by upper bound (seconds). */
  buckets: [number, number][];
}

export interface PassSummary {
  passes: number;
  meanMs: number;
  /** Upper bound of the histogram bucket holding the slowest pass. */
  slowestUnderMs: number | null;
}

/** vipwarden_reconcile_duration_seconds of the controller (pure). */
export function parsePassHistogram(text: string): PassStats {
  const out: PassStats = { count: 0, sumSeconds: 0, buckets: [] };
  for (const line of text.split('\n')) {
    if (!line.startsWith('vipwarden_reconcile_duration_seconds')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('vipwarden_reconcile_duration_seconds_sum')) out.sumSeconds += v;
    else if (line.startsWith('vipwarden_reconcile_duration_seconds_count')) out.count += v;
    else {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      if (le !== undefined) out.buckets.push([le === '+Inf' ? Infinity : Number(le), v]);
    }
  }
  return out;
}

/** Passes between two scrapes (or since the start): how many, mean duration, slowest bucket. */
export function summarizePasses(a: PassStats | undefined, b: PassStats): PassSummary {
  const n = b.count - (a?.count ?? 0);
  const sum = b.sumSeconds - (a?.sumSeconds ?? 0);
  let slowest: number | null = null;
  for (const [le, c] of b.buckets) {
    const before = a?.buckets.find(([l]) => l === le)?.[1] ?? 0;
    if (c - before < n) continue;
    slowest = le;
    break;
  }
  return {
    passes: n,
    meanMs: n > 0 ? Math.round((sum / n) * 10000) / 10 : 0,
    slowestUnderMs: slowest === null || !Number.isFinite(slowest) ? null : Math.round(slowest * 1000),
  };
}

/** "leading" and the first and last "assignment written" in a controller log, in ms after t0 (monotonic). */
export function logMilestones(
  path: string,
  t0: number,
  wallMinusMono: number,
): { leadingMs?: number; firstAssignmentMs?: number; lastAssignmentMs?: number } {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  const at = (line: string) => Math.round(Date.parse((JSON.parse(line) as { time: string }).time) - wallMinusMono - t0);
  const lines = text.split('\n').filter((l) => l.startsWith('{'));
  const leading = lines.find((l) => l.includes('"msg":"leading"'));
  const written = lines.filter((l) => l.includes('"msg":"assignment written"'));
  return {
    ...(leading ? { leadingMs: at(leading) } : {}),
    ...(written.length
      ? { firstAssignmentMs: at(written[0]!), lastAssignmentMs: at(written[written.length - 1]!) }
      : {}),
  };
}

export async function passStats(url: string): Promise<PassStats> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return parsePassHistogram(await res.text());
}

export function tail(path: string, chars = 1500): string {
  try {
    return readFileSync(path, 'utf8').slice(-chars).trim();
  } catch {
    return '(no log)';
  }
}

export function parseProcStat(text: string): { utime: number; stime: number } {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { utime: Number(rest[11]), stime: Number(rest[12]) };
}

export function parseProcStatus(text: string): { rssKiB: number; hwmKiB: number } {
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
}

export function sampleProc(pid: number): ProcSample {
  const st = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  const ss = parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { t: monoMs(), cpuS: (st.utime + st.stime) / clkTck, ...ss };
}

/** Prometheus text to (metric{labels} -> value) for the grpc_server_* counters (pure). */
export function grpcCounters(text: string): { unary: Map<string, number>; streamMsgs: Map<string, number> } {
  const unary = new Map<string, number>();
  const streamMsgs = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(grpc_server_handled_total|grpc_server_msg_received_total)\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    const method = labels['grpc_method'] ?? '?';
    const v = Number(m[3]);
    if (m[1] === 'grpc_server_handled_total' && labels['grpc_type'] === 'unary')
      unary.set(method, (unary.get(method) ?? 0) + v);
    if (m[1] === 'grpc_server_msg_received_total' && labels['grpc_type'] !== 'unary')
      streamMsgs.set(method, (streamMsgs.get(method) ?? 0) + v);
  }
  return { unary, streamMsgs };
}

/** `metricsUrl`: a member's plain-HTTP metrics listener (EtcdMember.metricsUrl; its client port wants TLS). */
export async function etcdMetrics(metricsUrl: string): Promise<{ t: number; c: ReturnType<typeof grpcCounters> }> {
  const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return { t: monoMs(), c: grpcCounters(text) };
}

export function rates(a: Map<string, number>, b: Map<string, number>, ms: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b) {
    const r = ratePerSecond(a.get(k) ?? 0, v, ms);
    if (r > 0) out[k] = Math.round(r * 10) / 10;
  }
  return out;
}

/** Polls `fn` every `everyMs` until it returns a value, for at most `boundMs`. */
export async function waitFor<T>(
  what: string,
  boundMs: number,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  everyMs = 50,
): Promise<T> {
  const deadline = monoMs() + boundMs;
  for (let i = 0; i < 1_000_000; i++) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (monoMs() > deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`scale: ${what} not reached within ${boundMs} ms`);
}
