// The HTTP endpoint that agent and controller both serve: /metrics from one prom-client Registry per component,
// /healthz (the process answers), /readyz (the component says it is ready). Nothing else is served.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from './log.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * Parses "host:port" (IPv4 literal, "[IPv6]:port" or "localhost"). Port 0 picks a free port (tests).
 * Anything else is rejected with a clear message rather than guessed at.
 */
export function parseListen(listen: string): ListenAddress {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(listen) ?? /^([^:[\]]+):(\d{1,5})$/.exec(listen);
  if (!m) throw new Error(`metrics.listen must be host:port or [ipv6]:port, got "${listen}"`);
  const host = m[1]!;
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`metrics.listen: port ${port} is out of range`);
  if (host !== 'localhost' && isIP(host) === 0) throw new Error(`metrics.listen: "${host}" is not an IP address`);
  if (listen.startsWith('[') && isIP(host) !== 6)
    throw new Error(`metrics.listen: "${host}" in brackets must be an IPv6 address`);
  return { host, port };
}

export interface MetricsServerOptions {
  listen: string;
  registry: Registry;
  log: Logger;
  /** /readyz answers 200 while this returns true. Before a readiness check is bound, the component is not ready. */
  ready?: () => boolean;
}

/** Owner of the HTTP listener: `start()` binds, `stop()` closes. Nothing happens in the constructor. */
export class MetricsServer {
  private server: Server | undefined;
  private readyFn: (() => boolean) | undefined;
  private readonly addr: ListenAddress;

  constructor(private readonly opts: MetricsServerOptions) {
    this.addr = parseListen(opts.listen);
    this.readyFn = opts.ready;
  }

  /** Binds the readiness check once the component exists (it is built after the server starts). */
  setReady(fn: () => boolean): void {
    this.readyFn = fn;
  }

  /** The bound address (the real port when 0 was asked for). */
  address(): ListenAddress {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new Error('the metrics server is not listening');
    return { host: a.address, port: a.port };
  }

  async start(): Promise<ListenAddress> {
    if (this.server) return this.address();
    const server = createServer((req, res) => void this.handle(req, res));
    // Scrapes are short; an idle keep-alive connection must not hold stop() up.
    server.keepAliveTimeout = 5000;
    server.requestTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.addr.port, this.addr.host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new Error(
        `metrics: cannot listen on ${this.opts.listen}: ${err instanceof Error ? err.message : String(err)}`,
      );
    });
    server.on('error', (err) => this.opts.log.error({ err }, 'metrics server error'));
    this.server = server;
    const a = this.address();
    this.opts.log.info({ listen: `${a.host}:${a.port}` }, 'serving /metrics, /healthz and /readyz');
    return a;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return send(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
      switch (path) {
        case '/metrics': {
          const body = await this.opts.registry.metrics();
          return send(res, 200, body, { 'content-type': this.opts.registry.contentType });
        }
        case '/healthz':
          return send(res, 200, 'ok\n');
        case '/readyz': {
          let ready = false;
          try {
            ready = this.readyFn?.() ?? false;
          } catch (err) {
            this.opts.log.warn({ err }, 'readiness check threw');
          }
          return send(res, ready ? 200 : 503, ready ? 'ready\n' : 'not ready\n');
        }
        default:
          return send(res, 404, 'not found\n');
      }
    } catch (err) {
      this.opts.log.warn({ err, path }, 'metrics request failed');
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    }
  }
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
