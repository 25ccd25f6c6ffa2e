// Table tests for the LVS part of the FailoverGroup schema (crds/virtualserver.ts).
import { describe, expect, test } from '@jest/globals';
import { parseFailoverGroup } from './failovergroup.js';
import { vipOf } from './virtualserver.js';

type Doc = Record<string, unknown>;

function doc(vs: Doc[], vips: Doc[] = [{ address: '198.18.0.100/24' }]): Doc {
  return {
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name: 'lvs' },
    spec: { vips, nodes: [{ name: 'dir1' }, { name: 'dir2' }], virtualServers: vs },
  };
}

const web = (over: Doc = {}): Doc => ({
  name: 'web',
  port: 80,
  realServers: [{ address: '198.18.1.11' }, { address: '198.18.1.12', weight: 2 }],
  ...over,
});

function messages(d: Doc): string[] {
  const r = parseFailoverGroup(d, 'test');
  if (r.ok) throw new Error('expected a validation error');
  return r.error.issues.map((i) => `${i.path}: ${i.message}`);
}

describe('virtualServers', () => {
  test('a full service parses, defaults applied', () => {
    const r = parseFailoverGroup(
      doc([
        web({
          check: { type: 'http', http: { path: '/health', expectStatus: [200], expectBody: 'ok' } },
          persistenceSeconds: 300,
          forwarding: 'dr',
          scheduler: 'wrr',
          sorryServer: { address: '198.18.1.99' },
        }),
      ]),
    );
    if (!r.ok) throw r.error;
    expect(r.group.spec.virtualServers).toEqual([
      {
        name: 'web',
        protocol: 'tcp',
        port: 80,
        scheduler: 'wrr',
        persistenceSeconds: 300,
        forwarding: 'dr',
        realServers: [
          { address: '198.18.1.11', weight: 1 },
          { address: '198.18.1.12', weight: 2 },
        ],
        check: {
          type: 'http',
          intervalMs: 2000,
          timeoutMs: 1000,
          rise: 2,
          fall: 2,
          http: { path: '/health', scheme: 'http', expectStatus: [200], expectBody: 'ok' },
        },
        onFailure: 'quiesce',
        sorryServer: { address: '198.18.1.99' },
      },
    ]);
  });

  test('a group without virtualServers parses to a spec without the field (older agents accept it)', () => {
    const d = doc([]);
    delete (d.spec as Doc).virtualServers;
    const r = parseFailoverGroup(d);
    if (!r.ok) throw r.error;
    expect('virtualServers' in r.group.spec).toBe(false);
  });

  test('vipOf: the named VIP, else the first', () => {
    expect(vipOf({}, [{ address: '198.18.0.100/24' }])).toBe('198.18.0.100');
    expect(vipOf({ vip: '2001:2:0::100' }, [{ address: '198.18.0.100/24' }])).toBe('2001:2::100');
  });

  test.each<[string, Doc[], Doc[] | undefined, RegExp]>([
    ['an unknown scheduler', [web({ scheduler: 'lblc' })], undefined, /virtualServers\[0\]\.scheduler/],
    [
      'a real server port in DR mode',
      [web({ forwarding: 'dr', realServers: [{ address: '198.18.1.11', port: 8080 }] })],
      undefined,
      /realServers\[0\]\.port: dr forwards to the virtual port \(80\)/,
    ],
    [
      'a duplicate real server',
      [web({ realServers: [{ address: '198.18.1.11' }, { address: '198.18.1.11', port: 80 }] })],
      undefined,
      /duplicate real server 198\.18\.1\.11:80/,
    ],
    [
      'a vip that is not the group VIP',
      [web({ vip: '198.18.0.101' })],
      undefined,
      /virtualServers\[0\]\.vip: 198\.18\.0\.101 is not one of the group's VIP addresses/,
    ],
    [
      'an IPv6 real server behind an IPv4 VIP',
      [web({ realServers: [{ address: '2001:2::11' }] })],
      undefined,
      /an IPv6 real server behind the IPv4 VIP/,
    ],
    [
      'two services on one protocol, VIP and port',
      [web(), web({ name: 'web2' })],
      undefined,
      /tcp 198\.18\.0\.100 port 80 is already virtualServers\[0\]/,
    ],
    ['duplicate names', [web(), web({ port: 81 })], undefined, /duplicate virtual server name "web"/],
    [
      'an address with a prefix',
      [web({ realServers: [{ address: '198.18.1.11/24' }] })],
      undefined,
      /without a prefix/,
    ],
    [
      'timeout over interval',
      [web({ check: { type: 'tcp', intervalMs: 500, timeoutMs: 800 } })],
      undefined,
      /timeoutMs/,
    ],
    ['http settings on a tcp check', [web({ check: { type: 'tcp', http: {} } })], undefined, /only for type http/],
    ['no real servers', [web({ realServers: [] })], undefined, /realServers/],
  ])('rejects %s', (_what, vs, vips, re) => {
    expect(messages(doc(vs, vips)).join('\n')).toMatch(re);
  });
});
