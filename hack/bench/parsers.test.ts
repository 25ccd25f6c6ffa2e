// The benchmark's pure parts: parsers of what the tools print, and generated configuration.
import { describe, expect, test } from '@jest/globals';
import { parseFailoverGroup } from '../../crds/failovergroup.js';
import { checkScript, keepalivedConfig, KEEPALIVED_PROFILES } from './keepalived.js';
import { parseNeighLine } from './neigh.js';
import {
  grpcCounters,
  parsePassHistogram,
  parseProcStat,
  parseProcStatus,
  safetyWaitMs,
  scaleGroup,
  scaleTargets,
  SIM_LEASE,
  summarizePasses,
  type ScaleResult,
} from './scale.js';
import { LEASE_CONFIG_DEFAULT } from '../../common/lease-config.js';
import { stepTimes } from './vipwarden.js';

describe('parseNeighLine', () => {
  test('ip -ts monitor neigh, local time with microseconds, to the monotonic clock', () => {
    const wall = new Date('2026-11-22T03:09:14.240').getTime() + 0.761;
    const e = parseNeighLine(
      '[2026-11-22T03:09:14.240761] 198.18.16.100 dev eth0 lladdr CA:9C:F7:4E:06:15 REACHABLE',
      1_000_000,
      0,
    );
    expect(e).toEqual({
      t: wall - 1_000_000,
      ip: '198.18.16.100',
      lladdr: 'ca:9c:f7:4e:06:15',
      state: 'REACHABLE',
      deleted: false,
    });
  });
  test('deletions, entries without a MAC, and other lines', () => {
    expect(parseNeighLine('Deleted 198.18.16.100 dev eth0 lladdr ca:9c:f7:4e:06:15 STALE', 0, 5)).toMatchObject({
      deleted: true,
      t: 5,
    });
    expect(parseNeighLine('198.18.16.100 dev eth0  FAILED', 0, 5)).toMatchObject({
      ip: '198.18.16.100',
      state: 'FAILED',
    });
    expect(parseNeighLine('garbage', 0, 5)).toBeUndefined();
  });
});

