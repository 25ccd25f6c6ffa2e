import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { newNonce, PeerKey, seal, type Envelope } from './envelope.js';
import type { PromiseAnswer, PromiseRequest } from './messages.js';
import { capturingLogger, rawSocket, rejected, SECRET, type Raw } from './testing.js';
import { UdpPeerTransport, type UdpPeerTransportOptions } from './transport.js';

const key = PeerKey.fromSecret(SECRET);
const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0)) await o.close();
});

async function transport(node: string, over: Partial<UdpPeerTransportOptions> = {}) {
  const { log, lines } = capturingLogger();
  const t = new UdpPeerTransport({
    node,
    key,
    listen: '127.0.0.1',
    port: 0,
    maxSkewMs: 5000,
    maxDatagramBytes: 4096,
    ratePerSecond: 1000,
    burst: 1000,
    log,
    ...over,
  });
  await t.start();
  opened.push(t);
  const handler = jest.fn((req: PromiseRequest, _from: string): PromiseAnswer => ({
    peer: node,
    granted: true,
    windowMs: 3000,
    requestId: req.requestId,
  }));
  t.serve(handler);
  return { t, lines, handler };
}

async function raw(address?: string): Promise<Raw> {
  const r = await rawSocket(address);
  opened.push(r);
  return r;
}

const req = (over: Partial<PromiseRequest> = {}): PromiseRequest => ({
  holder: 'node1',
  holderLease: '7587',
  groups: [{ group: 'web', epoch: 12 }],
  requestId: `r-${newNonce()}`,
  sentAt: 1000,
  ...over,
});
const env = (over: Partial<Envelope> = {}): Envelope =>
  ({ t: 'req', from: 'node1', to: 'node2', ts: Date.now(), nonce: newNonce(), body: req(), ...over }) as Envelope;

