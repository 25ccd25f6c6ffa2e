// A simulated cluster for revocation.model.test.ts (test code only): the leading controller revokes the lease of a
// holder whose heartbeats stopped (the real HeartbeatSuspicion, ../suspicion.ts), learns that the lease ended from
// the revocation's answer or from its LeaseTimeToLive poll, waits revokedFenceWaitMs (common/fence.ts) and only
// then names another node. One VIP, three nodes n0..n2, one etcd server, one leader. A pure discrete-event
// simulation: integer milliseconds of one real time, an event queue, a seeded PRNG for every delay, loss and
// kernel lateness; no I/O, no timers.
//
// What it records: for every node, the intervals during which its fence element for the VIP may be open (an element
// set on the proof of a keepalive sent at s ends by s + window + the kernel's lateness, at most FENCE_SLACK_MS).
// Two nodes' intervals overlapping by a millisecond or more is a dual holder.
//
// Faults: agent freezes, cuts of a node from etcd (both ways), stuck heartbeat puts (keepalives go on), delay
// spikes, controller pauses, etcd stalls. A dual needs one message slow and the others fast at the right moment,
// which uniform draws almost never give, so the generators lean towards it: per-link delay ranges (among them "the
// first holder's answers slow, everything else fast"), delays often at the ends of their range, kernel lateness
// often the worst, and faults of the first holder about as long as the leader's allowance. Every such draw is
// still within the ranges the rule must hold for.
//
// What it leaves out, on purpose:
// - Clock rate differences: every process reads the same real time. The real bound takes them into FENCE_SLACK_MS
//   (10 ms of it); here that part of the slack is simply also used as kernel lateness.
// - etcd's inside: one server, no raft. In particular not the race between a follower answering the revocation and
//   the etcd leader's lessor still renewing the lease (keepalives go to the leader). The model assumes that once
//   the revocation was answered no keepalive of the lease is answered TTL>0 again, which is what the rule rests on;
//   etcd's LeaseRenew on the leader waits for its applied index to reach its commit index first, which gives that
//   (the follower answers only after the revocation was committed), unless the FastLeaseKeepAlive feature gate
//   (alpha in etcd 3.7, off by default) skips the wait for a lease the leader still has.
//   Leadership changes of etcd or of the controller (restart() of the suspicion) are not modelled either; an etcd
//   stall is modelled only as a server that drops whatever arrives for a while.
// - The address and its kernel lifetime (the fence's backstop), the failsafe promises (a failsafe holder is never
//   revocable), health checks, planned moves and releases: the only way the VIP moves here is a lease that ended.
// - Message loss on watches: a watch event is never lost (it catches up after a cut; events may overtake each
//   other, and an agent keeps the newest assignment by epoch); only requests and their answers (keepalives,
//   heartbeat puts, revocations, polls) are lost. Requests are not retried (the real monitor sends one revocation
//   per lease, controller/heartbeats.ts): the poll and the TTL end a lease anyway. The leader's write of an
//   assignment is retried until it lands.
// - The node registry and ranking: the leader names the node whose heartbeat it heard last, with that
//   heartbeat's lease; every node is revocable; the heartbeat key's deletion when its lease ends is not watched.
import fc from 'fast-check';
import { FENCE_SLACK_MS, fenceOverhangMs, revokedFenceWaitMs } from '../../common/fence.js';
import { HeartbeatSuspicion, type Beating } from '../suspicion.js';

export const TTL_MS = 1000;
export const NODES = 3;
export const HORIZON_MS = 6000;
/** How often the leader asks the suspicion (HeartbeatMonitor's checkMs default). */
export const CHECK_MS = 10;
/** How often the leader asks etcd whether the holder's lease still lives (LeaseTimeToLive). */
export const POLL_MS = 100;
/** A delay spike multiplies the largest one-way delay by this much. */
export const SPIKE_FACTOR = 5;

/**
 * A rule of the revocation switched off:
 * - `revoke-wait`: after the lease ended the leader waits fenceOverhangMs (the wait before revocation existed,
 *   which trusts that the server kept the lease until s + TTL) instead of revokedFenceWaitMs;
 * - `fence-from-send-time`: the agent's element ends at r + window (the answer's receipt) instead of s + window;
 * - `renew-window`: the agent uses an answer however long after its keepalive it arrived (no r − s ≤ W check).
 */
export type Ablation = 'revoke-wait' | 'fence-from-send-time' | 'renew-window';

