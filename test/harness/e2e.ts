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
import { startCluster, type Cluster, type ClusterOptions } from '../../hack/testbed/cluster.js';
import { requireRoot, startSampler, type Sampler } from '../../hack/testbed/index.js';

export interface E2eFixture {
  readonly c: Cluster;
  readonly sampler: Sampler;
  /** Adds a VIP to those checked for overlaps at the end; returns it. */
  watch(vip: string): string;
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
      const f: E2eFixture = {
        c,
        sampler,
        watch: (vip) => {
          if (!vips.includes(vip)) vips.push(vip);
          return vip;
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
      const overlaps = vips.map((v) => [v, sampler?.overlaps(v).intervals ?? []]);
      await sampler?.stop();
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
