// A local stand-in for the DigitalOcean API (floating / reserved IPs and their actions) and the droplet metadata
// service, on 127.0.0.1. It checks every request against what DigitalOcean documents (method, path, auth header,
// content type, body) and records what does not fit as a violation, so that a test can assert there were none.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeAction {
  id: number;
  status: 'in-progress' | 'completed' | 'errored';
  dropletId: number;
  ip: string;
  /** Polls left before it completes. */
  pollsLeft: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  auth: string | undefined;
  contentType: string | undefined;
  body: string;
}

export interface FakeDigitalOcean {
  readonly url: string;
  readonly token: string;
  /** Floating IP -> droplet id (null: unassigned). */
  readonly ips: Map<string, number | null>;
  readonly requests: RecordedRequest[];
  readonly violations: string[];
  readonly actions: Map<number, FakeAction>;
  /** The droplet id that the metadata service reports. */
  metadataDropletId: number;
  /** Polls before an action completes (default 1). */
  pollsPerAction: number;
  /** Status codes to answer the next API requests with, one per request, before normal service. */
  failNext: { status: number; retryAfter?: string }[];
  /** The next assign action ends "errored" instead of completing. */
  errorNextAction: boolean;
  /** Runs after the request is recorded and validated, before the answer (to change state in between). */
  onRequest?: (r: RecordedRequest) => void;
  /**
   * Replays a late call: another droplet's assign of `ip` (an old holder's retry the API ran late) lands `delayMs`
   * after the next assign action of `ip` completes. Resolves once it has landed, with performance.now() at landing
   * (a loaded machine may run the caller's continuation after the agent has already fixed the IP again).
   */
  replayLateAssign(ip: string, dropletId: number, delayMs?: number): Promise<number>;
  /** API requests (not metadata), by method and path kind. */
  count(kind: 'get-ip' | 'post-action' | 'get-action' | 'metadata'): number;
  close(): Promise<void>;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export async function startFakeDigitalOcean(
  opts: { token?: string; ips?: Record<string, number | null>; dropletId?: number } = {},
): Promise<FakeDigitalOcean> {
  const token = opts.token ?? 'dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
  const ips = new Map<string, number | null>(Object.entries(opts.ips ?? {}));
  const requests: RecordedRequest[] = [];
  const violations: string[] = [];
  const actions = new Map<number, FakeAction>();
  let nextActionId = 72531856;
  const late: { ip: string; dropletId: number; delayMs: number; landed: (at: number) => void }[] = [];
  const timers = new Set<NodeJS.Timeout>();
  /** An assign that the API runs now, as if its POST had been made earlier by `dropletId`. */
  const land = (ip: string, dropletId: number) => {
    actions.set(nextActionId, { id: nextActionId, status: 'completed', dropletId, ip, pollsLeft: 0 });
    nextActionId++;
    ips.set(ip, dropletId);
  };
  const completed = (a: FakeAction) => {
    const i = late.findIndex((l) => l.ip === a.ip && l.dropletId !== a.dropletId);
    if (i < 0) return;
    const [l] = late.splice(i, 1);
    const t = setTimeout(() => {
      timers.delete(t);
      land(l!.ip, l!.dropletId);
      l!.landed(performance.now());
    }, l!.delayMs);
    timers.add(t);
  };

  const state = {
    metadataDropletId: opts.dropletId ?? 3164494,
    pollsPerAction: 1,
    failNext: [] as { status: number; retryAfter?: string }[],
    errorNextAction: false,
    onRequest: undefined as ((r: RecordedRequest) => void) | undefined,
  };

  const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
      ...headers,
    });
    res.end(text);
  };
  const ipObject = (field: string, ip: string) => {
    const d = ips.get(ip) ?? null;
    return {
      [field]: {
        ip,
        region: { name: 'New York 3', slug: 'nyc3', available: true },
        droplet: d === null ? null : { id: d, name: `droplet-${d}`, status: 'active' },
        locked: [...actions.values()].some((a) => a.ip === ip && a.status === 'in-progress'),
        project_id: '746c6152-2fa2-11ed-92d3-27aaa54e4988',
      },
      links: {},
    };
  };
  const actionObject = (a: FakeAction) => ({
    action: {
      id: a.id,
      status: a.status,
      type: 'assign_ip',
      started_at: new Date().toISOString(),
      completed_at: a.status === 'completed' ? new Date().toISOString() : null,
      resource_id: 758604968,
      resource_type: 'floating_ip',
      region_slug: 'nyc3',
    },
  });

  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const r: RecordedRequest = {
        method: req.method ?? '',
        path: url.pathname,
        auth: req.headers.authorization,
        contentType: req.headers['content-type'],
        body,
      };
      requests.push(r);
      const bad = (why: string, status = 400) => {
        violations.push(`${r.method} ${r.path}: ${why}`);
        send(res, status, { id: 'bad_request', message: why });
      };

      if (r.path === '/metadata/v1/id') {
        if (r.method !== 'GET') return bad('metadata is read with GET', 405);
        if (r.auth !== undefined) return bad('the API token must not be sent to the metadata service');
        state.onRequest?.(r);
        return send(res, 200, String(state.metadataDropletId));
      }

      const m = /^\/v2\/(floating_ips|reserved_ips)\/([^/]+)(\/actions(?:\/(\d+))?)?$/.exec(r.path);
      if (!m) return bad('not a documented floating / reserved IP endpoint', 404);
      const [, kind, ip, actionsPart, actionId] = m;
      const field = kind === 'reserved_ips' ? 'reserved_ip' : 'floating_ip';
      if (!IPV4.test(ip!)) return bad('the floating IP in the path must be an IPv4 address', 404);
      if (r.auth !== `Bearer ${token}`)
        return send(res, 401, { id: 'unauthorized', message: 'Unable to authenticate you.' });
      if (url.search !== '') return bad('unexpected query string');
      if (r.method === 'GET' && body !== '') return bad('GET with a body');
      if (r.method === 'POST' && !/^application\/json\b/.test(r.contentType ?? ''))
        return bad('POST needs Content-Type: application/json');
      const okShape =
        (r.method === 'GET' && !actionsPart) ||
        (r.method === 'POST' && actionsPart && !actionId) ||
        (r.method === 'GET' && actionsPart);
      if (!okShape) return bad(`${r.method} is not documented for this path`, 405);
      state.onRequest?.(r);
      const fail = state.failNext.shift();
      if (fail) {
        return send(
          res,
          fail.status,
          { id: fail.status === 429 ? 'too_many_requests' : 'server_error', message: 'injected' },
          fail.retryAfter ? { 'retry-after': fail.retryAfter } : {},
        );
      }
      if (!ips.has(ip!))
        return send(res, 404, { id: 'not_found', message: 'The resource you were accessing could not be found.' });

      if (r.method === 'GET' && !actionsPart) return send(res, 200, ipObject(field, ip!));
      if (r.method === 'POST') {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body);
        } catch {
          return bad('body is not JSON');
        }
        const p = parsed as Record<string, unknown>;
        const keys = Object.keys(p).sort().join(',');
        if (p.type !== 'assign' || keys !== 'droplet_id,type')
          return bad(`body must be {"type":"assign","droplet_id":N}, got ${body}`, 422);
        if (typeof p.droplet_id !== 'number' || !Number.isInteger(p.droplet_id) || p.droplet_id <= 0)
          return bad('droplet_id must be a positive integer', 422);
        if ([...actions.values()].some((a) => a.ip === ip && a.status === 'in-progress'))
          return send(res, 422, { id: 'unprocessable_entity', message: 'Floating IP already has a pending event.' });
        const a: FakeAction = {
          id: nextActionId++,
          status: 'in-progress',
          dropletId: p.droplet_id,
          ip: ip!,
          pollsLeft: state.pollsPerAction,
        };
        if (state.errorNextAction) {
          state.errorNextAction = false;
          a.pollsLeft = -1;
        }
        actions.set(a.id, a);
        return send(res, 201, actionObject(a));
      }
      const a = actions.get(Number(actionId));
      if (!a || a.ip !== ip)
        return send(res, 404, { id: 'not_found', message: 'The resource you were accessing could not be found.' });
      if (a.status === 'in-progress') {
        if (a.pollsLeft < 0) a.status = 'errored';
        else if (--a.pollsLeft <= 0) {
          a.status = 'completed';
          ips.set(a.ip, a.dropletId);
          completed(a);
        }
      }
      return send(res, 200, actionObject(a));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  // The settable fields are `state` itself: what a test sets is what the handlers read.
  const handle: Omit<FakeDigitalOcean, keyof typeof state> = {
    url: `http://127.0.0.1:${port}`,
    token,
    ips,
    requests,
    violations,
    actions,
    replayLateAssign: (ip, dropletId, delayMs = 0) =>
      new Promise<number>((landed) => late.push({ ip, dropletId, delayMs, landed })),
    count(kind) {
      return requests.filter((q) => {
        if (kind === 'metadata') return q.path === '/metadata/v1/id';
        if (kind === 'post-action') return q.method === 'POST';
        if (kind === 'get-action') return q.method === 'GET' && /\/actions\/\d+$/.test(q.path);
        return q.method === 'GET' && /^\/v2\/(floating|reserved)_ips\/[^/]+$/.test(q.path);
      }).length;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return Object.assign(state, handle);
}
