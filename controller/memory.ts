// What the leader remembers between passes, beyond what etcd holds now: which node leases ended and when (with
// how long their addresses may outlive them, Safety 3), releases whose keys went with their lease, when each group
// was first seen (settle wait), and the last status reported per group.
//
// A lease's end is asked, never inferred (DESIGN.md Safety 3): a node record that is absent, names another lease or
// does not parse moves nothing by itself. A lease that no node key carries any more is asked about with
// LeaseTimeToLive; only etcd's "not found" (TTL -1: expired and revoked) makes it gone, and only from the moment of
// that answer does the wait run. Every time here is on the monotonic clock (a wall clock that jumps moves nothing).
import type { Clock } from '../common/clock.js';
import type { Entry } from '../common/etcd.js';
import {
  AssignmentRecord,
  MAX_FAILSAFE_KEEP_MS,
  MAX_RENEW_WINDOW_MS,
  NodeRecord,
  ReleasedRecord,
  type Keys,
} from '../common/keyspace.js';
import { decodeEntry } from './parsed.js';
import { longLifetimeExtraMs } from '../common/kernel-lifetime.js';
import { fenceOverhangMs, revocable, revokedFenceWaitMs } from '../common/fence.js';
import { addressOverhangMs } from '../common/lease.js';
import type { Logger } from '../common/log.js';
import type { GoneLease, ReleasedSeen } from './planner.js';

/** Ended leases are forgotten this long after they ended (once no assignment names them). */
const FORGET_GONE_AFTER_MS = 600_000;

/** A lease etcd says is alive but no node key carries is asked about again this often. */
export const LEASE_RECHECK_MS = 250;

/**
 * Every holder lease is also asked about this often, whatever the node watch says: a lease end is seen within this
 * (plus a round trip) of etcd revoking it even when the watch is slow, reconnecting or listing again (issue 15.15).
 */
export const HOLDER_POLL_MS = 500;

/** Holder leases due for their poll at once from which one LeaseLeases call replaces their LeaseTimeToLive calls. */
const LIST_FROM = 3;

/** After a failed LeaseTimeToLive, the next try. */
const LEASE_RETRY_MS = 200;

/** Remaining TTL of a lease in seconds as etcd answers it (LeaseTimeToLive): -1 when it does not exist. */
export type AskLease = (lease: string) => Promise<number>;

export interface LeaderMemoryOptions {
  clock: Clock;
  log: Logger;
  keys: Keys;
  /** How late the kernel may delete an expired address (controller config). */
  kernelSlackMs: number;
  askLease: AskLease;
  /**
   * Every lease etcd's member has (LeaseLeases): with it, the holder poll is one call per period, and only a holder
   * lease missing from the list is asked about (LeaseTimeToLive, whose "not found" alone ends a lease).
   */
  listLeases?: () => Promise<ReadonlySet<string>>;
  /** etcd said a lease ended: a pass should look. */
  onChange?: () => void;
}

/**
 * How long the addresses of a lease the leader never saw a node record for may outlive it: the most the schema lets
 * an agent publish (a lifetime no longer than its TTL, set up to MAX_RENEW_WINDOW_MS after a keepalive was sent).
 */
export function unknownOverhangMs(kernelSlackMs: number): number {
  // The kernel's lateness grows with long lifetimes (common/kernel-lifetime.ts): take the worst one the 60 s TTL
  // limit allows, and a lifetime as long as the TTL.
  let extra = 0;
  for (let l = 1; l <= 60; l++) extra = Math.max(extra, longLifetimeExtraMs(l));
  return addressOverhangMs(
    { ttlSeconds: 1, maxLifetimeSeconds: 1, renewWindowMs: MAX_RENEW_WINDOW_MS },
    kernelSlackMs + extra,
  );
}

