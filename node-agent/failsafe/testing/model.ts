// A simulated cluster for rules.model.test.ts (test code only): etcd with leases (no expiry while it has no leader,
// every lease extended by a TTL when it comes back), a controller that follows Safety 3 and rule 5, and agents
// that keep their lease with keepalives stamped by send time, hold one group's VIP with kernel lifetimes, and run
// the real promise rules (../rules.ts) over a LAN that delays, loses and partitions messages. Every node has its
// own monotonic clock (offset and rate within the drift bound). Time advances in ticks of TICK_MS real time.
//
// What it records: for every node, the real-time intervals during which the kernel may have the VIP (a lifetime
// set at t for L s on a clock of rate r lasts until t + L/r + the kernel's worst lateness). Two nodes' intervals
// overlapping is a dual holder.
import { HolderRules, PeerRules, type Ablation } from '../rules.js';
import { lifetimeFor } from '../../../common/lease.js';
import { ModelArbiter } from './arbiter.js';
import { ModelNetwork } from './network.js';
import {
  CONTROLLER_POLL_MS,
  GROUP,
  KEEPALIVE_MS,
  KERNEL_SLACK_MS,
  MARGIN_MS,
  MAX_NODES,
  MODEL_TIMING,
  RENEW_WINDOW_MS,
  TICK_MS,
  TTL_MS,
  findDual,
  prng,
  type Assignment,
  type Fault,
  type Interval,
  type ModelParams,
  type ModelResult,
  type Msg,
} from './model-types.js';

export * from './model-types.js';

interface Proc {
  inc: number;
  lease: string | undefined;
  validUntil: number;
  lastAnsweredSentAt: number;
  nextKaAt: number;
  seen: Assignment | undefined;
  view: string[];
  acked: number;
  holder: HolderRules;
  peer: PeerRules;
  /** Own-clock end of the lifetime this process set (undefined: it set none). */
  fenceEnd: number | undefined;
  /** A promise came in since the last extension: try to extend (the agent renews after answers). */
  newGrant: boolean;
  /** The epoch of a release request this process acknowledged (sent with its keepalives). */
  letGo: number;
}

interface Slot {
  name: string;
  up: boolean;
  everUp: boolean;
  frozenUntil: number;
  downUntil: number;
  gone: boolean;
  proc: Proc | undefined;
  inbox: Msg[];
  inc: number;
}

export function runModel(p: ModelParams): ModelResult {
  return new Sim(p).run();
}

class Sim {
  private t = 0;
  private readonly rnd: () => number;
  private readonly off: ReadonlySet<Ablation>;
  private readonly arbiter: ModelArbiter;
  private readonly slots: Slot[] = [];
  private readonly trace: string[] = [];
  private readonly intervals: Interval[] = [];
  private readonly open = new Map<number, Interval>();
  private readonly net: ModelNetwork;
  private etcdWasUp = true;
  // controller
  private nextPoll = 0;

  constructor(private readonly p: ModelParams) {
    this.rnd = prng(p.seed);
    this.off = new Set(p.without ?? []);
    this.arbiter = new ModelArbiter({ t: () => this.t, rnd: this.rnd, log: (s) => this.log(s), off: this.off });
    this.net = new ModelNetwork(p, this.rnd, () => this.t);
    for (let i = 0; i < MAX_NODES; i++) {
      this.slots.push({
        name: `n${i}`,
        up: false,
        everUp: false,
        frozenUntil: -1,
        downUntil: -1,
        gone: false,
        proc: undefined,
        inbox: [],
        inc: 0,
      });
    }
  }

  private log(s: string): void {
    this.trace.push(`${(this.t / 1000).toFixed(2)}s ${s}`);
  }

  private mono(i: number): number {
    return this.p.offsetMs[i]! + this.t * (1 + this.p.ratePpm[i]! / 1e6);
  }

  private newProc(i: number): Proc {
    const s = this.slots[i]!;
    s.inc++;
    const opts = { without: this.off };
    return {
      inc: s.inc,
      lease: undefined,
      validUntil: -Infinity,
      lastAnsweredSentAt: -Infinity,
      nextKaAt: -Infinity,
      seen: undefined,
      view: [],
      acked: 0,
      holder: new HolderRules(s.name, MODEL_TIMING, opts, String(s.inc)),
      peer: new PeerRules(s.name, MODEL_TIMING, opts),
      fenceEnd: undefined,
      newGrant: false,
      letGo: 0,
    };
  }

  private start(i: number): void {
    const s = this.slots[i]!;
    s.up = true;
    s.everUp = true;
    s.proc = this.newProc(i);
  }

  /** The initial nodes have leases and node records; the first of them holds the group (epoch 1). */
  private bootstrap(): void {
    const a = this.arbiter;
    for (let i = 0; i < this.p.initialNodes; i++) {
      this.start(i);
      const pr = this.slots[i]!.proc!;
      pr.lease = a.grant(this.slots[i]!.name);
      pr.validUntil = this.mono(i) + TTL_MS;
      pr.lastAnsweredSentAt = this.mono(i);
    }
    const first = this.slots[0]!.proc!.lease!;
    a.write('n0', first, 'initial');
    a.acks.set(first, a.asg.epoch);
    for (let i = 0; i < this.p.initialNodes; i++) this.adopt(this.slots[i]!.proc!, a.asg, [...a.registry.keys()]);
  }

