// The node's heartbeat (agent.yaml `fence.heartbeatMs`; docs/design.md "Fast fence", "Detection faster than the
// lease"): a put of heartbeat/<node> under the registered node lease every heartbeatMs. The leading controller
// watches these keys and revokes the lease of a holder whose heartbeats stopped while the others' went on.
//
// Nothing here is a safety decision: a heartbeat is liveness news, and a late one costs at most a failover (the
// revoked lease's keepalives are answered with TTL 0, its fence closes by itself, and the controller's wait after a
// revocation does not trust the heartbeat). So it is sent from a plain timer. A put takes a deadline of a few
// periods: a put stuck on a dead etcd member must not hold back the next one (the lease keeper moves to another
// member, and the heartbeat follows with the client). Puts do not overlap.
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../common/log.js';

export interface HeartbeatDeps {
  client: Etcd3;
  key: string;
  intervalMs: number;
  /** The lease the node record is registered under, or undefined (then nothing is sent). */
  lease: () => string | undefined;
  log: Logger;
}

/** A put not answered in this many periods is given up (the next one is sent). */
const DEADLINE_PERIODS = 4;

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  /** The lease of the put in flight, if one is. */
  private inFlight: string | undefined;
  private seq = 0;
  private failing = false;
  /** Puts answered, for tests and the metrics. */
  sent = 0;

  constructor(private readonly d: HeartbeatDeps) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.beat(), this.d.intervalMs);
    this.beat();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private beat(): void {
    const lease = this.d.lease();
    if (!lease) return;
    // One put at a time, but one stuck under a lease that is no longer the registered one (a cut node that came
    // back and registered again) does not hold back the first under the new lease: the leader counts only those.
    if (this.inFlight === lease) return;
    this.inFlight = lease;
    this.d.client
      .put(this.d.key)
      .value(String(++this.seq))
      .lease(lease)
      .options({ deadline: Date.now() + DEADLINE_PERIODS * this.d.intervalMs })
      .exec()
      .then(() => {
        this.sent++;
        if (this.failing) this.d.log.info('heartbeat: puts answered again');
        this.failing = false;
      })
      .catch((err: unknown) => {
        // Once per run of failures: etcd down means the lease keeper is already saying so.
        if (!this.failing) this.d.log.warn({ err }, 'heartbeat: put failed');
        this.failing = true;
      })
      .finally(() => {
        if (this.inFlight === lease) this.inFlight = undefined;
      });
  }
}
