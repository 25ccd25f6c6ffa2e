// The promise rules of failsafe mode (docs/design.md "Failsafe (arbiter loss)", issue 12 rules 1-6) as a pure
// state machine: no I/O, no timers, every time a monotonic reading of the caller's own clock passed in. The agent
// wires it to its lease, its holdings and the peer transport; rules.model.test.ts drives it through random
// interleavings of clocks, delays, losses, partitions, outages, restarts, freezes, joins and leaves.
//
// Holder side (HolderRules): without a fresh keepalive answer, ask every node of the promise set written with the
// assignment (rule 1); extend a VIP's kernel lifetime only up to min over that set of (own send time of the request
// that node granted + W) minus margins (rule 4), never past the lease's proven end + maxKeep (rule 5); a refusal
// once the lease no longer covers the VIP ends the keep (rule 6).
// Peer side (PeerRules): grant only while this node cannot reach etcd and holds none of the group (rule 2); a
// promise binds this node for W from when it gave it, whatever it learns later (rule 3).
// Controller side (takeoverWaitMs, listedForTakeover): only nodes bound by rule 3 may take over after the ordinary
// Safety 3 wait; any other node waits maxKeep more (rule 5).
import { KERNEL_SLACK_MS, kernelSlackForLifetimeMs } from '../../common/kernel-lifetime.js';
import type { Ablation, RulesOptions } from './ablation.js';
import type { PromiseAnswer, PromiseRequest, RefusalReason } from './messages.js';

export type { Ablation, RulesOptions } from './ablation.js';

export interface FailsafeTiming {
  /** W: how long a promise binds the peer that gave it, on the peer's own clock. */
  windowMs: number;
  /** Longest keep by promises after the lease's proven end; the controller waits it out for unlisted nodes. */
  maxKeepMs: number;
  /** How often the holder asks while it has no fresh keepalive answer. */
  roundIntervalMs: number;
  /** An answer that comes later than this after its request was sent is not used. */
  answerTimeoutMs: number;
  /** The lease margin (LeaseTiming.marginMs): kept between the holder's deadline and the bound it derives. */
  marginMs: number;
  /** How late the kernel may delete an expired address (the controller's kernelSlackMs). */
  kernelSlackMs: number;
  /** Largest rate error of any node's monotonic clock, in parts per million (ρ). */
  driftPpm: number;
}

export const DEFAULT_FAILSAFE_TIMING: FailsafeTiming = {
  windowMs: 5000,
  maxKeepMs: 120_000,
  roundIntervalMs: 250,
  answerTimeoutMs: 500,
  marginMs: 500,
  kernelSlackMs: KERNEL_SLACK_MS,
  driftPpm: 1000,
};

/** The shortest real time an interval of `ms` on one clock can be on another (both within ρ of real time). */
export function shrinkForDrift(ms: number, driftPpm: number): number {
  return ms * (1 - (2 * driftPpm) / 1e6);
}

/** Why a timing cannot bridge an outage: a lifetime set after one answer must outlast the next round. */
export function failsafeTimingProblem(t: FailsafeTiming): string | undefined {
  const usable = shrinkForDrift(t.windowMs, t.driftPpm) - t.marginMs - t.kernelSlackMs;
  const need = 1000 + t.roundIntervalMs + t.answerTimeoutMs;
  if (usable < need)
    return `windowMs ${t.windowMs} leaves ${Math.floor(usable)} ms after margins; needs at least ${need} ms`;
  if (t.maxKeepMs < t.windowMs) return `maxKeepMs ${t.maxKeepMs} is shorter than windowMs ${t.windowMs}`;
  return undefined;
}

/** The agent's failsafe timing: the defaults with its lease margin, and W and maxKeep from agent.yaml `peer:`. */
export function failsafeTiming(
  lease: { marginMs: number },
  peer: { windowMs?: number; maxKeepMs?: number } = {},
): FailsafeTiming {
  const t = {
    ...DEFAULT_FAILSAFE_TIMING,
    marginMs: lease.marginMs,
    ...(peer.windowMs !== undefined ? { windowMs: peer.windowMs } : {}),
    ...(peer.maxKeepMs !== undefined ? { maxKeepMs: peer.maxKeepMs } : {}),
  };
  const problem = failsafeTimingProblem(t);
  if (problem) throw new Error(`failsafe timing: ${problem}`);
  return t;
}

