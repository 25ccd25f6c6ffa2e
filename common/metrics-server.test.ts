import { Counter, Registry } from 'prom-client';
import { silentLogger } from './log.js';
import { MetricsServer, parseListen } from './metrics-server.js';

describe('parseListen', () => {
  it.each([
    ['127.0.0.1:9641', { host: '127.0.0.1', port: 9641 }],
    ['[::1]:9642', { host: '::1', port: 9642 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['0.0.0.0:80', { host: '0.0.0.0', port: 80 }],
  ])('accepts %s', (listen, want) => {
    expect(parseListen(listen)).toEqual(want);
  });

  it.each([
    '9641',
    ':9641',
    '127.0.0.1',
    '127.0.0.1:99999',
    'example.com:9641',
    '[127.0.0.1]:80',
    '::1:9641',
    '127.0.0.1:x',
  ])('rejects %s', (listen) => {
    expect(() => parseListen(listen)).toThrow(/metrics\.listen/);
  });
});

describe('MetricsServer', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  async function get(path: string, method = 'GET'): Promise<{ status: number; body: string; type: string | null }> {
    const a = server!.address();
    const res = await fetch(`http://${a.host}:${a.port}${path}`, { method, signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
  }

  it('serves /metrics from the given registry, /healthz, and /readyz from the bound check', async () => {
    const registry = new Registry();
    const c = new Counter({ name: 'vipwarden_test_total', help: 'test', registers: [registry] });
    c.inc(3);
    let ready = false;
    server = new MetricsServer({ listen: '127.0.0.1:0', registry, log: silentLogger() });
    await server.start();

    const m = await get('/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toContain('text/plain');
    expect(m.body).toContain('vipwarden_test_total 3');

    expect((await get('/healthz')).status).toBe(200);
    // No readiness bound yet: not ready.
    expect((await get('/readyz')).status).toBe(503);
    server.setReady(() => ready);
    expect((await get('/readyz')).status).toBe(503);
    ready = true;
    expect(await get('/readyz')).toMatchObject({ status: 200, body: 'ready\n' });
    expect((await get('/nothing')).status).toBe(404);
    expect((await get('/metrics', 'POST')).status).toBe(405);
    expect(await get('/healthz', 'HEAD')).toMatchObject({ status: 200, body: '' });
  });

  it('answers 503 when the readiness check throws', async () => {
    server = new MetricsServer({
      listen: '127.0.0.1:0',
      registry: new Registry(),
      log: silentLogger(),
      ready: () => {
        throw new Error('boom');
      },
    });
    await server.start();
    expect((await get('/readyz')).status).toBe(503);
  });

  it('says which address it could not bind', async () => {
    server = new MetricsServer({ listen: '127.0.0.1:0', registry: new Registry(), log: silentLogger() });
    const a = await server.start();
    const second = new MetricsServer({ listen: `127.0.0.1:${a.port}`, registry: new Registry(), log: silentLogger() });
    await expect(second.start()).rejects.toThrow(`cannot listen on 127.0.0.1:${a.port}`);
  });

  it('stops even with a keep-alive connection open, and stop is safe to repeat', async () => {
    server = new MetricsServer({ listen: '127.0.0.1:0', registry: new Registry(), log: silentLogger() });
    await server.start();
    await get('/healthz');
    await server.stop();
    await server.stop();
    expect(() => server!.address()).toThrow(/not listening/);
  });
});
