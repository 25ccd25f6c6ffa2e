// Table tests for the FailoverGroup schema: a full example parses with defaults applied, and each kind of bad input
// is rejected with a message that names the field path (STYLE.md: reject bad input clearly, never self-correct).
import { describe, expect, test } from '@jest/globals';
import { parseFailoverGroup, ValidationError } from './failovergroup.js';

type Doc = Record<string, unknown>;

function doc(spec: Doc = {}, metadata: Doc = { name: 'web-vip' }): Doc {
  return {
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata,
    spec: {
      vips: [{ address: '198.18.0.100/24' }],
      nodes: [{ name: 'node-a' }, { name: 'node-b' }],
      checks: [{ name: 'nginx', type: 'http', http: {} }],
      ...spec,
    },
  };
}

const check = (over: Doc) => ({ checks: [{ name: 'c1', type: 'tcp', tcp: { port: 80 }, ...over }] });

function issues(d: unknown): { path: string; message: string }[] {
  const r = parseFailoverGroup(d, 'test');
  if (r.ok) throw new Error('expected a validation error');
  expect(r.error).toBeInstanceOf(ValidationError);
  return r.error.issues;
}

describe('parseFailoverGroup accepts', () => {
  test('a full valid example, defaults applied', () => {
    // A check with every timing field set: given and expected alike (only its mysql block gets defaults).
    const db = { name: 'db', type: 'mysql', intervalMs: 500, timeoutMs: 400, rise: 3, fall: 1, weight: -50 };
    const r = parseFailoverGroup({
      apiVersion: 'vipwarden.io/v1alpha1',
      kind: 'FailoverGroup',
      metadata: { name: 'web-vip', generation: 3, uid: 'u-1', labels: { app: 'web' }, somethingKubernetesAdds: 1 },
      spec: {
        vips: [{ address: '198.18.0.100/24', interface: 'eth1' }, { address: '2001:2::100/64' }],
        nodes: [{ name: 'node-a', priority: 200 }, { name: 'node-b' }],
        checks: [
          { name: 'nginx', type: 'http', http: { path: '/healthz', expectStatus: [200] } },
          { ...db, mysql: { credentials: 'monitor' } },
          { name: 'proc', type: 'process', weight: 20, process: { name: 'nginx' } },
          { name: 'local', type: 'script', script: { name: 'check-disk' } },
          { name: 'port', type: 'tcp', tcp: { port: 443 } },
        ],
        failback: 'manual',
        snat: [{ destination: '203.0.113.0/24', protocol: 'tcp', ports: [443] }, { destination: '2001:db8::/32' }],
        hooks: ['reload-nginx'],
        cloud: { provider: 'digitalocean', floatingIp: '203.0.113.10' },
        announce: { burst: 5 },
      },
      status: { phase: 'Active', holder: 'node-a', epoch: 12 },
    });
    if (!r.ok) throw r.error;
    expect(r.group.name).toBe('web-vip');
    expect(r.group.generation).toBe(3);
    expect(r.group.spec).toEqual({
      vips: [{ address: '198.18.0.100/24', interface: 'eth1' }, { address: '2001:2::100/64' }],
      nodes: [
        { name: 'node-a', priority: 200 },
        { name: 'node-b', priority: 100 },
      ],
      checks: [
        {
          name: 'nginx',
          type: 'http',
          intervalMs: 1000,
          timeoutMs: 1000,
          rise: 2,
          fall: 2,
          weight: 0,
          http: { port: 80, path: '/healthz', host: '127.0.0.1', scheme: 'http', expectStatus: [200] },
        },
        { ...db, mysql: { host: '127.0.0.1', port: 3306, credentials: 'monitor' } },
        {
          name: 'proc',
          type: 'process',
          intervalMs: 1000,
          timeoutMs: 1000,
          rise: 2,
          fall: 2,
          weight: 20,
          process: { name: 'nginx' },
        },
        {
          name: 'local',
          type: 'script',
          intervalMs: 1000,
          timeoutMs: 1000,
          rise: 2,
          fall: 2,
          weight: 0,
          script: { name: 'check-disk' },
        },
        {
          name: 'port',
          type: 'tcp',
          intervalMs: 1000,
          timeoutMs: 1000,
          rise: 2,
          fall: 2,
          weight: 0,
          tcp: { port: 443, host: '127.0.0.1' },
        },
      ],
      failback: 'manual',
      snat: [
        { destination: '203.0.113.0/24', protocol: 'tcp', ports: [443] },
        { destination: '2001:db8::/32', protocol: 'all' },
      ],
      hooks: ['reload-nginx'],
      cloud: { provider: 'digitalocean', floatingIp: '203.0.113.10' },
      announce: { burst: 5, repeatIntervalMs: 1000, repeatForMs: 3000 },
    });
  });

  test('a minimal example, defaults applied', () => {
    const r = parseFailoverGroup({
      apiVersion: 'vipwarden.io/v1alpha1',
      kind: 'FailoverGroup',
      metadata: { name: 'x' },
      spec: { vips: [{ address: '10.0.0.1/32' }], nodes: [{ name: 'n' }] },
    });
    if (!r.ok) throw r.error;
    expect(r.group).toEqual({
      name: 'x',
      generation: undefined,
      spec: {
        vips: [{ address: '10.0.0.1/32' }],
        nodes: [{ name: 'n', priority: 100 }],
        checks: [],
        failback: 'auto',
        snat: [],
        hooks: [],
      },
    });
  });

  test.each(['2001:2::1/33', '2001:2::1/64', '2001:2::1/128', '198.18.0.1/1', '198.18.0.1/32'])('VIP %s', (address) => {
    expect(parseFailoverGroup(doc({ vips: [{ address }] })).ok).toBe(true);
  });

  test.each([0, 1000])('priority %i', (priority) => {
    expect(parseFailoverGroup(doc({ nodes: [{ name: 'n', priority }] })).ok).toBe(true);
  });

  test('timeout equal to interval', () => {
    expect(parseFailoverGroup(doc(check({ intervalMs: 100, timeoutMs: 100 }))).ok).toBe(true);
  });
});