// ---- Holder side ----

interface Pending {
  sentAt: number;
  peers: ReadonlySet<string>;
}

export type AnswerOutcome = 'granted' | 'refused' | 'ignored';

/**
 * After a refusal while the lease still covers (the peer heard from etcd a little later than we did: keepalive
 * phases differ by up to one interval), the next round comes this soon instead of a round interval later: the
 * address set at the last answer may have only a few hundred ms left. Liveness only; rounds are not in the argument.
 */
export const RETRY_AFTER_REFUSAL_MS = 50;
/**
 * At most this many such quick rounds per keep: a holder cut off alone is refused by peers that reach etcd, and every
 * extra round is a chance that one of them, missing a keepalive answer just then, grants and is bound for W (which
 * delays its takeover: the model test's "cut off alone" case finds it with unbounded quick rounds).
 */
export const QUICK_ROUNDS = 4;

export class HolderRules {
  /** The nodes whose promises a keep needs (the assignment's promise set, this node excluded). */
  private peers: string[] = [];
  /** Per peer, the latest own send time of a request it granted. */
  private readonly granted = new Map<string, number>();
  private readonly pending = new Map<string, Pending>();
  private lastRoundAt = -Infinity;
  private retrySoon = false;
  private quickRounds = 0;
  private seq = 0;
  private ended = false;
  private endedWhy: string | undefined;
  private endedByHolding = false;
  private readonly off: ReadonlySet<Ablation>;

  constructor(
    private readonly self: string,
    private readonly timing: FailsafeTiming,
    opts: RulesOptions = {},
    /** Makes request ids unique across restarts of this process (e.g. its start time or lease). */
    private readonly incarnation = '0',
  ) {
    this.off = opts.without ?? new Set();
  }

  /** Rule 1: the promise set of the assignment this node acts on. Grants of nodes no longer in it are dropped. */
  setPromiseSet(nodes: readonly string[]): void {
    this.peers = [...new Set(nodes)].filter((n) => n !== this.self).sort();
    for (const p of this.granted.keys()) if (!this.peers.includes(p)) this.granted.delete(p);
  }

  promiseSet(): readonly string[] {
    return this.peers;
  }

  /** A fresh keepalive answer: the agent is back on its lease; a later outage starts a new keep. */
  onFresh(): void {
    this.ended = false;
    this.endedWhy = undefined;
    this.endedByHolding = false;
    this.pending.clear();
    this.quickRounds = 0;
  }

  /** The lease is gone (or replaced): nothing may be kept by promises any more until the next fresh answer. */
  end(why: string, peerHolds = false): void {
    if (!this.ended) {
      this.endedWhy = why;
      this.endedByHolding = peerHolds;
    }
    this.ended = true;
  }

  /** The keep ended because a peer said it holds a group's addresses (a refusal `holdsGroup`). */
  endedByPeerHolding(): boolean {
    return this.ended && this.endedByHolding;
  }

  /** Why the keep ended, or undefined while it may go on. */
  endReason(): string | undefined {
    return this.ended ? this.endedWhy : undefined;
  }

