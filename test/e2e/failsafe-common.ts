// What the failsafe e2e files (failsafe*.test.ts, issue 12) share: the group they run, and readings of the sampler,
// the probe and the assignments over a window. Every wait is bounded; the bounds are generous, to catch hangs only.
import { decode, NodeRecord } from '../../common/keyspace.js';
import type { Cluster } from '../../hack/testbed/cluster.js';
import type { Sampler } from '../../hack/testbed/index.js';
import type { Interval } from '../../hack/testbed/sampler.js';
import { monoMs, sleep, waitUntil } from '../../hack/testbed/util.js';
import type { E2eFixture } from '../harness/e2e.js';

/** Client loss tolerated as probe noise on the loaded machine (an attempt times out after 200 ms). */
export const NOISE_MS = 400;

/**
 * A holder that may not keep steps down within its keepalive fence: the last answer's lifetime (1 s with the default
 * 2 s lease) plus the kernel's lateness (1.2 s). Generous for the load; a keep by promises would last W = 5 s or more.
 */
export const STEP_DOWN_MS = 4500;

/** The group every failsafe file runs: web on VIP 0, node1 > node2 > node3, arbiterLoss absent (failsafe, the
 * default), slow tolerant checks (a check failing under load must not pass for something the arbiter did). */
export function applyFailsafeWeb(f: E2eFixture): string {
  return f.applyWeb(0, { intervalMs: 500, fall: 6 });
}

/** Waits until every one of `nodes` has its node record (the promise set is every registered node), then a while,
 * so that the holder acts on an assignment that lists them all. */
export async function waitRegistered(c: Cluster, nodes: readonly string[]): Promise<void> {
  for (const n of nodes)
    await waitUntil(async () => (await c.client.get(c.keys.node(n)).string()) !== null, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: `the node record of ${n}`,
    });
  await sleep(3000);
}

/**
 * Starts every agent and controller 0 of a cluster set up with `start: false`, applies the failsafe web group and
 * waits until node1 holds it and every node has its record (the promise set lists them all). Returns the VIP.
 */
export async function placeFailsafeWeb(f: E2eFixture): Promise<string> {
  const { c, sampler } = f;
  for (const n of c.tb.nodes) await c.startAgent(n.name);
  c.startController(0);
  const vip = applyFailsafeWeb(f);
  await sampler.waitForHolder(vip, 'node1', 60_000);
  await waitRegistered(
    c,
    c.tb.nodes.map((n) => n.name),
  );
  return vip;
}

/** node1's node record acknowledges the epoch of web's assignment: the keep is armed (rule 1). */
export async function waitArmed(c: Cluster, timeoutMs: number): Promise<void> {
  const deadline = monoMs() + timeoutMs;
  for (;;) {
    const a = await c.client.get(c.keys.assignment('web')).exec();
    const epoch = Number(a.kvs[0]?.mod_revision ?? 0);
    const rec = decode(NodeRecord, await c.client.get(c.keys.node('node1')).string());
    if (epoch > 0 && rec?.failsafe?.acks['web'] === epoch) return;
    if (monoMs() > deadline) throw new Error(`node1 never acknowledged web's promise set (epoch ${epoch})`);
    await sleep(200);
  }
}

/** The intervals of `list` that reach past `t0`. */
export function since(list: readonly Interval[] | undefined, t0: number): Interval[] {
  return (list ?? []).filter((i) => i.to === null || i.to >= t0);
}

/** Nodes that held `vip` at some time after `t0`, sorted. */
export function holdersSince(sampler: Sampler, vip: string, t0: number): string[] {
  const tl = sampler.timeline(vip);
  return Object.keys(tl)
    .filter((n) => since(tl[n], t0).length > 0)
    .sort();
}

/** When `node` lost `vip` first after `t0`; undefined while it still holds it (or never held it). */
export function lostAt(sampler: Sampler, vip: string, node: string, t0: number): number | undefined {
  const iv = since(sampler.timeline(vip)[node], t0)[0];
  return iv?.to ?? undefined;
}

/** When `node` added `vip` first after `t0`; undefined when it did not. */
export function addedAt(sampler: Sampler, vip: string, node: string, t0: number): number | undefined {
  return (sampler.timeline(vip)[node] ?? []).find((i) => i.from >= t0)?.from;
}

/**
 * Watches the group's assignment for `ms`: every holder it named (polled every 250 ms, bounded), and every node the
 * sampler saw with the VIP in that time.
 */
export async function watchGroup(
  c: Cluster,
  sampler: Sampler,
  vip: string,
  ms: number,
): Promise<{ assigned: string[]; held: string[] }> {
  const t0 = monoMs();
  const assigned = new Set<string>();
  for (let i = 0; i < Math.ceil(ms / 250) + 1 && monoMs() - t0 < ms; i++) {
    const h = await c.holderOf('web').catch(() => null);
    if (h) assigned.add(h);
    await sleep(250);
  }
  return { assigned: [...assigned].sort(), held: holdersSince(sampler, vip, t0) };
}

/** Waits (bounded) until exactly one node holds `vip`, and says which. */
export async function oneHolder(sampler: Sampler, vip: string, timeoutMs = 60_000): Promise<string> {
  return waitUntil(
    () => {
      const h = sampler.holders(vip);
      return h.length === 1 ? h[0] : undefined;
    },
    { timeoutMs, intervalMs: 100, what: `exactly one holder of ${vip}` },
  );
}
