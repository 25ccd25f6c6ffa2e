// Heartbeat write load (issue 13): what agents' heartbeat puts (node-agent/heartbeat.ts) cost etcd at N nodes.
// Per node count N: a real single-member etcd on loopback, data on tmpfs (hack/testbed startEtcd, the testbed's
// timing and TLS), N simulated nodes in this process, each with a node lease kept alive as an agent keeps it
// (common/lease.ts LeaseKeeper, the default agent lease: TTL 2 s, a keepalive every 250 ms), SIM_AGENTS_PER_CLIENT
// nodes per etcd client (one TLS connection each, as the scale benchmark does), and one watcher of heartbeat/ on a
// client of its own (as the leading controller, controller/heartbeats.ts). Phase "baseline": leases and keepalives
// only. Phase "heartbeats": each node also puts heartbeat/<node> every heartbeatMs, exactly as the agent does
// (value a counter, under its lease, a deadline of 4 periods, no overlapping puts), phases staggered at random.
// Measured per phase: etcd's CPU and RSS (/proc), puts answered and their latency (in this process), watch events
// received, fsyncs and backend commits (etcd /metrics deltas), and the db size at the end of the phase.
// No namespaces, no addresses; everything bounded in time; etcd is stopped on failure too (and killed at exit by
// the testbed's own exit cleanup if this process dies).
import { setMaxListeners } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Etcd3, Watcher } from 'etcd3';
import { realClock } from '../../common/clock.js';
import { connectEtcd } from '../../common/etcd.js';
import { Keys } from '../../common/keyspace.js';
import { LeaseKeeper } from '../../common/lease.js';
import { LEASE_CONFIG_DEFAULT } from '../../common/lease-config.js';
import { silentLogger } from '../../common/log.js';
import { onExitCleanup } from '../testbed/registry.js';
import { monoMs, sleep, startEtcd, type EtcdCluster } from '../testbed/index.js';
import { grpcCounters, readClockTicks, sampleProc } from './scale-metrics.js';
import { nodeName, SIM_AGENTS_PER_CLIENT, type ProcSample } from './scale-types.js';
import { percentile } from './stats.js';

export interface HeartbeatLoadOptions {
  nodes: number[];
  heartbeatMs: number;
  /** Length of each phase's measured window (ms). */
  durationMs: number;
  log?: (s: string) => void;
  /** Simulated nodes per etcd client (default SIM_AGENTS_PER_CLIENT, as the scale benchmark). */
  nodesPerClient?: number;
}

export type HeartbeatPhase = 'baseline' | 'heartbeats';

export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface HeartbeatPhaseResult {
  phase: HeartbeatPhase;
  windowMs: number;
  /** etcd's CPU time over the window, in % of one core. */
  etcdCpuPercent: number;
  etcdRssMiB: number;
  /** Heartbeat puts answered in the window, per second (as this process saw them). */
  putsPerSecond: number;
  /** Put RPCs etcd handled per second (grpc_server_handled_total). */
  etcdPutsPerSecond: number;
  /** Latency of the puts answered in the window (ms, send to answer, in this process). */
  putLatencyMs?: LatencySummary;
  putErrors: number;
  /** Beats skipped because the node's previous put was still in flight. */
  beatsSkipped: number;
  /** Heartbeat put events the watcher received, per second. */
  watchEventsPerSecond: number;
  /** LeaseKeepAlive stream messages etcd received per second. */
  keepalivesPerSecond: number;
  fsyncsPerSecond: number;
  backendCommitsPerSecond: number;
  /** etcd's db file size and the part in use at the end of the window (bytes). */
  dbTotalSizeBytes?: number;
  dbInUseBytes?: number;
  /** Revisions written in the window (each put is one; keepalives write none). */
  revisions?: number;
  /** Node leases the simulated nodes lost in the window (keepalives not answered in time, or expired). */
  leasesLost: number;
  /** This process (the load generator: every simulated node and the watcher): CPU % of one core. */
  generatorCpuPercent: number;
  /** Event-loop delay of this process over the window (ms): how late its timers and answers ran. */
  generatorLoopDelayP99Ms: number;
  /**
   * Time etcd's / this process's threads spent runnable but waiting for a CPU, summed over threads, in % of the
   * window (/proc/<pid>/task/<tid>/schedstat; comparable to the CPU %): when it nears the CPU %, the machine's other
   * load, not the process, set the pace.
   */
  etcdRunqueueWaitPercent?: number;
  generatorRunqueueWaitPercent?: number;
  /** Mean WAL fsync and backend commit durations in the window (ms, etcd's histograms' sum / count). */
  walFsyncMeanMs?: number;
  backendCommitMeanMs?: number;
  loadAverage: number[];
}

