// Scale benchmark: one controller process (directory source with 1,000 FailoverGroup files), 100 simulated agents
// (sim-agents.ts, one process, one etcd client each) and a real etcd on loopback. No namespaces, no addresses.
// Measures the first full placement, the reassignment of a lost node's groups after its lease is revoked,
// the controller's CPU and memory (/proc), and etcd's request rate in steady state (/metrics, sampled twice).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify as toYaml } from 'yaml';
import { connectEtcd, Mirror } from '../../common/etcd.js';
import { AssignmentRecord, decode, Keys, NodeRecord } from '../../common/keyspace.js';
import { silentLogger } from '../../common/log.js';
import { DIST, requireBuilt } from '../testbed/cluster.js';
import { spawnLogged, type ProcHandle } from '../testbed/proc.js';
import { onExitCleanup } from '../testbed/registry.js';
import { freePorts, monoMs, sleep, startEtcd, type EtcdCluster } from '../testbed/index.js';
import { run } from '../testbed/util.js';
import { ratePerSecond } from './stats.js';
import type { SimConfig } from './sim-agents.js';

export interface ScaleOptions {
  nodes: number;
  groups: number;
  /** Length of the steady-state window (ms). */
  steadyMs: number;
  log: (line: string) => void;
}

export interface ProcSample {
  t: number;
  cpuS: number;
  rssKiB: number;
  hwmKiB: number;
}

export interface ScaleResult {
  nodes: number;
  groups: number;
  /** ms from the controller's start. */
  /** Cold start: empty etcd, agents waiting for the group records; ms from the controller's start. */
  placement: {
    leaderMs?: number;
    groupsPublishedMs?: number;
    healthCompleteMs?: number;
    placedMs?: number;
    placed: number;
  };
  /** The controller's reconcile passes (from its /metrics histogram): count, mean and the bucket of the slowest. */
  passes: { toPlacement?: PassSummary; steady?: PassSummary & { perSecond: number } };
  /** Warm start: group records and every agent's health already in etcd, assignments deleted, a new controller. */
  warmPlacement: {
    leaderMs?: number;
    /** From the controller's log: sources read and mirrors listed ("leading"), first and last assignment written. */
    leadingMs?: number;
    firstAssignmentMs?: number;
    lastAssignmentMs?: number;
    placedMs?: number;
    placed: number;
    cpuSeconds?: number;
    note?: string;
  };
  lostNode: {
    node: string;
    groups: number;
    reassignedMs?: number;
    reassigned: number;
    lastGroupMs?: number;
    note?: string;
  };
  controller: {
    cpuSecondsToPlacement?: number;
    steadyCpuPercent?: number;
    rssMiB?: number;
    peakRssMiB?: number;
  };
  etcd: {
    windowMs: number;
    unaryPerSecond: Record<string, number>;
    streamMessagesPerSecond: Record<string, number>;
    totalPerSecond: number;
  };
  steadyWindowMs: number;
}

let clkTck = 100;

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
function logMilestones(
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

async function passStats(url: string): Promise<PassStats> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return parsePassHistogram(await res.text());
}

