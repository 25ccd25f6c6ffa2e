// The DigitalOcean floating IP provider against a local server on 127.0.0.1 that checks every request against
// DigitalOcean's documented API (the real API is out of reach here).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realClock } from '../../common/clock.js';
import { silentLogger } from '../../common/log.js';
import { FailoverGroupSpec } from '../../crds/failovergroup.js';
import { vipRef } from '../../node-agent/addresses.js';
import { DigitalOceanProvider } from '../../node-agent/cloud/digitalocean.js';
import { CloudApiError, ensureAssigned, readTokenFile, type RetryPolicy } from '../../node-agent/cloud/provider.js';
import { CloudResource } from '../../node-agent/cloud/resource.js';
import { parseAgentConfig } from '../../node-agent/config.js';
import type { ResourceContext } from '../../node-agent/resources.js';
import { startFakeDigitalOcean, type FakeDigitalOcean } from '../harness/fake-digitalocean.js';

// Floating IPs are only strings in URL paths here; the only network peer is the fake server on 127.0.0.1.
const FIP = '198.18.250.10';
const retry: RetryPolicy = { maxAttempts: 5, initialDelayMs: 10, maxDelayMs: 50 };

let dir: string;
let tokenPath: string;
let fake: FakeDigitalOcean;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vw-do-'));
  tokenPath = join(dir, 'do-token');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeEach(async () => {
  fake = await startFakeDigitalOcean({ ips: { [FIP]: 1111 }, dropletId: 2222 });
  writeFileSync(tokenPath, `${fake.token}\n`, { mode: 0o600 });
});
afterEach(async () => {
  expect(fake.violations).toEqual([]);
  await fake.close();
});

function config(extra: Record<string, unknown> = {}) {
  return parseAgentConfig({
    node: 'node1',
    etcd: { endpoints: ['http://127.0.0.1:2379'] },
    credentials: { digitalocean: tokenPath },
    cloud: { digitalocean: { apiBase: fake.url, metadataBase: fake.url, ...extra }, requestTimeoutMs: 2000, retry },
  });
}

function provider(extra: Record<string, unknown> = {}) {
  const c = config(extra);
  return new DigitalOceanProvider(
    { cloud: c.cloud, token: () => readTokenFile(tokenPath), requestTimeoutMs: 2000, clock: realClock, fetch },
    { pollIntervalMs: 10, actionTimeoutMs: 5000 },
  );
}

const ensure = (p: DigitalOceanProvider, o: { isCurrent?: () => boolean; signal?: AbortSignal } = {}) =>
  ensureAssigned({
    provider: p,
    ip: FIP,
    isCurrent: o.isCurrent ?? (() => true),
    signal: o.signal ?? new AbortController().signal,
    retry,
    clock: realClock,
    log: silentLogger(),
  });

