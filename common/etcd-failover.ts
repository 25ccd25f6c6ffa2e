// Which etcd member a client talks to, and moving to a live one at once.
//
// etcd3 1.1.x (node_modules/etcd3/lib/connection-pool.js) picks a host for every call and every stream from a fresh
// random shuffle, and with our no-op fault handling (common/etcd.ts) a call that fails on its host fails: it is not
// tried on the next one. So after a member dies, each new call or stream has a 1 in N chance of going to the dead
// member again, and a stream that hangs on a frozen or leaderless member is re-dialed at random, possibly on the same
// member, whose cached gRPC channel still looks connected. Here instead:
//   - every call and stream goes to one member, the last that answered (sticky), while it answers;
//   - a member on which a call or stream failed at the transport (UNAVAILABLE, a deadline, or a stream the caller
//     found stuck) goes to the back of the order, the others first;
//   - a call whose connection could not even be made (connection refused, no route: the request never left) is
//     tried on the next member at once, within the same call. Nothing that may have reached a server is sent twice.
import { castGrpcError, GRPCDeadlineExceededError, isRecoverableError, type Etcd3 } from 'etcd3';

/** The member order of one client: pure bookkeeping on an injected clock. */
export class EndpointOrder {
  private readonly failedAt = new Map<string, number>();
  private current: string;

  constructor(
    readonly hosts: readonly string[],
    private readonly now: () => number,
    /** How long a failed member stays behind the others (it is still tried when every other one failed too). */
    private readonly coolDownMs = 5000,
  ) {
    if (hosts.length === 0) throw new Error('EndpointOrder: no hosts');
    this.current = hosts[0] as string;
  }

  /** The members to try, best first: the current one unless it failed recently, then the others in rotation. */
  order(): string[] {
    const t = this.now();
    const i = this.hosts.indexOf(this.current);
    const rotation = [...this.hosts.slice(i), ...this.hosts.slice(0, i)];
    const recent = (h: string) => {
      const f = this.failedAt.get(h);
      return f !== undefined && t - f < this.coolDownMs;
    };
    const good = rotation.filter((h) => !recent(h));
    // Of the members that failed recently, the one that failed longest ago first.
    const bad = rotation.filter(recent).sort((a, b) => (this.failedAt.get(a) ?? 0) - (this.failedAt.get(b) ?? 0));
    return [...good, ...bad];
  }

  /** The member that answered last (where calls go while it keeps answering). */
  preferred(): string {
    return this.current;
  }

  ok(host: string): void {
    this.failedAt.delete(host);
    this.current = host;
  }

  failed(host: string): void {
    this.failedAt.set(host, this.now());
    if (this.current === host) {
      const next = this.order()[0];
      if (next !== undefined) this.current = next;
    }
  }
}

/**
 * A transport failure of the member (not an answer of etcd's, such as a failed compare or a permission error).
 * Streams emit gRPC's own errors (a plain Error with a status code), calls etcd3's typed ones: both count.
 */
export function isTransportError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const e = castGrpcError(err);
  // A member without a leader cannot serve; another one may have one (this one may be cut from the quorum).
  const leaderless = /etcdserver: (no leader|leader changed|request timed out)/.test(e.message);
  return isRecoverableError(e) || e instanceof GRPCDeadlineExceededError || leaderless;
}

/** The connection could not be made: the request never reached any server, so it may go to another one. */
export function neverSent(err: unknown): boolean {
  return (
    isTransportError(err) &&
    /No connection established|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ECONNRESET before|Failed to connect/i.test(
      (err as Error).message,
    )
  );
}

// ---- wiring into etcd3's connection pool ----

interface PoolHost {
  host: string;
  resetAllServices(): void;
}
type ConnFn = (c: { resource: PoolHost; client: unknown; metadata: unknown }) => unknown;
interface Pool {
  hosts: PoolHost[];
  withConnection(service: string, fn: ConnFn, gen?: Iterator<PoolHost>): Promise<unknown>;
  shuffledHosts(): Iterator<PoolHost>;
}

