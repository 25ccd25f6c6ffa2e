// Arbiter fault modes of the benchmark (issue 12): faults of etcd, not of the holder's service or daemon.
//   etcd-leader  a 3-member etcd, the raft leader SIGKILLed while the VIP is held; target: 0 ms outage.
//   etcd-down    every etcd member stopped (SIGKILL) for 10 s, then started on its data; target: 0 ms outage and
//                0 ms dual (failsafe: the holder keeps by its peers' promises).
//   etcd-cut     the holder alone cut from etcd (iptables in its namespace, LAN up); target: the outage no longer
//                than the link-cut figure, 0 ms dual (its peers reach etcd and refuse: it steps down first).
// keepalived has no arbiter (VRRP among the nodes): its rows say so.
//
// Per iteration: the VIP on the preferred node, answering, for 1 s; the fault; observed for `observeMs` after the
// fault ends (etcd-cut: after it began) — long enough for any lease the fault cost to run out and the VIP to move;
// then undone, and the next iteration waits for the initial state again (failback auto).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cutFromEtcd,
  monoMs,
  longestLoss,
  restoreEtcd,
  sleep,
  startEtcdMembers,
  startProbe,
  startSampler,
  stopEtcdMembers,
  type EtcdCluster,
  type Probe,
} from '../testbed/index.js';
import { countedOverlaps, StateView } from './run.js';
import { productOf, type Profile, type Subject } from './types.js';
import { startVipwardenSubject } from './vipwarden.js';

export const ARBITER_MODES = ['etcd-leader', 'etcd-down', 'etcd-cut'] as const;
export type ArbiterMode = (typeof ARBITER_MODES)[number];

export const ARBITER_MODE_TITLES: Record<ArbiterMode, string> = {
  'etcd-leader': 'the etcd leader killed (SIGKILL; 3 members)',
  'etcd-down': 'every etcd member stopped for 10 s (3 members)',
  'etcd-cut': 'the holder alone cut from etcd (LAN up)',
};

/** How long etcd-down keeps etcd away. */
export const ETCD_DOWN_MS = 10_000;

/** Splits a --modes list into the node fault modes (passed on as a list string) and the arbiter modes. */
export function splitModes(raw: string | undefined): { nodeModes: string | undefined; arbiter: ArbiterMode[] } {
  if (!raw) return { nodeModes: undefined, arbiter: [] };
  const items = raw.split(',').map((x) => x.trim());
  const arbiter = items.filter((x): x is ArbiterMode => (ARBITER_MODES as readonly string[]).includes(x));
  const rest = items.filter((x) => x !== '' && !arbiter.includes(x as ArbiterMode));
  return { nodeModes: rest.length > 0 ? rest.join(',') : arbiter.length > 0 ? '' : undefined, arbiter };
}

export interface ArbiterIteration {
  profile: Profile;
  mode: ArbiterMode;
  iteration: number;
  /** Client-visible outage: the longest run without an answer after the fault (ms), 0 when every probe answered. */
  outageMs?: number;
  dualMs?: number;
  /** etcd-leader: from the kill to a new etcd leader reported by etcdctl (polled: an upper bound). */
  leaderlessMs?: number;
  /** etcd-cut: from the cut to the holder's removal of the VIP (sampler). */
  stepDownMs?: number;
  /** Nodes that held the VIP at some time during the observation. */
  holders?: string[];
  /** The VIP was removed (by the kernel or the agent) at least once. */
  dropped?: boolean;
  note?: string;
}

export interface ArbiterRunOptions {
  profiles: readonly Profile[];
  modes: readonly ArbiterMode[];
  iterations: number;
  /** Observation after the fault (ms); default 8000. */
  observeMs?: number;
  out: string;
  log: (line: string) => void;
}

/** The fault of one mode: injected at tFault, over when it resolves; the undo runs whatever happened. */
interface Fault {
  run(tFault: number): Promise<Partial<ArbiterIteration>>;
  undo(): Promise<void>;
}

