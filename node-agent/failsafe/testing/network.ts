// The failsafe model's network (testing/model.ts): etcd's availability, each node's links to etcd and to the LAN,
// and the messages in flight, delayed, lost and delivered by tick. The network faults (etcd-down, cut-etcd,
// cut-lan, slow-lan) act here; the node faults stay with the nodes in model.ts.
import { MAX_NODES, TICK_MS, type Fault, type ModelParams, type Msg } from './model-types.js';

/** A node by its index, or etcd. */
export type Endpoint = number | 'etcd';

export interface InFlight {
  to: Endpoint;
  from: Endpoint;
  msg: Msg;
}

export class ModelNetwork {
  private etcdDownUntil = -1;
  private slowLan = { until: -1, extraMs: 0 };
  /** Messages in flight, by the tick they arrive in. */
  private readonly queue = new Map<number, InFlight[]>();
  private readonly cutEtcd: number[] = Array.from({ length: MAX_NODES }, () => -1);
  private readonly cutLan: number[] = Array.from({ length: MAX_NODES }, () => -1);

  constructor(
    private readonly p: Pick<ModelParams, 'lossPct' | 'maxDelayMs'>,
    private readonly rnd: () => number,
    private readonly t: () => number,
  ) {}

  etcdUp(): boolean {
    return this.t() >= this.etcdDownUntil;
  }

  private reachesEtcd(i: number): boolean {
    return this.etcdUp() && this.t() >= this.cutEtcd[i]!;
  }

  private lanUp(a: number, b: number): boolean {
    return this.t() >= this.cutLan[a]! && this.t() >= this.cutLan[b]!;
  }

  /** A message on its way; the link must be up when it is sent and when it arrives. */
  linkUp(from: Endpoint, to: Endpoint): boolean {
    if (to === 'etcd') return from !== 'etcd' && this.reachesEtcd(from);
    if (from === 'etcd') return this.reachesEtcd(to);
    return this.lanUp(from, to);
  }

  send(from: Endpoint, to: Endpoint, msg: Msg): void {
    const t = this.t();
    const linkUp = this.linkUp(from, to);
    if (!linkUp || this.rnd() * 100 < this.p.lossPct) return;
    let at = t + Math.floor(this.rnd() * (this.p.maxDelayMs + 1));
    if (from !== 'etcd' && to !== 'etcd' && t < this.slowLan.until)
      at += Math.floor(this.rnd() * (this.slowLan.extraMs + 1));
    // Never into the tick being delivered now: a message arrives in a later tick at the earliest.
    const tick = Math.max(Math.round(t / TICK_MS) + 1, Math.ceil(at / TICK_MS));
    const q = this.queue.get(tick);
    if (q) q.push({ to, from, msg });
    else this.queue.set(tick, [{ to, from, msg }]);
  }

  /** The messages that arrive in this tick over links that are up (taken off the queue). */
  arriving(): InFlight[] {
    const tick = Math.round(this.t() / TICK_MS);
    const due = this.queue.get(tick);
    if (!due) return [];
    this.queue.delete(tick);
    return due.filter((q) => this.linkUp(q.from, q.to));
  }

  /** Applies a network fault; false for a fault of the nodes. `names` says which nodes a mask names, for the log. */
  fault(f: Fault, log: (s: string) => void, names: (mask: number) => string): boolean {
    const t = this.t();
    switch (f.kind) {
      case 'etcd-down':
        log(`FAULT etcd down for ${f.dur} ms`);
        this.etcdDownUntil = t + f.dur;
        return true;
      case 'cut-etcd':
        log(`FAULT ${names(f.mask)} cut from etcd for ${f.dur} ms`);
        for (let i = 0; i < MAX_NODES; i++) if (f.mask & (1 << i)) this.cutEtcd[i] = t + f.dur;
        return true;
      case 'cut-lan':
        log(`FAULT ${names(f.mask)} cut from the LAN for ${f.dur} ms`);
        for (let i = 0; i < MAX_NODES; i++) if (f.mask & (1 << i)) this.cutLan[i] = t + f.dur;
        return true;
      case 'slow-lan':
        log(`FAULT LAN messages up to ${f.extraMs} ms slower for ${f.dur} ms`);
        this.slowLan = { until: t + f.dur, extraMs: f.extraMs };
        return true;
      default:
        return false;
    }
  }
}
