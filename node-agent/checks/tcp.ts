import net from 'node:net';
import type { CheckFn } from './types.js';

/** A TCP connect that completes means ok. */
export const tcpCheck: CheckFn = (spec, _deps, signal) =>
  new Promise((resolve) => {
    const t = spec.tcp;
    if (!t) return resolve({ ok: false, message: 'tcp settings missing' });
    const sock = net.connect({ host: t.host, port: t.port });
    const done = (ok: boolean, message: string) => {
      sock.destroy();
      signal.removeEventListener('abort', onAbort);
      resolve({ ok, message });
    };
    const onAbort = () => done(false, 'timeout');
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => done(true, 'connected'));
    sock.once('error', (e) => done(false, e.message));
  });