export type Fault =
  /** SIGSTOP of the agent: it sends and processes nothing; what arrives is processed when it wakes. */
  | { kind: 'freeze'; node: number; at: number; dur: number }
  /** The node's links to etcd are cut both ways: what is sent or arrives meanwhile is lost. */
  | { kind: 'cut'; node: number; at: number; dur: number }
  /**
   * The node's heartbeat put hangs (node-agent/heartbeat.ts: puts do not overlap, one waits out its deadline of a
   * few periods): no heartbeat for a while, and its keepalives, on their own stream, go on.
   */
  | { kind: 'hb-stuck'; node: number; at: number; dur: number }
  /** Every message sent meanwhile may take up to SPIKE_FACTOR × maxDelay. */
  | { kind: 'spike'; at: number; dur: number }
  /** The controller processes nothing (a GC pause, SIGSTOP), then catches up. */
  | { kind: 'pause'; at: number; dur: number }
  /** The etcd server accepts nothing (an election, a stuck disk): requests arriving meanwhile are dropped. */
  | { kind: 'stall'; at: number; dur: number };

export interface ModelParams {
  /** K: how often an agent sends a keepalive. */
  keepaliveMs: number;
  /** W: an answer received more than W after its keepalive was sent proves nothing (the agent's renew window). */
  renewWindowMs: number;
  /** F: the fence window; an element set on a keepalive sent at s ends by s + F + FENCE_SLACK_MS. */
  fenceWindowMs: number;
  /** H: how often an agent puts its heartbeat. */
  heartbeatMs: number;
  /** M: heartbeat periods a holder may miss before the leader suspects it. */
  misses: number;
  /** The largest one-way delay; each message draws its own in [0, maxDelayMs] (or in its link's range). */
  maxDelayMs: number;
  /**
   * Per one-way link, a range within [0, maxDelayMs] (default: all of it, for every link): a node on a congested
   * link, answers slower than requests. A dual needs one message slow and the others fast, which per-link ranges
   * make likely enough for the search to meet.
   */
  links?: Links;
  lossPct: number;
  faults: Fault[];
  /** Seeds the PRNG of delays, losses, kernel lateness and timer phases. */
  seed: number;
  horizonMs: number;
  without?: readonly Ablation[];
  /** Record the trace (slower; for explaining a counterexample). */
  trace?: boolean;
}

export interface Range {
  min: number;
  max: number;
}

export interface Links {
  /** node i → etcd. */
  up: Range[];
  /** etcd → node i (answers and the assignment watch). */
  down: Range[];
  /** controller → etcd (revocations, polls, writes). */
  ctlUp: Range;
  /** etcd → controller (answers and the heartbeat watch). */
  ctlDown: Range;
}

/** The timings a run draws first (the faults may depend on them). */
export type Timing = Pick<ModelParams, 'keepaliveMs' | 'renewWindowMs' | 'fenceWindowMs' | 'heartbeatMs' | 'misses'>;

export interface Interval {
  node: number;
  start: number;
  end: number;
}

export interface ModelResult {
  intervals: Interval[];
  /** The first overlap (earliest start of the overlap) of two nodes' fence intervals, if any. */
  dual: { a: Interval; b: Interval; from: number; to: number } | undefined;
  trace: string[];
  /** Revocations the leader sent. */
  revocations: number;
  /** Every assignment the leader wrote: when, and to which node (the first is n0 at 0). */
  assignments: { at: number; node: number }[];
}

export function runModel(p: ModelParams): ModelResult {
  return new Sim(p).run();
}

/** The wait after the leader heard that the holder's lease ended. */
export function waitAfterGoneMs(p: Pick<ModelParams, 'fenceWindowMs' | 'without'>): number {
  return p.without?.includes('revoke-wait')
    ? fenceOverhangMs({ ttlSeconds: TTL_MS / 1000, fenceWindowMs: p.fenceWindowMs })
    : revokedFenceWaitMs(p.fenceWindowMs);
}

/** The first overlap of ≥ 1 ms between two different nodes' intervals. */
export function findDual(intervals: readonly Interval[]): ModelResult['dual'] {
  let best: ModelResult['dual'];
  for (const a of intervals)
    for (const b of intervals) {
      if (a.node >= b.node) continue;
      const from = Math.max(a.start, b.start);
      const to = Math.min(a.end, b.end);
      if (to - from >= 1 && (!best || from < best.from)) best = { a, b, from, to };
    }
  return best;
}

