// The failover benchmark loop: for one profile, N iterations of each fault mode on one testbed.
//
// Each iteration has its own probe (a fresh TCP connection to the VIP every 10 ms, 100 ms timeout, from the client
// namespace), its own sampler (every node's addresses every 5 ms), its own outside ARP view (an ARP request for the
// VIP from the client namespace every 5 ms, hack/testbed/arpwatch.ts: which nodes answer) and its own watch on the
// client's ARP table. The dual-holder time counts any moment when two nodes held the address (sampler) or two
// nodes answered one ARP request (outside view):
//   1. wait for the initial state: the VIP on the preferred node only, and the client answered by it, for 1 s;
//   2. inject the fault on the preferred node;
//   3. wait (bounded) for a stable final state: the VIP on exactly one healthy node for 1 s, answering;
//   4. measure: outage, dual-holder time, steps; undo the fault and wait until the initial state is back
//      (failback), measuring the dual-holder time of that recovery too.
import { cpSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  outageAround,
  monoMs,
  sleep,
  startProbe,
  startArpWatch,
  startSampler,
  type ArpDual,
  type ArpWatch,
  type OverlapInterval,
  type Overlaps,
  type Probe,
  type Sampler,
} from '../testbed/index.js';
import { FaultState, heal, inject, undo } from './faults.js';
import { macOf, startNeighMonitor, type NeighMonitor } from './neigh.js';
import { measureFootprint, type Footprint } from './footprint.js';
import type { IterationResult, Mode, Profile, StepOffsets, Subject } from './types.js';
import { unionMs } from './stats.js';

export interface RunOptions {
  iterations: number;
  modes: readonly Mode[];
  /** Bound on the wait for a stable final state after a fault (ms). */
  settleMs: number;
  /** How long a state must hold to count as stable (ms). */
  stableMs: number;
  /** Bound on the wait for the initial state (ms). */
  restoreMs: number;
  log: (line: string) => void;
  /** Where the components' logs are copied when vipwarden had the VIP on two nodes (the evidence). */
  evidenceDir?: string;
}

/**
 * The sampler reads the namespaces one after another, each read stamped with its own time: a VIP that moved
 * between two reads of the same round shows as an "overlap" as long as the gap between those reads (well under
 * 1 ms), in whichever order the move really happened. Overlaps that short are kept as evidence but not counted.
 */
export const SAME_ROUND_MS = 1;

/** Overlaps that count (longer than one sampler round, or still going on), and their total. */
export function countedOverlaps(ov: Overlaps): {
  totalMs: number;
  counted: OverlapInterval[];
  sameRound: OverlapInterval[];
} {
  const counted = ov.intervals.filter((i) => i.ongoing || i.to - i.from >= SAME_ROUND_MS);
  const sameRound = ov.intervals.filter((i) => !counted.includes(i));
  return { totalMs: counted.reduce((s, i) => s + (i.to - i.from), 0), counted, sameRound };
}

export const DEFAULT_RUN: Omit<RunOptions, 'iterations' | 'modes' | 'log'> = {
  settleMs: 10_000,
  stableMs: 1000,
  restoreMs: 60_000,
};

interface Stable {
  ok: boolean;
  holders: string[];
  /** When the stable period began (monotonic ms). */
  since?: number;
}

/** Watches sampler and probe together: is the VIP on exactly one acceptable node, answering, for stableMs? */
export class StateView {
  constructor(
    private readonly sampler: Sampler,
    private readonly probe: Probe,
    private readonly vip: string,
  ) {}

  lastChange(): number {
    const ev = this.sampler.events;
    for (let i = ev.length - 1; i >= 0; i--) if (ev[i]!.address === this.vip) return ev[i]!.t;
    return -Infinity;
  }

  check(accept: (node: string) => boolean, stableMs: number): Stable {
    const now = monoMs();
    const holders = this.sampler.holders(this.vip);
    const h = holders[0];
    if (holders.length !== 1 || h === undefined || !accept(h)) return { ok: false, holders };
    const from = now - stableMs;
    if (this.lastChange() > from) return { ok: false, holders };
    // Every attempt that started in the window and has finished answered from that node, and enough did.
    const win = this.probe.samples().filter((s) => s.t >= from && s.tEnd <= now);
    if (win.length < Math.min(20, stableMs / 40)) return { ok: false, holders };
    if (!win.every((s) => s.ok && s.body === h)) return { ok: false, holders };
    return { ok: true, holders, since: from };
  }

