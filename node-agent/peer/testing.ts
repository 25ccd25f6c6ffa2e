// Test helpers for the peer channel: a logger that keeps its lines, a raw UDP socket that sends what an attacker
// would, and waiting for a rejection to be counted.
import { createSocket, type Socket } from 'node:dgram';
import { pino, type Logger } from 'pino';
import type { RejectReason } from './envelope.js';
import type { UdpPeerTransport } from './transport.js';

export const SECRET = 'test-secret-0123456789abcdefghijklmnopqrstuvwxyz';

export function capturingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) }), lines };
}

export interface Raw {
  socket: Socket;
  port: number;
  send(buf: Buffer, port: number): Promise<void>;
  close(): Promise<void>;
  /** Datagrams received on the raw socket (answers sent back to it). */
  received: Buffer[];
}

export async function rawSocket(address = '127.0.0.1'): Promise<Raw> {
  const socket = createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (m) => received.push(m));
  await new Promise<void>((r) => socket.bind(0, address, () => r()));
  return {
    socket,
    port: socket.address().port,
    received,
    send: (buf, port) => new Promise((r, j) => socket.send(buf, port, '127.0.0.1', (e) => (e ? j(e) : r()))),
    close: () => new Promise((r) => socket.close(() => r())),
  };
}

/** Waits (bounded) until `t` has counted `n` rejections for `reason`. */
export async function rejected(t: UdpPeerTransport, reason: RejectReason, n = 1, timeoutMs = 3000): Promise<number> {
  const end = Date.now() + timeoutMs;
  while ((t.rejects.counts.get(reason) ?? 0) < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return t.rejects.counts.get(reason) ?? 0;
}