/** mulberry32: the run's delays, losses and lateness from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- fast-check generators ----

const faultAt = fc.integer({ min: 0, max: HORIZON_MS - 300 });
/** Short faults more often: a holder back just as the leader revokes it is the interesting case. */
const dur = (max: number) => fc.oneof(fc.integer({ min: 10, max: 300 }), fc.integer({ min: 10, max }));
const nodeIx = fc.integer({ min: 0, max: NODES - 1 });
/** n0 is the first holder: faults on it are the ones that make the leader revoke, so it is drawn more often. */
const target = fc.oneof(fc.constant(0), nodeIx);

export const fault: fc.Arbitrary<Fault> = fc.oneof(
  fc.record({ kind: fc.constant('freeze' as const), node: target, at: faultAt, dur: dur(1500) }),
  fc.record({ kind: fc.constant('cut' as const), node: target, at: faultAt, dur: dur(1500) }),
  fc.record({ kind: fc.constant('hb-stuck' as const), node: target, at: faultAt, dur: dur(600) }),
  fc.record({ kind: fc.constant('spike' as const), at: faultAt, dur: fc.integer({ min: 50, max: 1000 }) }),
  fc.record({ kind: fc.constant('pause' as const), at: faultAt, dur: fc.integer({ min: 10, max: 600 }) }),
  fc.record({ kind: fc.constant('stall' as const), at: faultAt, dur: fc.integer({ min: 50, max: 600 }) }),
);

/**
 * A fault of the first holder, early (while it most likely still holds), that gets it revoked while it still
 * keeps its lease: its heartbeat put stuck for longer than the leader's allowance, or a cut or a freeze about as
 * long as the allowance (it is back just as the revocation arrives). Any fault list can hold these; drawn on
 * purpose, they are frequent enough for the search.
 */
export function blip(t: Timing): fc.Arbitrary<Fault> {
  const around = t.misses * t.heartbeatMs;
  const at = fc.integer({ min: 100, max: 2500 });
  return fc.oneof(
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('hb-stuck' as const),
        node: fc.constant(0),
        at,
        dur: fc.integer({ min: around, max: around + 400 }),
      }),
    },
    fc.record({
      kind: fc.constantFrom('cut' as const, 'freeze' as const),
      node: fc.constant(0),
      at,
      dur: fc.integer({ min: Math.max(10, around - t.heartbeatMs), max: around + 2 * t.keepaliveMs + 100 }),
    }),
  );
}

export const randomFaults = (t: Timing): fc.Arbitrary<Fault[]> => fc.array(fc.oneof(fault, blip(t)), { maxLength: 6 });

/** One-way delays of a link within [0, d]: the whole range, a slow link, a fast one, or any range. */
function range(d: number): fc.Arbitrary<Range> {
  const q = Math.max(1, Math.floor(d / 4));
  return fc.oneof(
    fc.constant({ min: 0, max: d }),
    fc.integer({ min: 0, max: q }).map((j) => ({ min: Math.max(0, d - j), max: d })),
    fc.integer({ min: 0, max: q }).map((j) => ({ min: 0, max: j })),
    fc
      .tuple(fc.integer({ min: 0, max: d }), fc.integer({ min: 0, max: d }))
      .map(([a, b]) => ({ min: Math.min(a, b), max: Math.max(a, b) })),
  );
}

export interface ParamsOptions {
  without?: readonly Ablation[];
  /** The faults, given the timings (default: randomFaults). */
  faults?: (t: Timing) => fc.Arbitrary<Fault[]>;
  /** Default [1, 120]. */
  maxDelayMs?: fc.Arbitrary<number>;
  /** Default [0, 10]. */
  lossPct?: fc.Arbitrary<number>;
  /** Default [2, 4]. */
  misses?: fc.Arbitrary<number>;
  /** Draw per-link delay ranges too (default true); false: every message in [0, maxDelayMs]. */
  links?: boolean;
}