  /** The request to send now to `peers`, or undefined (fresh, ended, nothing held, or a round is in flight). */
  request(
    now: number,
    o: { fresh: boolean; lease: string; groups: PromiseRequest['groups'] },
  ): { req: PromiseRequest; peers: string[] } | undefined {
    if (o.fresh || this.ended || o.groups.length === 0 || this.peers.length === 0) return undefined;
    const quick = this.retrySoon && this.quickRounds < QUICK_ROUNDS;
    const interval = quick
      ? Math.min(RETRY_AFTER_REFUSAL_MS, this.timing.roundIntervalMs)
      : this.timing.roundIntervalMs;
    if (now - this.lastRoundAt < interval) return undefined;
    this.lastRoundAt = now;
    this.retrySoon = false;
    if (quick) this.quickRounds++;
    if (!this.off.has('rule4-send-time'))
      for (const [id, p] of this.pending) if (now - p.sentAt > this.timing.answerTimeoutMs) this.pending.delete(id);
    const requestId = `${this.incarnation}-${++this.seq}`;
    this.pending.set(requestId, { sentAt: now, peers: new Set(this.peers) });
    const req: PromiseRequest = { holder: this.self, holderLease: o.lease, groups: o.groups, requestId, sentAt: now };
    return { req, peers: [...this.peers] };
  }

  /**
   * An answer (already authenticated by the transport). `leaseCovers`: the lease still proves the VIPs (now before
   * its validUntil − margin); a refusal then only means the peer heard from etcd a little later than we did.
   */
  onAnswer(ans: PromiseAnswer, now: number, leaseCovers: boolean): AnswerOutcome {
    const p = this.pending.get(ans.requestId);
    const receiveTime = this.off.has('rule4-send-time');
    if (!p || !p.peers.has(ans.peer) || (!receiveTime && now - p.sentAt > this.timing.answerTimeoutMs))
      return 'ignored';
    if (!this.peers.includes(ans.peer)) return 'ignored';
    if (!ans.granted || ans.windowMs < this.timing.windowMs) {
      // Rule 6: one refusal ends the keep once the holder depends on promises.
      if (!leaseCovers && !this.off.has('rule6-all'))
        this.end(`refused by ${ans.peer}: ${ans.reason ?? 'other'}`, ans.reason === 'holdsGroup');
      else this.retrySoon = true;
      return 'refused';
    }
    const at = receiveTime ? now : p.sentAt;
    this.granted.set(ans.peer, Math.max(this.granted.get(ans.peer) ?? -Infinity, at));
    return 'granted';
  }

  /**
   * Rule 4 and 5: the latest own-clock time at which a VIP kept by promises must be gone (kernel lateness
   * included), or -Infinity. `leaseValidUntil`: the lease's proven end (LeaseKeeper.validUntil).
   */
  bound(now: number, leaseValidUntil: number): number {
    if (this.ended) return -Infinity;
    const t = this.timing;
    const noMargins = this.off.has('rule4-margins');
    const w = noMargins ? t.windowMs : shrinkForDrift(t.windowMs, t.driftPpm);
    let b = Infinity;
    let counted = 0;
    for (const p of this.peers) {
      const s = this.granted.get(p);
      const until = s === undefined ? -Infinity : s + w;
      // Ablated rule 6: go on with the unexpired promises there are, skipping the peers that refused or are silent.
      if (this.off.has('rule6-all') && until <= now) continue;
      b = Math.min(b, until);
      counted++;
    }
    if (this.peers.length > 0 && counted === 0) return -Infinity;
    if (!this.off.has('rule5-bounded'))
      b = Math.min(b, leaseValidUntil + (noMargins ? t.maxKeepMs : shrinkForDrift(t.maxKeepMs, t.driftPpm)));
    return noMargins ? b : b - t.marginMs;
  }

  /**
   * The kernel lifetime (whole seconds) to set now on a VIP whose current lifetime ends at `fenceEnd` (own clock),
   * or undefined: never re-add an address that is gone, never shorten one, and keep the kernel's lateness inside
   * the bound.
   */
  lifetime(now: number, fenceEnd: number, leaseValidUntil: number): number | undefined {
    if (fenceEnd <= now) return undefined;
    const b = this.bound(now, leaseValidUntil);
    if (!(b > now)) return undefined;
    const noMargins = this.off.has('rule4-margins');
    let l = Math.floor((b - now) / 1000);
    while (l >= 1) {
      const slack = noMargins ? 0 : Math.max(this.timing.kernelSlackMs, kernelSlackForLifetimeMs(l));
      if (now + l * 1000 + slack <= b) break;
      l--;
    }
    if (l < 1 || now + l * 1000 <= fenceEnd) return undefined;
    return l;
  }
}

