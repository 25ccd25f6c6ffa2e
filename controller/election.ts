// Leader election through an etcd lease: the leader key is created under the candidate's lease only if absent.
// Its create revision identifies this term; every leader write is fenced on it (DESIGN.md Safety 4).
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { LeaseKeeper, type LeaseTiming } from '../common/lease.js';
import type { Keys, LeaderRecord } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';

export interface Term {
  id: string;
  /** Create revision of the leader key for this term. */
  revision: number;
  lease: string;
}

export interface ElectionEvents {
  elected: [term: Term];
  /** Leadership is lost (the lease is gone or replaced, or another controller holds the key): the process should exit. */
  deposed: [why: string];
}

export class Election extends EventEmitter<ElectionEvents> {
  readonly lease: LeaseKeeper;
  term: Term | undefined;
  private campaigning = false;

  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keys,
    private readonly id: string,
    private readonly version: string,
    timing: Omit<LeaseTiming, 'renewWindowMs'>,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    super();
    this.lease = new LeaseKeeper(client, { ...timing, renewWindowMs: timing.keepaliveIntervalMs }, clock, log, {
      what: 'controller lease',
    });
  }

  async start(signal: AbortSignal): Promise<void> {
    this.lease.on('lost', (_l, why) => {
      if (!this.term) return;
      // No answer in time (an etcd leader election, a member gone, a slow network) says nothing about the lease on
      // the server: the leader key lives with it. Stop writing until an answer proves it again (provable()); the
      // term ends only when the lease is known gone (answer TTL 0, a new lease) or another controller holds the key.
      if (this.lease.lease === this.term.lease) {
        this.log.warn({ why }, 'leader lease not confirmed: pausing leader writes until etcd answers again');
        return;
      }
      this.emit('deposed', `leader lease: ${why}`);
    });
    this.lease.on('renewed', (r) => {
      if (this.term && r.lease !== this.term.lease) this.emit('deposed', 'leader lease replaced');
    });
    this.lease.on('granted', (lease) => {
      if (this.term && lease !== this.term.lease) this.emit('deposed', 'leader lease replaced');
      void this.campaign(signal);
    });
    await this.lease.start(signal);
    void this.campaign(signal);
    const w = await this.client.watch().key(this.keys.leader()).create();
    signal.addEventListener('abort', () => void w.cancel(), { once: true });
    w.on('delete', () => void this.campaign(signal));
    w.on('put', (kv) => {
      if (this.term && Number(kv.create_revision) !== this.term.revision)
        this.emit('deposed', 'another controller holds the leader key');
    });
    w.on('connected', () => void this.campaign(signal));
    const poll = setInterval(() => void this.campaign(signal), 1000);
    signal.addEventListener('abort', () => clearInterval(poll), { once: true });
  }

  /**
   * True while this controller leads and an answer of etcd proves its lease (and with it the leader key) alive: the
   * leader writes only then. Every write is fenced on the term as well (Safety 4); this keeps a leader that cannot
   * prove its term from acting on what it saw before.
   */
  provable(): boolean {
    return this.term !== undefined && this.lease.lease === this.term.lease && this.lease.isSafe();
  }

  /** Takes the leader key if it is free. */
  private async campaign(signal: AbortSignal): Promise<void> {
    if (this.term || this.campaigning || signal.aborted) return;
    const lease = this.lease.lease;
    if (!lease || !this.lease.isSafe()) return;
    this.campaigning = true;
    try {
      const rec: LeaderRecord = { id: this.id, since: this.clock.wall(), version: this.version };
      const key = this.keys.leader();
      const res = await this.client
        .if(key, 'Create', '==', 0)
        .then(this.client.put(key).value(JSON.stringify(rec)).lease(lease))
        .commit();
      if (!res.succeeded) return;
      this.term = { id: this.id, revision: Number(res.header.revision), lease };
      this.log.info({ revision: this.term.revision }, 'elected leader');
      this.emit('elected', this.term);
    } catch (err) {
      this.log.warn({ err }, 'campaign failed');
    } finally {
      this.campaigning = false;
    }
  }

  /** Gives up leadership (graceful stop): the next replica takes over at once. */
  async resign(): Promise<void> {
    await this.lease.revoke();
  }
}
