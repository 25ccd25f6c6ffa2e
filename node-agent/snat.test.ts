import type { Exec } from '../common/exec.js';
import { CommandError } from '../common/exec.js';
import { silentLogger } from '../common/log.js';
import { SnatRule as SnatRuleSchema } from '../crds/failovergroup.js';
import { vipRef } from './addresses.js';
import type { ResourceContext } from './resources.js';
import {
  desiredRules,
  networkOf,
  parseNatTable,
  planSnat,
  ruleSpec,
  SnatResource,
  splitRuleLine,
  stepArgv,
} from './snat.js';

const rule = (r: Record<string, unknown>) => SnatRuleSchema.parse(r);
const vips = [
  vipRef('198.18.5.100/24', 'eth0'),
  vipRef('198.18.5.101/24', 'eth0'),
  vipRef('2001:2:0:5::100/64', 'eth0'),
];

describe('networkOf', () => {
  it.each([
    ['198.18.99.7/24', '198.18.99.0/24'],
    ['198.18.99.7/32', '198.18.99.7/32'],
    ['198.19.255.255/15', '198.18.0.0/15'],
    ['2001:2:0:0::7/64', '2001:2::/64'],
    ['2001:2:0:5::100/128', '2001:2:0:5::100/128'],
    ['2001:2:abcd:5::1/36', '2001:2:a000::/36'],
  ])('%s -> %s', (cidr, net) => expect(networkOf(cidr)).toBe(net));
});

describe('desiredRules', () => {
  it('takes the first VIP of the destination family as the source', () => {
    const r = desiredRules(
      'web',
      [
        rule({ destination: '198.18.9.0/24' }),
        rule({ destination: '2001:2:0:9::/64', protocol: 'tcp', ports: [443, 80, 80] }),
      ],
      vips,
    );
    expect(r).toEqual([
      { family: 4, group: 'web', destination: '198.18.9.0/24', protocol: 'all', ports: [], toSource: '198.18.5.100' },
      {
        family: 6,
        group: 'web',
        destination: '2001:2:0:9::/64',
        protocol: 'tcp',
        ports: [80, 443],
        toSource: '2001:2:0:5::100',
      },
    ]);
  });

  it('refuses a destination without a VIP of its family', () => {
    expect(() => desiredRules('web', [rule({ destination: '2001:2::/64' })], vips.slice(0, 1))).toThrow(
      /needs an IPv6 VIP/,
    );
  });

  it('writes rules in the form iptables lists them', () => {
    const [r] = desiredRules('web', [rule({ destination: '198.18.9.7/24', protocol: 'udp', ports: [53] })], vips);
    expect(ruleSpec(r!)).toEqual([
      '-d',
      '198.18.9.0/24',
      '-p',
      'udp',
      '-m',
      'multiport',
      '--dports',
      '53',
      '-m',
      'comment',
      '--comment',
      'vipwarden:web',
      '-j',
      'SNAT',
      '--to-source',
      '198.18.5.100',
    ]);
  });
});

describe('parsing iptables -S', () => {
  const listing = [
    '-P PREROUTING ACCEPT',
    '-P POSTROUTING ACCEPT',
    '-N DOCKER',
    '-N VIPWARDEN-SNAT',
    '-A POSTROUTING -j VIPWARDEN-SNAT',
    '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE',
    '-A VIPWARDEN-SNAT -d 198.18.99.0/24 -p tcp -m multiport --dports 80,443 -m comment --comment "vipwarden:web" -j SNAT --to-source 198.18.99.5',
    '-A VIPWARDEN-SNAT -d 198.18.0.0/15 -m comment --comment "vipwarden:a.b-c" -j SNAT --to-source 198.18.99.5',
    '-A VIPWARDEN-SNAT -d 198.18.7.0/24 -j SNAT --to-source 198.18.99.5 --random',
  ].join('\n');

  it('splits quoted arguments', () => {
    expect(splitRuleLine('-A X -m comment --comment "a \\"b\\" c" -j Y')).toEqual([
      '-A',
      'X',
      '-m',
      'comment',
      '--comment',
      'a "b" c',
      '-j',
      'Y',
    ]);
  });

  it('finds the chain, the jump and the rules with their groups', () => {
    const t = parseNatTable(listing);
    expect(t.hasChain).toBe(true);
    expect(t.hasJump).toBe(true);
    expect(t.rules.map((r) => [r.group, r.key])).toEqual([
      ['web', '198.18.99.0/24|tcp|80,443|198.18.99.5'],
      ['a.b-c', '198.18.0.0/15|all||198.18.99.5'],
      [undefined, undefined],
    ]);
    expect(t.rules[0]!.spec[0]).toBe('-d');
  });

  it('sees an empty table', () => {
    expect(parseNatTable('-P POSTROUTING ACCEPT\n')).toEqual({ hasChain: false, hasJump: false, rules: [] });
  });
});