/** Random timings, network and faults within the ranges the rule must hold for. */
export function params(o: ParamsOptions = {}): fc.Arbitrary<ModelParams> {
  const faults = o.faults ?? randomFaults;
  const maxDelay = o.maxDelayMs ?? fc.integer({ min: 1, max: 120 });
  const lossPct = o.lossPct ?? fc.integer({ min: 0, max: 10 });
  const timing: fc.Arbitrary<Timing> = fc.integer({ min: 30, max: 100 }).chain((k) =>
    fc.record({
      keepaliveMs: fc.constant(k),
      renewWindowMs: fc.constant(k),
      // fenceTimingProblem's range: at least W + K (no gap between renewals), at most TTL − a 150 ms margin.
      fenceWindowMs: fc.integer({ min: 2 * k, max: TTL_MS - 150 }),
      heartbeatMs: fc.integer({ min: 20, max: 60 }),
      misses: o.misses ?? fc.integer({ min: 2, max: 4 }),
    }),
  );
  type Net = { maxDelayMs: number; links: Links | undefined };
  const uniform: fc.Arbitrary<Net> = maxDelay.map((maxDelayMs) => ({ maxDelayMs, links: undefined }));
  const perLink: fc.Arbitrary<Net> = maxDelay.chain((maxDelayMs) => {
    const r = range(maxDelayMs);
    const links = fc.record({
      up: fc.array(r, { minLength: NODES, maxLength: NODES }),
      down: fc.array(r, { minLength: NODES, maxLength: NODES }),
      ctlUp: r,
      ctlDown: r,
    });
    return fc.record({ maxDelayMs: fc.constant(maxDelayMs), links });
  });
  // The first holder's answers slow (yet within the renew window: its proofs still count, and arrive late), every
  // other link fast: the leader hears of the revocation early, the holder's last proof arrives late.
  const slowHolder = (t: Timing): fc.Arbitrary<Net> =>
    fc.integer({ min: Math.ceil(t.renewWindowMs / 2), max: 120 }).chain((maxDelayMs) => {
      const fast = fc.integer({ min: 0, max: 5 }).map((j) => ({ min: 0, max: j }));
      const b = Math.min(maxDelayMs, t.renewWindowMs - 5);
      const slow = fc.integer({ min: 0, max: Math.floor(b / 4) }).map((j) => ({ min: b - j, max: b }));
      const links = fc.record({
        up: fc.array(fast, { minLength: NODES, maxLength: NODES }),
        down: fc.tuple(slow, fast, fast),
        ctlUp: fast,
        ctlDown: fast,
      });
      return fc.record({ maxDelayMs: fc.constant(maxDelayMs), links });
    });
  const net = (t: Timing): fc.Arbitrary<Net> =>
    o.links === false
      ? uniform
      : fc.oneof(
          { arbitrary: uniform, weight: 1 },
          { arbitrary: perLink, weight: 1 },
          { arbitrary: slowHolder(t), weight: 2 },
        );
  return timing
    .chain((t) => fc.tuple(fc.constant(t), net(t), lossPct, faults(t), fc.integer()))
    .map(([t, n, loss, f, seed]): ModelParams => ({
      ...t,
      maxDelayMs: n.maxDelayMs,
      ...(n.links ? { links: n.links } : {}),
      lossPct: loss,
      faults: f,
      seed,
      horizonMs: HORIZON_MS,
      without: o.without ?? [],
    }));
}

// ---- the simulation ----

interface Lease {
  id: string;
  node: number;
  expiresAt: number;
  revokedAt: number | undefined;
}

interface Assignment {
  epoch: number;
  node: number;
  lease: string;
}

type ToEtcd =
  | { kind: 'keepalive'; node: number; lease: string; sentAt: number }
  | { kind: 'grant'; node: number }
  | { kind: 'heartbeat'; node: number; lease: string }
  | { kind: 'revoke'; lease: string }
  | { kind: 'ttl'; lease: string }
  | { kind: 'write'; asg: Assignment };

type ToNode =
  | { kind: 'ka-answer'; lease: string; sentAt: number; live: boolean }
  | { kind: 'granted'; lease: string }
  | { kind: 'assignment'; asg: Assignment };

type ToController =
  | { kind: 'heartbeat'; node: number; lease: string }
  | { kind: 'revoked'; lease: string }
  | { kind: 'ttl-answer'; lease: string; live: boolean };

type Ev =
  | { kind: 'etcd'; msg: ToEtcd }
  | { kind: 'node'; node: number; msg: ToNode }
  | { kind: 'ctl'; msg: ToController }
  | { kind: 'ka-tick'; node: number }
  | { kind: 'hb-tick'; node: number }
  | { kind: 'check' }
  | { kind: 'poll' }
  | { kind: 'wait-over' }
  | { kind: 'wake'; who: number | 'ctl' };

interface Queued {
  at: number;
  seq: number;
  ev: Ev;
}

/** A binary heap of events by time, then by the order they were scheduled. */
class Queue {
  private readonly h: Queued[] = [];
  private seq = 0;

