// Table tests for the LVS planner and the ipvsadm text format.
import { describe, expect, it } from '@jest/globals';
import { FailoverGroupSpec, type Spec } from '../../crds/failovergroup.js';
import {
  actionArgs,
  parseDaemons,
  parseIpvsRules,
  parseListing,
  restoreBatch,
  statsOf,
  type IpvsService,
} from './ipvs.js';
import { fixture } from '../../common/testing/fixture.js';
import { desiredServices, planIpvs, planSync, realServerId, syncArgs, syncWant } from './planner.js';

function spec(vs: Record<string, unknown>[], vips = [{ address: '198.18.0.100/24' }]): Spec {
  return FailoverGroupSpec.parse({ vips, nodes: [{ name: 'dir1' }], virtualServers: vs });
}

const web = (over: Record<string, unknown> = {}) => ({
  name: 'web',
  port: 80,
  realServers: [
    { address: '198.18.1.11', port: 8080 },
    { address: '198.18.1.12', port: 8080, weight: 3 },
  ],
  check: { type: 'tcp' },
  ...over,
});

const rs1 = realServerId('g', 'web', { address: '198.18.1.11', port: 8080 });
const rs2 = realServerId('g', 'web', { address: '198.18.1.12', port: 8080 });

describe('ipvsadm text', () => {
  it('parses -Sn output, IPv4 and IPv6, persistence, each forwarding method; keeps fwmark lines apart', () => {
    const text = fixture(import.meta.url, 'ipvsadm-Sn.txt');
    const r = parseIpvsRules(text);
    expect(r.services).toEqual([
      {
        protocol: 'tcp',
        address: '198.18.0.100',
        port: 80,
        scheduler: 'wlc',
        persistence: 300,
        dests: [
          { address: '198.18.1.11', port: 8080, weight: 1, forwarding: 'nat' },
          { address: '198.18.1.12', port: 8080, weight: 0, forwarding: 'dr' },
        ],
      },
      {
        protocol: 'udp',
        address: '2001:2::100',
        port: 53,
        scheduler: 'sh',
        dests: [{ address: '2001:2::11', port: 53, weight: 2, forwarding: 'tunnel' }],
      },
    ]);
    expect(r.foreign).toHaveLength(2);
  });

  it('formats actions as ipvsadm arguments and -R batch lines', () => {
    const svc = { protocol: 'udp' as const, address: '2001:2::100', port: 53 };
    expect(actionArgs({ type: 'add-service', service: { ...svc, scheduler: 'rr', persistence: 60 } })).toEqual([
      '-A',
      '-u',
      '[2001:2::100]:53',
      '-s',
      'rr',
      '-p',
      '60',
    ]);
    expect(
      restoreBatch([
        { type: 'edit-dest', service: svc, dest: { address: '2001:2::11', port: 53, weight: 0, forwarding: 'dr' } },
        { type: 'delete-service', service: svc },
      ]),
    ).toBe('-e -u [2001:2::100]:53 -r [2001:2::11]:53 -g -w 0\n-D -u [2001:2::100]:53\n');
  });

  it('parses the sync daemon listing and the counters', () => {
    expect(
      parseDaemons('master sync daemon (mcast=eth0, syncid=3)\nbackup sync daemon (mcast=eth1, syncid=0)\n'),
    ).toEqual([
      { state: 'master', interface: 'eth0', syncId: 3 },
      { state: 'backup', interface: 'eth1', syncId: 0 },
    ]);
    const conns = parseListing(
      [
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
        'TCP  198.18.0.100:80 wlc persistent 300',
        '  -> 198.18.1.11:8080             Masq    1      4          7',
      ].join('\n'),
      'conns',
    );
    const stats = parseListing(
      [
        'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
        '  -> RemoteAddress:Port',
        'TCP  198.18.0.100:80                    11       90       80     5000    60000',
        '  -> 198.18.1.11:8080                   11       90       80     5000    60000',
      ].join('\n'),
      'stats',
    );
    const k = 'tcp 198.18.0.100:80';
    expect(statsOf(conns.get(k)?.get('198.18.1.11:8080'), stats.get(k)?.get('198.18.1.11:8080'))).toEqual({
      activeConns: 4,
      inactiveConns: 7,
      conns: 11,
      inPackets: 90,
      outPackets: 80,
      inBytes: 5000,
      outBytes: 60000,
    });
  });
});

