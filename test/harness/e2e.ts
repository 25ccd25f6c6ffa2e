// The e2e fixture every test/e2e file shares: a cluster on the netns testbed and a sampler, set up in beforeAll and
// torn down in afterAll, where it also checks the one property every e2e test must keep: no VIP it watched was ever
// held by two nodes at once (the sampler's overlaps). When the set-up fails, it says what ran and where the logs are.
//
//   let c: Cluster; let sampler: Sampler;
//   const e2e = useE2eCluster({ name: 'events', nodes: 3 }, async (f) => {
//     ({ c, sampler } = f);
//     c.applyGroup(webGroup({ vips: [`${f.watch(c.tb.vip(0))}/24`], ... }));
//   });
import { afterAll, beforeAll, expect } from '@jest/globals';
import { startCluster, webGroup, type Cluster, type ClusterOptions } from '../../hack/testbed/cluster.js';
import { readFileSync } from 'node:fs';
import { requireRoot, startSampler, type Sampler } from '../../hack/testbed/index.js';
import type { OverlapInterval } from '../../hack/testbed/sampler.js';
import { monoMs } from '../../hack/testbed/util.js';
import type { EventRecord } from '../../common/keyspace.js';

export interface E2eFixture {
  readonly c: Cluster;
  readonly sampler: Sampler;
  /** Adds a VIP to those checked for overlaps at the end; returns it. */
  watch(vip: string): string;
  /** Watches the testbed's VIP `index` and applies webGroup(group) on it (as a /24); returns the VIP. */
  applyWeb(index: number, group: Omit<Parameters<typeof webGroup>[0], 'vips'>): string;
  /** Deletes group `name` and waits (30 s at the most) until no node holds `vip`. */
  deleteAndWait(name: string, vip: string): Promise<void>;
  /** Stopped at teardown, before the sampler and the cluster (probes, servers), in reverse order. */
  onTeardown(stop: () => Promise<unknown>): void;
}

export interface E2eOptions extends ClusterOptions {
  /** The sampler's period (default 5 ms). */
  samplerPeriodMs?: number;
}

export function useE2eCluster(opts: E2eOptions, setup?: (f: E2eFixture) => Promise<void>): { readonly f: E2eFixture } {
  const holder: { f?: E2eFixture } = {};
  const vips: string[] = [];
  const stops: (() => Promise<unknown>)[] = [];
  let c: Cluster | undefined;
  let sampler: Sampler | undefined;

  beforeAll(async () => {
    requireRoot('the e2e tier');
    const { samplerPeriodMs, ...clusterOpts } = opts;
    c = await startCluster(clusterOpts);
    try {
      sampler = await startSampler(c.tb, { periodMs: samplerPeriodMs ?? 5 });
      const cl = c;
      const smp = sampler;
      const f: E2eFixture = {
        c,
        sampler,
        watch: (vip) => {
          if (!vips.includes(vip)) vips.push(vip);
          return vip;
        },
        applyWeb: (index, group) => {
          const vip = f.watch(cl.tb.vip(index));
          cl.applyGroup(webGroup({ ...group, vips: [`${vip}/24`] }));
          return vip;
        },
        deleteAndWait: async (name, vip) => {
          cl.deleteGroup(name);
          await smp.waitForHolder(vip, null, 30_000);
        },
        onTeardown: (stop) => void stops.push(stop),
      };
      holder.f = f;
      await setup?.(f);
    } catch (err) {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
      throw await withState(c, err);
    }
  });

  afterAll(async () => {
    if (!c) return;
    const errors: unknown[] = [];
    try {
      for (const stop of stops.reverse()) await stop().catch((e: unknown) => errors.push(e));
      const overlaps = vips.map((v) => [v, sampler?.overlaps(v).intervals ?? []] as const);
      await sampler?.stop();
      if (sampler && overlaps.some(([, iv]) => iv.length > 0)) console.log(await explainOverlaps(c, sampler, overlaps));
      if (sampler && process.env['VIPWARDEN_E2E_TIMELINES'])
        for (const v of vips)
          console.log(
            `${v} handovers (ms from a removal to the next add elsewhere): ${handoverGaps(sampler.timeline(v)).join(' ')}`,
          );
      // Two holders at once, ever, for any VIP the test watched: the failure this project exists to prevent.
      expect(overlaps).toEqual(vips.map((v) => [v, []]));
    } finally {
      await c.destroy();
    }
    if (errors.length > 0) throw errors[0];
  });

  return {
    get f(): E2eFixture {
      if (!holder.f) throw new Error('the e2e cluster is not set up (used outside a test?)');
      return holder.f;
    },
  };
}

/**
 * What happened around each overlap, in one block that survives truncated CI output: the VIP's per-node timeline
 * (ms relative to the overlap's start), the assignment events, and the agents' and controllers' log lines from
 * 3 s before to 1 s after it.
 */