  push(at: number, ev: Ev): void {
    const h = this.h;
    h.push({ at, seq: this.seq++, ev });
    let i = h.length - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!before(h[i]!, h[up]!)) break;
      [h[i], h[up]] = [h[up]!, h[i]!];
      i = up;
    }
  }

  pop(): Queued | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Queued, b: Queued): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

interface Agent {
  lease: string | undefined;
  /** The assignment as this agent last saw it (its watch). */
  seen: Assignment;
  /** Events that arrived while frozen, processed when it wakes. */
  deferred: Ev[];
}

const name = (i: number) => `n${i}`;

class Sim {
  private t = 0;
  private readonly q = new Queue();
  private readonly rnd: () => number;
  private readonly off: ReadonlySet<Ablation>;
  private readonly trace: string[] = [];
  private readonly intervals: Interval[] = [];
  /** The interval of each node that the next element may extend. */
  private readonly current: (Interval | undefined)[] = [];
  // etcd
  private readonly leases = new Map<string, Lease>();
  private readonly nodeLease: string[] = [];
  private leaseSeq = 0;
  // agents
  private readonly agents: Agent[] = [];
  // controller
  private readonly suspicion: HeartbeatSuspicion;
  private asg: Assignment;
  private readonly assignments: ModelResult['assignments'] = [];
  private readonly lastBeat = new Map<number, { at: number; lease: string }>();
  private readonly revoking = new Set<string>();
  private readonly goneAt = new Map<string, number>();
  private revocations = 0;
  private readonly ctlDeferred: Ev[] = [];
  private readonly beating: Beating[];
  private readonly wait: number;

  constructor(private readonly p: ModelParams) {
    this.rnd = prng(p.seed);
    this.off = new Set(p.without ?? []);
    this.wait = waitAfterGoneMs(p);
    this.suspicion = new HeartbeatSuspicion(p.misses);
    this.beating = Array.from({ length: NODES }, (_, i) => ({ node: name(i), heartbeatMs: p.heartbeatMs }));
    for (let i = 0; i < NODES; i++) this.nodeLease.push(this.grant(i));
    this.asg = { epoch: 1, node: 0, lease: this.nodeLease[0]! };
    this.assignments.push({ at: 0, node: 0 });
    for (let i = 0; i < NODES; i++) {
      this.agents.push({ lease: this.nodeLease[i], seen: this.asg, deferred: [] });
      this.current.push(undefined);
    }
  }

  /** Traces only when asked: most runs pass and nobody reads their trace. */
  private log(s: () => string): void {
    if (this.p.trace) this.trace.push(`${this.t} ms: ${s()}`);
  }

  run(): ModelResult {
    const p = this.p;
    // As the monitor does when it starts to lead: every node's allowance starts now.
    this.suspicion.restart(
      0,
      this.beating.map((b) => b.node),
    );
    // n0 holds from the start, on a first proof (a keepalive sent and answered at 0).
    this.openFence(0, 0, 0, 'first proof');
    for (let i = 0; i < NODES; i++) {
      // Timers start at random phases: the nodes' keepalives and heartbeats are not in step.
      this.q.push(Math.floor(this.rnd() * p.keepaliveMs), { kind: 'ka-tick', node: i });
      this.q.push(Math.floor(this.rnd() * p.heartbeatMs), { kind: 'hb-tick', node: i });
    }
    this.q.push(0, { kind: 'check' });
    this.q.push(0, { kind: 'poll' });
    for (const f of p.faults) {
      if (f.kind === 'freeze') this.q.push(f.at + f.dur, { kind: 'wake', who: f.node });
      if (f.kind === 'pause') this.q.push(f.at + f.dur, { kind: 'wake', who: 'ctl' });
    }
    if (p.trace)
      for (const f of [...p.faults].sort((a, b) => a.at - b.at))
        this.trace.push(`${f.at} ms: FAULT ${describeFault(f)}`);
    for (let e = this.q.pop(); e && e.at <= p.horizonMs; e = this.q.pop()) {
      this.t = e.at;
      this.dispatch(e.ev);
    }
    if (p.trace) this.trace.sort((a, b) => parseInt(a) - parseInt(b));
    return {
      intervals: this.intervals,
      dual: findDual(this.intervals),
      trace: this.trace,
      revocations: this.revocations,
      assignments: this.assignments,
    };
  }

  // ---- time-shaped faults ----

  private during(kind: Fault['kind'], t: number, node?: number): Fault | undefined {
    return this.p.faults.find(
      (f) =>
        f.kind === kind && t >= f.at && t < f.at + f.dur && (node === undefined || ('node' in f && f.node === node)),
    );
  }