describe('keepalived configuration', () => {
  const node = {
    node: 'node1',
    ip: '198.18.20.11',
    peers: ['198.18.20.12', '198.18.20.13'],
    priority: 100,
    initialState: 'MASTER' as const,
    vip: '198.18.20.100',
    prefixLen: 24,
    iface: 'eth0',
    checkScript: '/tmp/x/check-nginx.sh',
    virtualRouterId: 51,
  };
  test('default: VRRPv2 with authentication, unicast peers, the nginx check tracked', () => {
    const c = keepalivedConfig(KEEPALIVED_PROFILES['keepalived-default'], node);
    expect(c).toContain('vrrp_version 2');
    expect(c).toContain('advert_int 1\n');
    expect(c).toContain('auth_type PASS');
    expect(c).toContain('unicast_src_ip 198.18.20.11');
    expect(c).toMatch(/unicast_peer \{\n\s+198\.18\.20\.12\n\s+198\.18\.20\.13\n\s+\}/);
    expect(c).toContain('198.18.20.100/24 dev eth0');
    expect(c).toMatch(/track_script \{\n\s+chk_nginx/);
    expect(c).toMatch(/fall 2/);
  });
  test('tuned: VRRPv3, 100 ms adverts, no authentication, checks fall at once', () => {
    const c = keepalivedConfig(KEEPALIVED_PROFILES['keepalived-tuned'], node);
    expect(c).toContain('vrrp_version 3');
    expect(c).toContain('advert_int 0.1');
    expect(c).not.toContain('authentication');
    expect(c).toMatch(/fall 1/);
  });
  test('keepalived refuses what it cannot do', () => {
    expect(() => keepalivedConfig({ ...KEEPALIVED_PROFILES['keepalived-default'], advertInt: 0.5 }, node)).toThrow();
    expect(() => keepalivedConfig({ ...KEEPALIVED_PROFILES['keepalived-tuned'], checkIntervalS: 0.1 }, node)).toThrow();
    expect(() => keepalivedConfig(KEEPALIVED_PROFILES['keepalived-tuned'], { ...node, priority: 255 })).toThrow();
  });
  test('the check script asks nginx on loopback, bounded', () => {
    expect(checkScript(80)).toContain('curl -fsS -o /dev/null --max-time 1 http://127.0.0.1:80/');
  });
});

describe('scale helpers', () => {
  test('grpc counters from etcd /metrics', () => {
    const text = [
      '# HELP grpc_server_handled_total ...',
      'grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 10',
      'grpc_server_handled_total{grpc_code="NotFound",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 2',
      'grpc_server_handled_total{grpc_code="OK",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 3',
      'grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 400',
      'grpc_server_msg_received_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 12',
    ].join('\n');
    const c = grpcCounters(text);
    expect([...c.unary]).toEqual([['Range', 12]]);
    expect([...c.streamMsgs]).toEqual([['LeaseKeepAlive', 400]]);
  });
  test('/proc/<pid>/stat and status', () => {
    const stat = '1234 (node (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 11 0 100 0 0';
    expect(parseProcStat(stat)).toEqual({ utime: 250, stime: 50 });
    expect(parseProcStatus('Name:\tnode\nVmHWM:\t  300000 kB\nVmRSS:\t  200000 kB\n')).toEqual({
      rssKiB: 200000,
      hwmKiB: 300000,
    });
  });
  test('reconcile pass histogram', () => {
    const scrape = (n: number, sum: number, b: [string, number][]) =>
      [
        ...b.map(([le, c]) => `vipwarden_reconcile_duration_seconds_bucket{le="${le}",component="controller"} ${c}`),
        `vipwarden_reconcile_duration_seconds_sum{component="controller"} ${sum}`,
        `vipwarden_reconcile_duration_seconds_count{component="controller"} ${n}`,
      ].join('\n');
    const a = parsePassHistogram(
      scrape(10, 0.5, [
        ['0.01', 5],
        ['0.1', 10],
        ['+Inf', 10],
      ]),
    );
    const b = parsePassHistogram(
      scrape(30, 2.5, [
        ['0.01', 5],
        ['0.1', 20],
        ['+Inf', 30],
      ]),
    );
    expect(a.buckets).toEqual([
      [0.01, 5],
      [0.1, 10],
      [Infinity, 10],
    ]);
    expect(summarizePasses(undefined, a)).toEqual({ passes: 10, meanMs: 50, slowestUnderMs: 100 });
    expect(summarizePasses(a, b)).toEqual({ passes: 20, meanMs: 100, slowestUnderMs: null });
  });
  test('scale groups are valid FailoverGroups with three candidates', () => {
    for (const i of [0, 249, 250, 999]) {
      const r = parseFailoverGroup(scaleGroup(i, 100));
      expect(r.ok).toBe(true);
      if (r.ok)
        expect(r.group.spec.nodes.map((n) => n.name)).toEqual(
          [0, 1, 2].map((k) => `node-${String((i + k) % 100).padStart(3, '0')}`),
        );
    }
  });
  test('the simulated agents wait 0 ms after a lease ends (Safety 3); a default agent 970 ms', () => {
    expect(safetyWaitMs(SIM_LEASE)).toBe(0);
    expect(safetyWaitMs({ ...LEASE_CONFIG_DEFAULT, renewWindowMs: 500 })).toBe(970);
  });
  test('issue 16 targets: 2 s cold, 1 s warm for 1,000 groups; 15 s cold for 10,000; 500 ms reassignment', () => {
    const r = (groups: number, cold: number, warm: number, lost: number) =>
      ({
        groups,
        placement: { placed: groups, placedMs: cold },
        warmPlacement: { placed: groups, placedMs: warm },
        lostNode: { node: 'n', groups: 1, reassigned: 1, reassignedMs: lost },
      }) as unknown as ScaleResult;
    expect(scaleTargets(r(1000, 1900, 900, 400))).toBe(
      'cold placement < 2 s: met; warm < 1 s: met; reassigned < 500 ms after lease end: met',
    );
    expect(scaleTargets(r(10_000, 14_000, 9000, 600))).toBe(
      'cold placement < 15 s: met; reassigned < 500 ms after lease end: MISSED',
    );
  });
});

describe('stepTimes from the components logs', () => {
  const e = (t: number, src: 'agent' | 'controller', msg: string, f: Record<string, unknown> = {}, node?: string) => ({
    t,
    src,
    msg,
    f,
    ...(node ? { node } : {}),
  });
  const entries = [
    e(990, 'agent', 'check changed state', { ok: false }, 'node1'),
    e(1150, 'agent', 'check changed state', { ok: false }, 'node1'),
    e(1170, 'agent', 'released', {}, 'node1'),
    e(1190, 'controller', 'assignment written', { holder: 'node2', release: false }),
    e(1191, 'controller', 'failover', { to: 'node2', detectMs: 160, outageMs: 20, reason: 'unhealthy' }),
    e(1220, 'agent', 'acquired', { tookMs: 25 }, 'node2'),
  ];
  test('service failure', () => {
    expect(
      stepTimes(entries, { mode: 'service', from: 'node1', to: 'node2', tFault: 1000, tEnd: 3000, wallMinusMono: 0 }),
    ).toEqual({
      detect: 1150,
      released: 1170,
      assigned: 1190,
      eventDetectMs: 160,
      eventOutageMs: 20,
      eventReason: 'unhealthy',
      acquired: 1220,
      acquireStart: 1195,
    });
  });
  test('hard failure: detection is the lease end the controller saw (the message as the controller writes it)', () => {
    const hard = [e(2100, 'controller', 'node lease ended (etcd says so)', { node: 'node1' }), ...entries.slice(3)];
    expect(
      stepTimes(hard, { mode: 'kill', from: 'node1', to: 'node2', tFault: 1000, tEnd: 3000, wallMinusMono: 0 }),
    ).toMatchObject({ detect: 2100, leaseEnded: 2100 });
  });
  test('hard failure with heartbeats: detection is the revocation decided, the lease end its answer', () => {
    const hard = [
      e(1100, 'controller', 'heartbeats stopped: revoking the holder lease', { node: 'node1' }),
      e(1104, 'controller', 'node lease ended (etcd says so)', { node: 'node1' }),
      ...entries.slice(3),
    ];
    expect(
      stepTimes(hard, { mode: 'kill', from: 'node1', to: 'node2', tFault: 1000, tEnd: 3000, wallMinusMono: 0 }),
    ).toMatchObject({ detect: 1100, leaseEnded: 1104 });
  });
});
