// The failsafe peer channel (issue 12, issue 10 item 7) with two real transports on loopback, started the way the
// agent starts them (node-agent/peer/start.ts: key file from disk, permission check, metrics on the agent's
// registry): a request is answered; forged, replayed, re-addressed and malformed datagrams are rejected, logged and
// counted, and the handler is never called for any of them. And the node record publishes the peer address.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { Registry } from 'prom-client';
import { realClock } from '../../common/clock.js';
import { connectEtcd } from '../../common/etcd.js';
import { decode, Keys, NodeRecord } from '../../common/keyspace.js';
import { silentLogger } from '../../common/log.js';
import { parseAgentConfig } from '../../node-agent/config.js';
import { newNonce, PeerKey, seal, type Envelope } from '../../node-agent/peer/envelope.js';
import type { PromiseRequest } from '../../node-agent/peer/messages.js';
import { startPeerChannel } from '../../node-agent/peer/start.js';
import { capturingLogger, rawSocket, rejected, SECRET, type Raw } from '../../node-agent/peer/testing.js';
import type { UdpPeerTransport } from '../../node-agent/peer/transport.js';
import { NodeRegistration } from '../../node-agent/registration.js';
import { startEtcd } from '../harness/etcd.js';

jest.setTimeout(60_000);

let dir: string;
let keyFile: string;
const peers: { t: UdpPeerTransport; lines: string[]; registry: Registry; calls: PromiseRequest[] }[] = [];
let atk: Raw;

const config = (node: string, port: number) =>
  parseAgentConfig({
    node,
    etcd: { endpoints: ['http://127.0.0.1:2379'] },
    peer: { listen: '127.0.0.1', port, keyFile },
  });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vw-peer-it-'));
  keyFile = join(dir, 'peer.key');
  writeFileSync(keyFile, `${SECRET}\n`, { mode: 0o600 });
  for (const node of ['node1', 'node2']) {
    const { log, lines } = capturingLogger();
    const registry = new Registry();
    const c = config(node, 1);
    const t = await startPeerChannel({ node, peer: { ...c.peer!, port: 0 }, log, registry });
    const calls: PromiseRequest[] = [];
    peers.push({ t, lines, registry, calls });
  }
  atk = await rawSocket();
});
afterAll(async () => {
  for (const p of peers) await p.t.close();
  await atk?.close();
  rmSync(dir, { recursive: true, force: true });
});

const req = (): PromiseRequest => ({
  holder: 'node1',
  holderLease: '694d8d5d3c1a0b11',
  groups: [{ group: 'web', epoch: 42 }],
  requestId: `it-${newNonce()}`,
  sentAt: realClock.mono(),
});

describe('peer channel between two agents', () => {
  test('a refusing default until the failsafe rules serve; then a request is answered, bound to its id', async () => {
    const [a, b] = peers as [(typeof peers)[0], (typeof peers)[0]];
    const to = { node: 'node2', address: '127.0.0.1', port: b.t.port };
    const r0 = req();
    expect(await a.t.request(to, r0, 2000)).toEqual({
      peer: 'node2',
      granted: false,
      windowMs: 0,
      reason: 'notFailsafe',
      requestId: r0.requestId,
    });
    b.t.serve((r) => {
      b.calls.push(r);
      return { peer: 'node2', granted: true, windowMs: 4000, requestId: r.requestId };
    });
    const r = req();
    expect(await a.t.request(to, r, 2000)).toMatchObject({ granted: true, requestId: r.requestId });
    expect(b.calls).toEqual([r]);
    expect(await b.registry.metrics()).toMatch(/vipwarden_peer_requests_total\{kind="served"\} 2/);
    expect(await a.registry.metrics()).toMatch(/vipwarden_peer_requests_total\{kind="answered"\} 2/);
  });

  test('forged, replayed, re-addressed and malformed messages: rejected, logged, counted, nothing served', async () => {
    const b = peers[1]!;
    const before = b.calls.length;
    const key = PeerKey.fromSecret(SECRET);
    const env = (over: Partial<Envelope> = {}) =>
      ({ t: 'req', from: 'node1', to: 'node2', ts: Date.now(), nonce: newNonce(), body: req(), ...over }) as Envelope;
    const captured = seal(key, env());
    await atk.send(captured, b.t.port); // a message captured on the LAN reaches node2 once...
    const attacks: [string, Buffer][] = [
      ['replay', captured], // ...and is replayed
      ['bad-mac', seal(PeerKey.fromSecret('a-guessed-secret-'.repeat(3)), env())],
      ['malformed', Buffer.from('{"t":"req","from":"node1"}')],
      ['malformed', seal(key, env({ body: { holder: 'node1', groups: 'all' } }))],
      ['stale', seal(key, env({ ts: Date.now() - 3_600_000 }))],
      ['wrong-recipient', seal(key, env({ to: 'node3' }))],
      ['wrong-node', seal(key, env({ from: 'node3' }))], // node3 asking for node1's groups
      ['oversized', Buffer.alloc(20_000, 0x7b)],
    ];
    for (const [, d] of attacks) await atk.send(d, b.t.port);
    for (const reason of new Set(attacks.map(([r]) => r))) {
      const n = attacks.filter(([r]) => r === reason).length;
      expect([reason, await rejected(b.t, reason as never, n)]).toEqual([reason, n]);
      expect(b.lines.join('')).toContain(`"reason":"${reason}"`);
      expect(await b.registry.metrics()).toContain(`vipwarden_peer_rejected_total{reason="${reason}"} ${n}`);
    }
    // Only the one genuine delivery was served; none of the attacks got an answer back.
    expect(b.calls.length).toBe(before + 1);
    await new Promise((r) => setTimeout(r, 200));
    expect(atk.received.length).toBe(1);
  });
});

test('the node record publishes the peer address', async () => {
  const etcd = await startEtcd({ members: 1 });
  const client = connectEtcd(etcd.clientConfig());
  try {
    const keys = new Keys('/peer-it/');
    const c = { ...config('node1', 9643), peer: { ...config('node1', 9643).peer!, advertise: '127.0.0.2' } };
    const reg = new NodeRegistration({ client, keys, config: c, clock: realClock, log: silentLogger(), version: 't' });
    const lease = await client.leaseClient.leaseGrant({ TTL: 5, ID: 0 });
    await reg.register(String(lease.ID));
    const rec = decode(NodeRecord, await client.get(keys.node('node1')).string());
    expect(rec?.peer).toEqual({ address: '127.0.0.2', port: 9643 });
  } finally {
    client.close();
    await etcd.stop();
  }
});