  run(): ModelResult {
    this.bootstrap();
    const faults = [...this.p.faults].sort((a, b) => a.at - b.at);
    let fi = 0;
    for (this.t = 0; this.t <= this.p.horizonMs; this.t += TICK_MS) {
      while (fi < faults.length && faults[fi]!.at <= this.t) this.fault(faults[fi++]!);
      for (const [i, s] of this.slots.entries()) {
        if (!s.gone && !s.up && s.everUp && s.downUntil >= 0 && this.t >= s.downUntil) {
          s.downUntil = -1;
          this.start(i);
          this.log(`${s.name} agent started again (new process)`);
        }
      }
      this.deliver();
      if (this.net.etcdUp() && !this.etcdWasUp) this.arbiter.promote();
      this.etcdWasUp = this.net.etcdUp();
      if (this.net.etcdUp()) this.arbiter.expireLeases();
      if (this.net.etcdUp() && this.t >= this.nextPoll) {
        this.nextPoll = this.t + CONTROLLER_POLL_MS;
        this.arbiter.poll();
      }
      for (let i = 0; i < MAX_NODES; i++) this.step(i);
    }
    return { intervals: this.intervals, dual: findDual(this.intervals), trace: this.trace };
  }

  private fault(f: Fault): void {
    const names = (mask: number) =>
      this.slots
        .filter((_, i) => mask & (1 << i))
        .map((s) => s.name)
        .join(',');
    if (this.net.fault(f, (s) => this.log(s), names)) return;
    switch (f.kind) {
      case 'freeze': {
        const s = this.slots[f.node];
        if (!s?.up) return;
        this.log(`FAULT ${s.name} frozen for ${f.dur} ms`);
        s.frozenUntil = this.t + f.dur;
        break;
      }
      case 'restart': {
        const s = this.slots[f.node];
        if (!s?.up) return;
        this.log(`FAULT ${s.name} agent killed, restarts in ${f.dur} ms`);
        s.up = false;
        s.proc = undefined;
        s.inbox = [];
        s.downUntil = this.t + f.dur;
        break;
      }
      case 'move': {
        this.log('FAULT the controller moves the group');
        if (this.net.etcdUp()) this.arbiter.requestMove();
        break;
      }
      case 'join': {
        const i = this.slots.findIndex((s) => !s.everUp);
        if (i < 0) return;
        this.log(`FAULT ${this.slots[i]!.name} joins`);
        this.start(i);
        break;
      }
      case 'leave': {
        const s = this.slots[f.node];
        if (!s?.up) return;
        this.log(`FAULT ${s.name} leaves for good`);
        s.up = false;
        s.gone = true;
        s.proc = undefined;
        break;
      }
    }
  }

  private deliver(): void {
    for (const q of this.net.arriving()) {
      if (q.to === 'etcd') {
        const answer = q.from === 'etcd' ? undefined : this.arbiter.receive(this.slots[q.from]!.name, q.msg);
        if (answer && q.from !== 'etcd') this.net.send('etcd', q.from, answer);
      } else if (this.slots[q.to]!.up) this.slots[q.to]!.inbox.push(q.msg);
    }
  }

  // ---- agents ----

  private step(i: number): void {
    const s = this.slots[i]!;
    const pr = s.proc;
    if (!s.up || !pr || this.t < s.frozenUntil) return;
    const now = this.mono(i);
    const inbox = s.inbox;
    s.inbox = [];
    for (const m of inbox) this.receive(i, pr, m, now);
    if (now >= pr.nextKaAt) {
      pr.nextKaAt = now + KEEPALIVE_MS;
      if (pr.lease)
        this.net.send(i, 'etcd', { kind: 'ka', lease: pr.lease, sentAt: now, ack: pr.acked, letGo: pr.letGo });
      else this.net.send(i, 'etcd', { kind: 'grant', sentAt: now });
    }
    const fresh =
      pr.lease !== undefined && now - pr.lastAnsweredSentAt <= RENEW_WINDOW_MS && pr.validUntil - MARGIN_MS > now;
    const a = pr.seen;
    if (!a || a.holder !== s.name || a.holderLease !== pr.lease || !pr.lease) return;
    if (a.release) {
      // Asked to let go: the VIP goes at once (ip addr del), then the acknowledgement, unless a promise binds it.
      this.removeVip(i, pr);
      if (pr.letGo !== a.epoch && pr.peer.mayLetGo(GROUP, now)) {
        pr.letGo = a.epoch;
        this.log(`${s.name} acknowledges letting go (epoch ${a.epoch})`);
      }
      return;
    }
    if (fresh) {
      if (!pr.peer.mayAdd(GROUP, now)) return;
      const l = lifetimeFor(pr.validUntil - now, MARGIN_MS);
      this.setFence(i, pr, now, l, 'keepalive');
      pr.acked = Math.max(pr.acked, a.epoch);
      return;
    }
    if (pr.fenceEnd === undefined || pr.fenceEnd <= now) return;
    const r = pr.holder.request(now, { fresh, lease: pr.lease, groups: [{ group: GROUP, epoch: a.epoch }] });
    if (r) for (const peer of r.peers) this.sendPeer(i, peer, { kind: 'req', from: i, body: r.req });
    if (!pr.newGrant) return;
    pr.newGrant = false;
    const l = pr.holder.lifetime(now, pr.fenceEnd ?? -Infinity, pr.validUntil);
    if (l !== undefined) this.setFence(i, pr, now, l, 'promises');
  }

