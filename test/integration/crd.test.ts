// The FailoverGroup CRD against a real kube-apiserver (test/harness/kube.ts): the generated YAML is accepted, the
// examples are valid, invalid manifests are rejected with a message that names the field (and the zod schema,
// which the controller uses, rejects them too), `kubectl explain` works, status is a subresource.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { parseFailoverGroup } from '../../crds/failovergroup.js';
import { REPO } from '../../hack/testbed/cluster.js';
import { startKube, type KubeEnv } from '../harness/kube.js';
import { applyCrd, kubeSlot, waitFor } from './kube-helpers.js';

const slot = kubeSlot();
const env = (): KubeEnv => slot.get();

beforeAll(async () => {
  const kube = await slot.start(() => startKube());
  await applyCrd(kube);
}, 30 * 60_000);

afterAll(async () => {
  await slot.stop();
}, 60_000);

const VALID_SPEC = {
  vips: [{ address: '198.18.0.100/24' }],
  nodes: [{ name: 'node1', priority: 100 }, { name: 'node2' }],
  checks: [{ name: 'web', type: 'http', http: { port: 80 }, intervalMs: 500, timeoutMs: 400 }],
};

function manifest(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'vipwarden.io/v1alpha1', kind: 'FailoverGroup', metadata: { name }, spec };
}

const http = (extra: Record<string, unknown> = {}) => ({ name: 'web', type: 'http', http: { port: 80 }, ...extra });

/** An invalid spec: what is wrong, the spec, the field the API server's message must name. */
interface Invalid {
  what: string;
  spec: Record<string, unknown>;
  field: RegExp;
  zodAlsoRejects?: false;
}

/** The valid spec with one VIP of this address, which the API server must refuse naming spec.vips[0].address. */
const badAddress = (what: string, address: string, field = /spec\.vips\[0\]\.address/): Invalid => ({
  what,
  spec: { ...VALID_SPEC, vips: [{ address }] },
  field,
});

