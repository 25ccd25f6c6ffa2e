// DigitalOcean floating (reserved) IPs through the public API v2:
//   GET  /v2/floating_ips/{ip}                   -> { floating_ip: { ip, droplet: { id } | null, locked } }
//   POST /v2/floating_ips/{ip}/actions           { "type": "assign", "droplet_id": N } -> 201 { action: { id, status } }
//   GET  /v2/floating_ips/{ip}/actions/{id}      -> { action: { status: in-progress | completed | errored } }
// (the same under /v2/reserved_ips with reserved_ip in the answers, with `api: reserved_ips`), with
// "Authorization: Bearer <token>". The droplet's own id comes from the configuration or from the metadata service
// at http://169.254.169.254/metadata/v1/id.
import { isIPv4 } from 'node:net';
import { z } from 'zod';
import {
  CloudApiError,
  parseRetryAfter,
  retryableStatus,
  type FloatingIpProvider,
  type ProviderDeps,
} from './provider.js';

export const DO_DEFAULTS = {
  apiBase: 'https://api.digitalocean.com',
  metadataBase: 'http://169.254.169.254',
  api: 'floating_ips' as const,
};

const Droplet = z.object({ id: z.number().int() }).loose();
const IpObject = z
  .object({ ip: z.string(), droplet: Droplet.nullable().optional(), locked: z.boolean().optional() })
  .loose();
const ActionObject = z.object({ id: z.number().int(), status: z.string() }).loose();
const ActionAnswer = z.object({ action: ActionObject }).loose();
const ErrorAnswer = z.object({ id: z.string().optional(), message: z.string().optional() }).loose();

export interface DigitalOceanOptions {
  /** Time between two looks at an action in progress. */
  pollIntervalMs?: number;
  /** How long an action may stay in progress before the attempt counts as failed. */
  actionTimeoutMs?: number;
}

export class DigitalOceanProvider implements FloatingIpProvider {
  readonly name = 'digitalocean';
  private readonly apiBase: string;
  private readonly metadataBase: string;
  private readonly api: 'floating_ips' | 'reserved_ips';
  private dropletId: string | undefined;

  constructor(
    private readonly deps: ProviderDeps,
    private readonly opts: DigitalOceanOptions = {},
  ) {
    const s = deps.cloud.digitalocean;
    this.apiBase = (s?.apiBase ?? DO_DEFAULTS.apiBase).replace(/\/+$/, '');
    this.metadataBase = (s?.metadataBase ?? DO_DEFAULTS.metadataBase).replace(/\/+$/, '');
    this.api = s?.api ?? DO_DEFAULTS.api;
    this.dropletId = s?.dropletId !== undefined ? String(s.dropletId) : undefined;
  }

  async self(signal: AbortSignal): Promise<string> {
    if (this.dropletId) return this.dropletId;
    const res = await this.request('GET', `${this.metadataBase}/metadata/v1/id`, { signal, auth: false });
    const text = (await res.text()).trim();
    if (!/^[1-9]\d{0,18}$/.test(text))
      throw new CloudApiError(`droplet metadata gave no droplet id (got ${JSON.stringify(text.slice(0, 40))})`, false);
    this.dropletId = text;
    return text;
  }

  async holderOf(ip: string, signal: AbortSignal): Promise<string | null> {
    const body = await this.json('GET', this.ipUrl(ip), { signal });
    const field = this.api === 'reserved_ips' ? 'reserved_ip' : 'floating_ip';
    const parsed = IpObject.safeParse((body as Record<string, unknown> | null)?.[field]);
    if (!parsed.success) throw new CloudApiError(`unexpected answer for ${ip}: no ${field} object`, true);
    return parsed.data.droplet ? String(parsed.data.droplet.id) : null;
  }

