import http from 'node:http';
import https from 'node:https';
import type { CheckFn } from './types.js';

/** GET over a fresh connection; 2xx/3xx (or the listed codes) and the optional body substring mean ok. */
export const httpCheck: CheckFn = (spec, _deps, signal) =>
  new Promise((resolve) => {
    const h = spec.http;
    if (!h) return resolve({ ok: false, message: 'http settings missing' });
    const mod = h.scheme === 'https' ? https : http;
    const req = mod.request(
      {
        host: h.host,
        port: h.port,
        path: h.path,
        method: 'GET',
        agent: false,
        signal,
        headers: { 'user-agent': 'vipwarden-agent' },
        rejectUnauthorized: false,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body.length < 65536) body += c;
        });
        res.on('end', () => {
          const statusOk = h.expectStatus ? h.expectStatus.includes(status) : status >= 200 && status < 400;
          if (!statusOk) return resolve({ ok: false, message: `HTTP ${status}` });
          if (h.expectBody !== undefined && !body.includes(h.expectBody))
            return resolve({ ok: false, message: 'body does not contain the expected text' });
          resolve({ ok: true, message: `HTTP ${status}` });
        });
        res.on('error', (e) => resolve({ ok: false, message: e.message }));
      },
    );
    req.on('error', (e) => resolve({ ok: false, message: signal.aborted ? 'timeout' : e.message }));
    req.end();
  });
