// TypeScript side of the dual-holder sampler (vipsampler/, built by sampler-build.ts): runs it over a
// testbed's namespaces, and keeps per-address, per-node timelines so a test can ask "was this VIP
// ever on two nodes at once, and for how long?". With `fenceTable` it also reads the fast fence's sets
// (node-agent/fence/ruleset.ts): a node holds an address while the address is there and its gate is not closed
// (a gated address without a live element answers nothing), which is what the timelines and overlaps count.
import { createInterface } from 'node:readline';
import { FENCE_TABLE } from '../../node-agent/fence/ruleset.js';
import { stopAndDrain, type ProcHandle } from './proc.js';
import { buildSampler } from './sampler-build.js';
import type { Testbed } from './testbed.js';
import { monoMs, normalizeIp, withTimeout } from './util.js';

export { buildSampler, cacheDir } from './sampler-build.js';

export interface AddrEvent {
  /** CLOCK_MONOTONIC ms of the poll that saw the change (taken just before its dump). */
  t: number;
  /**
   * Bounds of the change itself: after `lo` (the start of the namespace's previous dump) and before `hi` (the end of
   * the dump that saw it). Absent in events built by hand (tests): then `t` is both.
   */
  lo?: number;
  hi?: number;
  /** Node name (label) of the namespace. */
  node: string;
  kind: 'add' | 'del';
  /** Canonical address without prefix. */
  address: string;
  prefixLen: number;
  ifname: string;
}

/** The fast fence's gate of an address on a node changed (sampler started with `fenceTable`). */
export interface GateEvent {
  t: number;
  lo?: number;
  hi?: number;
  node: string;
  /** Canonical address. */
  address: string;
  /** Closed: gated and not live; the node answers nothing for the address. */
  closed: boolean;
}

export interface Interval {
  from: number;
  /** null: still present. */
  to: number | null;
  /** Present for certain from here (the end of the dump that saw it come); default `from`. */
  sureFrom?: number;
  /** Present for certain until here (the start of the last dump that still saw it); default `to`. */
  sureTo?: number;
}

export interface OverlapInterval {
  from: number;
  /** End; for an ongoing overlap the time of the query. */
  to: number;
  ongoing: boolean;
  holders: string[];
}

export interface Overlaps {
  intervals: OverlapInterval[];
  totalMs: number;
}