// ---- Peer side ----

export interface PeerView {
  /** A keepalive answer is fresh (LeaseKeeper.isFresh): this node reaches etcd and may be given groups. */
  reachesEtcd: boolean;
  /** This node holds, or is adding, an address of the group. */
  holds(group: string): boolean;
  /** The group is in failsafe mode (spec.arbiterLoss: failsafe) as far as this node knows; undefined: unknown. */
  failsafe(group: string): boolean | undefined;
}

export class PeerRules {
  /** Per group, the own-clock time until which this node promised to add none of its addresses. */
  private readonly until = new Map<string, number>();
  private readonly off: ReadonlySet<Ablation>;

  constructor(
    private readonly self: string,
    private readonly timing: FailsafeTiming,
    opts: RulesOptions = {},
  ) {
    this.off = opts.without ?? new Set();
  }

  /** Rule 2 and 3: answer a request (already authenticated and parsed) at own time `now`. */
  answer(req: PromiseRequest, now: number, view: PeerView): PromiseAnswer {
    const refuse = (reason: RefusalReason): PromiseAnswer => ({
      peer: this.self,
      granted: false,
      windowMs: 0,
      reason,
      requestId: req.requestId,
    });
    if (req.holder === this.self) return refuse('other');
    if (!this.off.has('rule2-refuse')) {
      if (view.reachesEtcd) return refuse('reachesEtcd');
      if (req.groups.some((g) => view.holds(g.group))) return refuse('holdsGroup');
    }
    if (req.groups.some((g) => view.failsafe(g.group) === false)) return refuse('notFailsafe');
    const end = now + this.timing.windowMs;
    for (const g of req.groups) this.until.set(g.group, Math.max(this.until.get(g.group) ?? -Infinity, end));
    return { peer: this.self, granted: true, windowMs: this.timing.windowMs, requestId: req.requestId };
  }

  /** Rule 3: may this node add the group's addresses now? Not while a promise it gave runs. */
  mayAdd(group: string, now: number): boolean {
    const u = this.until.get(group);
    return u === undefined || now >= u;
  }

  /**
   * Rule 3, for the acknowledgement: may this node tell the controller it has nothing of the group? Not while a
   * promise binds it: the controller would free the group (or an address its record claims) for any node.
   */
  mayLetGo(group: string, now: number): boolean {
    return this.off.has('rule3-ack') || this.mayAdd(group, now);
  }

  /** Own-clock end of the promise binding this node for the group, if any. */
  boundUntil(group: string): number | undefined {
    return this.until.get(group);
  }

  /** A fresh keepalive answer. Promises stay (rule 3); only the ablated model forgets them here. */
  onReachEtcd(now: number): void {
    if (this.off.has('rule3-binding')) this.until.clear();
    for (const [g, u] of this.until) if (u <= now) this.until.delete(g);
  }
}

// ---- Controller side (rule 5) ----

export interface PromiseSetEntry {
  node: string;
  lease: string;
}

/**
 * The nodes the controller may give a failsafe group to after the ordinary Safety 3 wait, once its holder's lease
 * ended: those of the promise set the holder acknowledged (it asks exactly those, rule 1) that still run with the
 * lease listed there (a restarted agent forgot the promises it gave, rule 3 binds only the process that gave them).
 */
export function listedForTakeover(
  acknowledged: readonly PromiseSetEntry[] | undefined,
  currentLease: ReadonlyMap<string, string>,
): Set<string> {
  const out = new Set<string>();
  for (const e of acknowledged ?? []) if (currentLease.get(e.node) === e.lease) out.add(e.node);
  return out;
}

/** Rule 5: how long after it saw the holder's lease end the controller waits before giving the group to `node`. */
export function takeoverWaitMs(o: { listed: boolean; overhangMs: number; maxKeepMs: number }): number {
  return o.listed ? o.overhangMs : o.overhangMs + o.maxKeepMs;
}
