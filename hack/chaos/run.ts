// One chaos run for one profile: a 3-node netns testbed with a 3-member etcd, two controllers, three groups (one
// with an IPv6 VIP too), the sampler and one client probe per group throughout; N iterations of a random fault held
// for a random time, undone, then waited on until every VIP is back on exactly its preferred node.
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FaultState } from '../bench/faults.js';
import { VIPWARDEN_PROFILES, withFenceMode } from '../bench/vipwarden.js';
import { FENCE_TABLE } from '../../node-agent/fence/ruleset.js';
import { startCluster, webGroup, type Cluster } from '../testbed/cluster.js';
import { outageAround, startProbe, startSampler, type Probe, type Sampler } from '../testbed/index.js';
import { monoMs, sleep } from '../testbed/util.js';
import { assignmentsSettled } from './settled.js';
import {
  FAULT_KINDS,
  healAll,
  injectFault,
  Rng,
  subjectOf,
  type ChaosEnv,
  type ChaosGroup,
  type FaultKind,
  type Layout,
  startSupervisor,
} from './faults.js';

export type ChaosProfile = 'default' | 'fast';

export interface ChaosOptions {
  profile: ChaosProfile;
  iterations: number;
  seed: number;
  /** Stop starting iterations after this (monotonic ms deadline). */
  deadline: number;
  /** Where logs of bad iterations go. */
  outDir: string;
  kinds?: readonly FaultKind[];
  /** Kinds of the first iterations, in this order (the e2e run makes sure of one); the rest are drawn from kinds. */
  schedule?: readonly FaultKind[];
  /** How long a fault is held: [min, max] ms. */
  holdMs?: [number, number];
  /** How long to wait for convergence after an undo. */
  convergeTimeoutMs?: number;
  log?: (msg: string) => void;
  /** Merged into controller.yaml (e.g. kernelSlackMs, to show what a smaller Safety-3 wait does). */
  controller?: Record<string, unknown>;
  /** The agents' fence mode (default: the profile's). The sampler counts only open-gated holders. */
  fence?: 'off' | 'nftables' | 'auto';
}

export interface IterationResult {
  i: number;
  kind: FaultKind;
  target: string;
  churn: boolean;
  holdMs: number;
  /** Time on two nodes at once, summed over every VIP, from the injection to convergence. */
  dualMs: number;
  /** Longest client-visible outage over the groups' probes (ms); per group in `outages`. */
  outageMs: number;
  outages: Record<string, number>;
  converged: boolean;
  convergeMs: number;
  /** Controllers and agents that exited on their own and were restarted by the supervisor during the iteration. */
  restarts: string[];
  error?: string;
  logsKept?: string;
}

export interface ChaosResult {
  profile: ChaosProfile;
  seed: number;
  iterations: IterationResult[];
  /** Iterations asked for but not run (deadline). */
  skipped: number;
  setupError?: string;
}

const PROBE_INTERVAL_MS = 20;
/** How long a placed layout waits for its assignments to settle (a dead lease's end plus a new leader's wait). */
const SETTLE_WAIT_MS = 15_000;

function layoutFor(c: Cluster): Layout {
  const n = c.tb.nodes.map((x) => x.name);
  const [a, b, d] = [n[0]!, n[1]!, n[2]!];
  const groups: ChaosGroup[] = [
    { name: 'chaos-a', vips: [`${c.tb.vip(0)}/24`, `${c.tb.vip6(0)}/64`], order: [a, b, d] },
    { name: 'chaos-b', vips: [`${c.tb.vip(1)}/24`, `${c.tb.vip(3)}/24`], order: [b, d, a] },
    { name: 'chaos-c', vips: [`${c.tb.vip(2)}/24`], order: [d, a, b] },
  ];
  const vipGroup = new Map<string, string>();
  for (const g of groups) for (const v of g.vips) vipGroup.set(v, g.name);
  return { groups, vipGroup };
}

const bare = (v: string) => v.split('/')[0]!;

/**
 * Every VIP on exactly its group's first node (per the normal layout), every probe answered by it, and every
 * assignment settled on its holder's current lease (settled.ts), waited for at most SETTLE_WAIT_MS once the VIPs
 * are placed: an assignment that stays unsettled longer does not make the iteration count as not converged.
 */