  async assign(ip: string, instance: string, signal: AbortSignal): Promise<void> {
    if (!/^[1-9]\d{0,18}$/.test(instance))
      throw new CloudApiError(`invalid droplet id ${JSON.stringify(instance)}`, false);
    const created = ActionAnswer.safeParse(
      await this.json('POST', `${this.ipUrl(ip)}/actions`, {
        signal,
        body: { type: 'assign', droplet_id: Number(instance) },
      }),
    );
    if (!created.success) throw new CloudApiError(`unexpected answer to the assign action for ${ip}`, true);
    let action = created.data.action;
    const poll = this.opts.pollIntervalMs ?? 1000;
    const deadline = this.deps.clock.mono() + (this.opts.actionTimeoutMs ?? 60_000);
    while (action.status === 'in-progress') {
      if (this.deps.clock.mono() > deadline)
        throw new CloudApiError(`assign action ${action.id} for ${ip} still in progress`, true);
      await this.deps.clock.sleep(poll, signal);
      if (signal.aborted) throw new CloudApiError('aborted', false);
      const a = ActionAnswer.safeParse(await this.json('GET', `${this.ipUrl(ip)}/actions/${action.id}`, { signal }));
      if (!a.success) throw new CloudApiError(`unexpected answer for action ${action.id}`, true);
      action = a.data.action;
    }
    if (action.status !== 'completed')
      throw new CloudApiError(`assign action ${action.id} for ${ip} ended ${action.status}`, true);
  }

  private ipUrl(ip: string): string {
    // Validated again here: it becomes part of a URL path.
    if (!isIPv4(ip)) throw new CloudApiError(`invalid floating IP ${JSON.stringify(ip)}`, false);
    return `${this.apiBase}/v2/${this.api}/${ip}`;
  }

  private async json(
    method: 'GET' | 'POST',
    url: string,
    o: { signal: AbortSignal; body?: unknown },
  ): Promise<unknown> {
    const res = await this.request(method, url, { ...o, auth: true });
    try {
      return await res.json();
    } catch {
      throw new CloudApiError(`${method} ${url}: answer is not JSON`, true, res.status);
    }
  }

  private async request(
    method: 'GET' | 'POST',
    url: string,
    o: { signal: AbortSignal; body?: unknown; auth: boolean },
  ): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'vipwarden-agent' };
    if (o.auth) headers.Authorization = `Bearer ${await this.deps.token()}`;
    if (o.body !== undefined) headers['Content-Type'] = 'application/json';
    const signal = AbortSignal.any([o.signal, AbortSignal.timeout(this.deps.requestTimeoutMs)]);
    let res: Response;
    try {
      res = await this.deps.fetch(url, {
        method,
        headers,
        signal,
        redirect: 'error',
        ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      const why =
        e.name === 'TimeoutError' ? `no answer within ${this.deps.requestTimeoutMs} ms` : (e.cause?.code ?? e.message);
      throw new CloudApiError(`${method} ${url}: ${why}`, true);
    }
    if (res.ok) return res;
    let detail = '';
    try {
      const b = ErrorAnswer.safeParse(await res.json());
      if (b.success) detail = [b.data.id, b.data.message].filter(Boolean).join(': ');
    } catch {
      /* no JSON body */
    }
    const retryAfter =
      parseRetryAfter(res.headers.get('retry-after'), Date.now()) ?? rateLimitReset(res.headers.get('ratelimit-reset'));
    throw new CloudApiError(
      `${method} ${url}: HTTP ${res.status}${detail ? ` (${detail})` : ''}`,
      retryableStatus(res.status),
      res.status,
      retryAfter,
    );
  }
}

/** DigitalOcean's RateLimit-Reset: epoch seconds when the limit resets. */
function rateLimitReset(v: string | null): number | undefined {
  if (!v || !/^\d+$/.test(v)) return undefined;
  return Math.max(0, Number(v) * 1000 - Date.now());
}

export const digitalocean = (deps: ProviderDeps): FloatingIpProvider => new DigitalOceanProvider(deps);