describe('parseFailoverGroup rejects, naming the field path', () => {
  test.each<[string, Doc, string, RegExp?]>([
    ['bad CIDR', { vips: [{ address: '198.18.0.300/24' }] }, 'spec.vips[0].address', /not an IPv4 or IPv6 address/],
    ['CIDR without a prefix', { vips: [{ address: '198.18.0.1' }] }, 'spec.vips[0].address', /prefix length/],
    ['IPv4 with /33', { vips: [{ address: '198.18.0.1/33' }] }, 'spec.vips[0].address', /1\.\.32/],
    ['IPv4 with /0', { vips: [{ address: '198.18.0.1/0' }] }, 'spec.vips[0].address', /1\.\.32/],
    ['IPv6 with /129', { vips: [{ address: '2001:2::1/129' }] }, 'spec.vips[0].address', /1\.\.128/],
    ['IPv6 with a zone index', { vips: [{ address: 'fe80::1%eth0/64' }] }, 'spec.vips[0].address', /zone index/],
    ['no VIPs', { vips: [] }, 'spec.vips'],
    ['bad interface name', { vips: [{ address: '10.0.0.1/24', interface: 'eth0; reboot' }] }, 'spec.vips[0].interface'],
    ['no nodes', { nodes: [] }, 'spec.nodes'],
    [
      'duplicate node names',
      { nodes: [{ name: 'a' }, { name: 'b' }, { name: 'a' }] },
      'spec.nodes[2].name',
      /duplicate node name "a" \(also nodes\[0\]\)/,
    ],
    ['bad node name', { nodes: [{ name: 'Node_A' }] }, 'spec.nodes[0].name', /DNS-1123/],
    [
      'duplicate VIPs',
      { vips: [{ address: '10.0.0.1/24' }, { address: '10.0.0.1/32' }] },
      'spec.vips[1].address',
      /duplicate VIP 10\.0\.0\.1/,
    ],
    [
      'duplicate VIPs (2001:2::1 vs 2001:2:0::1)',
      { vips: [{ address: '2001:2::1/64' }, { address: '2001:2:0::1/64' }] },
      'spec.vips[1].address',
      /duplicate VIP 2001:2::1 \(also vips\[0\]\)/,
    ],
    [
      'duplicate VIPs (long form)',
      { vips: [{ address: '2001:2::1/64' }, { address: '2001:0002:0000:0000:0000:0000:0000:0001/64' }] },
      'spec.vips[1].address',
      /duplicate VIP/,
    ],
    [
      'duplicate check names',
      {
        checks: [
          { name: 'c1', type: 'tcp', tcp: { port: 80 } },
          { name: 'c1', type: 'tcp', tcp: { port: 81 } },
        ],
      },
      'spec.checks[1].name',
      /duplicate check name "c1"/,
    ],
    ['negative interval', check({ intervalMs: -1 }), 'spec.checks[0].intervalMs'],
    [
      'timeout > interval',
      check({ intervalMs: 100, timeoutMs: 101 }),
      'spec.checks[0].timeoutMs',
      /must not exceed intervalMs/,
    ],
    ['unknown check type', { checks: [{ name: 'c1', type: 'ping' }] }, 'spec.checks[0].type'],
    [
      'type http without http settings',
      { checks: [{ name: 'c1', type: 'http' }] },
      'spec.checks[0].http',
      /type is http, so http must be set/,
    ],
    [
      'http settings on a tcp check',
      check({ http: { path: '/' } }),
      'spec.checks[0].http',
      /type is tcp, so http must not be set/,
    ],
    ['rise 0', check({ rise: 0 }), 'spec.checks[0].rise'],
    ['fall 101', check({ fall: 101 }), 'spec.checks[0].fall'],
    ['a check name that is not a local name', check({ name: 'Has Space' }), 'spec.checks[0].name'],
    [
      'process check without name or pidFile',
      { checks: [{ name: 'p', type: 'process', process: {} }] },
      'spec.checks[0].process',
      /name or pidFile/,
    ],
    ['priority > 1000', { nodes: [{ name: 'a', priority: 1001 }] }, 'spec.nodes[0].priority'],
    ['negative priority', { nodes: [{ name: 'a', priority: -1 }] }, 'spec.nodes[0].priority'],
    ['fractional priority', { nodes: [{ name: 'a', priority: 1.5 }] }, 'spec.nodes[0].priority'],
    [
      'snat ports with protocol all',
      { snat: [{ destination: '203.0.113.0/24', ports: [80] }] },
      'spec.snat[0].ports',
      /protocol tcp or udp/,
    ],
    [
      'snat destination of a family without a VIP',
      { snat: [{ destination: '2001:db8::/32' }] },
      'spec.snat[0].destination',
      /IPv6 VIP/,
    ],
    ['duplicate hooks', { hooks: ['a', 'a'] }, 'spec.hooks[1]', /duplicate hook/],
    ['bad failback', { failback: 'sometimes' }, 'spec.failback'],
    [
      'cloud floating IP that is not IPv4',
      { cloud: { provider: 'digitalocean', floatingIp: '2001:db8::1' } },
      'spec.cloud.floatingIp',
    ],
    ['unknown field in spec (strict)', { vipz: [] }, 'spec', /vipz/],
    ['unknown field in a VIP (strict)', { vips: [{ address: '10.0.0.1/24', iface: 'eth0' }] }, 'spec.vips[0]', /iface/],
    ['unknown field in a check (strict)', check({ command: ['/bin/true'] }), 'spec.checks[0]', /command/],
    [
      'unknown field in http settings (strict)',
      { checks: [{ name: 'c1', type: 'http', http: { url: 'http://x' } }] },
      'spec.checks[0].http',
      /url/,
    ],
  ])('%s', (_name, spec, path, ...message) => {
    // Rows without a message pattern are shorter: the rest parameter keeps jest from passing `done` in its place.
    const got = issues(doc(spec));
    const hit = got.find((i) => i.path === path);
    expect({ path: hit?.path, all: got }).toMatchObject({ path });
    if (message[0]) expect(hit?.message).toMatch(message[0]);
  });

  test.each([
    ['upper case', 'Web-VIP'],
    ['underscore', 'web_vip'],
    ['leading dash', '-web'],
    ['slash (an etcd key segment)', 'web/vip'],
    ['empty', ''],
    ['too long', 'a'.repeat(254)],
  ])('bad metadata.name: %s', (_name, name) => {
    const got = issues(doc({}, { name }));
    expect(got.map((i) => i.path)).toContain('metadata.name');
  });

  test('missing metadata.name', () => {
    expect(issues(doc({}, {})).map((i) => i.path)).toContain('metadata.name');
  });

  test.each([
    ['apiVersion', { apiVersion: 'vipwarden.io/v1' }],
    ['kind', { kind: 'Service' }],
  ])('wrong %s', (path, over) => {
    expect(issues({ ...doc(), ...over }).map((i) => i.path)).toContain(path);
  });

  test('the error message names the document and every issue', () => {
    const r = parseFailoverGroup(doc({ nodes: [], vips: [{ address: 'x/1' }] }), 'groups.yaml#2');
    if (r.ok) throw new Error('expected an error');
    expect(r.error.message).toMatch(/^groups\.yaml#2 web-vip: /);
    expect(r.error.message).toContain('spec.vips[0].address: ');
    expect(r.error.message).toContain('spec.nodes: ');
  });

  test.each([null, undefined, 'text', 42, []])('not an object: %p', (d) => {
    expect(parseFailoverGroup(d).ok).toBe(false);
  });
});
