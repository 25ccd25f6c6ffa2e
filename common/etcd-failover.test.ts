// Unit tests for common/etcd-failover.ts: the member order on an injected clock, and the wiring into a fake of
// etcd3's connection pool (the same shape as node_modules/etcd3/lib/connection-pool.js with no-op host policies:
// withConnection uses the first host its generator yields and fails when the call fails).
import { describe, expect, test } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { GRPCDeadlineExceededError, GRPCUnavailableError, EtcdError, type Etcd3 } from 'etcd3';
import {
  EndpointOrder,
  installFailover,
  isTransportError,
  memberOfStream,
  neverSent,
  streamStuck,
} from './etcd-failover.js';

const HOSTS = ['10.0.0.1:2379', '10.0.0.2:2379', '10.0.0.3:2379'];
const [A, B, C] = HOSTS as [string, string, string];

describe('EndpointOrder', () => {
  test('sticks to the member that answered; a failed one goes to the back until its cool-down ends', () => {
    let t = 0;
    const o = new EndpointOrder(HOSTS, () => t, 5000);
    expect(o.order()).toEqual([A, B, C]);
    o.ok(B);
    expect(o.order()).toEqual([B, C, A]);
    o.failed(B);
    expect(o.preferred()).toBe(C);
    expect(o.order()).toEqual([C, A, B]);
    t = 1000;
    o.failed(C);
    // Both failed: the one that failed longest ago first, after every member in good standing.
    expect(o.order()).toEqual([A, B, C]);
    t = 5500; // B's cool-down is over, C's is not
    expect(o.order()).toEqual([A, B, C]);
    o.ok(C);
    expect(o.order()).toEqual([C, A, B]);
  });

  test('every member failed: still all of them, oldest failure first (nothing is ever left out)', () => {
    let t = 0;
    const o = new EndpointOrder(HOSTS, () => t);
    for (const h of [C, A, B]) {
      o.failed(h);
      t += 10;
    }
    expect(o.order()).toEqual([C, A, B]);
  });
});

describe('error classes', () => {
  test('transport errors, and those whose request never left', () => {
    const refused = new GRPCUnavailableError(
      '14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED',
    );
    const dropped = new GRPCUnavailableError('14 UNAVAILABLE: Connection dropped');
    const deadline = new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded');
    expect([refused, dropped, deadline].map(isTransportError)).toEqual([true, true, true]);
    // gRPC's own errors, as streams emit them (the bug that kept a keepalive stream on a dead member).
    const raw = Object.assign(
      new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED'),
      {
        code: 14,
      },
    );
    expect([isTransportError(raw), neverSent(raw)]).toEqual([true, true]);
    expect(isTransportError(new Error('14 UNAVAILABLE: etcdserver: no leader'))).toBe(true);
    expect([refused, dropped, deadline].map(neverSent)).toEqual([true, false, false]);
    // An answer of etcd's is no fault of the member.
    expect(isTransportError(new EtcdError('etcdserver: permission denied'))).toBe(false);
    expect(neverSent(new Error('connect ECONNREFUSED'))).toBe(false);
  });
});

// ---- wiring ----

interface FakeHost {
  host: string;
  resets: number;
  resetAllServices(): void;
}

function fakeClient(behave: (host: string) => 'refused' | 'deadline' | 'ok' | 'stream') {
  const hosts: FakeHost[] = HOSTS.map((h) => ({
    host: h,
    resets: 0,
    resetAllServices() {
      this.resets++;
    },
  }));
  const calls: string[] = [];
  function* everyHost(): Generator<FakeHost> {
    for (;;) yield* hosts;
  }
  const pool = {
    hosts,
    shuffledHosts: everyHost,
    async withConnection(_service: string, fn: (c: unknown) => unknown, gen: Iterator<FakeHost> = everyHost()) {
      const host = gen.next().value as FakeHost;
      return fn({ resource: host, client: host.host, metadata: {} });
    },
  };
  const run = (c: { client: unknown }) => {
    const h = c.client as string;
    calls.push(h);
    const b = behave(h);
    if (b === 'stream') return new EventEmitter();
    return Promise.resolve().then(() => {
      if (b === 'refused')
        throw new GRPCUnavailableError('No connection established. Last error: connect ECONNREFUSED');
      if (b === 'deadline') throw new GRPCDeadlineExceededError('Deadline exceeded');
      return `answer from ${h}`;
    });
  };
  const client = { pool } as unknown as Etcd3;
  const call = () => (pool.withConnection as (s: string, fn: typeof run) => Promise<unknown>)('KV', run);
  return { client, pool, calls, call };
}

describe('installFailover', () => {
  test('a refused connection is tried on the next member at once, which then gets every call', async () => {
    const dead = new Set([A]);
    const f = fakeClient((h) => (dead.has(h) ? 'refused' : 'ok'));
    const order = installFailover(f.client, () => 0);
    expect(await f.call()).toBe(`answer from ${B}`);
    expect(f.calls).toEqual([A, B]);
    expect(order.preferred()).toBe(B);
    expect(await f.call()).toBe(`answer from ${B}`);
    expect(f.calls).toEqual([A, B, B]);
  });

  test('a call that may have reached the server is not sent again; its member goes to the back', async () => {
    const f = fakeClient((h) => (h === A ? 'deadline' : 'ok'));
    const order = installFailover(f.client, () => 0);
    await expect(f.call()).rejects.toBeInstanceOf(GRPCDeadlineExceededError);
    expect(f.calls).toEqual([A]);
    expect(order.order()[0]).toBe(B);
    expect(await f.call()).toBe(`answer from ${B}`);
  });

  test('every member refused: the last error, each tried once', async () => {
    const f = fakeClient(() => 'refused');
    installFailover(f.client, () => 0);
    await expect(f.call()).rejects.toBeInstanceOf(GRPCUnavailableError);
    expect(f.calls).toEqual([A, B, C]);
  });

  test('streams: a transport error or a stream found stuck sends the next stream to another member', async () => {
    const f = fakeClient(() => 'stream');
    const order = installFailover(f.client, () => 0);
    const s1 = (await f.call()) as EventEmitter;
    expect(memberOfStream(s1)).toBe(A);
    s1.emit('data', {});
    s1.emit('error', Object.assign(new Error('14 UNAVAILABLE: Connection dropped'), { code: 14 }));
    const s2 = (await f.call()) as EventEmitter;
    expect(memberOfStream(s2)).toBe(B);
    s2.emit('data', {});
    expect(order.preferred()).toBe(B);
    // No error, no answers (a frozen or leaderless member): the caller says so.
    expect(streamStuck(f.client, s2)).toBe(B);
    const s3 = (await f.call()) as EventEmitter;
    expect(memberOfStream(s3)).toBe(C);
  });
});
