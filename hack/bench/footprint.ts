// Footprint of an idle daemon: resident memory and CPU of its whole process tree (the daemon and every
// descendant: vipwarden's dataplane helper, keepalived's VRRP child and its check scripts), read from /proc
// over a fixed window. The parsing and the arithmetic are pure (unit-tested); measureFootprint does the reading.
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** utime + stime + cutime + cstime in clock ticks: the process's own CPU and that of its reaped children. */
  cpuTicks: number;
}

/** Parses /proc/<pid>/stat (comm may hold spaces and parentheses: the fields start after the last ')'). */
export function parseStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // rest[0] state (field 3), rest[1] ppid (4), rest[11..14] utime stime cutime cstime (14..17)
  if (rest.length < 15 || !Number.isInteger(pid)) return undefined;
  const n = (i: number) => Number(rest[i]);
  const cpu = n(11) + n(12) + n(13) + n(14);
  if (!Number.isFinite(cpu) || !Number.isInteger(n(1))) return undefined;
  return { pid, comm: text.slice(open + 1, close), state: rest[0]!, ppid: n(1), cpuTicks: cpu };
}

/** A "Name:   value kB" field of /proc/<pid>/status or smaps_rollup, in KiB; 0 when absent (kernel threads). */
export function parseKiB(text: string, field: 'VmRSS' | 'Pss'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** The root and every descendant of it in a pid → ppid table (pure). */
export function treeOf(root: number, ppids: ReadonlyMap<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of ppids) {
    const list = children.get(ppid) ?? [];
    list.push(pid);
    children.set(ppid, list);
  }
  if (!ppids.has(root)) return [];
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const p = todo.pop()!;
    if (out.includes(p)) continue;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out.sort((a, b) => a - b);
}

/** One look at a process tree. */
export interface TreeSample {
  /** Monotonic ms. */
  t: number;
  pids: number[];
  comms: string[];
  /** Sum of the tree's CPU ticks (own and reaped children's). */
  cpuTicks: number;
  rssKiB: number;
  pssKiB: number;
}

export interface Footprint {
  windowMs: number;
  samples: number;
  /** Processes seen in the tree (name × count), e.g. "node, vw-dataplane". */
  processes: string;
  rssMiB: number;
  rssMaxMiB: number;
  /** Proportional set size (shared pages split between the processes sharing them); undefined where unreadable. */
  pssMiB?: number;
  /** CPU over the window, % of one core. */
  cpuPercent: number;
  /** Groups the daemon held and how often they were checked: the conditions of the figure. */
  conditions?: string;
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Footprint from the samples of one window (pure): CPU from the first to the last sample, mean and peak RSS.
 * A process that ended inside the window and was reaped by a process of the tree keeps its CPU in the parent's
 * cutime/cstime; one that ended unreaped (or whose reaper is outside the tree) is undercounted, by at most what it
 * used between its last sample and its end.
 */
export function footprintOf(samples: readonly TreeSample[], ticksPerSecond: number): Footprint | undefined {
  const s = samples.filter((x) => x.pids.length > 0);
  if (s.length < 2) return undefined;
  const first = s[0]!;
  const last = s[s.length - 1]!;
  const windowMs = last.t - first.t;
  if (!(windowMs > 0)) return undefined;
  const cpuS = Math.max(0, last.cpuTicks - first.cpuTicks) / ticksPerSecond;
  const mib = (k: number) => k / 1024;
  const names = new Map<string, number>();
  for (const c of last.comms) names.set(c, (names.get(c) ?? 0) + 1);
  const pss = s.map((x) => x.pssKiB);
  return {
    windowMs: Math.round(windowMs),
    samples: s.length,
    processes: [...names].map(([n, k]) => (k > 1 ? `${n} ×${k}` : n)).join(', '),
    rssMiB: round(mib(s.reduce((a, x) => a + x.rssKiB, 0) / s.length), 1),
    rssMaxMiB: round(mib(Math.max(...s.map((x) => x.rssKiB))), 1),
    ...(pss.every((x) => x > 0) ? { pssMiB: round(mib(pss.reduce((a, x) => a + x, 0) / pss.length), 1) } : {}),
    cpuPercent: round((cpuS / (windowMs / 1000)) * 100, 2),
  };
}

/** Clock ticks per second (getconf CLK_TCK; 100 on every Linux this runs on). */
export function clockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Reads the tree of `root` from /proc once. */
export function sampleTree(root: number, t: number): TreeSample {
  const stats = new Map<number, ProcStat>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = read(`/proc/${d}/stat`);
    const p = st === undefined ? undefined : parseStat(st);
    if (p) stats.set(p.pid, p);
  }
  const pids = treeOf(root, new Map([...stats].map(([pid, p]) => [pid, p.ppid]))).filter(
    (p) => stats.get(p)?.state !== 'Z',
  );
  let rss = 0;
  let pss = 0;
  let cpu = 0;
  for (const p of pids) {
    cpu += stats.get(p)!.cpuTicks;
    rss += parseKiB(read(`/proc/${p}/status`) ?? '', 'VmRSS');
    pss += parseKiB(read(`/proc/${p}/smaps_rollup`) ?? '', 'Pss');
  }
  return { t, pids, comms: pids.map((p) => stats.get(p)!.comm), cpuTicks: cpu, rssKiB: rss, pssKiB: pss };
}

/** Samples the tree of `root` every `everyMs` for `windowMs`; undefined when the tree was gone. */
export async function measureFootprint(
  root: number,
  windowMs: number,
  everyMs = 500,
  now: () => number = () => performance.now(),
): Promise<Footprint | undefined> {
  const samples: TreeSample[] = [sampleTree(root, now())];
  const end = samples[0]!.t + windowMs;
  while (now() < end) {
    await new Promise((r) => setTimeout(r, Math.min(everyMs, Math.max(0, end - now()))));
    samples.push(sampleTree(root, now()));
  }
  return footprintOf(samples, clockTicks());
}