interface StreamLike {
  on(event: string, fn: (...args: unknown[]) => void): unknown;
  once?(event: string, fn: (...args: unknown[]) => void): unknown;
}

const orders = new WeakMap<Etcd3, EndpointOrder>();
const streamHosts = new WeakMap<object, string>();

/** The order a client follows (for logs and tests); undefined for a client not set up by connectEtcd. */
export function endpointOrderOf(client: Etcd3): EndpointOrder | undefined {
  return orders.get(client);
}

/** The member a stream of this client was opened on. */
export function memberOfStream(stream: object): string | undefined {
  return streamHosts.get(stream);
}

/**
 * The caller found a stream stuck (no answer in time) on a member that did not report an error: the member goes to
 * the back of the order so that the stream is opened again elsewhere. Returns the member, if known.
 */
export function streamStuck(client: Etcd3, stream: object): string | undefined {
  const host = streamHosts.get(stream);
  if (host !== undefined) orders.get(client)?.failed(host);
  return host;
}

/**
 * Closes every gRPC channel of the client, so that the next call or stream dials afresh (the channels have their own
 * subchannels: common/etcd.ts). For a stream left on a connection from before a partition healed: a connect that
 * hangs in SYN retransmits, or an open connection whose segments TCP retransmits only at its next timeout (up to a
 * minute or two later), while a new connection works at once.
 */
export function redialAll(client: Etcd3): void {
  for (const h of (client as unknown as { pool: Pool }).pool.hosts) h.resetAllServices();
  // Closing a channel leaves the calls already started on its connection running: the watch stream, which every
  // watch of the client shares, is ended by hand (etcd3 opens it again after its backoff, on a new channel, and
  // its watchers see "disconnected" and list again).
  const wm = (client as unknown as { watchManager?: { state: number; handleError(err: Error): void } }).watchManager;
  if (wm?.state === WATCH_MANAGER_CONNECTED) wm.handleError(new Error('etcd: redialing'));
}

/** etcd3 1.1.x WatchManager's State.Connected (node_modules/etcd3/lib/watch.js). */
const WATCH_MANAGER_CONNECTED = 2;

function* repeat(h: PoolHost): Iterator<PoolHost> {
  for (;;) yield h;
}

/** Makes the client follow an EndpointOrder (see the top of this file). Returns the order. */
export function installFailover(client: Etcd3, now: () => number = () => performance.now()): EndpointOrder {
  const pool = (client as unknown as { pool: Pool }).pool;
  const byName = new Map(pool.hosts.map((h) => [h.host, h]));
  const order = new EndpointOrder(
    pool.hosts.map((h) => h.host),
    now,
  );
  orders.set(client, order);
  const original = pool.withConnection.bind(pool);
  pool.shuffledHosts = function* () {
    for (;;) for (const h of order.order()) yield byName.get(h) as PoolHost;
  };
  const observe = (host: string, res: unknown): unknown => {
    if (res instanceof Promise) {
      return res.then(
        (v) => {
          order.ok(host);
          return v;
        },
        (err: unknown) => {
          if (isTransportError(err)) order.failed(host);
          throw err;
        },
      );
    }
    const s = res as StreamLike | undefined;
    if (s && typeof s.on === 'function') {
      streamHosts.set(s, host);
      let answered = false;
      s.on('data', () => {
        if (!answered) order.ok(host);
        answered = true;
      });
      s.on('error', (err) => {
        if (isTransportError(err)) order.failed(host);
      });
    }
    return res;
  };
  pool.withConnection = async (service, fn) => {
    const hosts = order.order();
    let last: unknown;
    for (const name of hosts) {
      const host = byName.get(name) as PoolHost;
      try {
        // With no-op host policies the pool uses exactly the first host it is given (and fails if the call fails).
        return await original(service, (c) => observe(name, fn(c)), repeat(host));
      } catch (err) {
        last = err;
        if (!neverSent(err)) throw err;
      }
    }
    throw last;
  };
  return order;
}