function faultOf(mode: ArbiterMode, s: Subject, etcd: EtcdCluster, observeMs: number): Fault {
  switch (mode) {
    case 'etcd-leader': {
      let leader = -1;
      return {
        async run(tFault) {
          leader = await etcd.leader();
          if (leader < 0) return { note: 'no etcd leader found' };
          await etcd.kill(leader, 'SIGKILL');
          let leaderlessMs: number | undefined;
          for (let k = 0; k < 300 && monoMs() - tFault < 15_000; k++) {
            const now = await etcd.leader();
            if (now >= 0 && now !== leader) {
              leaderlessMs = Math.round(monoMs() - tFault);
              break;
            }
            await sleep(20);
          }
          await sleep(Math.max(0, tFault + observeMs - monoMs()));
          return { leaderlessMs };
        },
        undo: () => (leader >= 0 ? etcd.restart(leader) : Promise.resolve()),
      };
    }
    case 'etcd-down':
      return {
        async run(tFault) {
          await stopEtcdMembers(etcd);
          await sleep(Math.max(0, tFault + ETCD_DOWN_MS - monoMs()));
          await startEtcdMembers(etcd);
          await sleep(observeMs);
          return {};
        },
        undo: () => startEtcdMembers(etcd),
      };
    case 'etcd-cut':
      return {
        async run(tFault) {
          await cutFromEtcd(s.tb, etcd, s.preferred);
          await sleep(Math.max(0, tFault + observeMs - monoMs()));
          return {};
        },
        undo: () => restoreEtcd(s.tb, etcd, s.preferred),
      };
  }
}

async function iteration(
  s: Subject,
  profile: Profile,
  mode: ArbiterMode,
  i: number,
  observeMs: number,
): Promise<ArbiterIteration> {
  const etcd = s.etcd;
  if (!etcd) throw new Error('the subject has no etcd cluster');
  const sampler = await startSampler(s.tb, { periodMs: 5, maxDurationS: 180, fenceTable: s.fenceTable });
  let probe: Probe | undefined;
  const base = { profile, mode, iteration: i };
  try {
    probe = await startProbe(s.tb, { target: s.vip, port: 80, intervalMs: 10, timeoutMs: 100, maxDurationMs: 170_000 });
    const view = new StateView(sampler, probe, s.vip);
    const pre = await view.waitStable((n) => n === s.preferred, 1000, 60_000);
    if (!pre.ok) return { ...base, note: 'initial state not reached' };
    const fault = faultOf(mode, s, etcd, observeMs);
    const tFault = monoMs();
    let extra: Partial<ArbiterIteration>;
    try {
      extra = await fault.run(tFault);
    } finally {
      await fault.undo();
    }
    if (extra.note) return { ...base, ...extra };
    const dual = countedOverlaps(sampler.overlaps(s.vip, { since: tFault })).totalMs;
    const tl = sampler.timeline(s.vip);
    const holders = Object.keys(tl).filter((n) => (tl[n] ?? []).some((iv) => iv.to === null || iv.to >= tFault));
    const dels = sampler.events.filter((e) => e.address === s.vip && e.t >= tFault && e.kind === 'del');
    const down = dels.find((e) => e.node === s.preferred);
    return {
      ...base,
      outageMs: longestLoss(probe.samples(), tFault),
      dualMs: Math.round(dual * 10) / 10,
      ...extra,
      ...(mode === 'etcd-cut' && down ? { stepDownMs: Math.round(down.t - tFault) } : {}),
      holders,
      dropped: dels.length > 0,
    };
  } finally {
    await probe?.stop().catch(() => undefined);
    await sampler.stop().catch(() => undefined);
  }
}