function tail(path: string, chars = 1500): string {
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

function sampleProc(pid: number): ProcSample {
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

async function etcdMetrics(endpoint: string): Promise<{ t: number; c: ReturnType<typeof grpcCounters> }> {
  const res = await fetch(`${endpoint}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return { t: monoMs(), c: grpcCounters(text) };
}

function rates(a: Map<string, number>, b: Map<string, number>, ms: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b) {
    const r = ratePerSecond(a.get(k) ?? 0, v, ms);
    if (r > 0) out[k] = Math.round(r * 10) / 10;
  }
  return out;
}

export function nodeName(i: number): string {
  return `node-${String(i).padStart(3, '0')}`;
}

/** Group i: one /32 VIP, candidates node i, i+1, i+2 (mod N) with priorities 100, 90, 80. */
export function scaleGroup(i: number, nodes: number): Record<string, unknown> {
  return {
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name: `g${String(i).padStart(4, '0')}` },
    spec: {
      vips: [{ address: `198.19.${Math.floor(i / 250)}.${(i % 250) + 1}/32` }],
      nodes: [0, 1, 2].map((k) => ({ name: nodeName((i + k) % nodes), priority: 100 - 10 * k })),
      checks: [{ name: 'web', type: 'http', http: { port: 80, path: '/' }, intervalMs: 1000 }],
      failback: 'auto',
    },
  };
}

async function waitFor<T>(
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

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  requireBuilt();
  if (o.nodes < 3) throw new Error('scale: at least 3 nodes');
  clkTck = Number((await run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
  const work = mkdtempSync('/tmp/vipwarden-scale-');
  const unregister = onExitCleanup(`scale benchmark dir ${work}`, () => {
    if (process.env['VIPWARDEN_BENCH_KEEP'] !== '1') rmSync(work, { recursive: true, force: true });
  });
  const groupsDir = join(work, 'groups');
  mkdirSync(groupsDir);
  const prefix = '/vipwarden/';
  const keys = new Keys(prefix);
  const nodes = Array.from({ length: o.nodes }, (_, i) => nodeName(i));
  const victim = nodes[0]!;
  const procs: ProcHandle[] = [];
  let etcd: EtcdCluster | undefined;
  const client0 = { c: undefined as ReturnType<typeof connectEtcd> | undefined };
  const ac = new AbortController();
  try {
    for (let i = 0; i < o.groups; i++)
      writeFileSync(join(groupsDir, `g${String(i).padStart(4, '0')}.yaml`), toYaml(scaleGroup(i, o.nodes)));
    etcd = await startEtcd({ members: 1 });
    const endpoint = etcd.endpoints[0]!;
    const client = connectEtcd({ ...etcd.clientConfig(), timeoutMs: 30_000 });
    client0.c = client;
    o.log(`  etcd at ${endpoint}; ${o.groups} group files in ${groupsDir}`);

    // 1. The simulated agents, until every node is registered.
    const simCfg: SimConfig = {
      ...etcd.clientConfig({ user: 'sim-agents' }),
      prefix,
      nodes,
      lease: { ttlSeconds: 2, keepaliveIntervalMs: 250, marginMs: 500, renewWindowMs: 500 },
      resyncMs: 60_000,
      victim,
    };
    // Not niced: a niced simulator starved on a loaded machine, and its 100 leases ended at once.
    const sim = spawnLogged([process.execPath, join(DIST, 'hack', 'bench', 'sim-agents.js'), JSON.stringify(simCfg)], {
      name: 'sim-agents',
      stdout: 'pipe',
      stderrLog: join(work, 'sim-agents.err.log'),
    });
    procs.push(sim);
    const simEvents: Record<string, unknown>[] = [];
    createInterface({ input: sim.stdout! }).on('line', (l) => {
      try {
        simEvents.push({ ...(JSON.parse(l) as Record<string, unknown>), t: monoMs() });
      } catch {
        // not ours
      }
    });
    await waitFor(
      `${o.nodes} registered nodes`,
      60_000,
      async () => {
        if (sim.exited) throw new Error(`sim-agents exited: ${tail(sim.stderrLog)}`);
        return (await client.getAll().prefix(keys.nodesPrefix()).count()) >= o.nodes;
      },
      200,
    );
    o.log(`  ${o.nodes} simulated agents registered`);

    // 2. An observer of the assignments (holder per group), then the controller.
    const holders = new Map<string, string | null>();
    const mirror = new Mirror(client, keys.assignmentsPrefix(), silentLogger());
    mirror.on('change', (changed) => {
      for (const k of changed) {
        const e = mirror.get(k);
        const g = k.slice(keys.assignmentsPrefix().length);
        if (!e) holders.delete(g);
        else holders.set(g, decode(AssignmentRecord, e.value)?.holder ?? null);
      }
    });
    mirror.start(ac.signal);
    await mirror.ready;
    const placedCount = () => [...holders.values()].filter((h) => h !== null).length;

    const cfgPath = join(work, 'controller.yaml');
    // With its metrics server, as deployed (deploy/ scrapes it): pass durations come from there.
    const [metricsPort] = await freePorts(1, ['127.0.0.1']);
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    writeFileSync(
      cfgPath,
      toYaml({
        id: 'scale-controller',
        etcd: { ...etcd.clientConfig({ user: 'scale-controller' }), prefix },
        source: { directory: groupsDir },
        logLevel: 'info',
        metrics: { listen: `127.0.0.1:${metricsPort}` },
      }),
    );
    const t0 = monoMs();
    // For profiling: VIPWARDEN_BENCH_CONTROLLER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof".
    const nodeArgs = (process.env['VIPWARDEN_BENCH_CONTROLLER_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
    const controller = spawnLogged(
      [process.execPath, ...nodeArgs, join(DIST, 'controller', 'main.js'), '--config', cfgPath],
      {
        name: 'controller',
        stdoutLog: join(work, 'controller.out.log'),
        stderrLog: join(work, 'controller.err.log'),
      },
    );
    procs.push(controller);
    const placement: ScaleResult['placement'] = { placed: 0 };
    let placedAt: number | undefined;
    let cpuAtPlacement: ProcSample | undefined;
    let passesAtPlacement: PassStats | undefined;
    const deadline = t0 + 120_000;
    while (monoMs() < deadline) {
      if (controller.exited)
        throw new Error(
          `the controller exited: ${tail(controller.stderrLog)} ${tail(join(work, 'controller.out.log'))}`,
        );
      const now = monoMs();
      if (placement.leaderMs === undefined && (await client.get(keys.leader()).string()))
        placement.leaderMs = Math.round(now - t0);
      if (
        placement.groupsPublishedMs === undefined &&
        (await client.getAll().prefix(keys.groupsPrefix()).count()) >= o.groups
      )
        placement.groupsPublishedMs = Math.round(monoMs() - t0);
      if (
        placement.healthCompleteMs === undefined &&
        (await client.getAll().prefix(keys.healthPrefix()).count()) >= o.groups * 3
      )
        placement.healthCompleteMs = Math.round(monoMs() - t0);
      if (placedCount() >= o.groups) {
        placedAt = monoMs();
        cpuAtPlacement = sampleProc(controller.pid);
        passesAtPlacement = await passStats(metricsUrl).catch(() => undefined);
        break;
      }
      await sleep(50);
    }
    placement.placed = placedCount();
    if (placedAt !== undefined) placement.placedMs = Math.round(placedAt - t0);
    // Groups are placed once every candidate reported or settleMs passed: health may still be coming in.
    for (let i = 0; i < 600 && placement.healthCompleteMs === undefined; i++) {
      if ((await client.getAll().prefix(keys.healthPrefix()).count()) >= o.groups * 3)
        placement.healthCompleteMs = Math.round(monoMs() - t0);
      else await sleep(50);
    }
    const progress = simEvents.filter(
      (e) =>
        e['event'] === 'stats' &&
        typeof e['t'] === 'number' &&
        (e['t'] as number) >= t0 &&
        (e['t'] as number) <= t0 + 60_000,
    );
    o.log(
      `  health records written by the simulated agents, by second after the controller started: ${progress.map((e) => `${Math.round(((e['t'] as number) - t0) / 1000)}s:${String(e['health'])}`).join(' ')}`,
    );
    o.log(
      `  placement: leader ${placement.leaderMs} ms, groups published ${placement.groupsPublishedMs} ms, health complete ${placement.healthCompleteMs} ms, all ${placement.placed} placed ${placement.placedMs ?? 'never'} ms`,
    );

    // 3. Steady state: nothing changes; etcd's counters and the controller's CPU over a window.
    await sleep(3000);
    const m1 = await etcdMetrics(endpoint);
    const c1 = sampleProc(controller.pid);
    const p1 = await passStats(metricsUrl).catch(() => undefined);
    await sleep(o.steadyMs);
    const m2 = await etcdMetrics(endpoint);
    const c2 = sampleProc(controller.pid);
    const p2 = await passStats(metricsUrl).catch(() => undefined);
    const windowMs = m2.t - m1.t;
    const unaryPerSecond = rates(m1.c.unary, m2.c.unary, windowMs);
    const streamMessagesPerSecond = rates(m1.c.streamMsgs, m2.c.streamMsgs, windowMs);
    const totalPerSecond = Math.round(
      [...Object.values(unaryPerSecond), ...Object.values(streamMessagesPerSecond)].reduce((s, x) => s + x, 0),
    );
    const steadyCpuPercent = Math.round(((c2.cpuS - c1.cpuS) / ((c2.t - c1.t) / 1000)) * 1000) / 10;
    const passes: ScaleResult['passes'] = {};
    if (passesAtPlacement) passes.toPlacement = summarizePasses(undefined, passesAtPlacement);
    if (p1 && p2)
      passes.steady = {
        ...summarizePasses(p1, p2),
        perSecond: Math.round(((p2.count - p1.count) / ((c2.t - c1.t) / 1000)) * 10) / 10,
      };
    o.log(
      `  reconcile passes: to placement ${JSON.stringify(passes.toPlacement)}, steady ${JSON.stringify(passes.steady)}`,
    );
    o.log(
      `  steady state over ${Math.round(windowMs)} ms: etcd ${totalPerSecond} requests/s, controller CPU ${steadyCpuPercent} %, RSS ${Math.round(c2.rssKiB / 1024)} MiB`,
    );

    // 4. A node is lost: its agent stops, its lease is revoked; every group it held must move.
    const held = [...holders].filter(([, h]) => h === victim).map(([g]) => g);
    const lostNode: ScaleResult['lostNode'] = { node: victim, groups: held.length, reassigned: 0 };
    sim.kill('SIGUSR2');
    await waitFor('victim stopped', 5000, () => simEvents.some((e) => e['event'] === 'victim-stopped'), 20);
    const rec = decode(NodeRecord, await client.get(keys.node(victim)).string());
    if (!rec) throw new Error(`scale: no node record for ${victim}`);
    await client.leaseClient.leaseRevoke({ ID: rec.lease });
    const tRevoked = monoMs();
    const moved = () =>
      held.filter((g) => {
        const h = holders.get(g);
        return h !== undefined && h !== null && h !== victim;
      }).length;
    let lastMove: number | undefined;
    const end = tRevoked + 30_000;
    let seen = 0;
    while (monoMs() < end) {
      const n = moved();
      if (n > seen) {
        seen = n;
        lastMove = monoMs();
      }
      if (n >= held.length) break;
      await sleep(5);
    }
    lostNode.reassigned = moved();
    if (lostNode.reassigned >= held.length && lastMove !== undefined)
      lostNode.reassignedMs = Math.round(lastMove - tRevoked);
    else lostNode.note = `only ${lostNode.reassigned} of ${held.length} groups moved within 30 s`;
    const c3 = sampleProc(controller.pid);
    o.log(
      `  lost node ${victim}: ${lostNode.reassigned}/${held.length} groups reassigned ${lostNode.reassignedMs ?? '(not all)'} ms after its lease was revoked`,
    );

    // 5. Warm start: the controller's own share of a placement. Health is all there; a new controller must
    //    place every group (its assignments were deleted while no controller ran).
    await controller.stop({ signal: 'SIGTERM', timeoutMs: 5000 });
    await client.delete().prefix(keys.assignmentsPrefix()).exec();
    await waitFor('assignments gone from the observer', 10_000, () => holders.size === 0, 20);
    const warm: ScaleResult['warmPlacement'] = { placed: 0 };
    const t1 = monoMs();
    const wallMinusMono = Date.now() - monoMs();
    const controller2 = spawnLogged(
      [process.execPath, ...nodeArgs, join(DIST, 'controller', 'main.js'), '--config', cfgPath],
      {
        name: 'controller',
        stdoutLog: join(work, 'controller2.out.log'),
        stderrLog: join(work, 'controller2.err.log'),
      },
    );
    procs.push(controller2);
    const deadline2 = t1 + 60_000;
    while (monoMs() < deadline2) {
      if (controller2.exited) {
        warm.note = `the controller exited: ${tail(controller2.stderrLog)} ${tail(join(work, 'controller2.out.log'))}`;
        break;
      }
      if (warm.leaderMs === undefined && (await client.get(keys.leader()).string()))
        warm.leaderMs = Math.round(monoMs() - t1);
      if (placedCount() >= o.groups) {
        warm.placedMs = Math.round(monoMs() - t1);
        warm.cpuSeconds = Math.round(sampleProc(controller2.pid).cpuS * 100) / 100;
        break;
      }
      await sleep(20);
    }
    warm.placed = placedCount();
    Object.assign(warm, logMilestones(join(work, 'controller2.out.log'), t1, wallMinusMono));
    o.log(
      `  warm start (health already in etcd): leader ${warm.leaderMs} ms, leading ${warm.leadingMs} ms, assignments written ${warm.firstAssignmentMs}..${warm.lastAssignmentMs} ms, ${warm.placed} groups placed ${warm.placedMs ?? 'never'} ms after the controller started, ${warm.cpuSeconds ?? '?'} s CPU`,
    );

    return {
      nodes: o.nodes,
      groups: o.groups,
      placement,
      passes,
      warmPlacement: warm,
      lostNode,
      controller: {
        ...(cpuAtPlacement ? { cpuSecondsToPlacement: Math.round(cpuAtPlacement.cpuS * 100) / 100 } : {}),
        steadyCpuPercent,
        rssMiB: Math.round(c2.rssKiB / 1024),
        peakRssMiB: Math.round(c3.hwmKiB / 1024),
      },
      etcd: { windowMs: Math.round(windowMs), unaryPerSecond, streamMessagesPerSecond, totalPerSecond },
      steadyWindowMs: o.steadyMs,
    };
  } finally {
    ac.abort();
    for (const p of procs.reverse()) await p.stop({ signal: 'SIGTERM', timeoutMs: 3000 }).catch(() => undefined);
    client0.c?.close();
    await etcd?.stop().catch(() => undefined);
    if (process.env['VIPWARDEN_BENCH_KEEP'] === '1') o.log(`  kept ${work} (VIPWARDEN_BENCH_KEEP=1)`);
    else rmSync(work, { recursive: true, force: true });
    unregister();
  }
}