async function waitConverged(
  layout: Layout,
  sampler: Sampler,
  probes: Map<string, Probe>,
  timeoutMs: number,
  settled: () => Promise<boolean>,
): Promise<boolean> {
  const end = monoMs() + timeoutMs;
  let stableSince: number | undefined;
  let placedSince: number | undefined;
  while (monoMs() < end) {
    let ok = true;
    for (const g of layout.groups) {
      for (const v of g.vips) {
        const h = sampler.holders(bare(v));
        if (h.length !== 1 || h[0] !== g.order[0]) ok = false;
      }
      const p = probes.get(g.name);
      const last = p?.samples().slice(-3) ?? [];
      if (last.length < 3 || !last.every((s) => s.ok && s.body === g.order[0])) ok = false;
    }
    if (ok) placedSince ??= monoMs();
    else placedSince = undefined;
    if (ok && monoMs() - placedSince! < SETTLE_WAIT_MS && !(await settled())) ok = false;
    if (ok) {
      // Stay converged for a moment: a VIP that comes and goes is not converged.
      stableSince ??= monoMs();
      if (monoMs() - stableSince >= 500) return true;
    } else stableSince = undefined;
    await sleep(50);
  }
  return false;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? ((m: string) => console.log(m));
  const rng = new Rng(o.seed);
  const kinds = o.kinds ?? FAULT_KINDS;
  const [holdMin, holdMax] = o.holdMs ?? [300, 4000];
  const convergeTimeoutMs = o.convergeTimeoutMs ?? 30_000;
  const profileName = o.profile === 'default' ? 'vipwarden-default' : 'vipwarden-fast';
  const p = VIPWARDEN_PROFILES[profileName];
  const result: ChaosResult = { profile: o.profile, seed: o.seed, iterations: [], skipped: 0 };

  let c: Cluster | undefined;
  let sampler: Sampler | undefined;
  const probes = new Map<string, Probe>();
  let stopSupervisor: (() => void) | undefined;
  try {
    c = await startCluster({
      name: o.profile === 'default' ? 'chaos-d' : 'chaos-f',
      nodes: 3,
      ipv6: true,
      etcdMembers: 3,
      etcdHeartbeatMs: p.etcdHeartbeatMs,
      etcdElectionMs: p.etcdElectionMs,
      agent: withFenceMode(p.agent, o.fence),
      controller: { ...p.controller, ...(o.controller ?? {}) },
      controllerReplicas: 2,
      logLevel: 'info',
    });
    const cl = c;
    const layout = layoutFor(cl);
    const check: Record<string, unknown> = { name: 'nginx', type: 'http', http: { port: 80, path: '/' }, ...p.check };
    const orders = new Map(layout.groups.map((g) => [g.name, g.order]));
    const writeGroup = (name: string, vips: string[]) => {
      const order = orders.get(name)!;
      cl.applyGroup(
        webGroup({
          name,
          vips,
          nodes: order.map((n, i): [string, number] => [n, 100 - 10 * i]),
          failback: 'auto',
          checks: [check],
        }),
      );
    };
    for (const g of layout.groups) writeGroup(g.name, g.vips);
    const settled = () => assignmentsSettled(cl);

    const remainingMs = Math.max(60_000, o.deadline - monoMs() + 120_000);
    sampler = await startSampler(cl.tb, {
      periodMs: 5,
      heartbeatMs: 1000,
      maxDurationS: Math.ceil(remainingMs / 1000),
      fenceTable: FENCE_TABLE,
    });
    for (const g of layout.groups) {
      probes.set(
        g.name,
        await startProbe(cl.tb, {
          target: bare(g.vips[0]!),
          intervalMs: PROBE_INTERVAL_MS,
          timeoutMs: 100,
          maxDurationMs: Math.min(30 * 60_000, remainingMs),
        }),
      );
    }
    const env: ChaosEnv = {
      c: cl,
      s: subjectOf(cl, profileName, bare(layout.groups[0]!.vips[0]!)),
      st: new FaultState(),
      held: new Set(),
      layout,
      writeGroup,
      log,
    };
    const restarts: string[] = [];
    stopSupervisor = startSupervisor(env, (name) => {
      restarts.push(name);
      log(`  supervisor: restarted ${name} (it exited on its own)`);
    });
    if (!(await waitConverged(layout, sampler, probes, 60_000, settled)))
      throw new Error('the cluster did not reach its initial layout within 60 s');
    log(`chaos ${o.profile}: cluster up (testbed ${cl.tb.id}, etcd ${cl.etcd.members.length} members), seed ${o.seed}`);

    for (let i = 0; i < o.iterations; i++) {
      if (monoMs() > o.deadline) {
        result.skipped = o.iterations - i;
        break;
      }
      const kind = o.schedule?.[i] ?? rng.pick(kinds);
      const holdMs = rng.int(holdMin, holdMax);
      const t0 = monoMs();
      let it: IterationResult = {
        i,
        kind,
        target: '',
        churn: false,
        holdMs,
        dualMs: 0,
        outageMs: 0,
        outages: {},
        converged: false,
        convergeMs: 0,
        restarts: [],
      };
      const restartsBefore = restarts.length;
      try {
        const f = await injectFault(env, kind, rng);
        it = { ...it, target: f.target, churn: f.churn };
        await sleep(holdMs);
        await f.undo();
        const tUndo = monoMs();
        it.converged = await waitConverged(layout, sampler, probes, convergeTimeoutMs, settled);
        it.convergeMs = Math.round(monoMs() - tUndo);
      } catch (err) {
        it.error = String(err instanceof Error ? err.message : err);
      }
      const t1 = monoMs();
      it.restarts = restarts.slice(restartsBefore);
      for (const v of layout.vipGroup.keys()) it.dualMs += sampler.overlaps(bare(v), { since: t0 }).totalMs;
      it.dualMs = Math.round(it.dualMs);
      for (const [name, probe] of probes) {
        const samples = probe.samples().filter((s) => s.t >= t0 - 1000 && s.t <= t1);
        const out = outageAround(samples, t0);
        const ms = Number.isFinite(out.durationMs) ? Math.round(out.durationMs) : Math.round(t1 - t0);
        // A gap shorter than two probe periods is one lost probe, not an outage.
        it.outages[name] = ms > 2 * PROBE_INTERVAL_MS ? ms : 0;
      }
      it.outageMs = Math.max(0, ...Object.values(it.outages));
      const bad = it.dualMs > 0 || !it.converged || it.error !== undefined;
      if (bad) {
        const dir = join(o.outDir, `${o.profile}-iter-${i}`);
        mkdirSync(dir, { recursive: true });
        cpSync(cl.tb.dir, join(dir, 'testbed'), { recursive: true, force: true });
        cpSync(cl.etcd.dir, join(dir, 'etcd'), {
          recursive: true,
          force: true,
          filter: (src) => !/\/member(\/|$)/.test(src),
        });
        const timelines = Object.fromEntries([...layout.vipGroup.keys()].map((v) => [v, sampler!.timeline(bare(v))]));
        writeFileSync(join(dir, 'iteration.json'), JSON.stringify({ seed: o.seed, ...it, t0, t1, timelines }, null, 2));
        it.logsKept = dir;
        await healAll(env).catch((e) => log(`heal: ${String(e)}`));
        await waitConverged(layout, sampler, probes, convergeTimeoutMs, settled);
      }
      result.iterations.push(it);
      log(
        `[${o.profile} ${i + 1}/${o.iterations}] ${kind}${it.churn ? '+churn' : ''} on ${it.target} for ${holdMs} ms: ` +
          `dual ${it.dualMs} ms, outage ${it.outageMs} ms, ${it.converged ? `converged in ${it.convergeMs} ms` : 'NOT CONVERGED'}` +
          `${it.restarts.length ? `, restarted ${it.restarts.join(' ')}` : ''}${it.error ? `, error: ${it.error}` : ''}${it.logsKept ? `, logs in ${it.logsKept}` : ''}`,
      );
    }
  } catch (err) {
    result.setupError = String(err instanceof Error ? err.message : err);
    log(`chaos ${o.profile}: ${result.setupError}`);
    if (c) {
      const dir = join(o.outDir, `${o.profile}-setup`);
      mkdirSync(dir, { recursive: true });
      cpSync(c.tb.dir, join(dir, 'testbed'), { recursive: true, force: true });
    }
  } finally {
    stopSupervisor?.();
    for (const pr of probes.values()) await pr.stop().catch(() => undefined);
    await sampler?.stop().catch(() => undefined);
    if (c) {
      for (const a of c.agents.values()) if (!a.exited) a.kill('SIGCONT');
      await c.destroy().catch(() => undefined);
    }
  }
  return result;
}
