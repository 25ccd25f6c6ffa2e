import { z } from 'zod';
import { FailoverGroupSpec, type Spec } from '../crds/failovergroup.js';
import { allowlistFields, describeAllowlist, refusal, vipProblems, type AllowlistConfig } from './allowlist.js';

const Cfg = z.object(allowlistFields).strict();
const cfg = (raw: Record<string, unknown>): AllowlistConfig => Cfg.parse(raw);
const spec = (raw: Record<string, unknown>): Spec =>
  FailoverGroupSpec.parse({ vips: [{ address: '198.18.0.100/24' }], nodes: [{ name: 'node1' }], ...raw });

const TESTBED = cfg({
  vipRanges: ['198.18.0.0/15', { cidr: '2001:2::/48' }],
  allow: { snatDestinations: ['198.18.0.0/15', '2001:2::/48'], checkTargets: ['198.18.0.0/15', '2001:2::/48'] },
});

describe('refusal', () => {
  it.each<[string, AllowlistConfig, Record<string, unknown>, RegExp | undefined]>([
    ['inside the testbed ranges', TESTBED, {}, undefined],
    ['IPv6 inside', TESTBED, { vips: [{ address: '2001:2:0:1::10/64' }] }, undefined],
    ['no vipRanges at all', cfg({}), {}, /no vipRanges in the agent configuration/],
    ['empty vipRanges', cfg({ vipRanges: [] }), {}, /no vipRanges/],
    [
      'a gateway outside the ranges',
      TESTBED,
      { vips: [{ address: '10.0.0.1/24' }] },
      /vips\[0\]: 10\.0\.0\.1\/24 is outside/,
    ],
    ['IPv6 outside', TESTBED, { vips: [{ address: '2001:3::1/64' }] }, /vips\[0\].*outside/],
    [
      'a prefix wider than the range',
      cfg({ vipRanges: ['198.18.0.0/24'] }),
      { vips: [{ address: '198.18.0.1/16' }] },
      /outside/,
    ],
    [
      'IPv4 range does not admit IPv6',
      cfg({ vipRanges: ['198.18.0.0/15'] }),
      { vips: [{ address: '2001:2::1/64' }] },
      /outside/,
    ],
    [
      'interface allowed',
      cfg({ vipRanges: [{ cidr: '198.18.0.0/15', interfaces: ['eth1'] }] }),
      { vips: [{ address: '198.18.0.100/24', interface: 'eth1' }] },
      undefined,
    ],
    [
      'the default interface is not allowed',
      cfg({ vipRanges: [{ cidr: '198.18.0.0/15', interfaces: ['eth1'] }] }),
      {},
      /may not go on interface eth0 \(allowed: eth1\)/,
    ],
    [
      'second VIP of two is outside',
      TESTBED,
      { vips: [{ address: '198.18.0.100/24' }, { address: '192.0.2.1/24' }] },
      /^vips\[1\]/,
    ],
    ['SNAT destination allowed', TESTBED, { snat: [{ destination: '198.18.5.0/24' }] }, undefined],
    [
      'SNAT to the world',
      TESTBED,
      { snat: [{ destination: '0.0.0.0/1' }] },
      /snat\[0\]: destination 0\.0\.0\.0\/1 is not in/,
    ],
    [
      'SNAT with no destinations allowed',
      cfg({ vipRanges: ['198.18.0.0/15'] }),
      { snat: [{ destination: '198.18.5.0/24' }] },
      /snat\[0\]/,
    ],
    [
      'local check by default',
      cfg({ vipRanges: ['198.18.0.0/15'] }),
      { checks: [{ name: 'web', type: 'http', http: {} }] },
      undefined,
    ],
    [
      'localhost and ::1 are local',
      cfg({ vipRanges: ['198.18.0.0/15'] }),
      {
        checks: [
          { name: 'a', type: 'tcp', tcp: { port: 80, host: 'localhost' } },
          { name: 'b', type: 'tcp', tcp: { port: 80, host: '::1' } },
          { name: 'c', type: 'tcp', tcp: { port: 80, host: '127.0.0.53' } },
        ],
      },
      undefined,
    ],
    [
      'a remote check target by default',
      cfg({ vipRanges: ['198.18.0.0/15'] }),
      { checks: [{ name: 'web', type: 'http', http: { host: '198.18.0.5' } }] },
      /checks\[0\] \(web\): target 198\.18\.0\.5 is not local/,
    ],
    [
      'a remote check target allowed',
      TESTBED,
      { checks: [{ name: 'web', type: 'http', http: { host: '198.18.0.5' } }] },
      undefined,
    ],
    [
      'a MySQL host elsewhere (password theft)',
      TESTBED,
      { checks: [{ name: 'db', type: 'mysql', mysql: { host: '203.0.113.9', credentials: 'db' } }] },
      /checks\[0\] \(db\): target 203\.0\.113\.9/,
    ],
    [
      'a MySQL socket is local',
      cfg({ vipRanges: ['198.18.0.0/15'] }),
      { checks: [{ name: 'db', type: 'mysql', mysql: { host: '203.0.113.9', socket: '/run/mysqld/mysqld.sock' } }] },
      undefined,
    ],
    [
      'a host name only when listed',
      cfg({ vipRanges: ['198.18.0.0/15'], allow: { checkTargets: ['db.internal'] } }),
      {
        checks: [
          { name: 'a', type: 'tcp', tcp: { port: 1, host: 'DB.internal' } },
          { name: 'b', type: 'tcp', tcp: { port: 1, host: 'evil.example' } },
        ],
      },
      /^checks\[1\] \(b\): target evil\.example/,
    ],
    [
      'a floating IP not listed',
      TESTBED,
      { cloud: { provider: 'digitalocean', floatingIp: '203.0.113.7' } },
      /cloud: floating IP 203\.0\.113\.7 is not in this node's allow\.floatingIps/,
    ],
    [
      'a floating IP listed',
      cfg({ vipRanges: ['198.18.0.0/15'], allow: { floatingIps: ['203.0.113.7'] } }),
      { cloud: { provider: 'digitalocean', floatingIp: '203.0.113.7' } },
      undefined,
    ],
  ])('%s', (_name, c, s, want) => {
    const r = refusal(c, spec(s), 'eth0');
    if (want === undefined) expect(r).toBeUndefined();
    else expect(r).toMatch(want);
  });

  it('lists every reason', () => {
    const r = refusal(
      TESTBED,
      spec({ vips: [{ address: '10.0.0.1/8' }], snat: [{ destination: '10.0.0.0/8' }] }),
      'eth0',
    );
    expect(r).toMatch(/vips\[0\].*; snat\[0\]/);
  });
});