describe('planSnat', () => {
  const want = desiredRules(
    'web',
    [
      rule({ destination: '198.18.99.0/24', protocol: 'tcp', ports: [80, 443] }),
      rule({ destination: '198.18.8.0/24' }),
    ],
    [vipRef('198.18.99.5/24', 'eth0')],
  );

  it('creates chain and jump, then appends, on an empty table', () => {
    const steps = planSnat(4, { hasChain: false, hasJump: false, rules: [] }, { group: 'web', rules: want });
    expect(steps.map((s) => s.type)).toEqual(['create-chain', 'insert-jump', 'append', 'append']);
    expect(stepArgv(steps[1]!)).toEqual([
      'iptables',
      '-w',
      '5',
      '-t',
      'nat',
      '-I',
      'POSTROUTING',
      '1',
      '-j',
      'VIPWARDEN-SNAT',
    ]);
  });

  it('does nothing when the rules are there (idempotent), and removes what is no longer wanted', () => {
    const listed = [
      '-N VIPWARDEN-SNAT',
      '-A POSTROUTING -j VIPWARDEN-SNAT',
      ...want.map(
        (r) =>
          `-A VIPWARDEN-SNAT ${ruleSpec(r)
            .map((a) => (a.startsWith('vipwarden:') ? `"${a}"` : a))
            .join(' ')}`,
      ),
    ];
    const t = parseNatTable(listed.join('\n'));
    expect(planSnat(4, t, { group: 'web', rules: want })).toEqual([]);
    const fewer = planSnat(4, t, { group: 'web', rules: want.slice(0, 1) });
    expect(fewer).toEqual([{ type: 'delete', family: 4, spec: ruleSpec(want[1]!) }]);
    // Another group's rules are not touched; a release removes all of ours.
    expect(planSnat(4, t, { group: 'other', rules: [] })).toEqual([]);
    expect(planSnat(4, t, { group: 'web', rules: [] }).map((s) => s.type)).toEqual(['delete', 'delete']);
  });

  it('replaces a rule whose source VIP changed, and removes duplicates', () => {
    const old = desiredRules('web', [rule({ destination: '198.18.8.0/24' })], [vipRef('198.18.99.9/24', 'eth0')]);
    const line = (r: (typeof old)[number]) => `-A VIPWARDEN-SNAT ${ruleSpec(r).join(' ')}`;
    const t = parseNatTable(
      ['-N VIPWARDEN-SNAT', '-A POSTROUTING -j VIPWARDEN-SNAT', line(old[0]!), line(want[1]!), line(want[1]!)].join(
        '\n',
      ),
    );
    const steps = planSnat(4, t, { group: 'web', rules: want.slice(1) });
    expect(steps).toEqual([
      { type: 'delete', family: 4, spec: ruleSpec(old[0]!) },
      { type: 'delete', family: 4, spec: ruleSpec(want[1]!) },
    ]);
  });

  it('at start removes every rule of groups not kept, and rules without our comment', () => {
    const t = parseNatTable(
      [
        '-A VIPWARDEN-SNAT -d 198.18.8.0/24 -m comment --comment "vipwarden:web" -j SNAT --to-source 198.18.99.5',
        '-A VIPWARDEN-SNAT -d 198.18.9.0/24 -m comment --comment "vipwarden:db" -j SNAT --to-source 198.18.99.6',
        '-A VIPWARDEN-SNAT -d 198.18.7.0/24 -j SNAT --to-source 198.18.99.5',
      ].join('\n'),
    );
    expect(planSnat(4, t, { keepGroups: new Set(['db']) }).map((s) => s.type === 'delete' && s.spec[1])).toEqual([
      '198.18.8.0/24',
      '198.18.7.0/24',
    ]);
  });
});