export interface HeartbeatLoadResult {
  nodes: number;
  clients: number;
  heartbeatMs: number;
  lease: { ttlSeconds: number; keepaliveIntervalMs: number };
  /** etcd's auto-compaction as the testbed runs it ('off': no --auto-compaction-* flags, etcd's default). */
  autoCompaction: string;
  phases: HeartbeatPhaseResult[];
  /** Growth of the db's in-use bytes during the heartbeat phase, per minute (no compaction: it never shrinks). */
  dbGrowthBytesPerMinute?: number;
  /** Revisions the heartbeats add per minute (the history a compaction would have to remove). */
  revisionsPerMinute?: number;
  error?: string;
}

// ---- pure helpers ----

/**
 * Sum of the samples of metric `name` in Prometheus text (any labels; `name` exactly, so "x_count" does not match
 * "x_count_total"); undefined when the metric is absent.
 */
export function promValue(text: string, name: string): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

/** The first of `names` present in the text. */
export function promFirst(text: string, names: readonly string[]): number | undefined {
  for (const n of names) {
    const v = promValue(text, n);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** n, p50, p99 (interpolated, stats.ts) and max of latencies in ms, rounded to 0.01 ms; undefined for none. */
export function latencySummary(values: readonly number[]): LatencySummary | undefined {
  if (values.length === 0) return undefined;
  const r = (x: number) => Math.round(x * 100) / 100;
  let max = -Infinity;
  for (const v of values) if (v > max) max = v;
  return { n: values.length, p50: r(percentile(values, 50)), p99: r(percentile(values, 99)), max: r(max) };
}

/** Puts per second N nodes make with one beat every heartbeatMs (an upper bound: beats in flight are skipped). */
export function expectedPutsPerSecond(nodes: number, heartbeatMs: number): number {
  return (nodes * 1000) / heartbeatMs;
}

/** /proc/<pid>/task/<tid>/schedstat: ns on a CPU, ns runnable but waiting for one (pure). */
export function parseSchedstat(text: string): { runNs: number; waitNs: number } {
  const [run, wait] = text.trim().split(/\s+/).map(Number);
  return { runNs: Number.isFinite(run) ? run! : 0, waitNs: Number.isFinite(wait) ? wait! : 0 };
}

/** Run-queue wait between two schedstat samples, in % of a window of `windowMs` (undefined without samples). */
export function waitPercent(
  a: { runNs: number; waitNs: number } | undefined,
  b: { runNs: number; waitNs: number } | undefined,
  windowMs: number,
): number | undefined {
  if (!a || !b || !(windowMs > 0)) return undefined;
  return Math.round(((b.waitNs - a.waitNs) / (windowMs * 1e6)) * 1000) / 10;
}

/** Mean of a histogram's observations between two scrapes, in ms (sum in seconds / count). */
export function meanMs(dSumSeconds: number | undefined, dCount: number | undefined): number | undefined {
  if (dSumSeconds === undefined || dCount === undefined || !(dCount > 0)) return undefined;
  return Math.round(((dSumSeconds * 1000) / dCount) * 1000) / 1000;
}

/** Per-minute rate of a delta over a window; undefined for no window or no delta. */
export function perMinute(delta: number | undefined, windowMs: number): number | undefined {
  if (delta === undefined || !(windowMs > 0)) return undefined;
  return Math.round((delta * 60_000) / windowMs);
}

/** Groups of `perClient` consecutive indexes out of n: which client each simulated node uses. */
export function clientGroups(n: number, perClient: number): number[][] {
  const k = Math.max(1, Math.floor(perClient));
  const out: number[][] = [];
  for (let i = 0; i < n; i++) {
    if (i % k === 0) out.push([]);
    out[out.length - 1]!.push(i);
  }
  return out;
}

const fmt = (v: number | undefined, digits = 1): string =>
  v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits).replace(/\.0+$/, '');

/** Bytes in MiB ("12.3"); '–' when unknown. */
export function mib(bytes: number | undefined, digits = 1): string {
  return bytes === undefined ? '–' : (bytes / 2 ** 20).toFixed(digits);
}

/** The markdown table of the results: one row per node count and phase. */
export function heartbeatLoadTable(results: readonly HeartbeatLoadResult[]): string {
  const rows = [
    '| N | phase | etcd CPU % | fsyncs/s | commits/s | puts/s (expected) | put p50 / p99 / max ms | watch events/s | keepalives/s | etcd RSS MiB | db in use MiB | leases lost |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    if (r.phases.length === 0) {
      rows.push(`| ${r.nodes} | failed: ${(r.error ?? 'no phase measured').replace(/\|/g, '/')} |||||||||||`);
      continue;
    }
    for (const p of r.phases) {
      const expected = p.phase === 'heartbeats' ? ` (${fmt(expectedPutsPerSecond(r.nodes, r.heartbeatMs), 0)})` : '';
      const lat = p.putLatencyMs
        ? `${fmt(p.putLatencyMs.p50, 2)} / ${fmt(p.putLatencyMs.p99, 2)} / ${fmt(p.putLatencyMs.max, 1)}`
        : '–';
      rows.push(
        `| ${r.nodes} | ${p.phase} | ${fmt(p.etcdCpuPercent)} | ${fmt(p.fsyncsPerSecond)} | ${fmt(p.backendCommitsPerSecond)} | ${fmt(p.putsPerSecond)}${expected} | ${lat} | ${fmt(p.watchEventsPerSecond)} | ${fmt(p.keepalivesPerSecond)} | ${fmt(p.etcdRssMiB, 0)} | ${mib(p.dbInUseBytes, 2)} | ${p.leasesLost} |`,
      );
    }
  }
  return rows.join('\n');
}

