// TypeScript side of the outside ARP view (arpwatch/main.c, built by sampler-build.ts): from the client namespace,
// an ARP request for each VIP every few ms, each round with its own sender hardware address so that every reply
// names the request it answers. "Two holders" by this view: two MACs answered one request, which is what a client
// on the link would see whatever the nodes' addresses or fences say (issue 13: "Holder" is the node that answers).
import { createInterface } from 'node:readline';
import { stopAndDrain, type ProcHandle } from './proc.js';
import { buildArpWatch } from './sampler-build.js';
import type { Testbed } from './testbed.js';
import { monoMs, withTimeout } from './util.js';

export interface ArpAnswers {
  /** CLOCK_MONOTONIC ms of the round's send. */
  t: number;
  vip: string;
  round: number;
  /** MACs that answered this round's request, sorted; from here until the next entry for this VIP. */
  macs: string[];
}

export interface ArpDual {
  from: number;
  /** End; for an ongoing one the time of the query. */
  to: number;
  ongoing: boolean;
  macs: string[];
}

export type ArpWatchLine =
  | { kind: 'answers'; answers: ArpAnswers }
  | { kind: 'ready' | 'exit'; t: number; rounds: number }
  | { kind: 'hb'; t: number; rounds: number; late: number; lateReplies: number; maxReplyUs: number };

/** One output line of vwarpwatch (pure). */
export function parseArpWatchLine(line: string): ArpWatchLine | undefined {
  const f = line.trim().split(/\s+/);
  const t = Number(f[0]);
  if (!Number.isFinite(t) || f.length < 3) return undefined;
  if (f[1] === '-') {
    const rounds = Number(f[3]);
    if (f[2] === 'ready' || f[2] === 'exit') return { kind: f[2], t, rounds };
    if (f[2] === 'hb')
      return {
        kind: 'hb',
        t,
        rounds,
        late: Number(f[4] ?? 0),
        lateReplies: Number(f[5] ?? 0),
        maxReplyUs: Number(f[6] ?? 0),
      };
    return undefined;
  }
  if (f.length !== 4 || !/^\d+\.\d+\.\d+\.\d+$/.test(f[1]!)) return undefined;
  const round = Number(f[2]);
  if (!Number.isInteger(round)) return undefined;
  const macs = f[3] === '-' ? [] : f[3]!.toLowerCase().split(',').sort();
  if (!macs.every((m) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m))) return undefined;
  return { kind: 'answers', answers: { t, vip: f[1]!, round, macs } };
}

/**
 * Where two or more MACs answered for `vip` (pure): from the send of the first round that got two answers to the
 * send of the next round that got fewer. Rounds are `periodMs` apart, so that is the resolution; an entry holds
 * until the next one for the VIP, and the last one until `now` (ongoing).
 */
export function arpDuals(answers: readonly ArpAnswers[], vip: string, now: number, since = -Infinity): ArpDual[] {
  const mine = answers.filter((a) => a.vip === vip).sort((a, b) => a.t - b.t || a.round - b.round);
  const out: ArpDual[] = [];
  let cur: ArpDual | undefined;
  for (const a of mine) {
    if (a.macs.length >= 2) {
      if (!cur) cur = { from: a.t, to: a.t, ongoing: false, macs: [...a.macs] };
      else cur.macs = [...new Set([...cur.macs, ...a.macs])].sort();
    } else if (cur) {
      cur.to = a.t;
      out.push(cur);
      cur = undefined;
    }
  }
  if (cur) out.push({ ...cur, to: now, ongoing: true });
  return out
    .filter((d) => d.to > since)
    .map((d) => ({ ...d, from: Math.max(d.from, since) }))
    .filter((d) => d.to > d.from || d.ongoing);
}

export interface ArpWatch {
  readonly answers: readonly ArpAnswers[];
  readonly heartbeats: ReadonlyArray<{ t: number; rounds: number; late: number; lateReplies: number }>;
  /** MACs that answered the last final round for `vip`. */
  answering(vip: string): string[];
  /** Intervals where two or more MACs answered one request for `vip`, and their total. */
  duals(vip: string, opts?: { since?: number }): { intervals: ArpDual[]; totalMs: number };
  stop(): Promise<void>;
}

export interface StartArpWatchOptions {
  vips: readonly string[];
  /** Request period, 1..50 ms; default 5. */
  periodMs?: number;
  /** How long a round waits for its replies; default 50 ms. */
  waitMs?: number;
  /** Hard bound on run time; default 1 h. */
  maxDurationS?: number;
  /** Sender IPv4 of the requests: an unused address on the link; default 198.18.K.250. */
  senderIp?: string;
}

/** Starts vwarpwatch in the testbed's client namespace. */
export async function startArpWatch(tb: Testbed, opts: StartArpWatchOptions): Promise<ArpWatch> {
  const periodMs = opts.periodMs ?? 5;
  const waitMs = opts.waitMs ?? 50;
  const maxS = opts.maxDurationS ?? 3600;
  const sender = opts.senderIp ?? tb.subnet.replace(/\.0\/24$/, '.250');
  if (opts.vips.length === 0 || opts.vips.some((v) => !/^\d+\.\d+\.\d+\.\d+$/.test(v)))
    throw new Error(`startArpWatch: IPv4 VIPs only, got ${opts.vips.join(', ')}`);
  const bin = await buildArpWatch();
  const proc: ProcHandle = tb.spawn(
    tb.client,
    [
      bin,
      ...['-i', tb.client.iface, '-s', sender, '-p', String(periodMs), '-w', String(waitMs), '-d', String(maxS)],
      ...opts.vips,
    ],
    { name: 'vwarpwatch', stdout: 'pipe' },
  );
  const stdout = proc.stdout;
  if (!stdout) throw new Error('startArpWatch: no stdout');
  const answers: ArpAnswers[] = [];
  const current = new Map<string, string[]>();
  const heartbeats: Array<{ t: number; rounds: number; late: number; lateReplies: number }> = [];
  let readyResolve: (() => void) | undefined;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const rl = createInterface({ input: stdout });
  rl.on('line', (line) => {
    const p = parseArpWatchLine(line);
    if (!p) return;
    if (p.kind === 'answers') {
      answers.push(p.answers);
      current.set(p.answers.vip, p.answers.macs);
    } else if (p.kind === 'hb') {
      heartbeats.push({ t: p.t, rounds: p.rounds, late: p.late, lateReplies: p.lateReplies });
    } else if (p.kind === 'ready') readyResolve?.();
  });
  const started = await withTimeout(Promise.race([ready.then(() => true), proc.done.then(() => false)]), 10_000, false);
  if (!started) {
    await proc.stop({ signal: 'SIGKILL' });
    throw new Error(`vwarpwatch did not start; see ${proc.stderrLog}`);
  }
  return {
    answers,
    heartbeats,
    answering: (vip) => [...(current.get(vip) ?? [])],
    duals(vip, o = {}) {
      const intervals = arpDuals(answers, vip, monoMs(), o.since);
      return { intervals, totalMs: intervals.reduce((s, d) => s + (d.to - d.from), 0) };
    },
    async stop() {
      await stopAndDrain(proc, rl, 2000);
    },
  };
}