  private frozen(i: number): boolean {
    return this.during('freeze', this.t, i) !== undefined;
  }

  private paused(): boolean {
    return this.during('pause', this.t) !== undefined;
  }

  private cut(i: number, t: number): boolean {
    return this.during('cut', t, i) !== undefined;
  }

  private stalled(t: number): boolean {
    return this.during('stall', t) !== undefined;
  }

  // ---- the network ----

  /** A one-way delay on a link (default: [0, maxDelayMs]); a spike multiplies its upper end. */
  private delay(link?: Range): number {
    const d = this.p.maxDelayMs;
    const min = Math.min(link?.min ?? 0, d);
    const max = Math.max(min, Math.min(link?.max ?? d, d)) * (this.during('spike', this.t) ? SPIKE_FACTOR : 1);
    // Uniform, with some weight on both ends: the interleavings that matter have one message slow, others fast.
    const u = this.rnd();
    if (u < 0.15) return min;
    if (u < 0.3) return max;
    return min + Math.floor(this.rnd() * (max - min + 1));
  }

  private up(i: number): Range | undefined {
    return this.p.links?.up[i];
  }

  private down(i: number): Range | undefined {
    return this.p.links?.down[i];
  }

  private lost(): boolean {
    return this.rnd() * 100 < this.p.lossPct;
  }

  /** A request or answer between node i and etcd: lost at random, or when the node's link is cut at either end. */
  private nodeLink(i: number, ev: Ev): void {
    const at = this.t + this.delay(ev.kind === 'etcd' ? this.up(i) : this.down(i));
    if (this.lost() || this.cut(i, this.t) || this.cut(i, at)) return;
    this.q.push(at, ev);
  }

  /** A request or answer between the controller and etcd (that link is never cut). */
  private ctlLink(ev: Ev): void {
    const at = this.t + this.delay(ev.kind === 'etcd' ? this.p.links?.ctlUp : this.p.links?.ctlDown);
    if (this.lost()) return;
    this.q.push(at, ev);
  }

  /** A watch event to node i: reliable; a cut node's watch catches up when the cut ends. */
  private watchTo(i: number, asg: Assignment): void {
    let at = this.t + this.delay(this.down(i));
    for (let f = this.during('cut', at, i); f; f = this.during('cut', at, i))
      at = f.at + f.dur + this.delay(this.down(i));
    this.q.push(at, { kind: 'node', node: i, msg: { kind: 'assignment', asg } });
  }

  // ---- dispatch ----

  private dispatch(ev: Ev): void {
    switch (ev.kind) {
      case 'etcd':
        return this.etcd(ev.msg);
      case 'node':
      case 'ka-tick':
      case 'hb-tick':
        if (this.frozen(ev.node)) return this.defer(this.agents[ev.node]!.deferred, ev);
        return this.agent(ev.node, ev);
      case 'ctl':
      case 'check':
      case 'poll':
      case 'wait-over':
        if (this.paused()) return this.defer(this.ctlDeferred, ev);
        return this.controller(ev);
      case 'wake':
        return this.wake(ev.who);
    }
  }

  /** Keeps what arrives while a process is stopped; a timer that fired meanwhile runs once when it wakes. */
  private defer(list: Ev[], ev: Ev): void {
    if (ev.kind === 'ka-tick' || ev.kind === 'hb-tick' || ev.kind === 'check' || ev.kind === 'poll')
      if (list.some((d) => d.kind === ev.kind)) return;
    list.push(ev);
  }

  private wake(who: number | 'ctl'): void {
    if (who === 'ctl') {
      if (this.paused()) return; // another pause covers now: its own wake comes later
      this.log(() => 'controller resumes');
      for (const ev of this.ctlDeferred.splice(0)) this.controller(ev);
      return;
    }
    if (this.frozen(who)) return;
    this.log(() => `${name(who)} agent resumes`);
    for (const ev of this.agents[who]!.deferred.splice(0)) this.agent(who, ev);
  }

  // ---- etcd ----

  private grant(node: number): string {
    const id = `${name(node)}#${++this.leaseSeq}`;
    this.leases.set(id, { id, node, expiresAt: this.t + TTL_MS, revokedAt: undefined });
    this.nodeLease[node] = id;
    return id;
  }

  private live(id: string, at: number): boolean {
    const l = this.leases.get(id);
    return l !== undefined && l.revokedAt === undefined && at < l.expiresAt;
  }

