import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { parseAgentConfig } from '../config.js';
import { failsafeTiming } from '../failsafe/rules.js';
import { PeerKey } from './envelope.js';
import { RateLimiter, ReplayGuard } from './guard.js';

describe('replay guard', () => {
  it('keeps a nonce as long as its timestamp is inside the window, so a replay is refused either way', () => {
    let now = 100_000;
    const g = new ReplayGuard({ maxSkewMs: 5000 }, () => now);
    expect(g.check('node1', 'n1', now)).toBeUndefined();
    expect(g.check('node1', 'n1', now)).toBe('replay');
    expect(g.check('node3', 'n1', now)).toBeUndefined(); // nonces are per sender
    now += 4999;
    expect(g.check('node1', 'n1', now - 4999)).toBe('replay');
    now += 2000; // the message's timestamp has left the window: stale now, and its nonce may go
    expect(g.check('node1', 'n1', now - 6999)).toBe('stale');
    expect(g.check('node1', 'n2', now)).toBeUndefined();
    expect(g.size).toBe(1);
  });

  it('refuses new messages when full instead of forgetting nonces early', () => {
    const now = 1000;
    const g = new ReplayGuard({ maxSkewMs: 5000, maxEntries: 2 }, () => now);
    expect(g.check('a', 'x', now)).toBeUndefined();
    expect(g.check('a', 'y', now)).toBeUndefined();
    expect(g.check('a', 'z', now)).toBe('busy');
    expect(g.check('a', 'x', now)).toBe('replay');
  });
});

describe('rate limiter', () => {
  it('allows the burst, then the rate, per source', () => {
    let now = 0;
    const r = new RateLimiter({ ratePerSecond: 2, burst: 3 }, () => now);
    expect([1, 2, 3, 4].map(() => r.allow('a'))).toEqual([true, true, true, false]);
    expect(r.allow('b')).toBe(true);
    now += 500;
    expect([r.allow('a'), r.allow('a')]).toEqual([true, false]);
  });
});

describe('peer key and config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vw-peer-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a key file others can read, or a short secret', () => {
    const f = join(dir, 'peer.key');
    writeFileSync(f, 'x'.repeat(44));
    chmodSync(f, 0o644);
    expect(() => PeerKey.fromFile(f)).toThrow(/peer key file .* accessible by group and others.*chmod 600/);
    chmodSync(f, 0o600);
    expect(() => PeerKey.fromFile(f)).not.toThrow();
    writeFileSync(f, 'short\n');
    expect(() => PeerKey.fromFile(f)).toThrow(/5 characters: at least 32/);
  });

  it('parses agent.yaml peer:, and wants an advertise address with a wildcard listen', () => {
    const base = { node: 'n1', etcd: { endpoints: ['http://127.0.0.1:2379'] } };
    const c = parseAgentConfig({ ...base, peer: { listen: '198.18.0.1', keyFile: '/etc/vipwarden/peer.key' } });
    expect(c.peer).toMatchObject({ listen: '198.18.0.1', port: 9643, maxSkewMs: 5000 });
    expect(() => parseAgentConfig({ ...base, peer: { listen: '0.0.0.0', keyFile: '/k' } })).toThrow(/advertise/);
    expect(() => parseAgentConfig({ ...base, peer: { listen: 'lan0', keyFile: '/k' } })).toThrow(/IP address/);
  });

  it('peer: windowMs and maxKeepMs set the failsafe W and maxKeep, checked against the margins', () => {
    const base = { node: 'n1', etcd: { endpoints: ['http://127.0.0.1:2379'] } };
    const peer = { listen: '198.18.0.1', keyFile: '/k' };
    const c = parseAgentConfig({ ...base, peer: { ...peer, windowMs: 8000, maxKeepMs: 300_000 } });
    expect(failsafeTiming(c.lease, c.peer)).toMatchObject({ windowMs: 8000, maxKeepMs: 300_000 });
    expect(failsafeTiming(c.lease, {})).toMatchObject({ windowMs: 5000, maxKeepMs: 120_000 });
    // W too short to bridge a round after the lease margin and the kernel's lateness; maxKeep shorter than W.
    expect(() => parseAgentConfig({ ...base, peer: { ...peer, windowMs: 2000 } })).toThrow(/peer: .*windowMs 2000/);
    expect(() => parseAgentConfig({ ...base, peer: { ...peer, windowMs: 9000, maxKeepMs: 5000 } })).toThrow(
      /maxKeepMs 5000 is shorter than windowMs 9000/,
    );
    expect(() => parseAgentConfig({ ...base, peer: { ...peer, maxKeepMs: 900_000 } })).toThrow(/maxKeepMs/);
  });
});
