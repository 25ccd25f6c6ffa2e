// The agent's side of failsafe (docs/design.md "Failsafe (arbiter loss)"): the promise rules (rules.ts) wired to
// the node lease, what the agent holds, and the peer channel. It does nothing unless a held group is in failsafe
// mode and has peers to ask: with arbiterLoss release, or no peers, the agent behaves exactly as without it.
//
// Holder side: while the lease has no fresh keepalive answer, ask every node of the held groups' promise sets each
// round, and extend each held address's lifetime as far as the promises allow (through `extend`, which renews the
// addresses of one group with a lifetime in whole seconds). Peer side: answer requests by the rules; `mayAdd` tells
// the acquire path whether a promise this node gave still binds it.
import type { Clock } from '../../common/clock.js';
import { kernelSlackForLifetimeMs } from '../../common/kernel-lifetime.js';
import type { Logger } from '../../common/log.js';
import type { PromiseAnswer, PromiseRequest } from './messages.js';
import { HolderRules, PeerRules, type FailsafeTiming } from './rules.js';
import type { PeerRef, PeerTransport } from './transport.js';

/** What the keeper needs from the node lease (LeaseKeeper is one). */
export interface KeeperLease {
  readonly lease: string | undefined;
  readonly validUntil: number;
  isFresh(): boolean;
}

/** A group this node holds, as the agent's holdings see it. */
export interface HeldGroup {
  group: string;
  epoch: number;
  /** The assignment's promise set (node names; this node may be in it). */
  promiseSet: readonly string[];
  /** spec.arbiterLoss is failsafe. */
  failsafe: boolean;
  /** Own-clock time at which the kernel lifetime of its addresses ends. */
  fenceEnd: number;
}

export interface KeeperDeps {
  node: string;
  clock: Clock;
  lease: KeeperLease;
  timing: FailsafeTiming;
  transport: PeerTransport;
  log: Logger;
  held(): HeldGroup[];
  /** Where a peer listens (its node record's peer address), or undefined when not known. */
  peerAddress(node: string): PeerRef | undefined;
  /**
   * Renews the group's addresses with this lifetime (s), only if the command runs by `deadlineMs` (own clock: later,
   * the lifetime would end past the promises' bound, or the address may be gone); resolves true when the kernel took it.
   */
  /**
   * Renews the group's addresses for `lifetimeSeconds` if the command can run before `deadlineMs`; `untilMs` is the
   * rule-4 bound itself (monotonic ms): a fast-fence element is opened to end by then, and no later.
   */
  extend(group: string, lifetimeSeconds: number, deadlineMs: number, untilMs: number): Promise<boolean>;
  /** Peer side: this node holds or is adding an address of the group. */
  holdsGroup(group: string): boolean;
  /** Peer side: the group's arbiterLoss as this node knows it (undefined: it does not know the group). */
  groupFailsafe(group: string): boolean | undefined;
}

export class FailsafeKeeper {
  readonly holder: HolderRules;
  readonly peer: PeerRules;
  private extending = false;
  private loggedEnd: string | undefined;

  constructor(private readonly d: KeeperDeps) {
    this.holder = new HolderRules(d.node, d.timing, {}, String(d.clock.wall()));
    this.peer = new PeerRules(d.node, d.timing);
  }

  /** Serves peer requests on the transport. */
  serve(): void {
    this.d.transport.serve((req, fromNode) => this.answer(req, fromNode));
  }

  answer(req: PromiseRequest, fromNode: string): PromiseAnswer {
    const now = this.d.clock.mono();
    if (fromNode !== req.holder)
      return { peer: this.d.node, granted: false, windowMs: 0, reason: 'other', requestId: req.requestId };
    const a = this.peer.answer(req, now, {
      reachesEtcd: this.d.lease.isFresh(),
      holds: (g) => this.d.holdsGroup(g),
      failsafe: (g) => this.d.groupFailsafe(g),
    });
    this.d.log.debug(
      { holder: req.holder, groups: req.groups.length, granted: a.granted, reason: a.reason },
      'promise',
    );
    return a;
  }

  /** Rule 3: whether the acquire path may add the group's addresses now. */
  mayAdd(group: string): boolean {
    return this.peer.mayAdd(group, this.d.clock.mono());
  }

  /** Rule 3: may this node acknowledge that it will not hold the group? Not while a promise binds it. */
  mayLetGo(group: string): boolean {
    return this.peer.mayLetGo(group, this.d.clock.mono());
  }

  /** The groups kept by promises right now (held, failsafe, lease not fresh). */
  active(): HeldGroup[] {
    if (this.d.lease.isFresh()) return [];
    const now = this.d.clock.mono();
    return this.d.held().filter((h) => h.failsafe && h.fenceEnd > now);
  }

  /** One pass; call it every roundIntervalMs or more often. Resolves when the round's answers are in. */
  async tick(): Promise<void> {
    const now = this.d.clock.mono();
    if (this.d.lease.isFresh()) {
      this.holder.onFresh();
      this.peer.onReachEtcd(now);
      return;
    }
    const groups = this.active();
    const lease = this.d.lease.lease;
    if (groups.length === 0 || !lease) return;
    // One promise set for all held groups: their union (asking more nodes than a group needs is safe).
    this.holder.setPromiseSet([...new Set(groups.flatMap((g) => g.promiseSet))]);
    const r = this.holder.request(now, {
      fresh: false,
      lease,
      groups: groups.map((g) => ({ group: g.group, epoch: g.epoch })),
    });
    if (!r) return;
    await Promise.all(r.peers.map((p) => this.ask(p, r.req)));
    await this.extendAll();
  }

  private async ask(peer: string, req: PromiseRequest): Promise<void> {
    const ref = this.d.peerAddress(peer);
    if (!ref) return; // no address: its promise is missing, and the keep cannot go on (rule 6)
    const ans = await this.d.transport.request(ref, req, this.d.timing.answerTimeoutMs).catch(() => undefined);
    if (!ans || ans.peer !== peer) return;
    const covers =
      this.d.lease.lease !== undefined && this.d.clock.mono() < this.d.lease.validUntil - this.d.timing.marginMs;
    const out = this.holder.onAnswer(ans, this.d.clock.mono(), covers);
    if (out === 'refused') this.d.log.warn({ peer, reason: ans.reason }, 'promise refused');
  }

  private async extendAll(): Promise<void> {
    if (this.extending) return;
    this.extending = true;
    try {
      for (const g of this.active()) {
        const now = this.d.clock.mono();
        const l = this.holder.lifetime(now, g.fenceEnd, this.d.lease.validUntil);
        if (l === undefined) continue;
        // The lifetime counts from when the kernel takes it: the command must run early enough for its end (and the
        // kernel's lateness) to stay inside the bound, and while the address is still there (never re-added).
        const slack = Math.max(this.d.timing.kernelSlackMs, kernelSlackForLifetimeMs(l));
        const bound = this.holder.bound(now, this.d.lease.validUntil);
        const deadline = Math.min(bound - l * 1000 - slack, g.fenceEnd);
        if (await this.d.extend(g.group, l, deadline, bound))
          this.d.log.debug({ group: g.group, lifetime: l }, 'kept by promises');
      }
      const why = this.holder.endReason();
      if (why && why !== this.loggedEnd) this.d.log.warn({ why }, 'failsafe keep ended: letting the addresses expire');
      this.loggedEnd = why;
    } finally {
      this.extending = false;
    }
  }
}
