// etcd and the leading controller of the failsafe model (testing/model.ts): leases that do not expire while etcd
// is down and are all extended by a TTL when it returns, node records, the holder's acknowledged epoch, and a
// controller that writes the promise set with each assignment (rule 1) and waits the Safety 3 overhang, plus maxKeep
// for a node outside the acknowledged set (rule 5).
import { listedForTakeover, takeoverWaitMs, type Ablation, type PromiseSetEntry } from '../rules.js';
import { MODEL_TIMING, OVERHANG_MS, TTL_MS, type Assignment, type Msg } from './model-types.js';

export interface ArbiterHost {
  t(): number;
  /** A random number in [0, 1) from the run's seed. */
  rnd(): number;
  log(s: string): void;
  off: ReadonlySet<Ablation>;
}

export class ModelArbiter {
  readonly leases = new Map<string, number>();
  readonly registry = new Map<string, string>();
  readonly acks = new Map<string, number>();
  private leaseSeq = 0;
  asg: Assignment = { epoch: 0, holder: null, holderLease: null, set: [] };
  private readonly sets = new Map<number, PromiseSetEntry[]>();
  private endSeen: { lease: string; at: number; registered: Map<string, string> } | undefined;
  private registryKeys: string[] | undefined;
  /** The epoch whose holder acknowledged letting go (it has nothing of the group). */
  private letGo = 0;

  constructor(private readonly h: ArbiterHost) {}

  /** A lease and node record for `name` (bootstrap). */
  grant(name: string): string {
    const lease = `${name}.${++this.leaseSeq}`;
    this.leases.set(lease, this.h.t() + TTL_MS);
    this.registry.set(name, lease);
    this.registryKeys = undefined;
    return lease;
  }

  /** A new etcd leader extends every lease (lessor.Promote): holders keep theirs. */
  promote(): void {
    for (const [id, exp] of this.leases) this.leases.set(id, Math.max(exp, this.h.t() + TTL_MS));
    this.h.log('etcd back: every lease extended by a TTL');
  }

  expireLeases(): void {
    for (const [id, exp] of this.leases) {
      if (this.h.t() <= exp) continue;
      this.leases.delete(id);
      this.h.log(`etcd: lease ${id} expired`);
      for (const [n, l] of this.registry) if (l === id) this.registry.delete(n);
      this.registryKeys = undefined;
    }
  }

  snapshot(): { asg: Assignment; registry: string[] } {
    // Assignments are never changed in place (write() makes a new one), so sharing them is a snapshot.
    this.registryKeys ??= [...this.registry.keys()];
    return { asg: this.asg, registry: this.registryKeys };
  }

  /** A message from node `name` reached etcd; returns etcd's answer. */
  receive(name: string, m: Msg): Msg | undefined {
    const s = { name };
    if (m.kind === 'grant') {
      const lease = this.grant(s.name);
      return { kind: 'grant-answer', lease, sentAt: m.sentAt, ...this.snapshot() };
    } else if (m.kind === 'ka') {
      const alive = this.leases.has(m.lease);
      if (alive) {
        this.leases.set(m.lease, this.h.t() + TTL_MS);
        if (this.registry.get(s.name) === m.lease && m.ack > (this.acks.get(m.lease) ?? 0))
          this.acks.set(m.lease, m.ack);
        if (m.lease === this.asg.holderLease && m.letGo === this.asg.epoch) this.letGo = m.letGo;
      }
      const ttl = alive ? TTL_MS : 0;
      return { kind: 'ka-answer', lease: m.lease, sentAt: m.sentAt, ttl, ...this.snapshot() };
    }
    return undefined;
  }

  /** A move: the holder, while its lease lives, is asked to let go. */
  requestMove(): void {
    const a = this.asg;
    if (!a.holder || !a.holderLease || !this.leases.has(a.holderLease) || a.release) return;
    this.write(a.holder, a.holderLease, 'move: asked to let go', true);
  }

  write(holder: string | null, holderLease: string | null, why: string, release = false): void {
    const set = [...this.registry]
      .map(([node, lease]) => ({ node, lease }))
      .sort((a, b) => a.node.localeCompare(b.node));
    this.asg = { epoch: this.asg.epoch + 1, holder, holderLease, set, ...(release ? { release } : {}) };
    this.sets.set(this.asg.epoch, set);
    this.h.log(`controller: epoch ${this.asg.epoch} holder ${holder ?? '-'} (${why}) set [${set.map((e) => e.node)}]`);
  }

  poll(): void {
    const a = this.asg;
    if (a.release && a.holderLease && this.leases.has(a.holderLease)) {
      // The holder said it has nothing of the group: no wait (Safety 3's released case); another node, at random.
      if (this.letGo !== a.epoch) return;
      const others = [...this.registry.keys()].filter((n) => n !== a.holder).sort();
      const pick = others[Math.floor(this.h.rnd() * others.length)];
      if (pick) this.write(pick, this.registry.get(pick)!, `moved from ${a.holder}`);
      return;
    }
    if (a.holderLease && this.leases.has(a.holderLease)) {
      this.endSeen = undefined;
      const same = a.set.length === this.registry.size && a.set.every((e) => this.registry.get(e.node) === e.lease);
      if (!same) this.write(a.holder, a.holderLease, 'promise set changed');
      return;
    }
    if (a.holderLease && this.endSeen?.lease !== a.holderLease) {
      this.endSeen = { lease: a.holderLease, at: this.h.t(), registered: new Map(this.registry) };
      this.h.log(`controller: sees holder lease ${a.holderLease} ended`);
    }
    const since = this.endSeen?.at ?? -Infinity;
    // Only the set of the epoch the holder acknowledged, as the controller does (controller/failsafe.ts): one it
    // holds under; a holder named but never acknowledging (it had not added the VIP) lists nobody.
    const acked = a.holderLease && this.acks.get(a.holderLease) === a.epoch ? this.sets.get(a.epoch) : undefined;
    let listed = listedForTakeover(acked, this.registry);
    if (this.h.off.has('rule1-assigned-set') && this.endSeen)
      listed = new Set([...this.endSeen.registered].filter(([n, l]) => this.registry.get(n) === l).map(([n]) => n));
    const candidates = [...this.registry.keys()].sort();
    const ok = (n: string, isListed: boolean) =>
      this.h.t() - since >=
      takeoverWaitMs({ listed: isListed, overhangMs: OVERHANG_MS, maxKeepMs: MODEL_TIMING.maxKeepMs });
    const pick =
      candidates.find((n) => (this.h.off.has('rule5-bounded') || listed.has(n)) && ok(n, true)) ??
      candidates.find((n) => ok(n, false));
    if (pick) this.write(pick, this.registry.get(pick)!, listed.has(pick) ? 'listed' : 'unlisted, after maxKeep');
  }
}
