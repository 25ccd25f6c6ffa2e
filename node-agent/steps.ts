// The agent's steps, one function each (keepalived's become-master / leave-master shape): acquire, update, release,
// acknowledge. Holdings changes the addresses; this file runs what moves with them (announcements, SNAT, hooks, cloud)
// and tells the controller. Acquire work runs in the background, tied to the holding's abort signal, so that a slow
// hook holds up nothing else; a release stops it, waits for it, runs the release side of every resource and only then
// acknowledges, so that a new holder's acquire never overlaps this node's SNAT removal or release hooks.
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import type { Keys, ReleaseReason, ReleasedRecord } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';
import { vipRef, type VipRef } from './addresses.js';
import type { Assignment, ClusterView } from './cluster-view.js';
import type { AgentConfig } from './config.js';
import type { HealthPublisher } from './health-publisher.js';
import type { HealthRunners } from './health-runners.js';
import type { Holding, Holdings, Leaving } from './holdings.js';
import type { LeaseKeeper } from '../common/lease.js';
import type { AgentMetrics } from './metrics.js';
import type { AgentStep } from './planner.js';
import { PresenceLog } from './presence.js';
import { AcquireError, type GroupResource, type ResourceContext } from './resources.js';

/** A group whose acquire failed is held unhealthy for this long, so that another node takes it. */
export const ACQUIRE_FAILURE_HOLDDOWN_MS = 30_000;

export interface StepDeps {
  config: AgentConfig;
  client: Etcd3;
  keys: Keys;
  clock: Clock;
  log: Logger;
  lease: LeaseKeeper;
  holdings: Holdings;
  view: ClusterView;
  health: HealthRunners;
  publisher: HealthPublisher;
  resources: readonly GroupResource[];
  metrics: AgentMetrics;
  /** Asks for another pass (soon, when `afterMs` is given). */
  kick: (afterMs?: number) => void;
  saveState: () => Promise<void>;
}

export class GroupSteps {
  /** Per group, the epoch this process let go of: never taken again. */
  readonly relinquishedEpoch = new Map<string, number>();
  /** Per group, the epoch whose released/<group>/<node> key this process wrote. */
  readonly releaseKeyEpoch = new Map<string, number>();
  /** Per group, the highest epoch acted on (Safety 4). */
  readonly newestEpoch = new Map<string, number>();
  /** When this node added and removed each group's addresses, for the history (issue 15.14). */
  readonly presence: PresenceLog;

  constructor(private readonly d: StepDeps) {
    const { client, keys, clock, log, lease } = d;
    this.presence = new PresenceLog({ client, keys, node: d.config.node, clock, log, lease });
  }

  run(step: AgentStep): Promise<void> {
    switch (step.type) {
      case 'acquire':
        return this.acquire(step);
      case 'update':
        return this.update(step);
      case 'release':
        return this.release(step);
      case 'ack':
        return this.acknowledge(step.group, step.epoch, step.reason);
    }
  }

  private refsOf(a: Assignment): VipRef[] {
    return a.record.vips.map((v) => vipRef(v.address, v.interface ?? this.d.config.interface));
  }

  private async acquire(step: { group: string; epoch: number; record: Assignment['record'] }): Promise<void> {
    const { group, epoch, record } = step;
    const t0 = this.d.clock.mono();
    const log = this.d.log.child({ group, epoch });
    if (!record.holderLease) return;
    const refs = this.refsOf({ record, epoch });
    const outcome = await this.d.holdings.add({
      group,
      epoch,
      lease: record.holderLease,
      specHash: record.specHash,
      refs,
    });
    if (outcome === 'no-fresh-keepalive' || outcome === 'not-covered') {
      log.warn({ outcome }, 'no fresh keepalive answer covers the addresses: not adding them yet');
      this.d.kick(50);
      return;
    }
    if (outcome !== 'added') return;
    this.presence.record(group, { kind: 'add', epoch, reason: record.reason });
    this.newestEpoch.set(group, epoch);
    log.info(
      { vips: refs.map((r) => r.address), reason: record.reason, tookMs: Math.round(this.d.clock.mono() - t0) },
      'acquired',
    );
    this.d.metrics.holder(group, true);
    this.d.metrics.transition(group, 'acquire', record.reason);
    if (record.detectedAt)
      this.d.metrics.failoverOutage(group, Math.max(0, this.d.clock.wall() - record.detectedAt) / 1000);
    const h = this.d.holdings.get(group);
    if (h) this.startAcquireWork(h);
    await this.d.saveState();
  }

