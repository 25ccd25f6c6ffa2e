// The leader's side of heartbeats (docs/design.md "Fast fence", "Detection faster than the lease"): watches
// heartbeat/<node>, and revokes the lease of a revocable holder (common/fence.ts `revocable`) whose heartbeats
// stopped while the others' went on (controller/suspicion.ts). After the revocation's answer the lease is gone on
// the server: no keepalive of it is answered again, so no fence element can be opened or renewed on it, and the
// holder's last element closes within revokedFenceWaitMs of when the leader heard the lease end (memory.ts waits
// that for every revocable holder, whoever ended the lease). The group then moves as after an expiry.
import type { Etcd3, Watcher } from 'etcd3';
import type { Clock } from '../common/clock.js';
import type { Keys } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';
import { HeartbeatSuspicion, type Beating } from './suspicion.js';

/** A revocable node as the leader reads it: its record's lease and period, and whether it holds a group now. */
export interface Revocable extends Beating {
  lease: string;
  holds: boolean;
}

export interface HeartbeatMonitorOptions {
  client: Etcd3;
  keys: Keys;
  clock: Clock;
  log: Logger;
  /** Heartbeat periods a holder may miss before it is suspected. */
  misses: number;
  /** How often suspicion is checked (ms). */
  checkMs?: number;
  /** The revocable nodes now (from the node records and the assignments). */
  nodes: () => Revocable[];
  /** Whether this controller leads now (only the leader revokes). */
  leading: () => boolean;
  /** etcd answered the revocation: the lease is gone. */
  onRevoked: (lease: string, node: string) => void;
  /** Revokes a lease (default: LeaseRevoke on `client`). Resolves once etcd answered. */
  revoke?: (lease: string) => Promise<void>;
}

export class HeartbeatMonitor {
  readonly suspicion: HeartbeatSuspicion;
  private watcher: Watcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Leases a revocation was sent for (once each; a failed one is not retried: the TTL still ends it). */
  private readonly revoking = new Set<string>();
  private stopped = false;
  private started = false;
  /** Revocations answered, for tests and logs. */
  revoked = 0;

  constructor(private readonly o: HeartbeatMonitorOptions) {
    this.suspicion = new HeartbeatSuspicion(o.misses);
  }

  async start(signal: AbortSignal): Promise<void> {
    // Led again (a test's controller that was deposed and re-elected): one watch and one timer, counted afresh.
    if (this.started)
      return this.suspicion.restart(
        this.o.clock.mono(),
        this.o.nodes().map((n) => n.node),
      );
    this.started = true;
    signal.addEventListener('abort', () => this.stop(), { once: true });
    this.suspicion.restart(
      this.o.clock.mono(),
      this.o.nodes().map((n) => n.node),
    );
    await this.watch();
    if (this.stopped) return;
    this.timer = setInterval(() => this.check(), this.o.checkMs ?? 10);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    void this.watcher?.cancel().catch(() => undefined);
    this.watcher = undefined;
  }

  private async watch(): Promise<void> {
    const prefix = this.o.keys.heartbeatPrefix();
    const w = await this.o.client.watch().prefix(prefix).create();
    if (this.stopped) {
      void w.cancel().catch(() => undefined);
      return;
    }
    this.watcher = w;
    w.on('put', (kv) => {
      const node = this.o.keys.heartbeatNode(kv.key.toString());
      if (node) this.suspicion.beat(node, this.o.clock.mono(), kv.lease && kv.lease !== '0' ? kv.lease : undefined);
    });
    // A watch that was down saw nothing: no silence before it came back counts, and no node is taken as heard (it
    // was down with etcd, most likely, and the agents reconnect one by one): each must beat once first.
    w.on('connected', () => this.suspicion.restart(this.o.clock.mono()));
    w.on('error', (err) => this.o.log.warn({ err }, 'heartbeat watch failed; etcd3 reconnects it'));
  }

  /** One round: revokes the leases of the holders suspected now. */
  check(): void {
    if (this.stopped || !this.o.leading()) return;
    const nodes = this.o.nodes();
    const suspected = new Set(this.suspicion.suspects(nodes, this.o.clock.mono()));
    for (const n of nodes) {
      if (!n.holds || !suspected.has(n.node) || this.revoking.has(n.lease)) continue;
      this.revoking.add(n.lease);
      void this.revokeOne(n);
    }
  }

  private async revokeOne(n: Revocable): Promise<void> {
    const t0 = this.o.clock.mono();
    this.o.log.warn(
      { node: n.node, lease: n.lease, heartbeatMs: n.heartbeatMs, misses: this.o.misses },
      'heartbeats stopped: revoking the holder lease',
    );
    try {
      await (this.o.revoke ?? ((l) => revokeLease(this.o.client, l)))(n.lease);
      this.revoked++;
      this.o.log.info({ node: n.node, lease: n.lease, tookMs: this.o.clock.mono() - t0 }, 'holder lease revoked');
      this.o.onRevoked(n.lease, n.node);
    } catch (err) {
      // Not retried: a lease that still lives ends with its TTL, and a node that beats again is no longer suspected.
      this.o.log.warn({ err, node: n.node, lease: n.lease }, 'revoking the holder lease failed');
    }
  }
}

async function revokeLease(client: Etcd3, lease: string): Promise<void> {
  try {
    await client.leaseClient.leaseRevoke({ ID: lease });
  } catch (err) {
    // Already gone (expired, or revoked by the agent on its way out): that is what was asked.
    if (/lease not found/i.test(String((err as Error)?.message ?? err))) return;
    throw err;
  }
}