const INVALID: Invalid[] = [
  badAddress('a bad CIDR', '198.18.0.300/24'),
  badAddress('an address without a prefix length', '198.18.0.100'),
  badAddress('an IPv4 address with an IPv6 prefix length', '198.18.0.100/64'),
  badAddress('an IPv6 address with an IPv4 netmask', '2001:2::100/255.255.255.0'),
  // CEL's CIDR library refuses IPv4-mapped IPv6 addresses; zod's parseCidr lets them through (the API is stricter).
  {
    ...badAddress('an IPv4-mapped IPv6 address with an IPv4 prefix length', '::ffff:198.18.0.100/24'),
    zodAlsoRejects: false,
  },
  badAddress('a prefix length of 0', '198.18.0.100/0', /spec\.vips\[0\]\.address.*prefix length must be at least 1/),
  { what: 'no VIPs', spec: { ...VALID_SPEC, vips: [] }, field: /spec\.vips/ },
  { what: 'no nodes', spec: { ...VALID_SPEC, nodes: [] }, field: /spec\.nodes/ },
  {
    what: 'duplicate nodes',
    spec: { ...VALID_SPEC, nodes: [{ name: 'node1' }, { name: 'node2' }, { name: 'node1', priority: 5 }] },
    field: /spec\.nodes: Invalid value: node names must be unique/,
  },
  {
    what: 'duplicate VIPs (the same address with another prefix length)',
    spec: { ...VALID_SPEC, vips: [{ address: '2001:2::100/64' }, { address: '2001:2:0:0::100/128' }] },
    field: /spec\.vips: Invalid value: VIP addresses must be unique/,
  },
  {
    what: 'a node name that is not a DNS-1123 name',
    spec: { ...VALID_SPEC, nodes: [{ name: 'Node_1' }] },
    field: /spec\.nodes\[0\]\.name/,
  },
  {
    what: 'a priority out of range',
    spec: { ...VALID_SPEC, nodes: [{ name: 'node1', priority: 5000 }] },
    field: /spec\.nodes\[0\]\.priority/,
  },
  {
    what: 'a negative interval',
    spec: { ...VALID_SPEC, checks: [http({ intervalMs: -100 })] },
    field: /spec\.checks\[0\]\.intervalMs/,
  },
  {
    what: 'a negative timeout',
    spec: { ...VALID_SPEC, checks: [http({ timeoutMs: -1 })] },
    field: /spec\.checks\[0\]\.timeoutMs/,
  },
  {
    what: 'a timeout longer than the interval',
    spec: { ...VALID_SPEC, checks: [http({ intervalMs: 100, timeoutMs: 500 })] },
    field: /spec\.checks\[0\]\.timeoutMs: Invalid value: timeoutMs must not exceed intervalMs/,
  },
  { what: 'rise 0', spec: { ...VALID_SPEC, checks: [http({ rise: 0 })] }, field: /spec\.checks\[0\]\.rise/ },
  { what: 'a negative fall', spec: { ...VALID_SPEC, checks: [http({ fall: -1 })] }, field: /spec\.checks\[0\]\.fall/ },
  {
    what: 'an unknown check type',
    spec: { ...VALID_SPEC, checks: [{ name: 'ping', type: 'icmp' }] },
    field: /spec\.checks\[0\]\.type: Unsupported value: "icmp"/,
  },
  {
    what: 'settings of another type than the check has',
    spec: { ...VALID_SPEC, checks: [{ name: 'web', type: 'tcp', http: { port: 80 } }] },
    field: /spec\.checks\[0\]\.http: Invalid value: type is tcp, so http must not be set/,
  },
  {
    what: 'duplicate check names',
    spec: { ...VALID_SPEC, checks: [http(), http()] },
    field: /spec\.checks: Invalid value: check names must be unique/,
  },
  {
    what: 'a process check with neither name nor pid file',
    spec: { ...VALID_SPEC, checks: [{ name: 'p', type: 'process', process: {} }] },
    field: /spec\.checks\[0\]\.process: Invalid value: process needs name or pidFile/,
  },
  {
    what: 'a command inline in a script check',
    spec: {
      ...VALID_SPEC,
      checks: [{ name: 's', type: 'script', script: { name: 'ok', argv: ['/bin/sh', '-c', 'id'] } }],
    },
    field: /spec\.checks\[0\]\.script\.argv/,
  },
  {
    what: 'SNAT ports with protocol all',
    spec: { ...VALID_SPEC, snat: [{ destination: '198.19.0.0/16', ports: [80] }] },
    field: /spec\.snat\[0\]\.ports: Invalid value: ports need protocol tcp or udp/,
  },
  {
    what: 'an IPv6 SNAT destination without an IPv6 VIP',
    spec: { ...VALID_SPEC, snat: [{ destination: '2001:2::/48' }] },
    field: /spec\.snat: Invalid value: each SNAT destination needs a VIP of its address family/,
  },
  {
    what: 'an unknown failback policy',
    spec: { ...VALID_SPEC, failback: 'sometimes' },
    field: /spec\.failback: Unsupported value: "sometimes"/,
  },
  {
    what: 'an interface name too long for Linux',
    spec: { ...VALID_SPEC, vips: [{ address: '198.18.0.100/24', interface: 'a-much-too-long-name' }] },
    field: /spec\.vips\[0\]\.interface/,
  },
  {
    what: 'duplicate hooks',
    spec: { ...VALID_SPEC, hooks: ['notify', 'notify'] },
    field: /spec\.hooks: Invalid value: hook names must be unique/,
  },
  {
    what: 'an IPv6 DigitalOcean floating IP',
    spec: { ...VALID_SPEC, cloud: { provider: 'digitalocean', floatingIp: '2001:2::1' } },
    field: /spec\.cloud\.floatingIp: Invalid value: a DigitalOcean floating IP is an IPv4 address/,
  },
];

test('the examples in deploy/examples are accepted by the API server and by the zod schema', async () => {
  const dir = join(REPO, 'deploy', 'examples');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  expect(files.length).toBeGreaterThanOrEqual(3);
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    const r = await env().kubectl(['apply', '--dry-run=server', '-f', '-'], { input: text, allowFailure: true });
    expect({ f, exitCode: r.exitCode, stderr: r.stderr }).toEqual({ f, exitCode: 0, stderr: '' });
    const parsed = parseFailoverGroup(parseYaml(text));
    expect({ f, ok: parsed.ok }).toEqual({ f, ok: true });
  }
});