  private nameOf(pr: Proc): string | undefined {
    return this.slots.find((s) => s.proc === pr)?.name;
  }

  private removeVip(i: number, pr: Proc): void {
    const cur = this.open.get(i);
    if (cur && cur.end > this.t) {
      cur.end = this.t;
      this.log(`${this.slots[i]!.name} removes the VIP`);
    }
    this.open.delete(i);
    pr.fenceEnd = undefined;
  }

  private sendPeer(from: number, peer: string, m: Msg): void {
    const to = this.slots.findIndex((s) => s.name === peer);
    if (to >= 0 && this.slots[to]!.up) this.net.send(from, to, m);
  }

  private setFence(i: number, pr: Proc, now: number, l: number, why: string): void {
    const end = now + l * 1000;
    if (pr.fenceEnd !== undefined && end <= pr.fenceEnd) return;
    const rate = 1 + this.p.ratePpm[i]! / 1e6;
    const realEnd = this.t + (l * 1000) / rate + KERNEL_SLACK_MS;
    const cur = this.open.get(i);
    if (why === 'promises' && (pr.fenceEnd ?? -Infinity) <= now + 1000 * (l - 1))
      this.log(`${this.slots[i]!.name} extends the VIP by promises (${l} s)`);
    if (cur && cur.end > this.t) cur.end = Math.max(cur.end, realEnd);
    else {
      const iv = { node: i, start: this.t, end: realEnd };
      this.intervals.push(iv);
      this.open.set(i, iv);
      this.log(`${this.slots[i]!.name} adds the VIP (${why}, ${l} s)`);
    }
    pr.fenceEnd = end;
  }

  private receive(i: number, pr: Proc, m: Msg, now: number): void {
    const s = this.slots[i]!;
    if (m.kind === 'grant-answer') {
      if (pr.lease) return;
      pr.lease = m.lease;
      pr.validUntil = m.sentAt + TTL_MS;
      pr.lastAnsweredSentAt = m.sentAt;
      this.adopt(pr, m.asg, m.registry);
      pr.holder.onFresh();
      pr.peer.onReachEtcd(now);
    } else if (m.kind === 'ka-answer') {
      if (m.lease !== pr.lease) return;
      if (m.ttl <= 0) {
        this.log(`${s.name} learns its lease ${m.lease} is gone`);
        pr.lease = undefined;
        pr.holder.end('lease gone');
        return;
      }
      pr.validUntil = Math.max(pr.validUntil, m.sentAt + m.ttl);
      pr.lastAnsweredSentAt = Math.max(pr.lastAnsweredSentAt, m.sentAt);
      this.adopt(pr, m.asg, m.registry);
      if (now - pr.lastAnsweredSentAt <= RENEW_WINDOW_MS) {
        pr.holder.onFresh();
        pr.peer.onReachEtcd(now);
      }
    } else if (m.kind === 'req') {
      const fresh =
        pr.lease !== undefined && now - pr.lastAnsweredSentAt <= RENEW_WINDOW_MS && pr.validUntil - MARGIN_MS > now;
      const ans = pr.peer.answer(m.body, now, {
        reachesEtcd: fresh,
        holds: () => pr.fenceEnd !== undefined && pr.fenceEnd > now,
        failsafe: () => true,
      });
      if (ans.granted) this.log(`${s.name} promises ${m.body.holder} (request ${m.body.requestId})`);
      this.net.send(i, m.from, { kind: 'ans', body: ans });
    } else if (m.kind === 'ans') {
      const covers = pr.lease !== undefined && now < pr.validUntil - MARGIN_MS;
      if (pr.holder.onAnswer(m.body, now, covers) === 'granted') pr.newGrant = true;
    }
  }

  private adopt(pr: Proc, asg: Assignment, registry: string[]): void {
    pr.view = registry;
    // Ablated rule 1: the holder asks the nodes it knows of itself (its last view of the registry).
    if (this.off.has('rule1-assigned-set')) pr.holder.setPromiseSet(pr.view);
    if (pr.seen && asg.epoch <= pr.seen.epoch) return;
    pr.seen = asg;
    // As the agent does (failsafe/wiring.ts): an epoch is acknowledged only while this node holds the group under
    // it; a node named holder that has not added the VIP (a promise binds it) acknowledges nothing.
    if (asg.holder === this.nameOf(pr) && pr.fenceEnd !== undefined) pr.acked = asg.epoch;
    if (!this.off.has('rule1-assigned-set')) pr.holder.setPromiseSet(asg.set.map((e) => e.node));
  }
}
