// Arbiter fault modes of the benchmark (issue 12): faults of etcd itself, not of the holder. `etcd-leader`: a
// 3-member etcd, the raft leader SIGKILLed while the VIP is held. Nothing should move: the target is 0 ms of client
// outage and 0 ms of dual holders. keepalived has no arbiter (VRRP among the nodes): its rows say so.
//
// Per iteration: the VIP on the preferred node, answering, for 1 s; the etcd leader SIGKILLed; observed for
// `observeMs` (the etcd election, then long enough for any lease the election cost to run out and the VIP to move);
// then the member started again on its data and the cluster healthy before the next iteration.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monoMs, outageAround, sleep, startProbe, startSampler, type Probe } from '../testbed/index.js';
import { countedOverlaps, StateView } from './run.js';
import { productOf, type Profile, type Subject } from './types.js';
import { startVipwardenSubject } from './vipwarden.js';

export const ARBITER_MODES = ['etcd-leader'] as const;
export type ArbiterMode = (typeof ARBITER_MODES)[number];

export const ARBITER_MODE_TITLES: Record<ArbiterMode, string> = {
  'etcd-leader': 'the etcd leader killed (SIGKILL; 3 members)',
};

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
  /** Client-visible outage around the kill (ms), 0 when every probe answered. */
  outageMs?: number;
  dualMs?: number;
  /** From the kill to a new etcd leader reported by etcdctl (polled: an upper bound). */
  leaderlessMs?: number;
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
  /** Observation after the kill (ms); default 8000. */
  observeMs?: number;
  out: string;
  log: (line: string) => void;
}

async function iteration(s: Subject, profile: Profile, i: number, observeMs: number): Promise<ArbiterIteration> {
  const etcd = s.etcd;
  if (!etcd) throw new Error('the subject has no etcd cluster');
  const sampler = await startSampler(s.tb, { periodMs: 5, maxDurationS: 120 });
  let probe: Probe | undefined;
  try {
    probe = await startProbe(s.tb, { target: s.vip, port: 80, intervalMs: 10, timeoutMs: 100, maxDurationMs: 120_000 });
    const view = new StateView(sampler, probe, s.vip);
    const pre = await view.waitStable((n) => n === s.preferred, 1000, 60_000);
    if (!pre.ok) return { profile, mode: 'etcd-leader', iteration: i, note: 'initial state not reached' };
    const leader = await etcd.leader();
    if (leader < 0) return { profile, mode: 'etcd-leader', iteration: i, note: 'no etcd leader found' };
    const tFault = monoMs();
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
    const out = outageAround(probe.samples(), tFault);
    const dual = countedOverlaps(sampler.overlaps(s.vip, { since: tFault })).totalMs;
    const tl = sampler.timeline(s.vip);
    const holders = Object.keys(tl).filter((n) => (tl[n] ?? []).some((iv) => iv.to === null || iv.to >= tFault));
    const dropped = sampler.events.some((e) => e.address === s.vip && e.t >= tFault && e.kind === 'del');
    await etcd.restart(leader);
    return {
      profile,
      mode: 'etcd-leader',
      iteration: i,
      outageMs: Math.round(out.durationMs),
      dualMs: Math.round(dual * 10) / 10,
      leaderlessMs,
      holders,
      dropped,
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
        results.push({ profile, mode, iteration: 0, note: 'no arbiter: not applicable' });
        continue;
      }
      let s: Subject | undefined;
      try {
        s = await startVipwardenSubject(profile as 'vipwarden-default' | 'vipwarden-fast', { etcdMembers: 3 });
        for (let i = 1; i <= o.iterations; i++) {
          const r = await iteration(s, profile, i, o.observeMs ?? 8000).catch((err: unknown): ArbiterIteration => ({
            profile,
            mode,
            iteration: i,
            note: String(err),
          }));
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

/** One markdown row per profile and mode: outage and dual, how often the VIP was removed, etcd leaderless time. */
export function arbiterTable(rs: readonly ArbiterIteration[]): string {
  const rows = [
    '| profile | mode | runs | outage ms (each) | dual ms (max) | VIP removed | etcd leaderless ms (each) |',
  ];
  rows.push('|---|---|---|---|---|---|---|');
  const keys = [...new Set(rs.map((r) => `${r.profile}\t${r.mode}`))];
  for (const k of keys) {
    const [profile, mode] = k.split('\t') as [Profile, ArbiterMode];
    const of = rs.filter((r) => r.profile === profile && r.mode === mode);
    const ran = of.filter((r) => r.outageMs !== undefined);
    if (ran.length === 0) {
      rows.push(`| ${profile} | ${mode} | 0 | ${of[0]?.note ?? '-'} | | | |`);
      continue;
    }
    const each = (f: (r: ArbiterIteration) => number | undefined) => ran.map((r) => f(r) ?? '?').join(', ');
    rows.push(
      `| ${profile} | ${mode} | ${ran.length} | ${each((r) => r.outageMs)} | ${Math.max(...ran.map((r) => r.dualMs ?? 0))} | ${ran.filter((r) => r.dropped).length} of ${ran.length} | ${each((r) => r.leaderlessMs)} |`,
    );
  }
  return rows.join('\n');
}