  async waitStable(accept: (node: string) => boolean, stableMs: number, boundMs: number): Promise<Stable> {
    const deadline = monoMs() + boundMs;
    let last: Stable = { ok: false, holders: [] };
    for (let i = 0; i < 1_000_000; i++) {
      last = this.check(accept, stableMs);
      if (last.ok || monoMs() >= deadline) return last;
      await sleep(25);
    }
    return last;
  }
}

function rel(t: number | undefined, t0: number): number | undefined {
  return t === undefined ? undefined : Math.round((t - t0) * 10) / 10;
}

async function runIteration(
  s: Subject,
  st: FaultState,
  macs: Map<string, string>,
  mode: Mode,
  iteration: number,
  o: RunOptions,
): Promise<IterationResult> {
  const from = s.preferred;
  const sampler = await startSampler(s.tb, { periodMs: 5, maxDurationS: 900, fenceTable: s.fenceTable });
  let probe: Probe | undefined;
  let neigh: NeighMonitor | undefined;
  let arp: ArpWatch | undefined;
  try {
    probe = await startProbe(s.tb, { target: s.vip, port: 80, intervalMs: 10, timeoutMs: 100, maxDurationMs: 900_000 });
    neigh = await startNeighMonitor(s.tb);
    arp = await startArpWatch(s.tb, { vips: [s.vip], periodMs: 5, waitMs: 50, maxDurationS: 900 });
    const view = new StateView(sampler, probe, s.vip);
    const isPreferred = (n: string) => n === from;
    let pre = await view.waitStable(isPreferred, o.stableMs, o.restoreMs);
    if (!pre.ok) {
      o.log(`  initial state not reached (holders [${pre.holders.join(', ')}]): healing every node and waiting again`);
      await heal(s, st);
      pre = await view.waitStable(isPreferred, o.stableMs, o.restoreMs);
      if (!pre.ok) throw new Error(`initial state not reached: the VIP is on [${pre.holders.join(', ')}]`);
    }

    const tFault = monoMs();
    const wallMinusMono = Date.now() - monoMs();
    await inject(s, st, mode, from);
    const fin = await view.waitStable(
      (n) => st.isHealthy(n) && s.daemonRunning(n) && s.serviceRunning(n),
      o.stableMs,
      o.settleMs,
    );
    const tEnd = monoMs();

    const samples = probe.samples().filter((x) => x.t <= tEnd);
    const out = outageAround(samples, tFault);
    const ov = countedOverlaps(sampler.overlaps(s.vip, { since: tFault }));
    // The outside view's rounds become final 50 ms after their send: let the last ones in before reading it.
    await sleep(60);
    const aov = arp.duals(s.vip, { since: tFault });
    const arpFault = aov.intervals.filter((d) => d.from < tEnd).map((d) => clip(d, tEnd));
    const finalHolders = sampler.holders(s.vip);
    const to = fin.ok
      ? finalHolders[0]
      : out.bodyAfter !== undefined && out.bodyAfter !== from
        ? out.bodyAfter
        : finalHolders.find((h) => h !== from);
    const evs = sampler.events.filter((e) => e.address === s.vip && e.t >= tFault);
    const steps: StepOffsets = {
      lastOkBefore: rel(out.lastOkBefore?.t, tFault),
      removed: rel(evs.find((e) => e.node === from && e.kind === 'del')?.t, tFault),
      added: to ? rel(evs.find((e) => e.node === to && e.kind === 'add')?.t, tFault) : undefined,
      arp: to && macs.get(to) ? rel(neigh.firstMapping(s.vip, macs.get(to)!, tFault)?.t, tFault) : undefined,
      firstOkAfter: out.firstOkAfter && out.durationMs > 0 ? rel(out.firstOkAfter.t, tFault) : undefined,
    };
    if (s.explain) {
      // Components flush their logs within a few ms; give them a moment.
      await sleep(100);
      const lt = await s.explain({ mode, from, to, tFault, tEnd, wallMinusMono });
      Object.assign(steps, {
        detect: rel(lt.detect, tFault),
        released: rel(lt.released, tFault),
        leaseEnded: rel(lt.leaseEnded, tFault),
        assigned: rel(lt.assigned, tFault),
        acquireStart: rel(lt.acquireStart, tFault),
        acquired: rel(lt.acquired, tFault),
      });
    }
    for (const k of Object.keys(steps) as (keyof StepOffsets)[]) if (steps[k] === undefined) delete steps[k];

    // Back to the initial state; the dual-holder time of the recovery counts too.
    const tUndo = monoMs();
    let note: string | undefined;
    await undo(s, st, mode, from);
    const back = await view.waitStable(isPreferred, o.stableMs, o.restoreMs);
    if (!back.ok)
      note = `initial state not back within ${o.restoreMs} ms after the undo (holders [${back.holders.join(', ')}])`;
    const rov = countedOverlaps(sampler.overlaps(s.vip, { since: tUndo }));
    await sleep(60);
    const arpRecovery = arp.duals(s.vip, { since: tUndo }).intervals;
    const dualMs = unionMs([...ov.counted, ...arpFault]);
    const recoveryDualMs = unionMs([...rov.counted, ...arpRecovery]);
    const arpDualMs = unionMs(arpFault);
    const arpRecoveryDualMs = unionMs(arpRecovery);
    const interval = (phase: 'fault' | 'recovery', sameRound: boolean) => (i: OverlapInterval) => ({
      from: rel(i.from, tFault)!,
      to: rel(i.to, tFault)!,
      holders: i.holders,
      phase,
      ...(sameRound ? { sameRound: true as const } : {}),
    });
    const nodeOfMac = new Map([...macs].map(([n, m]) => [m, n]));
    const arpInterval = (phase: 'fault' | 'recovery') => (d: ArpDual) => ({
      from: rel(d.from, tFault)!,
      to: rel(d.to, tFault)!,
      holders: d.macs.map((m) => nodeOfMac.get(m) ?? m).sort(),
      phase,
      view: 'arp' as const,
    });
    const dualIntervals = [
      ...ov.counted.map(interval('fault', false)),
      ...ov.sameRound.map(interval('fault', true)),
      ...rov.counted.map(interval('recovery', false)),
      ...rov.sameRound.map(interval('recovery', true)),
      ...arpFault.map(arpInterval('fault')),
      ...arpRecovery.map(arpInterval('recovery')),
    ];
    if (s.product === 'vipwarden' && dualIntervals.length > 0) {
      const where = saveEvidence(s, o.evidenceDir, `${s.profile}-${mode}-${iteration}`, {
        tFault,
        wallMinusMono,
        dualIntervals,
        events: sampler.events.filter((e) => e.address === s.vip),
        arpAnswers: arp.answers.filter((a) => a.vip === s.vip),
      });
      note = [
        note,
        `vipwarden had the VIP on two nodes (${Math.round(dualMs)} ms after the fault, of which two answering ARP ${Math.round(arpDualMs)} ms; ${Math.round(recoveryDualMs)} ms in the recovery); logs: ${where}`,
      ]
        .filter(Boolean)
        .join('; ');
    }

    return {
      profile: s.profile,
      mode,
      iteration,
      outageMs: Number.isFinite(out.durationMs) ? Math.round(out.durationMs * 10) / 10 : null,
      failedAttempts: out.failed,
      dualMs: Math.round(dualMs * 10) / 10,
      dualOngoing: ov.counted.some((i) => i.ongoing) || arpFault.some((d) => d.ongoing),
      recoveryDualMs: Math.round(recoveryDualMs * 10) / 10,
      arpDualMs: Math.round(arpDualMs * 10) / 10,
      arpRecoveryDualMs: Math.round(arpRecoveryDualMs * 10) / 10,
      ...(dualIntervals.length ? { dualIntervals } : {}),
      endedOnOneHealthy: fin.ok,
      finalHolders,
      answeredBy: out.bodyAfter ?? null,
      steps,
      observedMs: Math.round(tEnd - tFault),
      ...(note ? { note } : {}),
    };
  } finally {
    await arp?.stop().catch(() => undefined);
    await neigh?.stop().catch(() => undefined);
    await probe?.stop().catch(() => undefined);
    await sampler.stop().catch(() => undefined);
  }
}