  private etcd(m: ToEtcd): void {
    const p = this.t;
    if (m.kind === 'write') {
      // The leader's write is retried by its client: a stall only delays it.
      const stall = this.during('stall', p);
      if (stall) return this.q.push(stall.at + stall.dur, { kind: 'etcd', msg: m });
      for (let i = 0; i < NODES; i++) this.watchTo(i, m.asg);
      return;
    }
    if (this.stalled(p)) return;
    switch (m.kind) {
      case 'keepalive': {
        const live = this.live(m.lease, p);
        if (live) this.leases.get(m.lease)!.expiresAt = p + TTL_MS;
        const msg: ToNode = { kind: 'ka-answer', lease: m.lease, sentAt: m.sentAt, live };
        return this.nodeLink(m.node, { kind: 'node', node: m.node, msg });
      }
      case 'grant': {
        const cur = this.nodeLease[m.node]!;
        const id = this.live(cur, p) ? cur : this.grant(m.node);
        if (id !== cur) this.log(() => `etcd grants ${name(m.node)} a new lease ${id}`);
        return this.nodeLink(m.node, { kind: 'node', node: m.node, msg: { kind: 'granted', lease: id } });
      }
      case 'heartbeat':
        // A put under a lease that ended fails; one under the live lease is seen by the leader's watch.
        if (!this.live(m.lease, p)) return;
        return this.q.push(p + this.delay(this.p.links?.ctlDown), {
          kind: 'ctl',
          msg: { kind: 'heartbeat', node: m.node, lease: m.lease },
        });
      case 'revoke': {
        const l = this.leases.get(m.lease);
        if (l && this.live(m.lease, p)) {
          l.revokedAt = p;
          this.log(() => `etcd revokes lease ${m.lease}`);
        }
        return this.ctlLink({ kind: 'ctl', msg: { kind: 'revoked', lease: m.lease } });
      }
      case 'ttl':
        return this.ctlLink({ kind: 'ctl', msg: { kind: 'ttl-answer', lease: m.lease, live: this.live(m.lease, p) } });
    }
  }

  // ---- agents ----

  private agent(i: number, ev: Ev): void {
    const a = this.agents[i]!;
    const p = this.p;
    if (ev.kind === 'ka-tick') {
      this.q.push(this.t + p.keepaliveMs, ev);
      const msg: ToEtcd = a.lease
        ? { kind: 'keepalive', node: i, lease: a.lease, sentAt: this.t }
        : { kind: 'grant', node: i };
      return this.nodeLink(i, { kind: 'etcd', msg });
    }
    if (ev.kind === 'hb-tick') {
      this.q.push(this.t + p.heartbeatMs, ev);
      if (a.lease && !this.during('hb-stuck', this.t, i))
        this.nodeLink(i, { kind: 'etcd', msg: { kind: 'heartbeat', node: i, lease: a.lease } });
      return;
    }
    if (ev.kind !== 'node') return;
    const m = ev.msg;
    switch (m.kind) {
      case 'assignment':
        if (m.asg.epoch > a.seen.epoch) {
          a.seen = m.asg;
          this.log(
            () => `${name(i)} sees the VIP assigned to ${name(m.asg.node)} (${m.asg.lease}, epoch ${m.asg.epoch})`,
          );
        }
        return;
      case 'granted':
        if (!a.lease) {
          a.lease = m.lease;
          this.log(() => `${name(i)} has lease ${m.lease}`);
        }
        return;
      case 'ka-answer': {
        if (m.lease !== a.lease) return;
        const r = this.t;
        if (!m.live) {
          // Its elements still run to their end: the agent does not take them back (it may be the frozen one).
          a.lease = undefined;
          this.log(() => `${name(i)} learns lease ${m.lease} is gone (keepalive sent at ${m.sentAt} answered TTL 0)`);
          return;
        }
        if (!this.off.has('renew-window') && r - m.sentAt > p.renewWindowMs) {
          this.log(() => `${name(i)} drops a late answer (keepalive sent at ${m.sentAt}, ${r - m.sentAt} ms > W)`);
          return;
        }
        if (a.seen.node !== i || a.seen.lease !== a.lease) return;
        this.openFence(i, m.sentAt, r, `keepalive sent at ${m.sentAt} answered TTL>0`);
        return;
      }
    }
  }