export class LeaderMemory {
  /** Ended leases, with when etcd said so (monotonic ms) and how long their addresses may still exist. */
  readonly gone = new Map<string, GoneLease>();
  /** Leases no node key carries that etcd has not said are gone: lease -> when they are asked about next (mono). */
  readonly unconfirmed = new Map<string, number>();
  /** group -> node -> released epoch, remembered even after the key went with its lease. */
  readonly released = new Map<string, Map<string, ReleasedSeen>>();
  /** When the leader first saw each group (monotonic ms). */
  readonly firstSeen = new Map<string, number>();
  /** group -> fingerprint of the status last reported. */
  readonly reported = new Map<string, string>();
  /** Lease -> what its node record said. */
  private readonly leaseInfo = new Map<
    string,
    { node: string; waitMs: number; ttlMs: number; maxKeepMs: number; acks?: Readonly<Record<string, number>> }
  >();
  /** Holder leases named by assignments, with the holder. */
  private holders = new Map<string, string>();
  /** Leases some nodes/ key is attached to (whatever its value says), and those a valid record names. */
  private carried = new Set<string>();
  private named = new Set<string>();
  private readonly asking = new Set<string>();
  /** The asks about leases whose keys vanished, while they are under way (answers()). */
  private readonly vanishedAsks = new Set<Promise<void>>();
  /** When each holder lease was last asked about (mono). */
  private readonly polled = new Map<string, number>();
  /** A LeaseLeases call is under way (the holder poll). */
  private listing = false;
  private timer: NodeJS.Timeout | undefined;
  private poller: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: LeaderMemoryOptions) {}

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.poller) clearInterval(this.poller);
  }

  /** Reads the node keys and the assignments, and asks etcd about every lease that no node key carries. */
  observe(nodes: Iterable<Entry>, assignments: Iterable<Entry>): void {
    const carried = new Set<string>();
    const named = new Set<string>();
    for (const e of nodes) {
      if (e.lease !== '0') carried.add(e.lease);
      const rec = decodeEntry(NodeRecord, e);
      if (!rec || rec.lease !== e.lease) continue;
      named.add(rec.lease);
      this.leaseInfo.set(rec.lease, {
        node: rec.name,
        // A fenced holder's addresses answer nothing once its fence closed (docs/design.md "Fast fence"). A lease a
        // leader may revoke (heartbeats) can end before s + TTL: the whole window then, whoever ended it.
        waitMs: !rec.fence
          ? addressOverhangMs(rec, this.opts.kernelSlackMs + longLifetimeExtraMs(rec.maxLifetimeSeconds))
          : revocable(rec)
            ? revokedFenceWaitMs(rec.fence.windowMs)
            : fenceOverhangMs({ ttlSeconds: rec.ttlSeconds, fenceWindowMs: rec.fence.windowMs }),
        ttlMs: rec.ttlSeconds * 1000,
        // Failsafe (rule 5): an agent without it cannot keep by promises, so it adds no wait.
        maxKeepMs: rec.failsafe?.maxKeepMs ?? 0,
        acks: rec.failsafe?.acks,
      });
    }
    const holders = new Map<string, string>();
    for (const e of assignments) {
      const rec = decodeEntry(AssignmentRecord, e);
      if (rec?.holderLease) holders.set(rec.holderLease, rec.holder ?? '');
    }
    this.carried = carried;
    this.named = named;
    this.holders = holders;
    const now = this.opts.clock.mono();
    for (const [lease, g] of this.gone)
      if (now - g.goneAt > FORGET_GONE_AFTER_MS && !holders.has(lease)) this.gone.delete(lease);
    for (const lease of this.polled.keys()) if (!holders.has(lease)) this.polled.delete(lease);
    if (!this.poller && !this.stopped) this.poller = setInterval(() => this.check(), HOLDER_POLL_MS);
    this.check();
  }

  /** Asks about the leases whose turn it is. */
  private check(): void {
    if (this.stopped) return;
    const now = this.opts.clock.mono();
    const due: string[] = [];
    for (const lease of new Set([...this.leaseInfo.keys(), ...this.holders.keys()])) {
      if (this.gone.has(lease)) continue;
      if (this.asking.has(lease)) {
        // A poll under way when its keys vanished: the planner waits, and it is asked again after the answer.
        if (!this.carried.has(lease) && !this.unconfirmed.has(lease))
          this.unconfirmed.set(lease, now + LEASE_RECHECK_MS);
        continue;
      }
      if (this.carried.has(lease)) {
        // A key lives under it, so the lease does; without a record that parses, it is alive but not a candidate.
        if (this.named.has(lease)) this.unconfirmed.delete(lease);
        else this.unconfirmed.set(lease, Infinity);
        // A holder's lease is asked about anyway now and then: the watch may be late to show its keys gone.
        if (this.holders.has(lease) && now - (this.polled.get(lease) ?? -Infinity) >= HOLDER_POLL_MS) due.push(lease);
        continue;
      }
      const next = this.unconfirmed.get(lease);
      // (Infinity: it was carried by a key until now; its turn is now.)
      if (next !== undefined && next > now && Number.isFinite(next)) continue;
      const asked = this.ask(lease);
      this.vanishedAsks.add(asked);
      void asked.finally(() => this.vanishedAsks.delete(asked));
    }
    this.poll(due, now);
    this.schedule();
  }

  /**
   * The holder poll (issue 15.15): each due lease is asked about (LeaseTimeToLive), or, when many are due, etcd's
   * list of leases is read once and only those missing from it are asked about. The list is a hint, never an
   * answer: a lease it lacks is asked about, and only LeaseTimeToLive's "not found" ends it (so goneAt still comes
   * after the lease ended); a lease it shows is treated as this period's poll said alive, which is what
   * LeaseTimeToLive would have said of it a moment earlier (a member whose list is behind delays the end as a late
   * poll does, never invents one).
   */
  private poll(due: readonly string[], now: number): void {
    if (!due.length) return;
    const list = this.opts.listLeases;
    if (!list || due.length < LIST_FROM) {
      for (const lease of due) void this.ask(lease, false);
      return;
    }
    if (this.listing) return;
    this.listing = true;
    for (const lease of due) this.polled.set(lease, now);
    list()
      .then(
        (alive) => {
          if (this.stopped) return;
          for (const lease of due) if (!alive.has(lease) && !this.gone.has(lease)) void this.ask(lease, false);
        },
        (err: unknown) => {
          if (this.stopped) return;
          this.opts.log.warn({ err }, 'could not list etcd leases; asking about each holder lease');
          for (const lease of due) if (!this.gone.has(lease)) void this.ask(lease, false);
        },
      )
      .finally(() => (this.listing = false));
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped) return;
    const next = Math.min(...this.unconfirmed.values());
    if (!Number.isFinite(next)) return;
    this.timer = setTimeout(() => this.check(), Math.max(0, next - this.opts.clock.mono()) + 1);
  }

  private async ask(lease: string, unconfirmed = true): Promise<void> {
    this.asking.add(lease);
    if (this.holders.has(lease)) this.polled.set(lease, this.opts.clock.mono());
    // Until the answer: the planner waits for it (and is woken by it).
    if (unconfirmed) this.unconfirmed.set(lease, this.opts.clock.mono() + LEASE_RECHECK_MS);
    try {
      const ttl = await this.opts.askLease(lease);
      if (this.stopped) return;
      // TTL 0 is a lease with under a second left (etcd rounds down), not an ended one: only -1 (not found) is.
      if (ttl < 0) {
        this.ended(lease);
        this.opts.onChange?.();
      } else if (unconfirmed)
        this.unconfirmed.set(lease, this.opts.clock.mono() + Math.min(LEASE_RECHECK_MS, ttl * 1000));
    } catch (err) {
      this.opts.log.warn({ err, lease }, 'could not ask etcd about a node lease; asking again');
      if (unconfirmed) this.unconfirmed.set(lease, this.opts.clock.mono() + LEASE_RETRY_MS);
    } finally {
      this.asking.delete(lease);
      this.schedule();
    }
  }

  /**
   * Resolves once every ask about a lease whose keys vanished that is under way now has its answer, or after
   * `timeoutMs`. A pass that waits for them plans a lost node's groups with etcd's word that its lease ended,
   * instead of leaving them to the pass its answer wakes (at 10,000 groups a pass is ~0.2 s: scale benchmark).
   */
  async answers(timeoutMs: number): Promise<void> {
    if (this.vanishedAsks.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.vanishedAsks]),
      new Promise<void>((r) => (timer = setTimeout(r, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  /** etcd answered this leader's revocation of the lease (controller/heartbeats.ts): it is gone from now. */
  revoked(lease: string): void {
    if (this.stopped || this.gone.has(lease)) return;
    this.ended(lease);
    this.opts.onChange?.();
  }

  /** Whether etcd said this lease ended (its keys may still show in a watch that is behind). */
  isGone(lease: string): boolean {
    return this.gone.has(lease);
  }

  private ended(lease: string): void {
    // Told twice (a poll answered after this leader's revocation): the first moment stands, and with it what the
    // record said (forgotten below, so a second call would take the unknown lease's wait).
    if (this.gone.has(lease)) return;
    const info = this.leaseInfo.get(lease);
    const waitMs = info?.waitMs ?? unknownOverhangMs(this.opts.kernelSlackMs);
    const node = info?.node ?? this.holders.get(lease) ?? '';
    // A lease never seen with a record may have been a failsafe holder's: the longest keep the schema allows.
    const maxKeepMs = info?.maxKeepMs ?? MAX_FAILSAFE_KEEP_MS;
    this.gone.set(lease, {
      lease,
      node,
      goneAt: this.opts.clock.mono(),
      waitMs,
      ttlMs: info?.ttlMs,
      maxKeepMs,
      ...(info?.acks ? { acks: info.acks } : {}),
    });
    this.leaseInfo.delete(lease);
    this.unconfirmed.delete(lease);
    this.opts.log.info({ node, lease, waitMs, known: info !== undefined }, 'node lease ended (etcd says so)');
  }

  /** Keeps the newest release each node wrote for each group. */
  trackReleased(entries: Iterable<Entry>): void {
    for (const e of entries) {
      const { group, node } = this.opts.keys.releasedParts(e.key) ?? {};
      const rec = decodeEntry(ReleasedRecord, e);
      if (!group || !node || !rec) continue;
      let m = this.released.get(group);
      if (!m) this.released.set(group, (m = new Map()));
      const prev = m.get(node);
      if (!prev || prev.epoch < rec.epoch)
        m.set(node, { epoch: rec.epoch, at: rec.at, reason: rec.reason, failingSince: rec.failingSince });
    }
  }

  /** Notes the groups of this pass: new ones start their settle time now, vanished ones are forgotten. */
  seeGroups(names: Iterable<string>): void {
    const now = this.opts.clock.mono();
    const present = new Set(names);
    for (const g of present) if (!this.firstSeen.has(g)) this.firstSeen.set(g, now);
    for (const g of this.firstSeen.keys()) if (!present.has(g)) this.firstSeen.delete(g);
  }

  /** True when the status fingerprint changed since the last report (and remembers it). */
  statusChanged(group: string, fingerprint: string): boolean {
    if (this.reported.get(group) === fingerprint) return false;
    this.reported.set(group, fingerprint);
    return true;
  }

  forgetStatus(keep: ReadonlySet<string>): void {
    for (const name of this.reported.keys()) if (!keep.has(name)) this.reported.delete(name);
  }
}
