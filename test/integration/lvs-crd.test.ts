// The LVS part of the FailoverGroup CRD (crds/virtualserver.ts) against a real kube-apiserver: its CEL rules reject
// the same mistakes as the zod schema, with a message that names the field, and the API server's defaults for a
// virtual service are zod's.
import { stringify as toYaml } from 'yaml';
import { parseFailoverGroup } from '../../crds/failovergroup.js';
import { startKube, type KubeEnv } from '../harness/kube.js';
import { applyCrd } from './kube-helpers.js';

let kube: KubeEnv | undefined;
function env(): KubeEnv {
  if (!kube) throw new Error('the Kubernetes environment did not start (see the beforeAll error above)');
  return kube;
}

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the integration tier must run as root (kube-apiserver build cache, etcd)');
  kube = await startKube();
  await applyCrd(kube);
}, 30 * 60_000);

afterAll(async () => {
  await kube?.stop();
}, 60_000);

const vs = (over: Record<string, unknown> = {}) => ({
  name: 'web',
  port: 80,
  realServers: [{ address: '198.18.1.11' }, { address: '198.18.1.12' }],
  ...over,
});

const spec = (virtualServers: unknown[]) => ({
  vips: [{ address: '198.18.0.100/24' }],
  nodes: [{ name: 'dir1' }, { name: 'dir2' }],
  virtualServers,
});

function manifest(name: string, s: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'vipwarden.io/v1alpha1', kind: 'FailoverGroup', metadata: { name }, spec: s };
}

const INVALID: { what: string; vs: unknown[]; field: RegExp }[] = [
  {
    what: 'a vip that is not the group VIP',
    vs: [vs({ vip: '198.18.0.101' })],
    field: /spec\.virtualServers: Invalid value: a virtual server's vip must be one of the group's VIP addresses/,
  },
  {
    what: 'duplicate names',
    vs: [vs(), vs({ port: 81 })],
    field: /spec\.virtualServers: Invalid value: virtual server names must be unique/,
  },
  {
    what: 'a real-server port in DR mode',
    vs: [vs({ forwarding: 'dr', realServers: [{ address: '198.18.1.11', port: 8080 }] })],
    field: /spec\.virtualServers\[0\]\.realServers: Invalid value: dr and tunnel forward to the virtual port/,
  },
  {
    what: 'a sorry-server port in tunnel mode',
    vs: [vs({ forwarding: 'tunnel', sorryServer: { address: '198.18.1.99', port: 8080 } })],
    field: /spec\.virtualServers\[0\]\.sorryServer\.port/,
  },
  {
    what: 'a duplicate real server',
    vs: [vs({ realServers: [{ address: '198.18.1.11' }, { address: '198.18.1.11', port: 80 }] })],
    field: /spec\.virtualServers\[0\]\.realServers: Invalid value: real servers \(address and port\) must be unique/,
  },
  {
    what: 'a real server that is not an address',
    vs: [vs({ realServers: [{ address: 'rs1.example' }] })],
    field: /spec\.virtualServers\[0\]\.realServers\[0\]\.address/,
  },
  {
    what: 'an unknown scheduler',
    vs: [vs({ scheduler: 'lblc' })],
    field: /spec\.virtualServers\[0\]\.scheduler: Unsupported value: "lblc"/,
  },
  {
    what: 'a check timeout over its interval',
    vs: [vs({ check: { type: 'tcp', intervalMs: 500, timeoutMs: 800 } })],
    field: /spec\.virtualServers\[0\]\.check\.timeoutMs: Invalid value: timeoutMs must not exceed intervalMs/,
  },
  {
    what: 'http settings on a tcp check',
    vs: [vs({ check: { type: 'tcp', http: {} } })],
    field: /spec\.virtualServers\[0\]\.check\.http: Invalid value: http is only for type http/,
  },
];

test(`${INVALID.length} invalid virtual services are rejected by the API server and by zod`, async () => {
  for (const [i, c] of INVALID.entries()) {
    const doc = manifest(`bad-lvs-${i}`, spec(c.vs));
    const r = await env().kubectl(['apply', '--dry-run=server', '-f', '-'], { input: toYaml(doc), allowFailure: true });
    expect({ what: c.what, rejected: r.exitCode !== 0 }).toEqual({ what: c.what, rejected: true });
    expect({ what: c.what, stderr: r.stderr }).toEqual({ what: c.what, stderr: expect.stringMatching(c.field) });
    expect({ what: c.what, zodAccepts: parseFailoverGroup(doc).ok }).toEqual({ what: c.what, zodAccepts: false });
  }
}, 120_000);

test('the API server defaults a virtual service as zod does', async () => {
  const doc = manifest('lvs-defaults', spec([vs({ check: { type: 'http' } })]));
  await env().kubectl(['apply', '-f', '-'], { input: toYaml(doc) });
  const got = JSON.parse((await env().kubectl(['get', 'fg', 'lvs-defaults', '-o', 'json'])).stdout) as {
    spec: { virtualServers: unknown };
  };
  const zod = parseFailoverGroup(doc);
  if (!zod.ok) throw zod.error;
  expect(got.spec.virtualServers).toEqual(JSON.parse(JSON.stringify(zod.group.spec.virtualServers)));
  await env().kubectl(['delete', 'fg', 'lvs-defaults']);
});
