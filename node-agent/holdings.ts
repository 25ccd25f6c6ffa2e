// What this agent holds, under which lease and epoch, and until when (DESIGN.md Safety 1-2). This module alone
// changes VIP addresses on the machine: add, renew and remove all go through one queue, so that a renewal can never
// re-add an address that a release has just removed. An address is added or renewed only with a fresh keepalive
// answer for the lease the assignment named, and with a kernel lifetime that ends before that lease can end.
// Addresses whose removal failed stay here as "leaving": never renewed (the kernel lifetime bounds them), removal is
// retried, and the group counts as let go only once they are gone.
import type { ReleaseReason } from '../common/keyspace.js';
import type { Clock } from '../common/clock.js';
import type { Exec } from '../common/exec.js';
import { FENCE_SLACK_MS } from '../common/fence.js';
import type { Logger } from '../common/log.js';
import { lifetimeFor, type LeaseTiming } from '../common/lease.js';
import { AddressManager, DeadlinePassedError, vipKey, type VipRef } from './addresses.js';
import { NftFence, type FenceOptions } from './fence/nft.js';
import type { Held } from './planner.js';

/** What Holdings needs from the node lease (LeaseKeeper is one). */
export interface LeaseView {
  readonly lease: string | undefined;
  /** Monotonic ms until which an answered keepalive proves the lease alive on the server. */
  readonly validUntil: number;
  /** Send time of the keepalive behind the latest answer. */
  readonly lastAnsweredSentAt: number;
  isSafe(): boolean;
  isFresh(): boolean;
  ensureFresh(): Promise<boolean>;
}

export interface Holding {
  group: string;
  epoch: number;
  /** The lease the assignment named when this process added the addresses. */
  lease: string;
  specHash: string;
  refs: VipRef[];
  /** Aborted on release or lease loss: stops the group's acquire work (hooks, announcements, cloud calls). */
  ac: AbortController;
  /** The group's acquire work in flight (resolves when it ended, however). */
  acquiring: Promise<void>;
}

/** A holding that was let go of but whose addresses are not yet confirmed gone. */
export interface Leaving {
  holding: Holding;
  reason: ReleaseReason;
  /** Epoch to acknowledge (released/<group>/<node>) once the addresses are gone; undefined: nobody to tell. */
  ackEpoch: number | undefined;
}

export type AddOutcome = 'added' | 'no-fresh-keepalive' | 'not-our-lease' | 'superseded' | 'not-covered';

export interface HoldingsDeps {
  exec: Exec;
  clock: Clock;
  lease: LeaseView;
  timing: Pick<LeaseTiming, 'marginMs' | 'renewWindowMs'>;
  log: Logger;
  /** Path of vw-before: address commands run only while the keepalive answer still covers them. */
  deadlineExec?: string;
  /**
   * A renewal found a held group's addresses gone because their kernel lifetime ran out first (etcd returned just
   * before the agent's own deadline: the lease lived, no 'lost' came) and set them again: for the history only.
   */
  onLapsed?: (group: string, epoch: number, endedAt: number) => void;
  /** The fast fence (agent.yaml `fence: nftables`): every address is gated by it, opened on the same proof. */
  fence?: FenceOptions;
}

export class Holdings {
  readonly addresses: AddressManager;
  readonly fence: NftFence | undefined;
  private readonly held = new Map<string, Holding>();
  private readonly leaving = new Map<string, Leaving>();
  private queue: Promise<unknown> = Promise.resolve();
  /** Per address (vipKey), when the kernel lifetime last set for it ends (monotonic ms). Bookkeeping for the
   *  history only (node-agent/presence.ts: an address that ran out before its removal was gone then); never read
   *  by anything that decides. */
  private readonly lifetimeEnds = new Map<string, number>();

  constructor(private readonly deps: HoldingsDeps) {
    this.addresses = new AddressManager(deps.exec, deps.deadlineExec);
    this.fence = deps.fence && new NftFence(deps.exec, this.addresses.dataplane, deps.log, deps.fence);
  }

