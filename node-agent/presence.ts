// When this agent added and removed each group's addresses (issue 15.14), published under its own key space
// (presence/<node>/<group>, under its lease) for the leader to pair into outages: the periods a VIP was on no node,
// as the machines saw them. A change made while etcd cannot be reached is published once it can (retried with
// backoff, and written again under every new lease). History only: nothing decides from it.
import { readFileSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import type { Keys } from '../common/keyspace.js';
import type { LeaseKeeper } from '../common/lease.js';
import type { Logger } from '../common/log.js';
import { PRESENCE_KEPT, type PresenceChange, type PresenceRecord } from '../common/presence.js';
import { etcdHealthStore, RecordPublisher, type HealthStore } from './health-publisher.js';

export interface PresenceDeps {
  client: Etcd3;
  keys: Keys;
  node: string;
  clock: Pick<Clock, 'mono' | 'wall' | 'sleep'>;
  log: Logger;
  lease: Pick<LeaseKeeper, 'lease' | 'on'>;
  /** Where records go (default: etcd through `client`). */
  store?: HealthStore;
}

/** The machine's boot id: monotonic times compare only within one boot. */
function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export class PresenceLog {
  private readonly changes = new Map<string, PresenceChange[]>();
  private readonly boot = bootId();
  private readonly pub: RecordPublisher<PresenceRecord>;

  constructor(private readonly d: PresenceDeps) {
    this.pub = new RecordPublisher<PresenceRecord>({
      store: d.store ?? etcdHealthStore(d.client),
      what: 'presence',
      keyOf: (group) => d.keys.presence(group, d.node),
      lease: () => d.lease.lease,
      log: d.log,
      clock: d.clock,
    });
    // The old lease took the keys with it: everything again under the new one.
    d.lease.on('granted', () => void this.pub.republishAll());
  }

  /** A change of the group's addresses, now (or at `mono`, earlier: a kernel lifetime that ran out first). */
  record(group: string, c: Pick<PresenceChange, 'kind' | 'epoch' | 'reason'> & { mono?: number }): void {
    const nowMono = this.d.clock.mono();
    const mono = Math.min(c.mono ?? nowMono, nowMono);
    const change: PresenceChange = {
      kind: c.kind,
      epoch: c.epoch,
      at: Math.round(this.d.clock.wall() - (nowMono - mono)),
      mono,
      ...(c.reason !== undefined ? { reason: c.reason } : {}),
      ...(mono < nowMono ? { expired: true } : {}),
    };
    const list = [...(this.changes.get(group) ?? []), change].slice(-PRESENCE_KEPT);
    this.changes.set(group, list);
    void this.pub.publish(group, { ...(this.boot ? { boot: this.boot } : {}), changes: list });
  }

  /** For tests. */
  of(group: string): readonly PresenceChange[] {
    return this.changes.get(group) ?? [];
  }
}
