// Failsafe wired into the agent (docs/design.md "Failsafe (arbiter loss)"): the keeper (keeper.ts) fed with what
// the agent holds, the promise sets of its assignments, the node lease and the peer channel. It starts only with
// agent.yaml `peer:`; without it the agent behaves as with arbiterLoss: release.
//
// - Rule 1: the promise set of the epoch each held group runs with is learnt from its assignment, and acknowledged in
//   the node record (`failsafe.acks`); a group is kept only on a set whose acknowledgement etcd has taken, so that
//   the controller knows both that set and this agent's maxKeep before any keep can start.
// - Rule 3: the acquire path asks mayAdd and a release acknowledgement mayLetGo (blocksStep): a promise this node gave binds it whatever etcd says.
// - Rule 4: `extend` renews through Holdings.extendKept, with a deadline by which the command must run.
// - The lease-not-fresh path lets go of every group but those kept here (keptGroups); a keep that ends leaves the
//   addresses to run out (the lifetime its last extension set), then a pass lets the group go as before.
// - When etcd answers again, each keep is reported in the node record (`failsafe.kept`): the controller records
//   the event "kept through arbiter outage (N s)".
import type { Clock } from '../../common/clock.js';
import type { KeptRecord, NodeFailsafe } from '../../common/keyspace.js';
import type { Logger } from '../../common/log.js';
import { arbiterLossOf, type Spec } from '../../crds/failovergroup.js';
import type { VipRef } from '../addresses.js';
import type { Assignment } from '../cluster-view.js';
import type { AgentStep } from '../planner.js';
import { FailsafeKeeper, type HeldGroup, type KeeperLease } from './keeper.js';
import type { FailsafeTiming } from './rules.js';
import type { PeerRef, PeerTransport } from './transport.js';

/**
 * The keeper treats an address as gone this long before the end of the lifetime last set for it: the kernel may
 * delete it 20 ms early (ADDRCONF_TIMER_FUZZ_MINUS), and an extension must reach the kernel while it is still there
 * (the helper checks the command's deadline right before its netlink request).
 */
export const FENCE_GUARD_MS = 50;
/** How often the wiring looks (cheap while the lease is fresh; the keeper itself asks once per round). */
export const TICK_MS = 50;
/** Keeps reported in the node record. */
const KEPT_HISTORY = 8;

/** What failsafe needs of Holdings (node-agent/holdings.ts). */
export interface FailsafeHoldings {
  get(group: string): { epoch: number; lease: string; refs: VipRef[] } | undefined;
  groups(): string[];
  leavingGroups(): ReadonlySet<string>;
  firstLifetimeEnd(refs: readonly VipRef[]): number | undefined;
  extendKept(group: string, lifetimeS: number, deadlineMs: number, untilMs?: number): Promise<boolean>;
}

export interface FailsafeMetrics {
  failsafeActive?(group: string, active: boolean): void;
  promise?(side: 'given' | 'received', granted: boolean): void;
}

export interface AgentFailsafeDeps {
  node: string;
  clock: Clock;
  log: Logger;
  lease: KeeperLease;
  timing: FailsafeTiming;
  transport: PeerTransport;
  holdings: FailsafeHoldings;
  view: { assignment(group: string): Assignment | undefined; spec(group: string): Spec | undefined };
  peerAddress(node: string): PeerRef | undefined;
  /** Writes the node record's failsafe part (resolves once etcd took it). */
  publish(info: NodeFailsafe): Promise<void>;
  metrics?: FailsafeMetrics;
  /** Asks the agent for a pass (soon, when `afterMs` is given). */
  kick(afterMs?: number): void;
}