/** A fake iptables that keeps a nat table per family and answers -S, -N, -I, -A, -D like the real one. */
function fakeIptables(): {
  exec: Exec;
  calls: string[][];
  table: Record<4 | 6, { chain: boolean; jump: boolean; rules: string[] }>;
} {
  const table = {
    4: { chain: false, jump: false, rules: [] as string[] },
    6: { chain: false, jump: false, rules: [] as string[] },
  };
  const calls: string[][] = [];
  const quote = (a: string[]) => a.map((x) => (x.startsWith('vipwarden:') ? `"${x}"` : x)).join(' ');
  const exec: Exec = async (argv) => {
    calls.push([...argv]);
    const t = table[argv[0] === 'ip6tables' ? 6 : 4];
    const op = argv[5];
    const rest = argv.slice(6);
    const ok = (stdout = '') => ({ stdout, stderr: '', exitCode: 0 });
    if (op === '-S') {
      return ok(
        [
          '-P POSTROUTING ACCEPT',
          ...(t.chain ? ['-N VIPWARDEN-SNAT'] : []),
          ...(t.jump ? ['-A POSTROUTING -j VIPWARDEN-SNAT'] : []),
          ...t.rules.map((r) => `-A VIPWARDEN-SNAT ${r}`),
        ].join('\n'),
      );
    }
    if (op === '-N') {
      if (t.chain) throw new CommandError(argv, 1, 'iptables: Chain already exists.');
      t.chain = true;
      return ok();
    }
    if (op === '-I') {
      t.jump = true;
      return ok();
    }
    if (!t.chain) throw new CommandError(argv, 1, 'No chain/target/match by that name.');
    const r = quote(rest.slice(1));
    if (op === '-A') t.rules.push(r);
    else if (op === '-D') {
      const i = t.rules.indexOf(r);
      if (i < 0) throw new CommandError(argv, 1, 'Bad rule (does a matching rule exist in that chain?).');
      t.rules.splice(i, 1);
    }
    return ok();
  };
  return { exec, calls, table };
}

function ctx(group: string, snat: unknown[], refs = vips): ResourceContext {
  return {
    group,
    node: 'node1',
    epoch: 7,
    vips: refs,
    spec: { snat: snat.map((s) => rule(s as Record<string, unknown>)) } as ResourceContext['spec'],
    isCurrent: () => true,
    signal: new AbortController().signal,
    log: silentLogger(),
  };
}

describe('SnatResource', () => {
  it('installs on acquire, changes nothing when repeated, removes on release', async () => {
    const f = fakeIptables();
    const r = new SnatResource(f.exec);
    const c = ctx('web', [
      { destination: '198.18.9.0/24', protocol: 'tcp', ports: [8080] },
      { destination: '2001:2:0:9::/64' },
    ]);
    await r.acquire(c);
    expect(f.table[4]).toEqual({
      chain: true,
      jump: true,
      rules: [
        '-d 198.18.9.0/24 -p tcp -m multiport --dports 8080 -m comment --comment "vipwarden:web" -j SNAT --to-source 198.18.5.100',
      ],
    });
    expect(f.table[6].rules).toEqual([
      '-d 2001:2:0:9::/64 -m comment --comment "vipwarden:web" -j SNAT --to-source 2001:2:0:5::100',
    ]);
    const changing = (calls: string[][]) => calls.filter((a) => a[5] !== '-S');
    const before = changing(f.calls).length;
    await r.acquire(c);
    expect(changing(f.calls).length).toBe(before);
    await r.acquire(ctx('other', [{ destination: '198.18.10.0/24' }]));
    await r.release(c);
    await r.release(c);
    expect(f.table[4].rules).toEqual([
      '-d 198.18.10.0/24 -m comment --comment "vipwarden:other" -j SNAT --to-source 198.18.5.100',
    ]);
    expect(f.table[6].rules).toEqual([]);
    expect(f.table[4].chain && f.table[4].jump).toBe(true);
  });

  it('leaves nothing of a group when the VIP it would use is missing', async () => {
    const f = fakeIptables();
    const r = new SnatResource(f.exec);
    await expect(r.acquire(ctx('web', [{ destination: '2001:2::/64' }], vips.slice(0, 1)))).rejects.toThrow(
      /needs an IPv6 VIP/,
    );
    expect(f.calls.filter((a) => a[5] !== '-S')).toEqual([]);
  });

  it('cleans up stale rules at start', async () => {
    const f = fakeIptables();
    const r = new SnatResource(f.exec);
    await r.acquire(ctx('web', [{ destination: '198.18.9.0/24' }]));
    await r.acquire(ctx('db', [{ destination: '198.18.8.0/24' }]));
    await r.cleanupStale(new Set(['db']), silentLogger());
    expect(f.table[4].rules).toEqual([
      '-d 198.18.8.0/24 -m comment --comment "vipwarden:db" -j SNAT --to-source 198.18.5.100',
    ]);
    await r.cleanupStale(new Set(), silentLogger());
    expect(f.table[4].rules).toEqual([]);
  });

  it('runs one group at a time, so that concurrent acquires do not both create the chain', async () => {
    const f = fakeIptables();
    const r = new SnatResource(f.exec);
    await Promise.all([
      r.acquire(ctx('a', [{ destination: '198.18.9.0/24' }])),
      r.acquire(ctx('b', [{ destination: '198.18.8.0/24' }])),
    ]);
    expect(f.calls.filter((a) => a[5] === '-N' || a[5] === '-I')).toHaveLength(2);
    expect(f.table[4].rules).toHaveLength(2);
  });
});