/** One line per node count: the history the heartbeats leave behind without compaction. */
export function heartbeatGrowthLines(results: readonly HeartbeatLoadResult[]): string[] {
  return results
    .filter((r) => r.revisionsPerMinute !== undefined || r.dbGrowthBytesPerMinute !== undefined)
    .map(
      (r) =>
        `N=${r.nodes}: ${r.revisionsPerMinute ?? '–'} revisions/min, db in use +${mib(r.dbGrowthBytesPerMinute)} MiB/min (auto-compaction ${r.autoCompaction})`,
    );
}

// ---- the run ----

const DB_TOTAL = ['etcd_mvcc_db_total_size_in_bytes', 'etcd_debugging_mvcc_db_total_size_in_bytes'];
const DB_IN_USE = ['etcd_mvcc_db_total_size_in_use_in_bytes'];
const FSYNCS = 'etcd_disk_wal_fsync_duration_seconds_count';
const COMMITS = 'etcd_disk_backend_commit_duration_seconds_count';
const REVISION = 'etcd_debugging_mvcc_current_revision';
/** Put deadline in periods, as node-agent/heartbeat.ts. */
const DEADLINE_PERIODS = 4;
const START_BATCH = 50;
const SETTLE_MS = 1000;

interface Scrape {
  t: number;
  text: string;
}

/** schedstat summed over the threads of `pid` (threads that ended in between are lost: a small undercount). */
function sched(pid: number): { runNs: number; waitNs: number } | undefined {
  try {
    const out = { runNs: 0, waitNs: 0 };
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const s = parseSchedstat(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'));
        out.runNs += s.runNs;
        out.waitNs += s.waitNs;
      } catch {
        // the thread ended
      }
    }
    return out;
  } catch {
    return undefined;
  }
}

async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return { t: monoMs(), text };
}