async function explainOverlaps(
  c: Cluster,
  sampler: Sampler,
  overlaps: ReadonlyArray<readonly [string, readonly OverlapInterval[]]>,
): Promise<string> {
  const wallMinusMono = Date.now() - monoMs();
  const out: string[] = ['DUAL HOLDER seen by the sampler:'];
  let events: EventRecord[] = [];
  try {
    events = await c.events();
  } catch (e) {
    out.push(`events: ${e instanceof Error ? e.message : String(e)}`);
  }
  for (const [vip, intervals] of overlaps) {
    for (const iv of intervals) {
      const t0 = iv.from;
      const rel = (t: number | null) => (t === null ? 'open' : `${Math.round(t - t0)}`);
      out.push(
        `${vip}: ${Math.round(iv.to - iv.from)} ms on ${iv.holders.join(', ')}${iv.ongoing ? ' (ongoing)' : ''}`,
      );
      for (const [node, list] of Object.entries(sampler.timeline(vip)))
        out.push(`  ${node}: ${list.map((i) => `[${rel(i.from)}, ${rel(i.to)}]`).join(' ')}`);
      const fromWall = t0 + wallMinusMono - 3000;
      const toWall = iv.to + wallMinusMono + 1000;
      for (const e of events)
        out.push(
          `  event ${e.group} epoch ${e.epoch}: ${e.from ?? '-'} -> ${e.to ?? '-'} (${e.reason}) at ${Math.round(e.at - wallMinusMono - t0)}`,
        );
      const logs: [string, string][] = [...c.agents].map(([n, p]) => [`agent ${n}`, p.stdoutLog ?? p.stderrLog]);
      c.controllers.forEach((p, i) => p && logs.push([`controller ${i}`, p.stdoutLog ?? p.stderrLog]));
      for (const [who, file] of logs) {
        let text = '';
        try {
          text = readFileSync(file, 'utf8');
        } catch {
          continue;
        }
        for (const line of text.split('\n')) {
          // pino writes "time" as epoch ms or, with the ISO formatter the daemons use, as an ISO string.
          const m = /"time":(?:(\d+)|"([^"]+)")/.exec(line);
          const at = m ? (m[1] !== undefined ? Number(m[1]) : Date.parse(m[2]!)) : NaN;
          if (!(at >= fromWall && at <= toWall)) continue;
          out.push(`  ${who} ${Math.round(at - wallMinusMono - t0)}: ${line.slice(0, 400)}`);
        }
      }
    }
  }
  return out.join('\n');
}

/** For each add, the ms since the latest removal on another node (negative: an overlap). */
function handoverGaps(tl: Record<string, { from: number; to: number | null }[]>): number[] {
  const evs = Object.entries(tl).flatMap(([node, l]) =>
    l.flatMap((i) => [{ t: i.from, node, add: true }, ...(i.to === null ? [] : [{ t: i.to, node, add: false }])]),
  );
  evs.sort((a, b) => a.t - b.t);
  const gaps: number[] = [];
  let lastDel: { t: number; node: string } | undefined;
  for (const e of evs) {
    if (!e.add) lastDel = e;
    else if (lastDel && lastDel.node !== e.node) gaps.push(Math.round((e.t - lastDel.t) * 1000) / 1000);
  }
  return gaps;
}

/** The set-up error, with what the cluster looked like; the cluster is destroyed. */
async function withState(c: Cluster, err: unknown): Promise<Error> {
  const lines = [err instanceof Error ? (err.stack ?? err.message) : String(err), '', `testbed dir: ${c.tb.dir}`];
  for (const [node, p] of c.agents) lines.push(`agent ${node}: ${p.exited ? 'exited' : 'running'} (${p.stderrLog})`);
  c.controllers.forEach(
    (p, i) => p && lines.push(`controller ${i}: ${p.exited ? 'exited' : 'running'} (${p.stderrLog})`),
  );
  try {
    const s = await c.status();
    lines.push(
      `leader: ${s.leader ?? '(none)'}`,
      ...s.groups.map((g) => `group ${g.group}: holder ${g.holder ?? '-'}`),
    );
  } catch (e) {
    lines.push(`status: ${e instanceof Error ? e.message : String(e)}`);
  }
  await c.destroy().catch(() => undefined);
  return new Error(lines.join('\n'));
}

/** What a process wrote, stdout and stderr (the components log JSON to stdout); '' for a file not there (yet). */
export function logOf(p: { stdoutLog: string | null; stderrLog: string } | undefined): string {
  const read = (f: string | null) => {
    try {
      return f ? readFileSync(f, 'utf8') : '';
    } catch {
      return '';
    }
  };
  return p ? [p.stdoutLog, p.stderrLog].map(read).join('\n') : '';
}

/** `node` held `vip` in one interval, open since before `t0`, and nobody else held it after `t0`: it never moved. */
export function expectHeldThroughout(sampler: Sampler, vip: string, node: string, t0: number): void {
  const tl = sampler.timeline(vip);
  const after = (n: string) => (tl[n] ?? []).filter((i) => i.to === null || i.to >= t0);
  expect(Object.keys(tl).filter((n) => after(n).length > 0)).toEqual([node]);
  // One interval, open since before t0: the address was never removed.
  expect(after(node)).toEqual([expect.objectContaining({ to: null })]);
  expect(after(node)[0]!.from).toBeLessThan(t0);
}