test(`${INVALID.length} invalid manifests are rejected with a message that names the field`, async () => {
  expect(INVALID.length).toBeGreaterThanOrEqual(12);
  for (const [i, c] of INVALID.entries()) {
    const doc = manifest(`bad-${i}`, c.spec);
    const r = await env().kubectl(['apply', '--dry-run=server', '-f', '-'], { input: toYaml(doc), allowFailure: true });
    expect({ what: c.what, rejected: r.exitCode !== 0 }).toEqual({ what: c.what, rejected: true });
    expect({ what: c.what, stderr: r.stderr }).toEqual({ what: c.what, stderr: expect.stringMatching(c.field) });
    // The controller's own parse agrees (it reports what it rejects as an Invalid condition).
    if (c.zodAlsoRejects !== false)
      expect({ what: c.what, zodAccepts: parseFailoverGroup(doc).ok }).toEqual({ what: c.what, zodAccepts: false });
  }
  // And nothing was created by the dry runs.
  const list = await env().kubectl(['get', 'fg', '-o', 'name']);
  expect(list.stdout.trim()).toBe('');
}, 120_000);

test('defaults are applied by the API server as zod applies them', async () => {
  await env().kubectl(['apply', '-f', '-'], {
    input: toYaml(
      manifest('defaults', { vips: [{ address: '198.18.0.100/24' }], nodes: [{ name: 'node1' }], checks: [http()] }),
    ),
  });
  const got = JSON.parse((await env().kubectl(['get', 'fg', 'defaults', '-o', 'json'])).stdout) as { spec: unknown };
  const zod = parseFailoverGroup(
    manifest('defaults', { vips: [{ address: '198.18.0.100/24' }], nodes: [{ name: 'node1' }], checks: [http()] }),
  );
  if (!zod.ok) throw zod.error;
  expect(got.spec).toEqual(JSON.parse(JSON.stringify(zod.group.spec)));
  await env().kubectl(['delete', 'fg', 'defaults']);
});

test('kubectl explain describes the fields', async () => {
  const spec = await env().kubectl(['explain', 'fg.spec']);
  expect(spec.stdout).toMatch(/KIND:\s+FailoverGroup/);
  expect(spec.stdout).toMatch(/vips\s+<\[\]Object> -required-/);
  expect(spec.stdout).toMatch(/Addresses that move together/);
  expect(spec.stdout).toMatch(/failback\s+<string>/);
  const rise = await env().kubectl(['explain', 'fg.spec.checks.rise']);
  expect(rise.stdout).toMatch(/Successes in a row/);
  const status = await env().kubectl(['explain', 'fg.status.holder']);
  expect(status.stdout).toMatch(/The node that holds the addresses now/);
});

test('status is a subresource: a spec write cannot set it, printer columns show VIPs, holder, phase and age', async () => {
  await env().kubectl(['apply', '-f', '-'], {
    input: toYaml({ ...manifest('sub', VALID_SPEC), status: { holder: 'node9', phase: 'Active' } }),
  });
  const got = JSON.parse((await env().kubectl(['get', 'fg', 'sub', '-o', 'json'])).stdout) as { status?: unknown };
  expect(got.status).toBeUndefined();
  await env().kubectl([
    'patch',
    'fg',
    'sub',
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { holder: 'node1', phase: 'Active', vips: ['198.18.0.100/24'] } }),
  ]);
  const table = await waitFor(async () => {
    const r = await env().kubectl(['get', 'fg']);
    return /node1/.test(r.stdout) ? r.stdout : undefined;
  }, 'the holder in kubectl get fg');
  const [header, row] = table.trim().split('\n');
  // The first VIP as plain text (a printer column shows one value; it was the JSON array, issue 14 item 7); the whole
  // list under -o wide.
  expect(header?.split(/\s+/)).toEqual(['NAME', 'VIP', 'HOLDER', 'PHASE', 'AGE']);
  expect(row).toMatch(/^sub\s+198\.18\.0\.100\/24\s+node1\s+Active\s+\d+s/);
  const wide = (await env().kubectl(['get', 'fg', '-o', 'wide'])).stdout.trim().split('\n');
  expect(wide[0]?.split(/\s+/).slice(0, 3)).toEqual(['NAME', 'VIP', 'VIPS']);
  // The status schema is enforced too.
  const bad = await env().kubectl(
    ['patch', 'fg', 'sub', '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Sleeping"}}'],
    { allowFailure: true },
  );
  expect(bad.stderr).toMatch(/status\.phase: Unsupported value: "Sleeping"/);
  await env().kubectl(['delete', 'fg', 'sub']);
});
