// Which holders' heartbeats stopped (docs/design.md "Fast fence", "Detection faster than the lease"). Pure: the
// caller feeds the heartbeat watch's events and asks at its own times; every time is monotonic ms.
//
// A node is suspected when it has been silent for `misses` of its heartbeat periods while the others' heartbeats
// kept arriving. Silence is counted from the later of its own last heartbeat and the moment the stream of
// heartbeats (all nodes together) last resumed after a gap: an etcd election, an etcd outage or a slow watch stops
// every heartbeat at once, and must cost no node its lease (the point of the failsafe issue). While the stream is
// stalled nobody is suspected; after it resumes each node has its full allowance again. A node alone (nobody else
// beats) is never suspected: its lease's TTL is the detector, as without heartbeats. Nor is a node that has not
// beaten since the stream last resumed after a gap, or since the leader's watch came back: after an etcd outage or
// election the agents reconnect one by one, gRPC's back-off apart by up to a second or more, and a holder that comes
// back later than the others is not silent, only late. Such a node is left to its TTL until it beats once. A leader
// that starts to watch takes the nodes it knows as heard then (restart()).
//
// Suspicion is never a safety decision: a wrongly suspected node loses its lease and with it its VIPs (its fence
// closes by itself, its keepalives are answered with TTL 0), and the controller's wait after a revocation
// (common/fence.ts revokedFenceWaitMs) does not depend on the suspicion being right.

export interface Beating {
  node: string;
  heartbeatMs: number;
  /**
   * The lease its node record is under now. Given, only heartbeats put under it count: a node that registered again
   * (its old lease revoked or expired) is not silent until it has beaten under the new one (its first put may wait
   * behind one still stuck under the old lease: the holder was revoked again 230 ms after it came back, e2e
   * outages.test.ts).
   */
  lease?: string;
}

/** restart() takes the nodes it is given as heard under whatever lease their record names. */
const ANY_LEASE = '*';

export class HeartbeatSuspicion {
  private readonly lastSeen = new Map<string, number>();
  /** Per node, its last heartbeat (a watch event; not the times restart() seeds) and the lease it was put under. */
  private readonly lastBeat = new Map<string, { at: number; lease: string | undefined }>();
  private lastEvent = -Infinity;
  private flowingSince = Infinity;
  /** Until the first suspects() says the periods: twice the fastest period vipwarden suggests (50 ms). */
  private gapMs = 100;

  constructor(private readonly misses: number) {
    if (!(misses >= 1)) throw new Error(`heartbeat misses must be at least 1, not ${misses}`);
  }

  /**
   * The watch started or restarted, or this controller began to lead: no silence before `now` counts. `nodes`, those
   * known now, are taken as heard at `now` (whatever their lease): a leader that takes over while the agents beat
   * must find a holder that died just before (chaos: an agent killed during a controller takeover waited for its
   * TTL, 2.3 s, when nodes had to beat once first). A watch that came back after being down names none: the agents
   * were most likely cut off with it and reconnect one by one, so each must beat once first. A node first named
   * later must beat once too.
   */
  restart(now: number, nodes: Iterable<string> = []): void {
    this.lastSeen.clear();
    for (const n of nodes) {
      this.lastSeen.set(n, now);
      this.lastBeat.set(n, { at: now, lease: ANY_LEASE });
    }
    this.lastEvent = now;
    this.flowingSince = now;
  }

  /** A heartbeat of `node` arrived (a watch event), put under `lease` (the key's lease in the event). */
  beat(node: string, now: number, lease?: string): void {
    if (now - this.lastEvent > this.gapMs) this.flowingSince = now;
    this.lastEvent = Math.max(this.lastEvent, now);
    this.lastSeen.set(node, now);
    this.lastBeat.set(node, { at: now, lease });
  }

  /** Forgets a node (its record is gone). */
  forget(node: string): void {
    this.lastSeen.delete(node);
    this.lastBeat.delete(node);
  }

  /**
   * The nodes of `beating` that are suspected at `now`. A gap in the stream is longer than twice the shortest
   * heartbeat period among them: with two or more nodes beating, the stream has an event at least every period.
   */
  suspects(beating: readonly Beating[], now: number): string[] {
    if (beating.length === 0) return [];
    this.gapMs = 2 * Math.min(...beating.map((b) => b.heartbeatMs));
    // Stalled: nobody is heard, so nobody is singled out.
    if (now - this.lastEvent > this.gapMs) return [];
    const out: string[] = [];
    for (const b of beating) {
      // A node first seen now (a record that just appeared) starts its allowance now.
      if (!this.lastSeen.has(b.node)) this.lastSeen.set(b.node, now);
      // Not heard since the stream resumed (or since the watch came back), or not yet under the lease its record is
      // under now: late to reconnect or to register again, not known silent.
      const last = this.lastBeat.get(b.node);
      if (
        !last ||
        last.at < this.flowingSince ||
        (b.lease !== undefined && last.lease !== ANY_LEASE && last.lease !== b.lease)
      )
        continue;
      const from = Math.max(this.lastSeen.get(b.node)!, this.flowingSince);
      // Silence is measured up to the stream's last event, not up to now: another node's heartbeat must have come
      // more than misses periods after this node's last (which is then not the last event). Measured up to now, a
      // node whose last beat came a little before the others' was suspected in the first moments of a stall, before
      // the stream counted as stalled (the model test found it: misses 2, etcd stalled 400 ms, revoked in most runs).
      if (this.lastEvent - from > this.misses * b.heartbeatMs) out.push(b.node);
    }
    return out;
  }
}