export interface Sampler {
  /** Polls done so far (from the last heartbeat). */
  readonly pollCount: number;
  /** Heartbeats seen: [t, polls] pairs, one per heartbeat period. */
  readonly heartbeats: ReadonlyArray<{ t: number; polls: number; late: number; maxPollUs: number; errors: number }>;
  readonly periodMs: number;
  readonly events: readonly AddrEvent[];
  /** Gate changes (only with `fenceTable`). */
  readonly gateEvents: readonly GateEvent[];
  /** Nodes holding `address` now (as far as the last poll saw; with `fenceTable`, with an open gate), sorted. */
  holders(address: string): string[];
  /** Per-node presence intervals of `address`. */
  timeline(address: string): Record<string, Interval[]>;
  /** Intervals where `address` was on two or more nodes at once (and their total length). */
  overlaps(address: string, opts?: { since?: number }): Overlaps;
  /** Waits until exactly `node` holds `address` (null: nobody). Resolves with the monotonic time seen. */
  waitForHolder(address: string, node: string | null, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

export interface SamplerTarget {
  /** Label used in results (e.g. `node1`). */
  name: string;
  netns: string;
}

export interface StartSamplerOptions {
  /** Poll period, 1..20 ms; default 5. */
  periodMs?: number;
  /** Heartbeat period; default 1000 ms. */
  heartbeatMs?: number;
  /** Hard bound on run time; default 1 h. */
  maxDurationS?: number;
  /** Namespaces to watch; default: the testbed's nodes (not the client). */
  targets?: SamplerTarget[];
  /**
   * The fast fence's nftables table: also read its gates, and count only open-gated holders (issue 13: the holder is
   * the node that answers; a node without the table counts by its address alone). Default FENCE_TABLE, the agents'
   * (`fence: auto` is their default); false: addresses alone.
   */
  fenceTable?: string | false;
}

// ---- pure timeline logic --------------------------------------------------------------------------

/** Folds events into per-address, per-node presence intervals (present: the address is there, its gate not closed). */
export class AddressTimelines {
  /** address -> node -> intervals */
  private readonly byAddr = new Map<string, Map<string, Interval[]>>();
  /** address -> node -> how many (interface, prefix) copies present now */
  private readonly copies = new Map<string, Map<string, number>>();
  /** address -> nodes whose gate for it is closed now */
  private readonly closed = new Map<string, Set<string>>();

  private present(address: string, node: string): boolean {
    return (this.copies.get(address)?.get(node) ?? 0) > 0 && !this.closed.get(address)?.has(node);
  }

  /** Opens or closes the node's interval when its presence changed across `change`. */
  private transition(address: string, node: string, e: { t: number; lo?: number; hi?: number }, change: () => void) {
    const before = this.present(address, node);
    change();
    const after = this.present(address, node);
    let per = this.byAddr.get(address);
    if (!per) this.byAddr.set(address, (per = new Map()));
    let list = per.get(node);
    if (!list) per.set(node, (list = []));
    if (!before && after) list.push({ from: e.t, to: null, ...(e.hi !== undefined ? { sureFrom: e.hi } : {}) });
    if (before && !after) {
      const open = list[list.length - 1];
      if (open && open.to === null) {
        open.to = e.t;
        if (e.lo !== undefined) open.sureTo = e.lo;
      }
    }
  }

  apply(e: AddrEvent): void {
    const address = normalizeIp(e.address);
    this.transition(address, e.node, e, () => {
      let cnt = this.copies.get(address);
      if (!cnt) this.copies.set(address, (cnt = new Map()));
      cnt.set(e.node, Math.max(0, (cnt.get(e.node) ?? 0) + (e.kind === 'add' ? 1 : -1)));
    });
  }

  applyGate(g: GateEvent): void {
    const address = normalizeIp(g.address);
    this.transition(address, g.node, g, () => {
      let set = this.closed.get(address);
      if (!set) this.closed.set(address, (set = new Set()));
      if (g.closed) set.add(g.node);
      else set.delete(g.node);
    });
  }

  holders(address: string): string[] {
    const a = normalizeIp(address);
    const cnt = this.copies.get(a);
    if (!cnt) return [];
    return [...cnt.keys()].filter((n) => this.present(a, n)).sort();
  }

  timeline(address: string): Record<string, Interval[]> {
    const per = this.byAddr.get(normalizeIp(address));
    const out: Record<string, Interval[]> = {};
    if (per) for (const [n, l] of per) out[n] = l.map((i) => ({ ...i }));
    return out;
  }

  overlaps(address: string, now: number, since = -Infinity): Overlaps {
    return computeOverlaps(this.timeline(address), now, since);
  }
}

/**
 * Sweep over per-node intervals: where are ≥ 2 nodes present at once, for certain? Each interval counts from the
 * first instant its node surely had the address to the last (`sureFrom`, `sureTo`): the sampler dumps namespaces one
 * after the other, so a handover that falls between two rounds would otherwise look like an overlap of a few
 * microseconds. An overlap shorter than about one poll round can therefore not be seen. Open intervals end at `now`.
 */
export function computeOverlaps(tl: Record<string, Interval[]>, now: number, since = -Infinity): Overlaps {
  type Ev = { t: number; node: string; d: 1 | -1; open: boolean };
  const evs: Ev[] = [];
  for (const [node, list] of Object.entries(tl)) {
    for (const iv of list) {
      const from = iv.sureFrom ?? iv.from;
      const to = iv.to === null ? now : (iv.sureTo ?? iv.to);
      if (to <= since || to <= from) continue;
      evs.push({ t: Math.max(from, since), node, d: 1, open: false }, { t: to, node, d: -1, open: iv.to === null });
    }
  }
  // at equal times, removals first: a del and an add seen at the same instant are not an overlap
  evs.sort((a, b) => a.t - b.t || a.d - b.d);
  const present = new Map<string, number>();
  const intervals: OverlapInterval[] = [];
  let cur: OverlapInterval | undefined;
  for (const ev of evs) {
    present.set(ev.node, (present.get(ev.node) ?? 0) + ev.d);
    const holders = [...present.entries()]
      .filter(([, c]) => c > 0)
      .map(([n]) => n)
      .sort();
    if (holders.length >= 2) {
      if (!cur) cur = { from: ev.t, to: ev.t, ongoing: false, holders };
      else cur.holders = [...new Set([...cur.holders, ...holders])].sort();
    } else if (cur) {
      cur.to = ev.t;
      cur.ongoing = ev.open;
      if (cur.to > cur.from || cur.ongoing) intervals.push(cur);
      cur = undefined;
    }
  }
  const totalMs = intervals.reduce((s, i) => s + (i.to - i.from), 0);
  return { intervals, totalMs };
}

/** Parses one sampler output line. */
export type SamplerLine =
  | { kind: 'addr'; event: Omit<AddrEvent, 'node'> & { netns: string } }
  | { kind: 'gate'; event: Omit<GateEvent, 'node'> & { netns: string } }
  | { kind: 'ready' | 'exit'; t: number; polls: number }
  | { kind: 'hb'; t: number; polls: number; late: number; maxPollUs: number; errors: number };

export function parseSamplerLine(line: string): SamplerLine | undefined {
  const f = line.trim().split(/\s+/);
  const t = Number(f[0]);
  if (!Number.isFinite(t) || f.length < 3) return undefined;
  if (f[1] === '-') {
    const polls = Number(f[3]);
    if (f[2] === 'ready' || f[2] === 'exit') return { kind: f[2], t, polls };
    if (f[2] === 'hb')
      return { kind: 'hb', t, polls, late: Number(f[4] ?? 0), maxPollUs: Number(f[5] ?? 0), errors: Number(f[6] ?? 0) };
    return undefined;
  }
  if (f[2] === 'gate' && (f[3] === 'closed' || f[3] === 'open') && f[4]) {
    const lo = Number(f[5]);
    const hi = Number(f[6]);
    const bounds = Number.isFinite(lo) && Number.isFinite(hi) && f[6] !== undefined ? { lo, hi } : {};
    return { kind: 'gate', event: { t, netns: f[1] as string, address: f[4], closed: f[3] === 'closed', ...bounds } };
  }
  if ((f[2] === 'add' || f[2] === 'del') && f[3] && f[4]) {
    const [addr, plen] = f[3].split('/');
    if (!addr || plen === undefined) return undefined;
    const lo = Number(f[5]);
    const hi = Number(f[6]);
    const bounds = Number.isFinite(lo) && Number.isFinite(hi) && f[6] !== undefined ? { lo, hi } : {};
    return {
      kind: 'addr',
      event: { t, netns: f[1] as string, kind: f[2], address: addr, prefixLen: Number(plen), ifname: f[4], ...bounds },
    };
  }
  return undefined;
}

// ---- process wrapper ------------------------------------------------------------------------------

export async function startSampler(tb: Testbed, opts: StartSamplerOptions = {}): Promise<Sampler> {
  const periodMs = opts.periodMs ?? 5;
  const fenceTable = opts.fenceTable === false ? undefined : (opts.fenceTable ?? FENCE_TABLE);
  if (!Number.isInteger(periodMs) || periodMs < 1 || periodMs > 20)
    throw new Error(`startSampler: periodMs must be 1..20, got ${periodMs}`);
  const hbMs = opts.heartbeatMs ?? 1000;
  const maxS = opts.maxDurationS ?? 3600;
  const targets = opts.targets ?? tb.nodes.map((n) => ({ name: n.name, netns: n.netns }));
  const labelOf = new Map(targets.map((t) => [t.netns, t.name]));
  const bin = await buildSampler();
  const proc: ProcHandle = tb.spawn(
    null,
    [
      bin,
      ...['-p', String(periodMs), '-H', String(hbMs), '-d', String(maxS)],
      ...(fenceTable ? ['-f', fenceTable] : []),
      ...targets.map((t) => t.netns),
    ],
    {
      name: 'vipsampler',
      stdout: 'pipe',
    },
  );
  const stdout = proc.stdout;
  if (!stdout) throw new Error('startSampler: no stdout');
  const tl = new AddressTimelines();
  const events: AddrEvent[] = [];
  const gateEvents: GateEvent[] = [];
  const heartbeats: Array<{ t: number; polls: number; late: number; maxPollUs: number; errors: number }> = [];
  let pollCount = 0;
  const listeners = new Set<() => void>();
  let readyResolve: (() => void) | undefined;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const rl = createInterface({ input: stdout });
  rl.on('line', (line) => {
    const p = parseSamplerLine(line);
    if (!p) return;
    if (p.kind === 'addr') {
      const node = labelOf.get(p.event.netns) ?? p.event.netns;
      const { netns: _ns, ...rest } = p.event;
      const e: AddrEvent = { ...rest, node, address: normalizeIp(rest.address) };
      events.push(e);
      tl.apply(e);
      for (const l of [...listeners]) l();
    } else if (p.kind === 'gate') {
      const { netns, ...rest } = p.event;
      const g: GateEvent = { ...rest, node: labelOf.get(netns) ?? netns, address: normalizeIp(rest.address) };
      gateEvents.push(g);
      tl.applyGate(g);
      for (const l of [...listeners]) l();
    } else if (p.kind === 'hb') {
      pollCount = p.polls;
      heartbeats.push({ t: p.t, polls: p.polls, late: p.late, maxPollUs: p.maxPollUs, errors: p.errors });
    } else {
      pollCount = p.polls;
      if (p.kind === 'ready') readyResolve?.();
    }
  });
  const started = await withTimeout(Promise.race([ready.then(() => true), proc.done.then(() => false)]), 10_000, false);
  if (!started) {
    await proc.stop({ signal: 'SIGKILL' });
    throw new Error(`vipsampler did not start; see ${proc.stderrLog}`);
  }

  const sampler: Sampler = {
    get pollCount() {
      return pollCount;
    },
    heartbeats,
    periodMs,
    events,
    gateEvents,
    holders: (a) => tl.holders(a),
    timeline: (a) => tl.timeline(a),
    overlaps: (a, o = {}) => tl.overlaps(a, monoMs(), o.since),
    waitForHolder(address, node, timeoutMs) {
      const want = node === null ? [] : [node];
      const matches = (): boolean => {
        const h = tl.holders(address);
        return h.length === want.length && h.every((x, i) => x === want[i]);
      };
      if (matches()) return Promise.resolve(monoMs());
      return new Promise<number>((resolve, reject) => {
        const l = (): void => {
          if (!matches()) return;
          clearTimeout(timer);
          listeners.delete(l);
          const last = events[events.length - 1];
          resolve(last ? last.t : monoMs());
        };
        const timer = setTimeout(() => {
          listeners.delete(l);
          reject(
            new Error(
              `sampler: ${address} held by [${tl.holders(address).join(', ')}], not [${want.join(', ')}], after ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
        listeners.add(l);
      });
    },
    async stop() {
      await stopAndDrain(proc, rl, 2000);
    },
  };
  return sampler;
}