  /** Sets the element on the proof of a keepalive sent at s whose answer arrived at r (now). */
  private openFence(i: number, s: number, r: number, why: string): void {
    // The kernel ends an element up to FENCE_SLACK_MS late; drawn towards the worst case, where duals are.
    const u = this.rnd();
    const e = u < 0.4 ? FENCE_SLACK_MS : u < 0.6 ? 0 : Math.floor(this.rnd() * (FENCE_SLACK_MS + 1));
    const end = (this.off.has('fence-from-send-time') ? r : s) + this.p.fenceWindowMs + e;
    if (end <= r) return;
    const cur = this.current[i];
    if (cur && cur.end >= r) {
      if (end > cur.end) {
        cur.end = end;
        this.log(() => `${name(i)} renews its fence to ${end} (${why}, lateness ${e})`);
      }
      return;
    }
    const iv = { node: i, start: r, end };
    this.intervals.push(iv);
    this.current[i] = iv;
    this.log(() => `${name(i)} OPENS its fence until ${end} (${why}, lateness ${e})`);
  }

  // ---- the leading controller ----

  private controller(ev: Ev): void {
    const now = this.t;
    switch (ev.kind) {
      case 'check': {
        this.q.push(now + CHECK_MS, ev);
        const holder = name(this.asg.node);
        if (this.suspicion.suspects(this.beating, now).includes(holder) && !this.revoking.has(this.asg.lease)) {
          this.revoking.add(this.asg.lease);
          this.revocations++;
          const last = this.lastBeat.get(this.asg.node)?.at;
          this.log(() => `controller suspects ${holder} (last heartbeat seen at ${last}), revokes ${this.asg.lease}`);
          this.ctlLink({ kind: 'etcd', msg: { kind: 'revoke', lease: this.asg.lease } });
        }
        return this.reassign();
      }
      case 'poll':
        this.q.push(now + POLL_MS, ev);
        return this.ctlLink({ kind: 'etcd', msg: { kind: 'ttl', lease: this.asg.lease } });
      case 'wait-over':
        return this.reassign();
      case 'ctl': {
        const m = ev.msg;
        if (m.kind === 'heartbeat') {
          this.suspicion.beat(name(m.node), now);
          this.log(() => `controller hears ${name(m.node)}'s heartbeat`);
          this.lastBeat.set(m.node, { at: now, lease: m.lease });
        } else if (m.kind === 'revoked') this.gone(m.lease, 'the revocation was answered');
        else if (!m.live) this.gone(m.lease, 'LeaseTimeToLive says it ended');
        return;
      }
    }
  }

  private gone(lease: string, why: string): void {
    if (this.goneAt.has(lease)) return;
    this.goneAt.set(lease, this.t);
    if (lease !== this.asg.lease) return;
    this.log(() => `controller: holder lease ${lease} ended (${why}); waits ${this.wait} ms`);
    this.q.push(this.t + this.wait, { kind: 'wait-over' });
  }

  /** Once the holder's lease ended and the wait is over, names the node heard from last, with its lease. */
  private reassign(): void {
    const g = this.goneAt.get(this.asg.lease);
    if (g === undefined || this.t < g + this.wait) return;
    let best: { node: number; at: number; lease: string } | undefined;
    for (const [node, b] of this.lastBeat)
      if (node !== this.asg.node && !this.goneAt.has(b.lease) && (!best || b.at > best.at)) best = { node, ...b };
    if (!best) return; // nobody else is heard: the next check tries again
    this.asg = { epoch: this.asg.epoch + 1, node: best.node, lease: best.lease };
    this.assignments.push({ at: this.t, node: best.node });
    this.log(() => `controller assigns the VIP to ${name(best.node)} (${best.lease}, epoch ${this.asg.epoch})`);
    // A write is retried by the client until it lands: never lost, only late.
    this.q.push(this.t + this.delay(this.p.links?.ctlUp), { kind: 'etcd', msg: { kind: 'write', asg: this.asg } });
  }
}

function describeFault(f: Fault): string {
  const until = `${f.at}..${f.at + f.dur}`;
  switch (f.kind) {
    case 'freeze':
      return `${name(f.node)} agent frozen ${until}`;
    case 'cut':
      return `${name(f.node)} cut from etcd ${until}`;
    case 'spike':
      return `delays ×${SPIKE_FACTOR} ${until}`;
    case 'pause':
      return `controller paused ${until}`;
    case 'stall':
      return `etcd accepts nothing ${until}`;
    case 'hb-stuck':
      return `${name(f.node)} heartbeat put stuck ${until}`;
  }
}