/** An ARP dual cut at the end of the fault's observation (`ongoing` when it was still going on then). */
function clip(d: ArpDual, end: number): ArpDual {
  return d.to > end ? { ...d, to: end, ongoing: true } : d;
}

/** Copies the testbed's component logs and the sampler's view of the VIP into dir/name; returns where. */
function saveEvidence(s: Subject, dir: string | undefined, name: string, facts: Record<string, unknown>): string {
  if (!dir) return s.tb.dir;
  const to = join(dir, name);
  try {
    mkdirSync(to, { recursive: true });
    for (const f of readdirSync(s.tb.dir))
      if (f.endsWith('.log') || f.endsWith('.yaml')) cpSync(join(s.tb.dir, f), join(to, f));
    writeFileSync(join(to, 'sampler.json'), JSON.stringify(facts, null, 2));
  } catch {
    return s.tb.dir;
  }
  return to;
}

function line(r: IterationResult): string {
  const ms = (x: number | null) => (x === null ? 'never' : `${Math.round(x)} ms`);
  const dual = r.dualMs > 0 ? `${Math.round(r.dualMs)} ms${r.dualOngoing ? ' (still on two nodes)' : ''}` : '0';
  const end = r.endedOnOneHealthy
    ? `ended on ${r.finalHolders.join(',')}`
    : `NOT on exactly one healthy node (holders [${r.finalHolders.join(', ')}])`;
  return `  ${r.mode} #${r.iteration}: outage ${ms(r.outageMs)}, dual holders ${dual}, ${end}${r.recoveryDualMs > 0 ? `, recovery dual ${Math.round(r.recoveryDualMs)} ms` : ''}${r.note ? ` [${r.note}]` : ''}`;
}

