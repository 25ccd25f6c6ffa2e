// The peer channel: agents ask each other for failsafe promises over UDP on the LAN (docs/security.md, "Peer
// channel"). One socket serves requests and sends our own. A datagram reaches the handler only when it passed, in
// this order: size, the source's rate limit, the MAC, the envelope's shape, recipient and sender names, the
// timestamp window and the nonce cache, and the body's schema. Everything refused is counted and logged.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { Logger } from '../../common/log.js';
import { issues, newNonce, open, seal, type Envelope, type PeerKey } from './envelope.js';
import { NO_PEER_METRICS, RateLimiter, RejectLog, ReplayGuard, type PeerMetrics } from './guard.js';
import { PromiseAnswer, PromiseRequest } from './messages.js';

export interface PeerAddress {
  node: string;
  address: string;
  port: number;
}
export type PromiseHandler = (req: PromiseRequest, fromNode: string) => PromiseAnswer | Promise<PromiseAnswer>;

export interface PeerTransport {
  request(peer: PeerAddress, req: PromiseRequest, timeoutMs: number): Promise<PromiseAnswer | undefined>;
  serve(handler: PromiseHandler): void;
  close(): Promise<void>;
}

export interface UdpPeerTransportOptions {
  node: string;
  key: PeerKey;
  listen: string;
  /** 0: any free port (tests). */
  port: number;
  maxSkewMs: number;
  maxDatagramBytes: number;
  ratePerSecond: number;
  burst: number;
  log: Logger;
  metrics?: PeerMetrics;
  /** Wall-clock ms (message timestamps). */
  now?: () => number;
}

interface Pending {
  node: string;
  requestId: string;
  done: (a: PromiseAnswer | undefined) => void;
}

/** Times a request is sent (fresh nonce each time) within its timeout: one lost datagram does not lose a promise. */
const SENDS = 3;

export class UdpPeerTransport implements PeerTransport {
  private socket?: Socket;
  private handler?: PromiseHandler;
  private readonly pending = new Map<string, Pending>(); // request nonce -> waiter
  private readonly limiter: RateLimiter;
  private readonly replay: ReplayGuard;
  readonly rejects: RejectLog;
  private readonly now: () => number;
  private readonly metrics: PeerMetrics;

  constructor(private readonly o: UdpPeerTransportOptions) {
    this.now = o.now ?? Date.now;
    this.metrics = o.metrics ?? NO_PEER_METRICS;
    this.limiter = new RateLimiter(o, this.now);
    this.replay = new ReplayGuard(o, this.now);
    this.rejects = new RejectLog(o.log, this.metrics, this.now);
  }