export class AgentFailsafe {
  readonly keeper: FailsafeKeeper;
  /** Per held group, the promise set (node names) of the epoch it runs with. */
  private readonly sets = new Map<string, { epoch: number; nodes: string[] }>();
  /** Per group, the epoch whose acknowledgement etcd has taken. */
  private acked = new Map<string, number>();
  private published = '';
  /** The current outage: since when the lease is not fresh, and the groups extended by promises in it. */
  private outage: { since: number; extended: Map<string, number> } | undefined;
  private readonly kept: KeptRecord[] = [];
  private shownKept = new Set<string>();
  private readonly blockedLogged = new Map<string, number>();
  private ticking = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly d: AgentFailsafeDeps) {
    const m = d.metrics;
    const transport: PeerTransport = {
      request: async (peer, req, timeoutMs) => {
        const a = await d.transport.request(peer, req, timeoutMs);
        if (a) m?.promise?.('received', a.granted);
        return a;
      },
      serve: (handler) =>
        d.transport.serve(async (req, from) => {
          const a = await handler(req, from);
          m?.promise?.('given', a.granted);
          return a;
        }),
    };
    this.keeper = new FailsafeKeeper({
      node: d.node,
      clock: d.clock,
      lease: d.lease,
      timing: d.timing,
      transport,
      log: d.log.child({ part: 'failsafe' }),
      held: () => this.held(),
      peerAddress: (n) => d.peerAddress(n),
      extend: (g, l, deadline, until) => this.extend(g, l, deadline, until),
      holdsGroup: (g) => d.holdings.get(g) !== undefined || d.holdings.leavingGroups().has(g),
      groupFailsafe: (g) => {
        const spec = d.view.spec(g);
        return spec ? arbiterLossOf(spec) === 'failsafe' : undefined;
      },
    });
  }

  /** What the node record says from the first registration on (acknowledgements come later). */
  info(): NodeFailsafe {
    return {
      windowMs: this.d.timing.windowMs,
      maxKeepMs: this.d.timing.maxKeepMs,
      acks: Object.fromEntries(this.acks()),
      kept: [...this.kept],
    };
  }

  start(signal: AbortSignal): void {
    this.keeper.serve();
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    signal.addEventListener('abort', () => clearInterval(this.timer), { once: true });
  }

  /** One look; the timer calls it every TICK_MS (tests call it by hand). */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const fresh = this.d.lease.isFresh();
      this.learnSets();
      if (fresh && this.outage) this.endOutage();
      if (!fresh && !this.outage) this.outage = { since: this.d.clock.mono(), extended: new Map() };
      await this.keeper.tick();
      this.showKept();
      if (fresh) await this.publish();
    } catch (err) {
      this.d.log.warn({ err }, 'failsafe pass failed');
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Held groups that failsafe keeps now: the lease-not-fresh path must not let them go. A group extended by promises
   * in this outage stays kept until the lifetime its last extension set runs out (less FENCE_GUARD_MS), also after
   * the keep ended (a refusal, a missing promise, the bound): that extension was within rule 4's bound, so letting it
   * run out is exactly as safe as having made it, and it is what the model's agents do (they never remove a kept VIP,
   * it expires). Why not let go at once: at etcd's return the peers often reach etcd a few ms before the holder does,
   * refuse (`reachesEtcd`), and the holder's own keepalive answer follows; letting go there cost the VIP ~230 ms
   * (test/e2e/arbiter-outage.test.ts under load). Let go at once when a peer said it holds the group: nothing is
   * gained by staying.
   */
  keptGroups(): Set<string> {
    const out = new Set<string>();
    const o = this.outage;
    if (!o || this.keeper.holder.endedByPeerHolding()) return out;
    const lease = this.d.lease.lease;
    const now = this.d.clock.mono();
    for (const group of o.extended.keys()) {
      const h = this.d.holdings.get(group);
      if (!h || lease === undefined || h.lease !== lease) continue;
      const end = this.d.holdings.firstLifetimeEnd(h.refs);
      if (end !== undefined && now < end - FENCE_GUARD_MS) out.add(group);
    }
    return out;
  }

  /**
   * Rule 3: an acquire of a group this node promised to stay off waits until the promise runs out. So does the
   * acknowledgement that it will not hold the group (`ack`): the controller takes that as "this node has nothing
   * of the group", frees what the record claims (addresses a spec edit took away) and may give the group to a node
   * that the old holder never asked, while the old holder may still keep by this node's promise (rule 5 lets a
   * listed node take over early only because rule 3 binds it; the binding must pass on to whatever it lets go).
   */
  blocksStep(step: AgentStep): boolean {
    if (
      step.type === 'acquire' ? this.keeper.mayAdd(step.group) : step.type !== 'ack' || this.keeper.mayLetGo(step.group)
    )
      return false;
    const until = this.keeper.peer.boundUntil(step.group) ?? this.d.clock.mono();
    if (this.blockedLogged.get(step.group) !== until) {
      this.blockedLogged.set(step.group, until);
      this.d.log.warn(
        {
          group: step.group,
          epoch: 'epoch' in step ? step.epoch : undefined,
          step: step.type,
          forMs: Math.round(until - this.d.clock.mono()),
        },
        step.type === 'acquire'
          ? 'assigned here, but a failsafe promise this node gave still binds it: not adding the VIPs yet'
          : 'asked to let go, but a failsafe promise this node gave still binds it: acknowledging once it runs out',
      );
    }
    this.d.kick(Math.max(1, until - this.d.clock.mono() + 1));
    return true;
  }

  private held(): HeldGroup[] {
    const out: HeldGroup[] = [];
    for (const group of this.d.holdings.groups()) {
      const h = this.d.holdings.get(group);
      if (!h) continue;
      const spec = this.d.view.spec(group);
      const set = this.sets.get(group);
      const failsafe =
        spec !== undefined &&
        arbiterLossOf(spec) === 'failsafe' &&
        set?.epoch === h.epoch &&
        this.acked.get(group) === h.epoch;
      // A newer assignment's set as well, when one names this node already: asking more nodes is safe.
      const a = this.d.view.assignment(group);
      const newer = a && a.epoch > h.epoch && a.record.holder === this.d.node ? (a.record.promiseSet ?? []) : [];
      const end = this.d.holdings.firstLifetimeEnd(h.refs);
      out.push({
        group,
        epoch: h.epoch,
        promiseSet: [...new Set([...(set?.nodes ?? []), ...newer.map((e) => e.node)])],
        failsafe,
        fenceEnd: end === undefined ? -Infinity : end - FENCE_GUARD_MS,
      });
    }
    return out;
  }

  /** Rule 1: the set of the epoch each held group runs with, from its assignment. */
  private learnSets(): void {
    const held = new Set(this.d.holdings.groups());
    for (const g of this.sets.keys()) if (!held.has(g)) this.sets.delete(g);
    for (const g of held) {
      const h = this.d.holdings.get(g);
      const a = this.d.view.assignment(g);
      if (!h || !a || a.epoch !== h.epoch || a.record.holder !== this.d.node || !a.record.promiseSet) continue;
      if (this.sets.get(g)?.epoch !== a.epoch)
        this.sets.set(g, { epoch: a.epoch, nodes: a.record.promiseSet.map((e) => e.node) });
    }
  }

  private acks(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [g, s] of this.sets) if (this.d.holdings.get(g)?.epoch === s.epoch) out.set(g, s.epoch);
    return out;
  }

  private async publish(): Promise<void> {
    const info = this.info();
    const json = JSON.stringify(info);
    if (json === this.published) return;
    await this.d.publish(info);
    this.published = json;
    this.acked = new Map(Object.entries(info.acks));
  }

  private async extend(group: string, lifetimeS: number, deadlineMs: number, untilMs: number): Promise<boolean> {
    const ok = await this.d.holdings.extendKept(group, lifetimeS, deadlineMs, untilMs);
    const o = this.outage;
    if (ok && o && !o.extended.has(group)) {
      o.extended.set(group, this.d.holdings.get(group)?.epoch ?? 0);
      this.d.log.warn(
        { group, lifetime: lifetimeS, peers: this.keeper.holder.promiseSet() },
        'etcd unreachable: every peer promised; keeping the VIPs (failsafe)',
      );
    }
    return ok;
  }

  /** etcd answers again: every group kept in the outage is reported. */
  private endOutage(): void {
    const o = this.outage!;
    this.outage = undefined;
    const ms = Math.max(0, Math.round(this.d.clock.mono() - o.since));
    for (const [group, epoch] of o.extended) {
      if (epoch <= 0) continue;
      this.kept.push({ group, epoch, ms, at: this.d.clock.wall() });
      this.d.log.info({ group, epoch, ms }, `kept through arbiter outage (${Math.round(ms / 1000)} s)`);
    }
    this.kept.splice(0, Math.max(0, this.kept.length - KEPT_HISTORY));
  }

  /** The metric, and a pass when a keep ended (the group then goes as it would have at the lease deadline). */
  private showKept(): void {
    const now = this.keptGroups();
    let ended = false;
    for (const g of this.shownKept)
      if (!now.has(g)) {
        this.d.metrics?.failsafeActive?.(g, false);
        ended = true;
      }
    for (const g of now) if (!this.shownKept.has(g)) this.d.metrics?.failsafeActive?.(g, true);
    this.shownKept = now;
    if (ended) this.d.kick();
  }
}