/** Runs every mode N times against one started subject. Never throws for one bad iteration. */
export async function runSubject(s: Subject, o: RunOptions): Promise<IterationResult[]> {
  const st = new FaultState();
  const macs = new Map<string, string>();
  for (const n of s.tb.nodes) macs.set(n.name, await macOf(s.tb, n.name));
  const results: IterationResult[] = [];
  for (const mode of o.modes) {
    for (let i = 1; i <= o.iterations; i++) {
      try {
        const r = await runIteration(s, st, macs, mode, i, o);
        results.push(r);
        o.log(line(r));
      } catch (err) {
        o.log(`  ${mode} #${i}: FAILED: ${err instanceof Error ? err.message : String(err)}`);
        results.push(failed(s.profile, mode, i, err));
        await heal(s, st).catch((e) => o.log(`  heal failed: ${String(e)}`));
      }
    }
  }
  return results;
}

function failed(profile: Profile, mode: Mode, iteration: number, err: unknown): IterationResult {
  return {
    profile,
    mode,
    iteration,
    outageMs: null,
    failedAttempts: 0,
    dualMs: 0,
    dualOngoing: false,
    recoveryDualMs: 0,
    endedOnOneHealthy: false,
    finalHolders: [],
    answeredBy: null,
    steps: {},
    observedMs: 0,
    error: err instanceof Error ? err.message : String(err),
  };
}

/**
 * Idle footprint of the preferred node's daemon (and its descendants) while it holds the VIP: waits for the VIP
 * on the preferred node, stops the sampler and the client probe (their processes are not the daemon's, but they
 * load the machine), then reads /proc for windowMs. Undefined when the subject cannot name its daemon's pid.
 */
export async function idleFootprint(
  s: Subject,
  windowMs: number,
  o: Pick<RunOptions, 'stableMs' | 'restoreMs'>,
): Promise<Footprint | undefined> {
  if (!s.daemonPid) return undefined;
  const sampler = await startSampler(s.tb, { periodMs: 5, maxDurationS: 900, fenceTable: s.fenceTable });
  let probe: Probe | undefined;
  try {
    probe = await startProbe(s.tb, { target: s.vip, port: 80, intervalMs: 10, timeoutMs: 100, maxDurationMs: 900_000 });
    const view = new StateView(sampler, probe, s.vip);
    const pre = await view.waitStable((n) => n === s.preferred, o.stableMs, o.restoreMs);
    if (!pre.ok) throw new Error(`the VIP is not on ${s.preferred} alone: [${pre.holders.join(', ')}]`);
  } finally {
    await probe?.stop().catch(() => undefined);
    await sampler.stop().catch(() => undefined);
  }
  const pid = s.daemonPid(s.preferred);
  if (pid === undefined) throw new Error(`no daemon running on ${s.preferred}`);
  return measureFootprint(pid, windowMs);
}