  /** Binds the socket. */
  async start(): Promise<void> {
    const s = createSocket({ type: isIP(this.o.listen) === 6 ? 'udp6' : 'udp4', recvBufferSize: 1 << 20 });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(this.o.port, this.o.listen, () => {
        s.off('error', reject);
        resolve();
      });
    });
    s.on('error', (err) => this.o.log.warn({ err }, 'peer socket error'));
    s.on('message', (msg, rinfo) => this.receive(msg, rinfo));
    this.socket = s;
    this.o.log.info({ listen: this.o.listen, port: this.port }, 'peer channel listening');
  }

  get port(): number {
    return this.socket?.address().port ?? 0;
  }

  serve(handler: PromiseHandler): void {
    this.handler = handler;
  }

  async request(peer: PeerAddress, req: PromiseRequest, timeoutMs: number): Promise<PromiseAnswer | undefined> {
    const s = this.socket;
    const checked = PromiseRequest.safeParse(req);
    if (!s || !checked.success || req.holder !== this.o.node) {
      this.o.log.error(
        { peer: peer.node, why: checked.success ? 'not ours' : issues(checked.error) },
        'peer request not sent',
      );
      return undefined;
    }
    return new Promise((resolve) => {
      const nonces: string[] = [];
      const timers: NodeJS.Timeout[] = [];
      const done = (a: PromiseAnswer | undefined) => {
        for (const t of timers) clearTimeout(t);
        for (const n of nonces) this.pending.delete(n);
        this.metrics.request(a ? 'answered' : 'timeout');
        resolve(a);
      };
      const send = () => {
        const nonce = newNonce();
        const env: Envelope = { t: 'req', from: this.o.node, to: peer.node, ts: this.now(), nonce, body: req };
        const dgram = seal(this.o.key, env);
        if (dgram.length > this.o.maxDatagramBytes) {
          this.o.log.error({ peer: peer.node, bytes: dgram.length }, 'peer request too large to send');
          return done(undefined);
        }
        nonces.push(nonce);
        this.pending.set(nonce, { node: peer.node, requestId: req.requestId, done });
        s.send(dgram, peer.port, peer.address, (err) => {
          if (err) this.o.log.debug({ err, peer: peer.node }, 'peer request not sent');
        });
      };
      send();
      for (let i = 1; i < SENDS; i++) timers.push(setTimeout(send, (timeoutMs * i) / SENDS));
      timers.push(setTimeout(() => done(undefined), timeoutMs));
    });
  }

  async close(): Promise<void> {
    for (const p of [...this.pending.values()]) p.done(undefined);
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private receive(msg: Buffer, rinfo: RemoteInfo): void {
    const source = `${rinfo.address}:${rinfo.port}`;
    const reject = this.rejects.reject.bind(this.rejects);
    if (msg.length > this.o.maxDatagramBytes)
      return reject('oversized', source, `${msg.length} bytes > ${this.o.maxDatagramBytes}`);
    if (!this.limiter.allow(rinfo.address)) return reject('rate-limited', source, 'too many messages');
    const opened = open(this.o.key, msg);
    if (!opened.ok) return reject(opened.reason, source, opened.detail);
    const env = opened.env;
    if (env.to !== this.o.node) return reject('wrong-recipient', source, `addressed to ${env.to}`);
    if (env.from === this.o.node) return reject('wrong-node', source, 'claims to come from this node');
    const fresh = this.replay.check(env.from, env.nonce, env.ts);
    if (fresh) return reject(fresh, source, `from ${env.from}, ts ${env.ts}`);
    if (env.t === 'req') void this.answer(env, rinfo, source);
    else this.settle(env, source);
  }

  private async answer(env: Envelope & { t: 'req' }, rinfo: RemoteInfo, source: string): Promise<void> {
    const body = PromiseRequest.safeParse(env.body);
    if (!body.success) return this.rejects.reject('malformed', source, `request: ${issues(body.error)}`);
    if (body.data.holder !== env.from)
      return this.rejects.reject('wrong-node', source, `${env.from} asks for holder ${body.data.holder}`);
    if (!this.handler) return; // not serving yet: no answer, the asker times out (and so keeps nothing)
    this.metrics.request('served');
    let ans: PromiseAnswer;
    try {
      ans = PromiseAnswer.parse(await this.handler(body.data, env.from));
    } catch (err) {
      this.o.log.error({ err, from: env.from }, 'peer handler failed: no answer sent');
      return;
    }
    if (ans.peer !== this.o.node || ans.requestId !== body.data.requestId) {
      this.o.log.error({ from: env.from }, 'peer handler answered for another node or request: not sent');
      return;
    }
    const out: Envelope = {
      t: 'ans',
      re: env.nonce,
      from: this.o.node,
      to: env.from,
      ts: this.now(),
      nonce: newNonce(),
      body: ans,
    };
    this.socket?.send(seal(this.o.key, out), rinfo.port, rinfo.address, (err) => {
      if (err) this.o.log.debug({ err, to: env.from }, 'peer answer not sent');
    });
  }

  private settle(env: Envelope & { t: 'ans' }, source: string): void {
    const p = this.pending.get(env.re);
    if (!p) return this.rejects.reject('unsolicited', source, `from ${env.from}: no request of ours waits for it`);
    if (p.node !== env.from) return this.rejects.reject('wrong-node', source, `${env.from} answers for ${p.node}`);
    const body = PromiseAnswer.safeParse(env.body);
    if (!body.success) return this.rejects.reject('malformed', source, `answer: ${issues(body.error)}`);
    if (body.data.peer !== env.from || body.data.requestId !== p.requestId)
      return this.rejects.reject('unsolicited', source, `from ${env.from}: answer names another peer or request`);
    p.done(body.data);
  }
}