  get(group: string): Holding | undefined {
    return this.held.get(group);
  }

  groups(): string[] {
    return [...this.held.keys()];
  }

  /** For the planner: what is held, by group. */
  plannerView(): Map<string, Held> {
    return new Map(
      [...this.held].map(([g, h]) => [g, { epoch: h.epoch, vips: h.refs.map(vipKey), specHash: h.specHash }]),
    );
  }

  /** Groups let go of whose addresses are not yet confirmed gone. */
  leavingGroups(): ReadonlySet<string> {
    return new Set(this.leaving.keys());
  }

  /** Every address this process may have on the machine (held or leaving), for the state file. */
  allRefs(): VipRef[] {
    return [...this.held.values(), ...[...this.leaving.values()].map((l) => l.holding)].flatMap((h) => h.refs);
  }

  /**
   * Takes a group: only with a fresh keepalive answer for `lease`, the lease the assignment named (Safety 1), and
   * adds its addresses with a lifetime that answer proves (Safety 2). The holding exists from before the command
   * runs, so that a release or a lost lease that comes in meanwhile wins.
   */
  async add(a: { group: string; epoch: number; lease: string; specHash: string; refs: VipRef[] }): Promise<AddOutcome> {
    if (this.leaving.has(a.group)) return 'superseded';
    if (!(await this.deps.lease.ensureFresh())) return 'no-fresh-keepalive';
    if (a.lease !== this.deps.lease.lease) return 'not-our-lease';
    const h: Holding = { ...a, ac: new AbortController(), acquiring: Promise.resolve() };
    this.held.set(a.group, h);
    let ok = false;
    let superseded = false;
    try {
      ok = await this.withAddresses(async () => {
        // Re-check under the queue: a release or a lost lease may have come in between.
        if (this.held.get(a.group) !== h) return false;
        return this.setAddresses(a.refs, h.lease);
      });
    } finally {
      superseded = this.held.get(a.group) !== h;
      // Not added (or the command failed): whatever may be on the machine leaves the way a release does.
      if (!ok && !superseded) void this.release(a.group, { reason: 'address-add-not-covered' });
    }
    return superseded ? 'superseded' : ok ? 'added' : 'not-covered';
  }

  /** A newer epoch of a held group: removes addresses it no longer has, renews the others. */
  async update(
    group: string,
    next: { epoch: number; specHash: string; refs: VipRef[] },
  ): Promise<{ holding: Holding; removed: VipRef[]; specChanged: boolean } | undefined> {
    const h = this.held.get(group);
    if (!h) return undefined;
    const keep = new Set(next.refs.map(vipKey));
    const removed = h.refs.filter((r) => !keep.has(vipKey(r)));
    const specChanged = h.specHash !== next.specHash;
    h.epoch = next.epoch;
    h.refs = next.refs;
    h.specHash = next.specHash;
    await this.withAddresses(async () => {
      await this.addresses.remove(removed);
      await this.fence?.close(removed);
      if (this.held.get(group) !== h || !this.deps.lease.isSafe()) return;
      if (await this.deps.lease.ensureFresh()) await this.setAddresses(next.refs, h.lease);
    });
    return { holding: h, removed, specChanged };
  }

  /**
   * Lets go of a group: stops its acquire work and removes its addresses. `gone` is true only once they are off the
   * machine; otherwise the group stays leaving (never renewed) until retryLeaving() confirms it.
   */
  async release(
    group: string,
    why: { reason: ReleaseReason; ackEpoch?: number },
  ): Promise<{ holding: Holding; gone: boolean } | undefined> {
    const h = this.held.get(group);
    if (!h) return undefined;
    this.held.delete(group);
    h.ac.abort();
    this.leaving.set(group, { holding: h, reason: why.reason, ackEpoch: why.ackEpoch });
    return { holding: h, gone: await this.removeLeaving(group) };
  }

