// A fake of the etcd lease API for unit tests (LeaseKeeper, Election): grants, keepalive streams answered by hand.
// Time is jest's fake Date.now().
import { afterEach, beforeEach, jest } from '@jest/globals';
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';

export class FakeStream extends EventEmitter {
  /** Send time (fake Date.now()) and lease id of each keepalive written. */
  readonly sent: { at: number; id: string }[] = [];
  ended = false;
  failWrites = false;
  write(req: { ID: string }): void {
    if (this.failWrites) throw new Error('stream closed');
    this.sent.push({ at: Date.now(), id: req.ID });
  }
  end(): void {
    this.ended = true;
  }
  answer(id: string, ttl: number): void {
    this.emit('data', { ID: id, TTL: String(ttl) });
  }
}

export function fakeEtcd(ttlSeconds: number) {
  let nextId = 1;
  const streams: FakeStream[] = [];
  const grants: number[] = [];
  const revoked: string[] = [];
  let failGrants = 0;
  let failRevokes = 0;
  let grantGate: Promise<void> | undefined;
  const leaseClient = {
    leaseGrant: async (req: { TTL: number }) => {
      grants.push(Date.now());
      if (failGrants > 0) {
        failGrants--;
        throw new Error('unavailable');
      }
      if (req.TTL !== ttlSeconds) throw new Error(`grant asked for TTL ${req.TTL}, not ${ttlSeconds}`);
      const gate = grantGate;
      grantGate = undefined;
      if (gate) await gate;
      return { ID: String(nextId++), TTL: String(ttlSeconds) };
    },
    leaseKeepAlive: async () => {
      const s = new FakeStream();
      streams.push(s);
      return s;
    },
    leaseRevoke: async (req: { ID: string }) => {
      if (failRevokes > 0) {
        failRevokes--;
        throw new Error('unavailable');
      }
      revoked.push(req.ID);
      return {};
    },
  };
  return {
    client: { leaseClient } as unknown as Etcd3,
    streams,
    grants,
    /** Lease ids revoked, in order. */
    revoked,
    failNextGrants(n: number) {
      failGrants = n;
    },
    failNextRevokes(n: number) {
      failRevokes = n;
    },
    /** The next grant is answered only when the returned function is called. */
    holdNextGrant(): () => void {
      let release!: () => void;
      grantGate = new Promise<void>((r) => (release = r));
      return release;
    },
    last(): FakeStream {
      const s = streams[streams.length - 1];
      if (!s) throw new Error('no stream opened yet');
      return s;
    },
  };
}

/**
 * jest's fake timers from `now` for every test of the file (Date.now() is the monotonic clock), and an
 * AbortController per test, aborted after it. Returns accessors for the current test's.
 */
export function useFakeLeaseTime(now: number): { signal: () => AbortSignal; advance: (ms: number) => Promise<void> } {
  let ac = new AbortController();
  beforeEach(() => {
    jest.useFakeTimers({ now, doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    ac = new AbortController();
  });
  afterEach(() => {
    ac.abort();
    jest.useRealTimers();
  });
  return { signal: () => ac.signal, advance: async (ms) => void (await jest.advanceTimersByTimeAsync(ms)) };
}
