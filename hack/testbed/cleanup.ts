// Finds and removes what testbeds and etcd clusters leave behind: namespaces, links, processes,
// claim files and data dirs carrying our prefix. By default only resources whose owner process is
// gone (crashed runs); with `all: true` everything of ours, including other live runs' resources.
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { ETCD_DIR_PREFIX, STATE_DIR, TESTBED_DIR_PREFIX, assertK, claimFile, linkK, netnsK } from './names.js';
import { isAlive, run, runSyncQuiet, sleep } from './util.js';

export const ClaimSchema = z.object({
  k: z.number().int(),
  pid: z.number().int(),
  /** Left in place on purpose (cli `up`); removed by `down` or `cleanup --all`. */
  persistent: z.boolean().default(false),
  name: z.string(),
  dir: z.string(),
  nodes: z.number().int(),
  ipv6: z.boolean(),
  createdAt: z.string(),
});
export type Claim = z.infer<typeof ClaimSchema>;

export function readClaim(k: number): Claim | undefined {
  try {
    const parsed = ClaimSchema.safeParse(JSON.parse(readFileSync(claimFile(k), 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function listClaims(): Claim[] {
  let names: string[] = [];
  try {
    names = readdirSync(STATE_DIR);
  } catch {
    return [];
  }
  const out: Claim[] = [];
  for (const n of names) {
    const m = /^(\d{1,3})\.json$/.exec(n);
    if (!m) continue;
    const c = readClaim(Number(m[1]));
    if (c) out.push(c);
  }
  return out;
}

/** A claim is stale when its owner is gone and it was not left on purpose. */
export function claimIsLive(c: Claim): boolean {
  return c.persistent || isAlive(c.pid);
}

export async function listOurNetns(): Promise<string[]> {
  const r = await run(['ip', '-j', 'netns', 'list'], { allowFailure: true });
  if (r.exitCode !== 0 || !r.stdout.trim()) return [];
  const list = z.array(z.object({ name: z.string() })).parse(JSON.parse(r.stdout));
  return list.map((e) => e.name).filter((n) => netnsK(n) !== undefined);
}

export async function listOurLinks(): Promise<string[]> {
  const r = await run(['ip', '-j', 'link', 'show'], { allowFailure: true });
  if (r.exitCode !== 0 || !r.stdout.trim()) return [];
  const list = z.array(z.object({ ifname: z.string() })).parse(JSON.parse(r.stdout));
  return list.map((e) => e.ifname.split('@')[0] ?? e.ifname).filter((n) => linkK(n) !== undefined);
}

/** Processes whose command line mentions one of `needles` as a whole argument or argument prefix. */
export function findProcesses(match: (argv: string[]) => boolean): number[] {
  const pids: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
        .split('\0')
        .filter((a) => a !== '');
      if (argv.length > 0 && match(argv)) pids.push(pid);
    } catch {
      // vanished
    }
  }
  return pids;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

async function pidsInNetns(ns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', ns], { allowFailure: true });
  return r.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0 && n !== process.pid);
}

/** Samplers hold netlink sockets in our namespaces from the root namespace: find them by argv. */
function samplerPidsFor(nsNames: Set<string>): number[] {
  return findProcesses((argv) => basename(argv[0] ?? '') === 'vipsampler' && argv.some((a) => nsNames.has(a)));
}

/** Removes every resource of testbed K (namespaces, links, processes, claim, dir). Async, for normal use. */
export async function teardownTestbed(k: number, opts: { dir?: string; keepDir?: boolean } = {}): Promise<string[]> {
  assertK(k);
  const removed: string[] = [];
  const ns = (await listOurNetns()).filter((n) => netnsK(n) === k);
  const links = (await listOurLinks()).filter((l) => linkK(l) === k);
  // 1. processes living in the namespaces, and samplers looking into them
  const pids = [...samplerPidsFor(new Set(ns))];
  for (const n of ns) pids.push(...(await pidsInNetns(n)));
  if (pids.length > 0) {
    killAll(pids);
    removed.push(...pids.map((p) => `pid ${p}`));
    for (let i = 0; i < 40 && pids.some((p) => existsSync(`/proc/${p}`)); i++) await sleep(25);
  }
  // 2. host-side veths (deleting one end deletes the peer in the namespace), then the bridge
  for (const l of links.sort((a, b) => (a.startsWith('vwbr') ? 1 : 0) - (b.startsWith('vwbr') ? 1 : 0))) {
    const r = await run(['ip', 'link', 'del', l], { allowFailure: true });
    if (r.exitCode === 0) removed.push(`link ${l}`);
  }
  // 3. namespaces
  for (const n of ns) {
    const r = await run(['ip', 'netns', 'del', n], { allowFailure: true });
    if (r.exitCode === 0) removed.push(`netns ${n}`);
  }
  // 4. working dir and claim
  const claim = readClaim(k);
  const dir = opts.dir ?? claim?.dir;
  if (dir && !opts.keepDir && dir.startsWith(TESTBED_DIR_PREFIX) && existsSync(dir)) {
    rmSync(dir, { recursive: true, force: true });
    removed.push(`dir ${dir}`);
  }
  if (existsSync(claimFile(k))) {
    rmSync(claimFile(k), { force: true });
    removed.push(`claim ${k}`);
  }
  return removed;
}

/** Synchronous best-effort teardown of testbed K for exit handlers (names known by the caller). */
export function teardownTestbedSync(
  k: number,
  res: { netns: string[]; links: string[]; pids: number[]; dir?: string; keepDir?: boolean },
): void {
  killAll(res.pids);
  killAll(samplerPidsFor(new Set(res.netns)));
  for (const l of res.links) runSyncQuiet(['ip', 'link', 'del', l]);
  for (const n of res.netns) runSyncQuiet(['ip', 'netns', 'del', n]);
  if (res.dir && !res.keepDir && res.dir.startsWith(TESTBED_DIR_PREFIX))
    rmSync(res.dir, { recursive: true, force: true });
  rmSync(claimFile(k), { force: true });
}

const EtcdOwnerSchema = z.object({ pid: z.number().int() });

/** etcd processes started with a data dir under `dir`. */
export function etcdPidsFor(dir: string): number[] {
  return findProcesses(
    (argv) =>
      basename(argv[0] ?? '') === 'etcd' &&
      argv.some((a) => a.startsWith(`--data-dir=${dir}/`) || a.startsWith(dir + '/')),
  );
}

export function listEtcdDirs(): string[] {
  const parent = join(ETCD_DIR_PREFIX, '..');
  const prefix = basename(ETCD_DIR_PREFIX);
  try {
    return readdirSync(parent)
      .filter((n) => n.startsWith(prefix))
      .map((n) => join(parent, n));
  } catch {
    return [];
  }
}

function etcdOwnerAlive(dir: string): boolean {
  try {
    const o = EtcdOwnerSchema.parse(JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')));
    return isAlive(o.pid);
  } catch {
    // No owner file yet: a cluster being created right now looks like this for a moment.
    try {
      return Date.now() - statSync(dir).mtimeMs < 10_000;
    } catch {
      return false;
    }
  }
}

export interface CleanupReport {
  removed: string[];
  skipped: string[];
}

/**
 * Removes leftovers. Default: only what belongs to dead owners (and unclaimed namespaces/links).
 * `all`: everything with our prefix, even resources of live runs (do not use while others test).
 */
export async function cleanupLeftovers(opts: { all?: boolean } = {}): Promise<CleanupReport> {
  const removed: string[] = [];
  const skipped: string[] = [];
  const ks = new Set<number>();
  for (const n of await listOurNetns()) ks.add(netnsK(n) as number);
  for (const l of await listOurLinks()) ks.add(linkK(l) as number);
  for (const c of listClaims()) ks.add(c.k);
  if (existsSync(STATE_DIR)) {
    for (const n of readdirSync(STATE_DIR)) {
      const m = /^(\d{1,3})\.json$/.exec(n);
      if (m) ks.add(Number(m[1]));
    }
  }
  for (const k of [...ks].sort((a, b) => a - b)) {
    const c = readClaim(k);
    if (!opts.all && c && claimIsLive(c)) {
      skipped.push(`testbed ${k} (${c.persistent ? 'persistent' : `owner pid ${c.pid} alive`})`);
      continue;
    }
    removed.push(...(await teardownTestbed(k)));
  }
  // Orphaned working dirs without claim.
  const tbParent = join(TESTBED_DIR_PREFIX, '..');
  const tbPrefix = basename(TESTBED_DIR_PREFIX);
  const liveDirs = new Set(listClaims().map((c) => c.dir));
  try {
    for (const n of readdirSync(tbParent)) {
      if (!n.startsWith(tbPrefix)) continue;
      const d = join(tbParent, n);
      if (liveDirs.has(d)) continue;
      rmSync(d, { recursive: true, force: true });
      removed.push(`dir ${d}`);
    }
  } catch {
    // no tmp dir
  }
  for (const dir of listEtcdDirs()) {
    if (!opts.all && etcdOwnerAlive(dir)) {
      skipped.push(`etcd ${dir} (owner alive)`);
      continue;
    }
    const pids = etcdPidsFor(dir);
    killAll(pids);
    removed.push(...pids.map((p) => `etcd pid ${p}`));
    for (let i = 0; i < 40 && pids.some((p) => existsSync(`/proc/${p}`)); i++) await sleep(25);
    rmSync(dir, { recursive: true, force: true });
    removed.push(`dir ${dir}`);
  }
  return { removed, skipped };
}