describe('peer transport', () => {
  it('answers an authenticated request, bound to its id', async () => {
    const a = await transport('node1');
    const b = await transport('node2');
    const r = req();
    const ans = await a.t.request({ node: 'node2', address: '127.0.0.1', port: b.t.port }, r, 2000);
    expect(ans).toEqual({ peer: 'node2', granted: true, windowMs: 3000, requestId: r.requestId });
    expect(b.handler).toHaveBeenCalledWith(r, 'node1');
  });

  it('times out (undefined) when nobody answers; a peer that does not serve yet sends nothing', async () => {
    const a = await transport('node1');
    const { log } = capturingLogger();
    const mute = new UdpPeerTransport({ ...a.t['o'], node: 'node2', log });
    await mute.start();
    opened.push(mute);
    expect(await a.t.request({ node: 'node2', address: '127.0.0.1', port: mute.port }, req(), 300)).toBeUndefined();
  });

  it.each([
    ['forged MAC', () => Buffer.concat([seal(PeerKey.fromSecret('another-secret-'.repeat(4)), env())]), 'bad-mac'],
    ['flipped MAC bit', () => flip(seal(key, env()), 10), 'bad-mac'],
    ['tampered payload', () => flip(seal(key, env()), 60), 'bad-mac'],
    ['not ours at all', () => Buffer.from('hello'), 'malformed'],
    ['malformed JSON under a valid MAC', () => sealRaw('{"t":"req",'), 'malformed'],
    ['unknown envelope field', () => sealRaw(JSON.stringify({ ...env(), extra: 1 })), 'malformed'],
    ['malformed body', () => seal(key, env({ body: { holder: 'node1' } })), 'malformed'],
    ['stale timestamp', () => seal(key, env({ ts: Date.now() - 60_000 })), 'stale'],
    ['timestamp from the future', () => seal(key, env({ ts: Date.now() + 60_000 })), 'stale'],
    ['addressed to another node', () => seal(key, env({ to: 'node3' })), 'wrong-recipient'],
    ['claims to come from the receiver', () => seal(key, env({ from: 'node2' })), 'wrong-node'],
    ['holder is not the sender', () => seal(key, env({ from: 'node3', body: req({ holder: 'node1' }) })), 'wrong-node'],
    ['answer nobody asked for', () => seal(key, { ...env(), t: 'ans', re: newNonce() } as Envelope), 'unsolicited'],
  ] as const)('rejects %s, logs it, never calls the handler', async (_name, make, reason) => {
    const b = await transport('node2');
    const atk = await raw();
    await atk.send(make(), b.t.port);
    expect(await rejected(b.t, reason)).toBe(1);
    expect(b.handler).not.toHaveBeenCalled();
    expect(atk.received).toEqual([]);
    expect(b.lines.join('')).toContain(`"reason":"${reason}"`);
  });

  it('rejects an oversized datagram before anything else', async () => {
    const b = await transport('node2');
    const atk = await raw();
    await atk.send(Buffer.alloc(5000, 0x41), b.t.port);
    expect(await rejected(b.t, 'oversized')).toBe(1);
    expect(b.handler).not.toHaveBeenCalled();
  });

  it('serves a request once: the same datagram replayed is refused', async () => {
    const b = await transport('node2');
    const atk = await raw();
    const d = seal(key, env());
    await atk.send(d, b.t.port);
    await atk.send(d, b.t.port);
    await atk.send(d, b.t.port);
    expect(await rejected(b.t, 'replay', 2)).toBe(2);
    expect(b.handler).toHaveBeenCalledTimes(1);
  });

  it('refuses a replayed or re-addressed answer', async () => {
    const a = await transport('node1');
    const atk = await raw();
    // The attacker plays node2 and records what it sees: node1's request comes to the raw socket.
    const pending = a.t.request({ node: 'node2', address: '127.0.0.1', port: atk.port }, req(), 1500);
    const until = Date.now() + 2000;
    while (atk.received.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const asked = JSON.parse(atk.received[0]!.subarray(36).toString()) as Envelope;
    const body = asked.body as PromiseRequest;
    const answer = (over: Partial<Envelope>, ans: Partial<PromiseAnswer> = {}) =>
      seal(key, {
        t: 'ans',
        re: asked.nonce,
        from: 'node2',
        to: 'node1',
        ts: Date.now(),
        nonce: newNonce(),
        body: { peer: 'node2', granted: true, windowMs: 1, requestId: body.requestId, ...ans },
        ...over,
      } as Envelope);
    await atk.send(answer({ from: 'node3' }, { peer: 'node3' }), a.t.port); // another node answers: not bound to it
    await atk.send(answer({}, { requestId: 'other' }), a.t.port); // another request's id
    expect(await rejected(a.t, 'wrong-node')).toBe(1);
    expect(await rejected(a.t, 'unsolicited')).toBe(1);
    const good = answer({});
    await atk.send(good, a.t.port);
    expect(await pending).toMatchObject({ peer: 'node2', granted: true, requestId: body.requestId });
    await atk.send(good, a.t.port);
    expect(await rejected(a.t, 'replay')).toBe(1);
  });

  it('rate-limits each source before checking anything, and logs at a bounded rate', async () => {
    const b = await transport('node2', { ratePerSecond: 1, burst: 5 });
    const atk = await raw();
    for (let i = 0; i < 40; i++) await atk.send(seal(key, env()), b.t.port);
    expect(await rejected(b.t, 'rate-limited', 35)).toBe(35);
    expect(b.handler).toHaveBeenCalledTimes(5);
    const logged = b.lines.filter((l) => l.includes('"reason":"rate-limited"'));
    expect(logged).toHaveLength(1);
    expect(JSON.parse(logged[0]!)).toMatchObject({ source: expect.stringMatching(/^127\.0\.0\.1:/) });
    // Another source address still gets through.
    const other = await raw('127.0.0.2');
    await other.send(seal(key, env()), b.t.port);
    const until = Date.now() + 2000;
    while (b.handler.mock.calls.length < 6 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(b.handler).toHaveBeenCalledTimes(6);
  });
});

function flip(buf: Buffer, at: number): Buffer {
  const c = Buffer.from(buf);
  c[at]! ^= 1;
  return c;
}

function sealRaw(text: string): Buffer {
  const payload = Buffer.from(text);
  return Buffer.concat([Buffer.from('VWP1'), key.mac(payload), payload]);
}
