// Small shared helpers for the testbed: command runner, validators, clocks, bounded waits.
import { execa, execaSync } from 'execa';
import { isIPv4, isIPv6 } from 'node:net';
import { CommandError } from '../../common/exec.js';
import { ipv6Groups } from '../../common/ip.js';

export { CommandError };

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs argv (no shell). Throws CommandError unless `allowFailure`. */
export async function run(
  argv: readonly string[],
  opts: { allowFailure?: boolean; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('run: empty argv');
  const r = await execa(file, args, {
    reject: false,
    timeout: opts.timeoutMs ?? 30_000,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
  });
  const exitCode = typeof r.exitCode === 'number' ? r.exitCode : -1;
  const out = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode };
  if (exitCode !== 0 && !opts.allowFailure)
    throw new CommandError(argv, r.exitCode, out.stderr || String(r.message ?? ''));
  return out;
}

/** Synchronous variant, for exit handlers only. Never throws. */
export function runSyncQuiet(argv: readonly string[]): number {
  const [file, ...args] = argv;
  if (!file) return -1;
  try {
    const r = execaSync(file, args, { reject: false, timeout: 10_000, stdin: 'ignore' });
    return typeof r.exitCode === 'number' ? r.exitCode : -1;
  } catch {
    return -1;
  }
}

/** argv prefix that runs a command inside a named network namespace (null: root namespace). */
export function inNetns(ns: string | null | undefined, argv: readonly string[]): string[] {
  if (!ns) return [...argv];
  assertNetnsName(ns);
  return ['ip', 'netns', 'exec', ns, ...argv];
}

const NETNS_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export function assertNetnsName(ns: string): void {
  if (!NETNS_RE.test(ns)) throw new Error(`invalid netns name: ${JSON.stringify(ns)}`);
}
export function assertIfName(name: string): void {
  if (!IFNAME_RE.test(name)) throw new Error(`invalid interface name: ${JSON.stringify(name)}`);
}

/** True for an IPv4 address in 198.18.0.0/15 (the benchmarking range this testbed may use). */
export function isBenchV4(addr: string): boolean {
  if (!isIPv4(addr)) return false;
  const [a, b] = addr.split('.').map(Number);
  return a === 198 && (b === 18 || b === 19);
}

/** True for an IPv6 address in 2001:2::/48. */
export function isBenchV6(addr: string): boolean {
  if (!isIPv6(addr)) return false;
  const g = expandIPv6(addr);
  return g[0] === 0x2001 && g[1] === 0x2 && g[2] === 0;
}

/** The eight 16-bit groups of an IPv6 address (no embedded IPv4 form). */
export const expandIPv6 = ipv6Groups;

/** Allowed: loopback, 198.18.0.0/15, 2001:2::/48. Throws otherwise. */
export function assertAllowedAddress(addr: string): void {
  if (addr === '127.0.0.1' || addr === '::1' || isBenchV4(addr) || isBenchV6(addr)) return;
  throw new Error(`address not allowed by testbed network rule: ${JSON.stringify(addr)}`);
}

/** Canonical textual form (IPv6 compressed, lower case); IPv4 unchanged. */
export function normalizeIp(addr: string): string {
  const bare = addr.split('/')[0] ?? addr;
  if (isIPv4(bare)) return bare;
  if (isIPv6(bare)) return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  throw new Error(`invalid IP address: ${JSON.stringify(addr)}`);
}

/** CLOCK_MONOTONIC in milliseconds, the same clock as the C sampler and the probe runner. */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value other than undefined/false, bounded by time. */
export async function waitUntil<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 50;
  let lastErr: unknown;
  for (let i = 0; i < 1_000_000; i++) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) break;
    await sleep(interval);
  }
  const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
  throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${why}`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Fails with a clear message when not root (the integration tier needs root). */
export function requireRoot(what = 'the netns testbed'): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error(`${what} needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN); run the integration tier as root`);
  }
}

/** Resolves with `p`'s value, or with `onTimeout` after ms; the timer is cleared either way. */
export async function withTimeout<T, U>(p: Promise<T>, ms: number, onTimeout: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<U>((r) => (timer = setTimeout(() => r(onTimeout), ms)))]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** A command-line option that must be an integer in min..max; def when it is absent. */
export function intOption(raw: string | undefined, def: number, min: number, max: number, what: string): number {
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${what} must be an integer in ${min}..${max}, got ${raw}`);
  return n;
}