describe('desiredServices', () => {
  const run = (s: Spec, health: Record<string, boolean | undefined>) =>
    desiredServices(new Map([['g', s]]), (id) => health[id]);

  it.each<[string, Record<string, unknown>, Record<string, boolean | undefined>, [string, number][], boolean]>([
    [
      'all up',
      {},
      { [rs1]: true, [rs2]: true },
      [
        ['198.18.1.11:8080', 1],
        ['198.18.1.12:8080', 3],
      ],
      false,
    ],
    [
      'no result yet counts as up',
      {},
      {},
      [
        ['198.18.1.11:8080', 1],
        ['198.18.1.12:8080', 3],
      ],
      false,
    ],
    [
      'a failed one is quiesced',
      {},
      { [rs1]: false, [rs2]: true },
      [
        ['198.18.1.11:8080', 0],
        ['198.18.1.12:8080', 3],
      ],
      false,
    ],
    ['or removed', { onFailure: 'remove' }, { [rs1]: false, [rs2]: true }, [['198.18.1.12:8080', 3]], false],
    [
      'all down: the sorry server joins',
      { sorryServer: { address: '198.18.1.99' } },
      { [rs1]: false, [rs2]: false },
      [
        ['198.18.1.11:8080', 0],
        ['198.18.1.12:8080', 0],
        ['198.18.1.99:80', 1],
      ],
      true,
    ],
    [
      'all down, removal: only the sorry server',
      { sorryServer: { address: '198.18.1.99', port: 8081 }, onFailure: 'remove' },
      { [rs1]: false, [rs2]: false },
      [['198.18.1.99:8081', 1]],
      true,
    ],
    [
      'no check: always up',
      { check: undefined },
      { [rs1]: false },
      [
        ['198.18.1.11:8080', 1],
        ['198.18.1.12:8080', 3],
      ],
      false,
    ],
  ])('%s', (_what, over, health, dests, sorry) => {
    const { services } = run(spec([web(over)]), health);
    expect(services).toHaveLength(1);
    expect(services[0]!.dests.map((d) => [`${d.address}:${d.port}`, d.weight])).toEqual(dests);
    expect(services[0]!.sorry).toBe(sorry);
  });

  it('takes the VIP, scheduler, persistence and forwarding from the spec; DR keeps the virtual port', () => {
    const { services, views } = run(
      spec(
        [
          web({
            vip: '2001:2::100',
            scheduler: 'sh',
            persistenceSeconds: 60,
            forwarding: 'dr',
            realServers: [{ address: '2001:2::11' }],
          }),
        ],
        [{ address: '198.18.0.100/24' }, { address: '2001:2::100/64' }],
      ),
      {},
    );
    expect(services[0]).toMatchObject({
      address: '2001:2::100',
      port: 80,
      scheduler: 'sh',
      persistence: 60,
      dests: [{ address: '2001:2::11', port: 80, forwarding: 'dr', weight: 1 }],
    });
    expect(views[0]).toMatchObject({ id: 'g/web/[2001:2::11]:80', up: undefined, weight: 1 });
  });
});

describe('planIpvs', () => {
  const svc = (over: Partial<IpvsService> = {}): IpvsService => ({
    protocol: 'tcp',
    address: '198.18.0.100',
    port: 80,
    scheduler: 'wlc',
    dests: [
      { address: '198.18.1.11', port: 8080, weight: 1, forwarding: 'nat' },
      { address: '198.18.1.12', port: 8080, weight: 3, forwarding: 'nat' },
    ],
    ...over,
  });
  const lines = (d: IpvsService[], a: IpvsService[], owned: string[] = []) =>
    restoreBatch(planIpvs(d, a, new Set(owned)))
      .trim()
      .split('\n')
      .filter(Boolean);

  it('adds a missing service with its destinations', () => {
    expect(lines([svc()], [])).toEqual([
      '-A -t 198.18.0.100:80 -s wlc',
      '-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 1',
      '-a -t 198.18.0.100:80 -r 198.18.1.12:8080 -m -w 3',
    ]);
  });

  it('does nothing when the table matches (safe to repeat)', () => {
    expect(lines([svc()], [svc()])).toEqual([]);
  });

  it('edits weights, forwarding, scheduler and persistence in place; adds before it deletes', () => {
    const actual = svc({
      dests: [
        { address: '198.18.1.11', port: 8080, weight: 1, forwarding: 'nat' },
        { address: '198.18.1.99', port: 80, weight: 1, forwarding: 'nat' },
      ],
    });
    const desired = svc({
      scheduler: 'rr',
      persistence: 30,
      dests: [
        { address: '198.18.1.11', port: 8080, weight: 0, forwarding: 'dr' },
        { address: '198.18.1.12', port: 8080, weight: 3, forwarding: 'nat' },
      ],
    });
    expect(lines([desired], [actual])).toEqual([
      '-E -t 198.18.0.100:80 -s rr -p 30',
      '-e -t 198.18.0.100:80 -r 198.18.1.11:8080 -g -w 0',
      '-a -t 198.18.0.100:80 -r 198.18.1.12:8080 -m -w 3',
      '-d -t 198.18.0.100:80 -r 198.18.1.99:80',
    ]);
  });

  it('deletes services it owns that nothing wants, never anyone else’s', () => {
    const other = svc({ port: 443 });
    const mine = svc({ protocol: 'udp', port: 53, dests: [] });
    expect(lines([], [other, mine], ['udp 198.18.0.100:53'])).toEqual(['-D -u 198.18.0.100:53']);
  });
});

describe('sync daemons', () => {
  const s = spec([web()]);
  const none = new Map<string, Spec>();
  const g = new Map([['g', s]]);
  const opts = { interface: 'eth0', syncId: 0 };

  it('wants master on the holder, backup on a standby, both when it is each', () => {
    expect(syncWant(g, none, opts)).toEqual({ master: opts });
    expect(syncWant(none, g, opts)).toEqual({ backup: opts });
    expect(syncWant(g, new Map([['h', s]]), opts)).toEqual({ master: opts, backup: opts });
    expect(syncWant(none, new Map([['h', spec([])]]), opts)).toEqual({});
  });

  it('re-points on failover: the new holder starts master, then stops backup', () => {
    const steps = planSync({ master: opts }, [{ state: 'backup', ...opts }], new Set(['backup']));
    expect(steps.map((x) => syncArgs(x).join(' '))).toEqual([
      '--start-daemon master --mcast-interface eth0 --syncid 0',
      '--stop-daemon backup',
    ]);
  });

  it('restarts a daemon on the wrong interface; leaves alone one it did not start', () => {
    expect(planSync({ backup: opts }, [{ state: 'backup', interface: 'eth9', syncId: 0 }], new Set())).toEqual([
      { type: 'stop', state: 'backup' },
      { type: 'start', state: 'backup', interface: 'eth0', syncId: 0 },
    ]);
    expect(planSync({}, [{ state: 'master', ...opts }], new Set())).toEqual([]);
    expect(planSync({}, [{ state: 'master', ...opts }], new Set(['master']))).toEqual([
      { type: 'stop', state: 'master' },
    ]);
  });
});