  /**
   * Lets go at once of every holding whose lease `which` selects (lost, or not the current one), without waiting for
   * anything slow. Their addresses leave through the queue, ahead of any renewal queued after this call.
   */
  dropLease(
    which: (lease: string, group: string) => boolean,
    reason: ReleaseReason,
  ): { holding: Holding; removal: Promise<boolean> }[] {
    const dropped: { holding: Holding; removal: Promise<boolean> }[] = [];
    for (const [group, h] of [...this.held]) {
      if (!which(h.lease, group)) continue;
      this.held.delete(group);
      h.ac.abort();
      this.leaving.set(group, { holding: h, reason, ackEpoch: undefined });
      dropped.push({ holding: h, removal: this.removeLeaving(group) });
    }
    return dropped;
  }

  /** Tries again to remove a leaving group's addresses; returns the entry once they are gone. */
  async retryLeaving(group: string): Promise<Leaving | undefined> {
    const l = this.leaving.get(group);
    if (!l) return undefined;
    return (await this.removeLeaving(group)) ? l : undefined;
  }

  leavingOf(group: string): Leaving | undefined {
    return this.leaving.get(group);
  }

  /** After each answered keepalive: extends the lifetime of every address held under the current lease. */
  renew(): Promise<boolean> {
    if (this.held.size === 0) return Promise.resolve(false);
    return this.withAddresses(async () => {
      const lease = this.deps.lease.lease;
      if (!lease) return false;
      const holdings = [...this.held.values()].filter((h) => h.lease === lease);
      const lapsed = await this.lapsed(holdings);
      const ok = await this.setAddresses(
        holdings.flatMap((h) => h.refs),
        lease,
      );
      if (ok)
        for (const [h, end] of lapsed) if (this.held.get(h.group) === h) this.deps.onLapsed?.(h.group, h.epoch, end);
      return ok;
    });
  }

  /** Held groups some of whose addresses' kernel lifetime has ended and which are gone (one listing, only then). */
  private async lapsed(holdings: readonly Holding[]): Promise<[Holding, number][]> {
    if (!this.deps.onLapsed) return [];
    const now = this.deps.clock.mono();
    const due = holdings
      .map((h) => [h, this.lifetimeEnd(h.refs)] as const)
      .filter((x): x is readonly [Holding, number] => x[1] !== undefined && x[1] < now);
    if (due.length === 0) return [];
    const present = new Set(
      (
        await this.addresses.list([...new Set(due.flatMap(([h]) => h.refs.map((r) => r.iface)))]).catch(() => null)
      )?.map(vipKey) ?? due.flatMap(([h]) => h.refs.map(vipKey)), // listing failed: report nothing
    );
    return due.filter(([h]) => h.refs.some((r) => !present.has(vipKey(r)))).map(([h, end]) => [h, end]);
  }

  /**
   * When these addresses stopped answering at the latest, if nothing renewed them (monotonic ms): per address the end
   * of its kernel lifetime, or of its fence element when that came first (a fenced address answers nothing after
   * it); the latest over the addresses. For the history only.
   */
  lifetimeEnd(refs: readonly VipRef[]): number | undefined {
    const ends = refs
      .map((r) => {
        const l = this.lifetimeEnds.get(vipKey(r));
        const f = this.fence?.openUntilMs(r);
        return l === undefined ? undefined : f === undefined ? l : Math.min(l, f);
      })
      .filter((t): t is number => t !== undefined);
    return ends.length > 0 ? Math.max(...ends) : undefined;
  }

  /**
   * Failsafe (node-agent/failsafe/wiring.ts): renews a held group's addresses with a lifetime its promises allow,
   * only under the lease it was added with and only if the command runs by `deadlineMs` (checked at execution, as
   * for every add). The caller makes sure the addresses are still there (deadline before their lifetime's end).
   */
  extendKept(group: string, lifetimeS: number, deadlineMs: number, untilMs?: number): Promise<boolean> {
    return this.withAddresses(async () => {
      const h = this.held.get(group);
      if (!h || h.lease !== this.deps.lease.lease || this.deps.clock.mono() >= deadlineMs) return false;
      const startedAt = this.deps.clock.mono();
      try {
        // The fence too, to end by the same bound (rule 4): an element opened until t is open at most until
        // t + FENCE_SLACK_MS. Without it a fenced holder's VIP went dark one window after the last keepalive answer.
        if (this.fence && untilMs !== undefined)
          await this.fence.openUntil(h.refs, { expiresMs: untilMs - FENCE_SLACK_MS, deadlineMs });
        await this.addresses.ensure(h.refs, lifetimeS, { deadlineMs });
      } catch (err) {
        if (err instanceof DeadlinePassedError) return false;
        throw err;
      }
      for (const r of h.refs) this.lifetimeEnds.set(vipKey(r), startedAt + lifetimeS * 1000);
      return true;
    });
  }

