// What the leader remembers between passes, beyond what etcd holds now: which node leases ended and when (with
// how long their addresses may outlive them, Safety 3), releases whose keys went with their lease, when each group
// was first seen (settle wait), and the last status reported per group.
import type { Clock } from '../common/clock.js';
import type { Entry } from '../common/etcd.js';
import { decode, NodeRecord, ReleasedRecord, type Keys } from '../common/keyspace.js';
import { addressOverhangMs } from '../common/lease.js';
import type { Logger } from '../common/log.js';
import type { GoneLease, ReleasedSeen } from './planner.js';

/** Overhang assumed for a lease the controller never saw a node record for (TTL 1 s, 1 s lifetime, 500 ms window). */
const UNKNOWN_OVERHANG_BASE_MS = 500;

/** Ended leases are forgotten this long after they ended (once no assignment names them). */
const FORGET_GONE_AFTER_MS = 600_000;

export interface LeaderMemoryOptions {
  clock: Clock;
  log: Logger;
  keys: Keys;
  /** How late the kernel may delete an expired address (controller config). */
  kernelSlackMs: number;
}

export class LeaderMemory {
  /** Ended leases, with when they ended and how long after that their addresses may still exist. */
  readonly gone = new Map<string, GoneLease>();
  /** group -> node -> released epoch, remembered even after the key went with its lease. */
  readonly released = new Map<string, Map<string, ReleasedSeen>>();
  /** When the leader first saw each group. */
  readonly firstSeen = new Map<string, number>();
  /** group -> fingerprint of the status last reported. */
  readonly reported = new Map<string, string>();
  /** Lease -> what its node record said, while the lease lives. */
  private readonly leaseInfo = new Map<string, { node: string; waitMs: number; ttlMs: number }>();

  constructor(private readonly opts: LeaderMemoryOptions) {}

  /** Records when each node lease ends, with how long its addresses may outlive it (Safety 3). */
  trackLeases(nodes: Iterable<Entry>): void {
    const now = this.opts.clock.wall();
    for (const [lease, g] of this.gone) if (now - g.goneAt > FORGET_GONE_AFTER_MS) this.gone.delete(lease);
    const live = new Set<string>();
    for (const e of nodes) {
      const rec = decode(NodeRecord, e.value);
      if (!rec || rec.lease !== e.lease) continue;
      live.add(rec.lease);
      this.leaseInfo.set(rec.lease, {
        node: rec.name,
        waitMs: addressOverhangMs(rec, this.opts.kernelSlackMs),
        ttlMs: rec.ttlSeconds * 1000,
      });
    }
    for (const [lease, info] of this.leaseInfo) {
      if (live.has(lease)) continue;
      this.leaseInfo.delete(lease);
      if (!this.gone.has(lease)) {
        this.gone.set(lease, { lease, node: info.node, goneAt: now, waitMs: info.waitMs, ttlMs: info.ttlMs });
        this.opts.log.info({ node: info.node, lease, waitMs: info.waitMs }, 'node lease ended');
      }
    }
  }

  /** A holder lease that no node record names and that was never seen to end: it ends now, conservatively. */
  holderLeaseUnknown(lease: string, node: string | null): void {
    if (this.gone.has(lease)) return;
    const waitMs = this.leaseInfo.get(lease)?.waitMs ?? UNKNOWN_OVERHANG_BASE_MS + this.opts.kernelSlackMs;
    this.gone.set(lease, { lease, node: node ?? '', goneAt: this.opts.clock.wall(), waitMs });
  }

  /** Keeps the newest release each node wrote for each group. */
  trackReleased(entries: Iterable<Entry>): void {
    for (const e of entries) {
      const [group, node] = this.opts.keys.segments(e.key, 'released/');
      const rec = decode(ReleasedRecord, e.value);
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
    const now = this.opts.clock.wall();
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