/** `p`, or an error after `ms`. */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`heartbeat-load: ${what} not done within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

class SimNode {
  readonly keeper: LeaseKeeper;
  private interval: NodeJS.Timeout | undefined;
  private phase: NodeJS.Timeout | undefined;
  private inFlight = false;
  private seq = 0;
  lost = 0;
  skipped = 0;
  errors = 0;

  constructor(
    readonly node: string,
    private readonly client: Etcd3,
    private readonly key: string,
    private readonly heartbeatMs: number,
    private readonly answered: (at: number, latencyMs: number) => void,
  ) {
    this.keeper = new LeaseKeeper(client, { ...LEASE_CONFIG_DEFAULT, renewWindowMs: 500 }, realClock, silentLogger());
    this.keeper.on('lost', () => this.lost++);
  }

  /** Beats from a random phase within one period, then every heartbeatMs (node-agent/heartbeat.ts). */
  startBeating(): void {
    this.phase = setTimeout(() => {
      this.phase = undefined;
      this.interval = setInterval(() => this.beat(), this.heartbeatMs);
      this.beat();
    }, Math.random() * this.heartbeatMs);
  }

  stopBeating(): void {
    if (this.phase) clearTimeout(this.phase);
    if (this.interval) clearInterval(this.interval);
    this.phase = this.interval = undefined;
  }

  get busy(): boolean {
    return this.inFlight;
  }

  private beat(): void {
    if (this.inFlight) {
      this.skipped++;
      return;
    }
    const lease = this.keeper.lease;
    if (!lease) return;
    this.inFlight = true;
    const sent = performance.now();
    this.client
      .put(this.key)
      .value(String(++this.seq))
      .lease(lease)
      .options({ deadline: Date.now() + DEADLINE_PERIODS * this.heartbeatMs })
      .exec()
      .then(() => this.answered(monoMs(), performance.now() - sent))
      .catch(() => this.errors++)
      .finally(() => (this.inFlight = false));
  }
}

interface Snapshot {
  m: Scrape;
  etcd: ProcSample;
  etcdSched: ReturnType<typeof sched>;
  selfSched: ReturnType<typeof sched>;
  cpu: NodeJS.CpuUsage;
  t: number;
  lost: number;
  skipped: number;
  errors: number;
}

async function runOne(n: number, o: HeartbeatLoadOptions, log: (s: string) => void): Promise<HeartbeatLoadResult> {
  const perClient = o.nodesPerClient ?? SIM_AGENTS_PER_CLIENT;
  const groups = clientGroups(n, perClient);
  const result: HeartbeatLoadResult = {
    nodes: n,
    clients: groups.length,
    heartbeatMs: o.heartbeatMs,
    lease: {
      ttlSeconds: LEASE_CONFIG_DEFAULT.ttlSeconds,
      keepaliveIntervalMs: LEASE_CONFIG_DEFAULT.keepaliveIntervalMs,
    },
    autoCompaction: 'off',
    phases: [],
  };
  const prefix = '/vipwarden/';
  const keys = new Keys(prefix);
  const ac = new AbortController();
  // One abort listener per lease keeper.
  setMaxListeners(n + 20, ac.signal);
  const clients: Etcd3[] = [];
  const sims: SimNode[] = [];
  let etcd: EtcdCluster | undefined;
  let watcher: Watcher | undefined;
  // In-process state (timers, clients) dies with the process; etcd registers its own kill at exit (startEtcd).
  const unregister = onExitCleanup(`heartbeat-load N=${n}`, () => {
    ac.abort();
    for (const s of sims) s.stopBeating();
  });
  try {
    etcd = await startEtcd({ members: 1 });
    const member = etcd.members[0]!;
    const pid = member.pid;
    if (pid === undefined) throw new Error('etcd is not running');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const compaction = argv.filter((a) => a.startsWith('--auto-compaction'));
    result.autoCompaction = compaction.length ? compaction.join(' ') : 'off';
    const cfg = { ...etcd.clientConfig(), timeoutMs: 5000 };

    const answers: { at: number; ms: number }[] = [];
    const record = (at: number, ms: number) => answers.push({ at, ms });
    for (const g of groups) {
      const c = connectEtcd(cfg);
      clients.push(c);
      for (const i of g) sims.push(new SimNode(nodeName(i), c, keys.heartbeat(nodeName(i)), o.heartbeatMs, record));
    }
    // The controller's watch, on its own connection.
    const wc = connectEtcd(cfg);
    clients.push(wc);
    const events: number[] = [];
    watcher = await within(10_000, 'heartbeat watch', wc.watch().prefix(keys.heartbeatPrefix()).create());
    watcher.on('put', () => events.push(monoMs()));
    watcher.on('error', () => undefined);

    for (let i = 0; i < sims.length; i += START_BATCH)
      await within(
        30_000,
        `lease grants ${i}..${Math.min(sims.length, i + START_BATCH) - 1}`,
        Promise.all(sims.slice(i, i + START_BATCH).map((s) => s.keeper.start(ac.signal))),
      );
    if (sims.some((s) => !s.keeper.lease)) throw new Error('a simulated node has no lease');
    log(
      `  N=${n}: etcd ${member.endpoint} (pid ${pid}, auto-compaction ${result.autoCompaction}); ${n} leases (TTL ${LEASE_CONFIG_DEFAULT.ttlSeconds} s, keepalive every ${LEASE_CONFIG_DEFAULT.keepaliveIntervalMs} ms) on ${groups.length} client(s) of up to ${perClient}, 1 watcher client`,
    );

    const loop = monitorEventLoopDelay({ resolution: 5 });
    const snap = async (): Promise<Snapshot> => {
      const m = await scrape(member.metricsUrl);
      return {
        m,
        etcd: sampleProc(pid),
        etcdSched: sched(pid),
        selfSched: sched(process.pid),
        cpu: process.cpuUsage(),
        t: monoMs(),
        lost: sims.reduce((s, x) => s + x.lost, 0),
        skipped: sims.reduce((s, x) => s + x.skipped, 0),
        errors: sims.reduce((s, x) => s + x.errors, 0),
      };
    };
    const measure = async (phase: HeartbeatPhase): Promise<HeartbeatPhaseResult> => {
      await sleep(SETTLE_MS);
      const a = await snap();
      loop.reset();
      loop.enable();
      await sleep(o.durationMs);
      const b = await snap();
      loop.disable();
      const ms = b.t - a.t;
      const perS = (d: number | undefined) => (d === undefined ? 0 : Math.round(((d * 1000) / ms) * 10) / 10);
      const delta = (name: string) => {
        const x = promValue(a.m.text, name);
        const y = promValue(b.m.text, name);
        return x === undefined || y === undefined ? undefined : y - x;
      };
      const inWindow = answers.filter((x) => x.at >= a.t && x.at <= b.t);
      const ga = grpcCounters(a.m.text);
      const gb = grpcCounters(b.m.text);
      const rev = delta(REVISION);
      const r: HeartbeatPhaseResult = {
        phase,
        windowMs: Math.round(ms),
        etcdCpuPercent: Math.round(((b.etcd.cpuS - a.etcd.cpuS) / (ms / 1000)) * 1000) / 10,
        etcdRssMiB: Math.round(b.etcd.rssKiB / 1024),
        putsPerSecond: perS(inWindow.length),
        etcdPutsPerSecond: perS((gb.unary.get('Put') ?? 0) - (ga.unary.get('Put') ?? 0)),
        putErrors: b.errors - a.errors,
        beatsSkipped: b.skipped - a.skipped,
        watchEventsPerSecond: perS(events.filter((t) => t >= a.t && t <= b.t).length),
        keepalivesPerSecond: perS(
          (gb.streamMsgs.get('LeaseKeepAlive') ?? 0) - (ga.streamMsgs.get('LeaseKeepAlive') ?? 0),
        ),
        fsyncsPerSecond: perS(delta(FSYNCS)),
        backendCommitsPerSecond: perS(delta(COMMITS)),
        leasesLost: b.lost - a.lost,
        generatorCpuPercent:
          Math.round(((b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system) / 1000 / ms) * 1000) / 10,
        generatorLoopDelayP99Ms: Math.round(loop.percentile(99) / 1e4) / 100,
        loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
      };
      const ew = waitPercent(a.etcdSched, b.etcdSched, ms);
      const gw = waitPercent(a.selfSched, b.selfSched, ms);
      if (ew !== undefined) r.etcdRunqueueWaitPercent = ew;
      if (gw !== undefined) r.generatorRunqueueWaitPercent = gw;
      const fm = meanMs(delta('etcd_disk_wal_fsync_duration_seconds_sum'), delta(FSYNCS));
      const cm = meanMs(delta('etcd_disk_backend_commit_duration_seconds_sum'), delta(COMMITS));
      if (fm !== undefined) r.walFsyncMeanMs = fm;
      if (cm !== undefined) r.backendCommitMeanMs = cm;
      const lat = latencySummary(inWindow.map((x) => x.ms));
      if (lat) r.putLatencyMs = lat;
      const total = promFirst(b.m.text, DB_TOTAL);
      const inUse = promFirst(b.m.text, DB_IN_USE);
      if (total !== undefined) r.dbTotalSizeBytes = total;
      if (inUse !== undefined) r.dbInUseBytes = inUse;
      if (rev !== undefined) r.revisions = rev;
      if (phase === 'heartbeats') {
        const ia = promFirst(a.m.text, DB_IN_USE);
        const g = perMinute(inUse !== undefined && ia !== undefined ? inUse - ia : undefined, ms);
        if (g !== undefined) result.dbGrowthBytesPerMinute = g;
        const rpm = perMinute(rev, ms);
        if (rpm !== undefined) result.revisionsPerMinute = rpm;
      }
      // Answers before this window are not needed again.
      answers.splice(0, answers.length);
      events.splice(0, events.length);
      log(
        `  N=${n} ${phase}: etcd CPU ${r.etcdCpuPercent} %, ${r.fsyncsPerSecond} fsyncs/s, ${r.putsPerSecond} puts/s` +
          (r.putLatencyMs
            ? ` (p50 ${r.putLatencyMs.p50} ms, p99 ${r.putLatencyMs.p99} ms, max ${r.putLatencyMs.max} ms)`
            : '') +
          `, ${r.watchEventsPerSecond} watch events/s, ${r.keepalivesPerSecond} keepalives/s, RSS ${r.etcdRssMiB} MiB, db ${mib(r.dbTotalSizeBytes, 2)} MiB (in use ${mib(r.dbInUseBytes, 2)}), ` +
          `${r.putErrors} put errors, ${r.beatsSkipped} beats skipped, ${r.leasesLost} leases lost; fsync mean ${r.walFsyncMeanMs ?? '–'} ms, commit mean ${r.backendCommitMeanMs ?? '–'} ms; waiting for a CPU (% of the window): etcd ${r.etcdRunqueueWaitPercent ?? '–'} %, this process ${r.generatorRunqueueWaitPercent ?? '–'} %; this process ${r.generatorCpuPercent} % CPU, loop delay p99 ${r.generatorLoopDelayP99Ms} ms; load ${r.loadAverage.join(' ')}`,
      );
      return r;
    };

    result.phases.push(await measure('baseline'));
    for (const s of sims) s.startBeating();
    result.phases.push(await measure('heartbeats'));
    for (const s of sims) s.stopBeating();
    // Puts in flight end by their deadline (4 periods) at the latest.
    const drainUntil = monoMs() + DEADLINE_PERIODS * o.heartbeatMs + 2000;
    while (sims.some((s) => s.busy) && monoMs() < drainUntil) await sleep(10);
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    log(`  N=${n}: failed: ${result.error}`);
  } finally {
    ac.abort();
    for (const s of sims) s.stopBeating();
    await watcher?.cancel().catch(() => undefined);
    for (const c of clients) c.close();
    await etcd?.stop().catch(() => undefined);
    unregister();
  }
  return result;
}

export async function runHeartbeatLoad(o: HeartbeatLoadOptions): Promise<HeartbeatLoadResult[]> {
  const log = o.log ?? (() => undefined);
  if (!(o.heartbeatMs >= 1)) throw new Error(`heartbeat-load: heartbeatMs must be >= 1, got ${o.heartbeatMs}`);
  if (!(o.durationMs >= 100)) throw new Error(`heartbeat-load: durationMs must be >= 100, got ${o.durationMs}`);
  await readClockTicks();
  log(
    `  ${o.nodes.join(', ')} simulated nodes, a heartbeat put every ${o.heartbeatMs} ms each, ${o.durationMs} ms per phase; ${cpus().length} cores, load ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  const out: HeartbeatLoadResult[] = [];
  for (const n of o.nodes) out.push(await runOne(n, o, log));
  return out;
}