  /** The earliest end of the kernel lifetimes last set for these addresses (monotonic ms), if every one was set. */
  firstLifetimeEnd(refs: readonly VipRef[]): number | undefined {
    const ends = refs.map((r) => this.lifetimeEnds.get(vipKey(r)));
    return ends.length > 0 && ends.every((t) => t !== undefined) ? Math.min(...(ends as number[])) : undefined;
  }

  /** Resolves when every address change queued so far has run. */
  idle(): Promise<void> {
    return this.queue.then(
      () => undefined,
      () => undefined,
    );
  }

  /** True only for the caller that saw the addresses gone and ended the leaving entry (so it finishes the release). */
  private async removeLeaving(group: string): Promise<boolean> {
    const l = this.leaving.get(group);
    if (!l) return false;
    try {
      await this.withAddresses(async () => {
        await this.addresses.remove(l.holding.refs);
        await this.fence?.close(l.holding.refs); // only once they are gone: the gate stays while they may be there
      });
    } catch (err) {
      this.deps.log.error(
        { err, group, epoch: l.holding.epoch, vips: l.holding.refs.map((r) => r.address) },
        'could not remove addresses: not acknowledging the release until they are gone',
      );
      return false;
    }
    if (this.leaving.get(group) !== l) return false; // another caller saw them gone first
    this.leaving.delete(group);
    return true;
  }

  private withAddresses<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Adds or renews addresses with a kernel lifetime proven by a fresh keepalive answer (Safety 2). Runs inside the
   * queue. The command carries a deadline (the end of the answer's fresh window) that vw-before checks in the forked
   * process itself, so a command decided before the agent was frozen never runs after it wakes. Freshness is checked
   * again after the command as well: without vw-before (unit tests) that is the only guard.
   */
  private async setAddresses(refs: VipRef[], lease: string): Promise<boolean> {
    const { lease: keeper, clock, timing, log } = this.deps;
    // Freshness is only evidence for the lease the answers were for: addresses held under an earlier lease
    // (this process was frozen, its lease ended, it got a new one) must never be renewed with it.
    if (refs.length === 0 || lease !== keeper.lease || !keeper.isFresh()) return false;
    const lifetime = lifetimeFor(keeper.validUntil - clock.mono(), timing.marginMs);
    const deadlineMs = keeper.lastAnsweredSentAt + timing.renewWindowMs;
    const startedAt = clock.mono();
    try {
      // The fence first: an address is never on the machine without its gate (docs/design.md "Fast fence").
      await this.fence?.open(refs, { sentAt: keeper.lastAnsweredSentAt, deadlineMs });
      await this.addresses.ensure(refs, lifetime, { deadlineMs });
      for (const r of refs) this.lifetimeEnds.set(vipKey(r), startedAt + lifetime * 1000);
    } catch (err) {
      if (!(err instanceof DeadlinePassedError)) throw err;
      log.warn(
        { vips: refs.map((r) => r.address) },
        'address command would have run after its keepalive answer stopped covering it: not run',
      );
      return false;
    }
    if (keeper.isFresh() && lease === keeper.lease) return true;
    log.error(
      { vips: refs.map((r) => r.address) },
      'address command finished after the keepalive answer stopped covering it: removing the addresses',
    );
    await this.addresses.remove(refs);
    await this.fence?.close(refs);
    return false;
  }
}