describe('vipProblems on an assignment', () => {
  it('checks the addresses the agent would actually add', () => {
    expect(vipProblems(TESTBED, [{ address: '198.18.1.1/24' }], 'eth0')).toEqual([]);
    expect(vipProblems(TESTBED, [{ address: '8.8.8.8/32', interface: 'eth0' }], 'eth0')).toHaveLength(1);
  });
});

describe('config', () => {
  it.each([
    [{ vipRanges: ['198.18.0.0'] }, 'vipRanges.0'],
    [{ vipRanges: [{ cidr: '198.18.0.0/15', interfaces: [] }] }, 'vipRanges.0.interfaces'],
    [{ vipRanges: [{ cidr: '198.18.0.0/15', extra: 1 }] }, 'vipRanges.0'],
    [{ allow: { snatDestinations: ['nope'] } }, 'allow.snatDestinations.0'],
    [{ allow: { checkTargets: ['Bad Host!'] } }, 'allow.checkTargets.0'],
    [{ allow: { floatingIps: ['1.2.3'] } }, 'allow.floatingIps.0'],
    [{ allow: { other: [] } }, 'allow'],
  ])('%j is refused at %s', (raw, path) => {
    const r = Cfg.safeParse(raw);
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path.join('.'))).toContain(path);
  });

  it('describes what the node may hold, or why nothing', () => {
    expect(describeAllowlist(cfg({}))).toEqual({ held: false, message: expect.stringMatching(/holds no VIPs/) });
    expect(
      describeAllowlist(cfg({ vipRanges: ['198.18.0.0/15', { cidr: '2001:2::/48', interfaces: ['eth1'] }] })),
    ).toEqual({ held: true, message: 'may hold VIPs in 198.18.0.0/15, 2001:2::/48 on eth1' });
  });
});