/** Runs the arbiter modes for every profile; writes DIR/arbiter.json and returns the iterations. */
export async function runArbiterModes(o: ArbiterRunOptions): Promise<ArbiterIteration[]> {
  const results: ArbiterIteration[] = [];
  for (const profile of o.profiles) {
    for (const mode of o.modes) {
      o.log(`\n== ${profile}: ${ARBITER_MODE_TITLES[mode]} ==`);
      if (productOf(profile) === 'keepalived') {
        o.log('  keepalived has no arbiter (VRRP among the nodes): not applicable');
        results.push({ profile, mode, iteration: 0, note: 'no arbiter: n/a' });
        continue;
      }
      let s: Subject | undefined;
      try {
        // The agents get the peer channel: failsafe (the default arbiterLoss) needs it to keep a VIP.
        s = await startVipwardenSubject(profile as 'vipwarden-default' | 'vipwarden-fast', {
          etcdMembers: 3,
          peer: true,
        });
        for (let i = 1; i <= o.iterations; i++) {
          const r = await iteration(s, profile, mode, i, o.observeMs ?? 8000).catch(
            (err: unknown): ArbiterIteration => ({ profile, mode, iteration: i, note: String(err) }),
          );
          o.log(`  #${i}: ${JSON.stringify(r)}`);
          results.push(r);
        }
      } catch (err) {
        o.log(`  ${profile}: could not run: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        await s?.destroy().catch(() => undefined);
      }
    }
  }
  writeFileSync(join(o.out, 'arbiter.json'), JSON.stringify(results, null, 2) + '\n');
  o.log(arbiterTable(results));
  return results;
}

/** The targets per mode, as a verdict on the iterations that ran (etcd-cut's outage: compare with link). */
function verdict(mode: ArbiterMode, ran: readonly ArbiterIteration[]): string {
  const maxOut = Math.max(...ran.map((r) => r.outageMs ?? 0));
  const maxDual = Math.max(...ran.map((r) => r.dualMs ?? 0));
  const ok = (b: boolean) => (b ? 'met' : 'MISSED');
  switch (mode) {
    case 'etcd-leader':
      return `0 ms outage: ${ok(maxOut === 0)}`;
    case 'etcd-down':
      return `0 ms outage: ${ok(maxOut === 0)}; 0 ms dual: ${ok(maxDual === 0)}`;
    case 'etcd-cut':
      return `0 ms dual: ${ok(maxDual === 0)}; outage ≤ link cut: compare`;
  }
}

/** One markdown row per profile and mode: outage and dual, how often the VIP was removed, mode-specific times. */
export function arbiterTable(rs: readonly ArbiterIteration[]): string {
  const rows = [
    '| profile | mode | runs | outage ms (each) | dual ms (max) | VIP removed | holders | etcd leaderless / step-down ms (each) | target |',
  ];
  rows.push('|---|---|---|---|---|---|---|---|---|');
  const keys = [...new Set(rs.map((r) => `${r.profile}\t${r.mode}`))];
  for (const k of keys) {
    const [profile, mode] = k.split('\t') as [Profile, ArbiterMode];
    const of = rs.filter((r) => r.profile === profile && r.mode === mode);
    const ran = of.filter((r) => r.outageMs !== undefined);
    if (ran.length === 0) {
      rows.push(`| ${profile} | ${mode} | 0 | ${of[0]?.note ?? '-'} | | | | | |`);
      continue;
    }
    const each = (f: (r: ArbiterIteration) => number | string | undefined) => ran.map((r) => f(r) ?? '–').join(', ');
    const holders = [...new Set(ran.flatMap((r) => r.holders ?? []))].sort().join(' ');
    rows.push(
      `| ${profile} | ${mode} | ${ran.length} | ${each((r) => r.outageMs)} | ${Math.max(...ran.map((r) => r.dualMs ?? 0))} | ${ran.filter((r) => r.dropped).length} of ${ran.length} | ${holders} | ${each((r) => r.leaderlessMs ?? r.stepDownMs)} | ${verdict(mode, ran)} |`,
    );
  }
  return rows.join('\n');
}