describe('DigitalOcean provider', () => {
  it('finds its droplet id in the metadata, assigns the floating IP and waits for the action to complete', async () => {
    fake.pollsPerAction = 3;
    const out = await ensure(provider());
    expect(out).toEqual({ result: 'assigned', instance: '2222', attempts: 1 });
    expect(fake.ips.get(FIP)).toBe(2222);
    expect(fake.count('metadata')).toBe(1);
    expect(fake.count('post-action')).toBe(1);
    expect(fake.count('get-action')).toBe(3);
    const post = fake.requests.find((r) => r.method === 'POST')!;
    expect(post.path).toBe(`/v2/floating_ips/${FIP}/actions`);
    expect(JSON.parse(post.body)).toEqual({ type: 'assign', droplet_id: 2222 });
    expect(post.auth).toBe(`Bearer ${fake.token}`);
    expect(post.contentType).toMatch(/^application\/json/);
    // The droplet id is looked up once.
    await ensure(provider());
  });

  it('does not call the assign action when the floating IP already points here', async () => {
    fake.ips.set(FIP, 2222);
    await expect(ensure(provider())).resolves.toEqual({ result: 'already', instance: '2222', attempts: 1 });
    expect(fake.count('post-action')).toBe(0);
  });

  it('uses the configured droplet id without asking the metadata service', async () => {
    await expect(ensure(provider({ dropletId: 3333 }))).resolves.toMatchObject({
      result: 'assigned',
      instance: '3333',
    });
    expect(fake.count('metadata')).toBe(0);
    expect(fake.ips.get(FIP)).toBe(3333);
  });

  it('speaks the reserved_ips API when told to', async () => {
    await expect(ensure(provider({ api: 'reserved_ips' }))).resolves.toMatchObject({ result: 'assigned' });
    expect(
      fake.requests.filter((r) => r.path.startsWith('/v2/')).every((r) => r.path.startsWith('/v2/reserved_ips/')),
    ).toBe(true);
  });

  it('retries server errors, rate limits (honouring Retry-After) and an errored action, with backoff', async () => {
    fake.failNext = [{ status: 500 }, { status: 429, retryAfter: '0' }, { status: 503 }];
    fake.errorNextAction = true;
    const out = await ensure(provider({ dropletId: 2222 }));
    expect(out.result).toBe('assigned');
    expect(out.attempts).toBe(5);
    expect(fake.count('post-action')).toBe(2);
    expect(fake.ips.get(FIP)).toBe(2222);
  });

  it('gives up after the attempts are spent', async () => {
    fake.failNext = Array.from({ length: 10 }, () => ({ status: 500 }));
    await expect(ensure(provider({ dropletId: 2222 }))).rejects.toThrow(/HTTP 500/);
    expect(fake.requests.length).toBe(retry.maxAttempts);
  });

  it('does not retry a bad token, and says why', async () => {
    writeFileSync(tokenPath, 'dop_v1_wrong\n');
    const err = await ensure(provider({ dropletId: 2222 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CloudApiError);
    expect(String(err)).toMatch(/HTTP 401 \(unauthorized: Unable to authenticate you\.\)/);
    expect(fake.requests).toHaveLength(1);
  });

  it('refuses an unreadable or malformed token file without calling the API', async () => {
    writeFileSync(tokenPath, 'two\ntokens\n');
    await expect(ensure(provider({ dropletId: 2222 }))).rejects.toThrow(/must hold one token on one line/);
    rmSync(tokenPath);
    await expect(ensure(provider({ dropletId: 2222 }))).rejects.toThrow(/cannot read token file .*ENOENT/);
    expect(fake.requests).toHaveLength(0);
  });

  it('picks up a rotated token', async () => {
    const p = provider({ dropletId: 2222 });
    await ensure(p);
    writeFileSync(tokenPath, 'dop_v1_rotated\n');
    fake.ips.set(FIP, 1111);
    await expect(ensure(p)).rejects.toThrow(/HTTP 401/);
  });

  it('makes no change once the epoch is no longer current', async () => {
    let current = true;
    fake.onRequest = (r) => {
      if (r.method === 'GET' && r.path === `/v2/floating_ips/${FIP}`) current = false;
    };
    await expect(ensure(provider({ dropletId: 2222 }), { isCurrent: () => current })).resolves.toEqual({
      result: 'superseded',
      attempts: 1,
    });
    expect(fake.count('post-action')).toBe(0);
    expect(fake.ips.get(FIP)).toBe(1111);
  });

  it('stops retrying when the epoch moves on during a backoff', async () => {
    let current = true;
    fake.failNext = [{ status: 500 }, { status: 500 }, { status: 500 }];
    fake.onRequest = () => {
      current = false;
    };
    await expect(ensure(provider({ dropletId: 2222 }), { isCurrent: () => current })).resolves.toMatchObject({
      result: 'superseded',
    });
    expect(fake.requests).toHaveLength(1);
  });

  it('assigns again when another node’s call landed after ours', async () => {
    let stolen = false;
    fake.onRequest = (r) => {
      // Right after our action completes, someone else points the IP elsewhere once.
      if (!stolen && r.method === 'GET' && r.path === `/v2/floating_ips/${FIP}` && fake.ips.get(FIP) === 2222) {
        stolen = true;
        fake.ips.set(FIP, 9999);
      }
    };
    const out = await ensure(provider({ dropletId: 2222 }));
    expect(out).toMatchObject({ result: 'assigned', attempts: 2 });
    expect(fake.count('post-action')).toBe(2);
    expect(fake.ips.get(FIP)).toBe(2222);
  });
});

describe('CloudResource', () => {
  const spec = FailoverGroupSpec.parse({
    vips: [{ address: '198.18.250.100/24' }],
    nodes: [{ name: 'node1' }],
    cloud: { provider: 'digitalocean', floatingIp: FIP },
  });
  const ctx = (o: { isCurrent?: () => boolean; signal?: AbortSignal } = {}): ResourceContext => ({
    group: 'web',
    node: 'node1',
    epoch: 12,
    vips: [vipRef('198.18.250.100/24', 'eth0')],
    spec,
    isCurrent: o.isCurrent ?? (() => true),
    signal: o.signal ?? new AbortController().signal,
    log: silentLogger(),
  });

  it('points the floating IP at the new holder in the background, and reports the outcome', async () => {
    const outcomes: unknown[] = [];
    const r = new CloudResource({ config: config(), clock: realClock, onOutcome: (_g, o) => outcomes.push(o) });
    await r.acquire(ctx());
    await r.settled('web');
    expect(outcomes).toEqual([{ result: 'assigned', instance: '2222', attempts: 1 }]);
    expect(fake.ips.get(FIP)).toBe(2222);
    await r.release(ctx());
    // Release does not unassign: the next holder takes the IP over.
    expect(fake.ips.get(FIP)).toBe(2222);
    expect(fake.requests.filter((q) => q.method === 'POST')).toHaveLength(1);
  });

  it('stops at release while the API keeps failing', async () => {
    fake.failNext = Array.from({ length: 100 }, () => ({ status: 503 }));
    const outcomes: unknown[] = [];
    const slow = parseAgentConfig({
      ...config(),
      cloud: { ...config().cloud, retry: { maxAttempts: 100, initialDelayMs: 200, maxDelayMs: 200 } },
    });
    const r = new CloudResource({ config: slow, clock: realClock, onOutcome: (_g, o) => outcomes.push(o) });
    const ac = new AbortController();
    await r.acquire(ctx({ signal: ac.signal }));
    await realClock.sleep(300);
    ac.abort();
    await r.release(ctx());
    await r.settled('web');
    await realClock.sleep(50);
    expect(outcomes).toEqual([{ result: 'superseded', attempts: expect.any(Number) }]);
    expect(fake.requests.length).toBeLessThan(5);
  });

  it('reports a missing token entry instead of calling anything', async () => {
    const outcomes: { result: string; error?: string }[] = [];
    const c = parseAgentConfig({ ...config(), credentials: {} });
    const r = new CloudResource({
      config: c,
      clock: realClock,
      onOutcome: (_g, o) => outcomes.push(o as { result: string }),
    });
    await r.acquire(ctx());
    await r.settled('web');
    expect(outcomes[0]?.result).toBe('failed');
    expect(outcomes[0]?.error).toMatch(
      /credentials "digitalocean" \(the digitalocean API token\) are not in the agent configuration/,
    );
    expect(fake.requests).toHaveLength(0);
  });

  it('does nothing for a group without a cloud section', async () => {
    const r = new CloudResource({ config: config(), clock: realClock });
    await r.acquire({ ...ctx(), spec: { ...spec, cloud: undefined } });
    await r.settled('web');
    expect(fake.requests).toHaveLength(0);
  });
});