  private async update(step: { group: string; epoch: number; record: Assignment['record'] }): Promise<void> {
    const { group, epoch, record } = step;
    this.newestEpoch.set(group, epoch);
    const refs = this.refsOf({ record, epoch });
    const u = await this.d.holdings.update(group, { epoch, specHash: record.specHash, refs });
    if (!u) return;
    this.d.log.info(
      { group, epoch, vips: refs.map((r) => r.address), removed: u.removed.map((r) => r.address) },
      'assignment updated',
    );
    if (u.specChanged) {
      const h = u.holding;
      h.ac.abort();
      await h.acquiring;
      await this.releaseResources(group, epoch, refs);
      if (this.d.holdings.get(group) !== h) return;
      h.ac = new AbortController();
      this.startAcquireWork(h);
    }
    await this.d.saveState();
  }

  private async release(step: { group: string; reason: ReleaseReason; ackEpoch?: number }): Promise<void> {
    const { group, reason, ackEpoch } = step;
    if (ackEpoch !== undefined) this.relinquishedEpoch.set(group, ackEpoch);
    const r = await this.d.holdings.release(group, { reason, ackEpoch });
    if (!r) return;
    this.d.log.info({ group, epoch: r.holding.epoch, reason }, 'released');
    this.d.metrics.holder(group, false);
    this.d.metrics.transition(group, 'release', reason);
    if (!r.gone) {
      this.d.kick(200);
      return;
    }
    this.removed(r.holding, reason);
    await this.finishRelease({ holding: r.holding, reason, ackEpoch });
  }

  /** A group let go of whose addresses were not confirmed gone: remove them again, then finish the release. */
  async retryLeaving(group: string): Promise<void> {
    const l = await this.d.holdings.retryLeaving(group);
    if (!l) {
      this.d.kick(200);
      return;
    }
    this.d.log.info({ group, epoch: l.holding.epoch }, 'addresses now gone');
    this.removed(l.holding, l.reason);
    await this.finishRelease(l);
  }

  /** Lease lost or replaced: everything held under it goes at once; resources follow once the addresses are gone. */
  dropLease(which: (lease: string, group: string) => boolean, reason: ReleaseReason): void {
    for (const { holding: h, removal } of this.d.holdings.dropLease(which, reason)) {
      this.d.log.warn({ group: h.group, epoch: h.epoch, reason }, 'released');
      this.d.metrics.holder(h.group, false);
      this.d.metrics.transition(h.group, 'release', reason);
      void removal
        .then((gone) => {
          if (!gone) return this.d.kick(200);
          this.removed(h, reason);
          return this.finishRelease({ holding: h, reason, ackEpoch: undefined });
        })
        .catch((err) => this.d.log.error({ err, group: h.group }, 'finishing a release failed'));
    }
  }

  /** For the history: the addresses are gone, since their kernel lifetime ended if that came first. */
  private removed(h: Holding, reason: ReleaseReason): void {
    const end = this.d.holdings.lifetimeEnd(h.refs);
    const ranOut = end !== undefined && end < this.d.clock.mono();
    this.presence.record(h.group, { kind: 'remove', epoch: h.epoch, reason, ...(ranOut ? { mono: end } : {}) });
  }

