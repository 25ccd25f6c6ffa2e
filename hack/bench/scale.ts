// Scale benchmark: one controller process (directory source with 1,000 FailoverGroup files), 100 simulated agents
// (sim-agents.ts, one process, one etcd client each) and a real etcd on loopback. No namespaces, no addresses.
// Measures the first full placement, the reassignment of a lost node's groups after its lease is revoked,
// the controller's CPU and memory (/proc), and etcd's request rate in steady state (/metrics, sampled twice).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
import type { SimConfig } from './sim-agents.js';
import {
  etcdMetrics,
  logMilestones,
  passStats,
  rates,
  readClockTicks,
  sampleProc,
  summarizePasses,
  tail,
  waitFor,
  type PassStats,
} from './scale-metrics.js';
import {
  DEFAULT_AGENT_LEASE,
  nodeName,
  safetyWaitMs,
  scaleGroup,
  SCALE_CONTROLLER_LEASE,
  SIM_AGENTS_PER_CLIENT,
  SIM_ASSIGNMENT_WATCHERS,
  SIM_LEASE,
  LOST_NODE_SETTLE_MS_PER_GROUP,
  type ProcSample,
  type ScaleOptions,
  type ScaleResult,
} from './scale-types.js';

export {
  grpcCounters,
  parsePassHistogram,
  parseProcStat,
  parseProcStatus,
  summarizePasses,
  type PassStats,
  type PassSummary,
} from './scale-metrics.js';
export * from './scale-types.js';

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  requireBuilt();
  if (o.nodes < 3) throw new Error('scale: at least 3 nodes');
  await readClockTicks();
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
    o.log(
      `  etcd at ${endpoint}; ${o.groups} group files in ${groupsDir}; controller lease ${JSON.stringify(SCALE_CONTROLLER_LEASE)}`,
    );

    // 1. The simulated agents, until every node is registered.
    const simCfg: SimConfig = {
      ...etcd.clientConfig({ user: 'sim-agents' }),
      prefix,
      nodes,
      lease: SIM_LEASE,
      resyncMs: 60_000,
      victim,
      agentsPerClient: SIM_AGENTS_PER_CLIENT,
      assignmentWatchers: Math.min(o.nodes, SIM_ASSIGNMENT_WATCHERS),
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
      Math.max(60_000, o.nodes * 120),
      async () => {
        if (sim.exited) throw new Error(`sim-agents exited: ${tail(sim.stderrLog)}`);
        return (await client.getAll().prefix(keys.nodesPrefix()).count()) >= o.nodes;
      },
      200,
    );
    o.log(
      `  ${o.nodes} simulated agents registered (${SIM_AGENTS_PER_CLIENT} per etcd client, ${simCfg.assignmentWatchers} mirroring assignments/, lease ${JSON.stringify(SIM_LEASE)})`,
    );

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
        lease: SCALE_CONTROLLER_LEASE,
        logLevel: 'info',
        metrics: { listen: `127.0.0.1:${metricsPort}` },
      }),
    );
    const t0 = monoMs();
    // For profiling: VIPWARDEN_BENCH_CONTROLLER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof".
    const nodeArgs = (process.env['VIPWARDEN_BENCH_CONTROLLER_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
    const startController = (log: string) => {
      const p = spawnLogged([process.execPath, ...nodeArgs, join(DIST, 'controller', 'main.js'), '--config', cfgPath], {
        name: 'controller',
        stdoutLog: join(work, `${log}.out.log`),
        stderrLog: join(work, `${log}.err.log`),
      });
      procs.push(p);
      return p;
    };
    const controller = startController('controller');
    const placement: ScaleResult['placement'] = { placed: 0 };
    let placedAt: number | undefined;
    let cpuAtPlacement: ProcSample | undefined;
    let passesAtPlacement: PassStats | undefined;
    // 120 s, more for more groups (10,000 on this 2-core machine).
    const deadline = t0 + Math.max(120_000, o.groups * 30);
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
    const m1 = await etcdMetrics(etcd.members[0]!.metricsUrl);
    const c1 = sampleProc(controller.pid);
    const p1 = await passStats(metricsUrl).catch(() => undefined);
    await sleep(o.steadyMs);
    const m2 = await etcdMetrics(etcd.members[0]!.metricsUrl);
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

    // 4. Warm start: the controller's own share of a placement. Health is all there; a new controller must
    //    place every group (its assignments were deleted while no controller ran). Before the lost node: after it,
    //    the 30 groups that name the lost node as a candidate waited settleMs (2 s) for its health.
    const c3 = sampleProc(controller.pid);
    await controller.stop({ signal: 'SIGTERM', timeoutMs: 5000 });
    await client.delete().prefix(keys.assignmentsPrefix()).exec();
    await waitFor('assignments gone from the observer', 10_000, () => holders.size === 0, 20);
    const warm: ScaleResult['warmPlacement'] = { placed: 0 };
    const t1 = monoMs();
    const wallMinusMono = Date.now() - monoMs();
    const controller2 = startController('controller2');
    const deadline2 = t1 + Math.max(60_000, o.groups * 20);
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

    // 5. A node is lost: its agent stops, its lease is revoked; every group it held must move (the warm start's
    //    controller, once its placement settled: the watches of the controller and of the simulated agents bring
    //    back every record it wrote, ~3 s for 10,000 on the 2-core machine, during which a node key's deletion
    //    waits behind them).
    const settleMs = Math.max(3000, o.groups * LOST_NODE_SETTLE_MS_PER_GROUP);
    await sleep(settleMs);
    const held = [...holders].filter(([, h]) => h === victim).map(([g]) => g);
    const lostNode: ScaleResult['lostNode'] = {
      node: victim,
      groups: held.length,
      reassigned: 0,
      safetyWaitMs: safetyWaitMs(SIM_LEASE),
      defaultAgentSafetyWaitMs: safetyWaitMs(DEFAULT_AGENT_LEASE),
      settleMs,
    };
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
    o.log(
      `  lost node ${victim}: ${lostNode.reassigned}/${held.length} groups reassigned ${lostNode.reassignedMs ?? '(not all)'} ms after its lease was revoked (Safety-3 wait for the simulated agents' lease ${lostNode.safetyWaitMs} ms; a default agent's lease adds ${lostNode.defaultAgentSafetyWaitMs} ms)`,
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