  /** Addresses gone: stop the acquire work, run every resource's release, then tell the controller. */
  private async finishRelease(l: Leaving): Promise<void> {
    const h = l.holding;
    h.ac.abort();
    await h.acquiring;
    await this.releaseResources(h.group, h.epoch, h.refs);
    if (l.ackEpoch !== undefined) await this.writeReleased(h.group, l.ackEpoch, l.reason);
    await this.d.saveState();
  }

  private async acknowledge(group: string, epoch: number, reason: ReleaseReason): Promise<void> {
    this.relinquishedEpoch.set(group, epoch);
    await this.writeReleased(group, epoch, reason);
    this.d.log.info({ group, epoch, reason }, 'told the controller this node will not hold it');
  }

  /** released/<group>/<node> for an epoch, in one transaction with the health that explains it. */
  private async writeReleased(group: string, epoch: number, reason: ReleaseReason): Promise<void> {
    const { client, keys, config } = this.d;
    const lease = this.d.lease.lease;
    if (!lease) throw new Error('no lease to write the release under');
    const health = this.d.health.record(group);
    // Taken as the record is read: a newer one published while the transaction runs still wins (wroteElsewhere).
    const seq = this.d.publisher.reserve();
    const rec: ReleasedRecord = {
      epoch,
      at: this.d.clock.wall(),
      reason,
      ...(health && !health.healthy && health.failingSince !== undefined ? { failingSince: health.failingSince } : {}),
    };
    const releasedKey = keys.released(group, config.node);
    const ops = [client.put(releasedKey).value(JSON.stringify(rec)).lease(lease)];
    if (health) ops.unshift(client.put(keys.health(group, config.node)).value(JSON.stringify(health)).lease(lease));
    // A transaction needs a comparison; this one always holds.
    await client
      .if(releasedKey, 'Mod', '>', -1)
      .then(...ops)
      .commit();
    if (health) this.d.publisher.wroteElsewhere(group, health, lease, seq);
    this.releaseKeyEpoch.set(group, epoch);
  }

  private ctx(group: string, epoch: number, refs: VipRef[], signal: AbortSignal): ResourceContext {
    const { holdings, view } = this.d;
    return {
      group,
      node: this.d.config.node,
      epoch,
      vips: refs,
      spec: view.spec(group),
      isCurrent: () =>
        holdings.get(group)?.epoch === epoch ||
        (holdings.get(group) !== undefined && view.assignment(group)?.epoch === epoch),
      confirmLease: async () => {
        const lease = holdings.get(group)?.lease;
        return lease === this.d.lease.lease && (await this.d.lease.ensureFresh()) && lease === this.d.lease.lease;
      },
      signal,
      log: this.d.log.child({ group, epoch }),
    };
  }

  private startAcquireWork(h: Holding): void {
    h.acquiring = this.acquireResources(h, h.ac.signal);
  }

  private async acquireResources(h: Holding, signal: AbortSignal): Promise<void> {
    const { group, epoch, refs } = h;
    for (const r of this.d.resources) {
      if (this.d.holdings.get(group) !== h || signal.aborted) return;
      try {
        await r.acquire(this.ctx(group, epoch, refs, signal));
      } catch (err) {
        // Stopped by a release or a lost lease: not a failure of this node.
        if (signal.aborted) return;
        const e = err instanceof AcquireError ? err : new AcquireError(r.name, group, err);
        this.d.log.error({ group, epoch, err: e }, 'acquire failed: releasing the group');
        this.d.health.failAcquire(group, e.message, ACQUIRE_FAILURE_HOLDDOWN_MS);
        this.d.kick();
        return;
      }
    }
  }

  private async releaseResources(group: string, epoch: number, refs: VipRef[]): Promise<void> {
    const ac = new AbortController();
    for (const r of [...this.d.resources].reverse()) {
      try {
        await r.release(this.ctx(group, epoch, refs, ac.signal));
      } catch (err) {
        this.d.log.error({ group, epoch, resource: r.name, err }, 'release of a resource failed');
      }
    }
  }
}
