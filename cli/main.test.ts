import type { EventRecord } from '../common/keyspace.js';
import { etcdFailure, parseArgs, renderEvents, renderStatus, run, UsageError, type GroupStatus } from './main.js';
import { memoryIo } from './test-io.js';

const io = memoryIo;

describe('parseArgs', () => {
  it('has defaults, and takes the environment', () => {
    expect(parseArgs([], {})).toEqual({
      etcd: ['http://127.0.0.1:2379'],
      prefix: '/vipwarden/',
      output: 'table',
      timeoutMs: 3000,
      positional: [],
      unpin: false,
    });
    const o = parseArgs([], {
      VIPWARDEN_ETCD: 'http://10.0.0.1:2379,https://10.0.0.2:2379',
      VIPWARDEN_PREFIX: '/other/',
    });
    expect(o.etcd).toEqual(['http://10.0.0.1:2379', 'https://10.0.0.2:2379']);
    expect(o.prefix).toBe('/other/');
  });

  it('takes TLS files and an auth file from options or the environment', () => {
    const o = parseArgs(['--etcd', 'https://127.0.0.1:2379', '--etcd-cert', '/c.pem', '--etcd-key', '/k.pem'], {
      VIPWARDEN_ETCD_CA: '/ca.pem',
      VIPWARDEN_ETCD_AUTH_FILE: '/auth',
    });
    expect(o.tls).toEqual({ ca: '/ca.pem', cert: '/c.pem', key: '/k.pem' });
    expect(o.auth).toEqual({ file: '/auth' });
    expect(parseArgs([], {}).tls).toBeUndefined();
    expect(() => parseArgs(['--etcd-ca', '/ca.pem'], {})).toThrow(/needs https:\/\/ endpoints/);
    expect(() => parseArgs(['--etcd', 'https://a:1', '--etcd-cert', '/c'], {})).toThrow(/go together/);
    expect(() => parseArgs(['--etcd', 'https://a:1', '--etcd-cert', '/c', '--etcd-key', '/k'], {})).toThrow(
      /needs the CA/,
    );
  });

  it('lets options win over the environment and collects positionals in order', () => {
    const o = parseArgs(
      [
        'web',
        '--etcd',
        'http://198.18.0.1:2379',
        '-o',
        'json',
        'node2',
        '--prefix',
        '/p/',
        '--timeout',
        '500',
        '--unpin',
      ],
      {
        VIPWARDEN_ETCD: 'http://10.0.0.1:2379',
      },
    );
    expect(o).toEqual({
      etcd: ['http://198.18.0.1:2379'],
      prefix: '/p/',
      output: 'json',
      timeoutMs: 500,
      positional: ['web', 'node2'],
      unpin: true,
    });
    expect(parseArgs(['--output', 'table'], {}).output).toBe('table');
  });

  it.each([
    [['-o', 'yaml'], /-o takes json or table/],
    [['-o'], /-o needs a value/],
    [['--etcd'], /--etcd needs a value/],
    [['--frobnicate'], /unknown option --frobnicate/],
    [['--timeout', 'soon'], /--timeout takes milliseconds/],
    [['--timeout', '0'], /--timeout takes milliseconds/],
    [['--timeout', '-5'], /--timeout takes milliseconds/],
    [['--etcd', 'localhost:2379'], /etcd endpoint "localhost:2379" is not an http\(s\):\/\/host:port URL/],
    [['--etcd', 'unix:///run/etcd.sock'], /is not an http\(s\)/],
    [['--prefix', 'vipwarden/'], /etcd prefix "vipwarden\/" must start with "\/"/],
  ])('rejects %j', (argv, message) => {
    expect(() => parseArgs(argv, {})).toThrow(UsageError);
    expect(() => parseArgs(argv, {})).toThrow(message);
  });

  it('rejects a bad endpoint from the environment too', () => {
    expect(() => parseArgs([], { VIPWARDEN_ETCD: 'nonsense' })).toThrow(/VIPWARDEN_ETCD/);
  });
});

const web: GroupStatus = {
  group: 'web',
  vips: ['198.18.0.100/24', '2001:2::100/64'],
  holder: 'node1',
  epoch: 42,
  pending: null,
  failback: 'auto',
  pinnedTo: null,
  nodes: [
    { name: 'node1', priority: 100, live: true, healthy: true, drained: false, checks: [{ name: 'nginx', ok: true }] },
    {
      name: 'node2',
      priority: 90,
      live: true,
      healthy: false,
      drained: false,
      checks: [{ name: 'nginx', ok: false, message: 'connection refused' }],
    },
    { name: 'node3', priority: 80, live: false, healthy: null, drained: false, checks: [] },
    { name: 'node4', priority: 70, live: true, healthy: true, drained: true, checks: [] },
  ],
};

describe('renderStatus', () => {
  it('shows the leader, and one aligned row per group with holder, epoch and every candidate', () => {
    const lines = renderStatus({
      leader: 'controller-0',
      groups: [web, { ...web, group: 'db-primary', vips: ['198.18.0.101/24'], holder: null, epoch: null, nodes: [] }],
    });
    expect(lines[0]).toBe('leader: controller-0');
    expect(lines[1]).toMatch(/^GROUP\s+VIPS\s+HOLDER\s+EPOCH\s+NODES \(priority, live, health\)$/);
    expect(lines[2]).toContain('web');
    expect(lines[2]).toContain('198.18.0.100/24,2001:2::100/64');
    expect(lines[2]).toContain('node1(100,up,ok) node2(90,up,FAIL) node3(80,down,?) node4(70,up,drained)');
    expect(lines[2]).toMatch(/\bnode1\s+42\s/);
    expect(lines[3]).toMatch(/^db-primary\s+198\.18\.0\.101\/24\s+-\s+-\s*$/);
    // Columns line up: HOLDER starts at the same offset in every row.
    const col = lines[1]!.indexOf('HOLDER');
    expect(lines[2]!.slice(col, col + 5)).toBe('node1');
    expect(lines[3]!.slice(col, col + 1)).toBe('-');
  });

  it('marks a pending release and a pin', () => {
    const [, , row] = renderStatus({
      leader: null,
      groups: [{ ...web, pending: 'release requested (move)', pinnedTo: 'node2' }],
    });
    expect(row).toContain('node1 [releasing] [pinned:node2]');
  });

  it('says so when there is no leader and no group', () => {
    expect(renderStatus({ leader: null, groups: [] })).toEqual(['leader: (none)', 'no groups']);
  });
});

describe('renderEvents', () => {
  const ev = (e: Partial<EventRecord>): EventRecord => ({
    group: 'web',
    from: 'node1',
    to: 'node2',
    reason: 'unhealthy',
    at: Date.UTC(2025, 0, 2, 3, 4, 5, 678),
    epoch: 10,
    ...e,
  });

  it('shows time, group, epoch, from, to, reason and the figures, rounded', () => {
    const lines = renderEvents([
      ev({ detectMs: 212.4, outageMs: 87.6 }),
      ev({ from: null, to: 'node1', reason: 'initial', epoch: 3 }),
    ]);
    expect(lines[0]).toMatch(/^TIME\s+GROUP\s+EPOCH\s+FROM\s+TO\s+REASON\s+DETECT\s+OUTAGE$/);
    expect(lines[1]).toMatch(/^2025-01-02T03:04:05\.678Z\s+web\s+10\s+node1\s+node2\s+unhealthy\s+212ms\s+88ms$/);
    expect(lines[2]).toMatch(/\s3\s+-\s+node1\s+initial\s+-\s+-$/);
  });

  it('says so when there are none', () => {
    expect(renderEvents([])).toEqual(['no events']);
  });
});

describe('etcdFailure', () => {
  it('turns transport errors into one clear line, and leaves other errors alone', () => {
    const refused = new Error(
      '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: .',
    );
    expect(etcdFailure(['http://127.0.0.1:1'], refused, 1000)).toBe(
      'cannot reach etcd at http://127.0.0.1:1: connection refused. Check --etcd or VIPWARDEN_ETCD.',
    );
    expect(etcdFailure(['http://a:1', 'http://b:1'], new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), 750)).toBe(
      'cannot reach etcd at http://a:1,http://b:1: no answer within 750 ms. Check --etcd or VIPWARDEN_ETCD.',
    );
    expect(etcdFailure(['http://a:1'], new Error('etcdserver: permission denied'), 1000)).toBeUndefined();
  });
});

describe('run without etcd', () => {
  it('prints usage: on stdout with exit 0 when asked, on stderr with exit 2 when no command', async () => {
    const a = io();
    expect(await run(['help'], {}, a.io)).toBe(0);
    expect(a.out.join('\n')).toContain('usage: vipwarden');
    const b = io();
    expect(await run(['status', '--help'], {}, b.io)).toBe(0);
    expect(b.out.join('\n')).toContain('drain <node>');
    const c = io();
    expect(await run([], {}, c.io)).toBe(2);
    expect(c.out).toEqual([]);
    expect(c.err.join('\n')).toContain('usage: vipwarden');
  });

  it.each([
    [['frobnicate'], 'unknown command frobnicate'],
    [['status', 'extra'], 'status: unexpected argument extra'],
    [['drain'], 'node is missing'],
    [['drain', 'node1', 'node2'], 'drain: unexpected argument node2'],
    [['drain', 'Node_1'], 'node "Node_1" is not a valid name'],
    [['undrain', '--unpin', 'node1'], '--unpin only goes with move'],
    [['move'], 'group is missing'],
    [['move', 'web'], 'node is missing'],
    [['move', 'web', 'node2', '--unpin'], 'move: unexpected argument node2'],
    [['move', 'web/x', 'node2'], 'group "web/x" is not a valid name'],
    [['events', 'web', 'more'], 'events: unexpected argument more'],
    [['status', '-o', 'xml'], '-o takes json or table'],
  ])('%j is a usage error (exit 2) that names the problem', async (argv, message) => {
    const a = io();
    // A closed loopback port: none of these may get as far as calling etcd.
    expect(await run(argv, { VIPWARDEN_ETCD: 'http://127.0.0.1:1' }, a.io)).toBe(2);
    expect(a.err[0]).toBe(`vipwarden: ${message}`);
    expect(a.err.join('\n')).toContain('usage: vipwarden');
    expect(a.out).toEqual([]);
  });
});

describe('the command line (node:util parseArgs)', () => {
  it('--version and --help anywhere, exit 0', async () => {
    const a = io();
    expect(await run(['--version'], {}, a.io)).toBe(0);
    expect(a.out).toEqual([expect.stringMatching(/^vipwarden \d+\.\d+\.\d+/)]);
    const b = io();
    expect(await run(['--etcd', 'http://127.0.0.1:1', '--help'], {}, b.io)).toBe(0);
    expect(b.out.join('\n')).toContain('validate FILE...');
  });

  it('takes options before the command', async () => {
    const a = io();
    expect(await run(['--etcd', 'http://127.0.0.1:1', '--timeout', '500', 'drain'], {}, a.io)).toBe(2);
    expect(a.err[0]).toBe('vipwarden: node is missing');
    expect(parseArgs(['--etcd', 'http://198.18.0.1:2379', 'status'], {}).positional).toEqual(['status']);
  });

  it.each([
    [['status', '--etcdd', 'http://x:1'], 'unknown option --etcdd'],
    [['--confg', 'x', 'status'], 'unknown option --confg'],
    [['status', '--node', 'a'], '--node only goes with validate'],
  ])('%j is a usage error: %s', async (argv, message) => {
    const a = io();
    expect(await run(argv, {}, a.io)).toBe(2);
    expect(a.err[0]).toBe(`vipwarden: ${message}`);
  });
});

describe('renderStatus: failing checks and rejected groups', () => {
  it('lists each failing check with its message, and each rejected group with its reason', () => {
    const lines = renderStatus({
      leader: 'c',
      groups: [web],
      rejected: [{ group: 'db', reason: 'VIP 198.18.0.100 is already claimed by group web', at: 1 }],
    });
    expect(lines.slice(3)).toEqual([
      '',
      'GROUP  NODE   FAILING CHECK  MESSAGE',
      'web    node2  nginx          connection refused',
      '',
      'REJECTED GROUP  REASON',
      'db              VIP 198.18.0.100 is already claimed by group web',
    ]);
  });

  it('shows rejected groups even when no group is placed', () => {
    expect(
      renderStatus({ leader: null, groups: [], rejected: [{ group: 'x', reason: 'spec.vips: Required', at: 1 }] }),
    ).toEqual(['leader: (none)', 'no groups', '', 'REJECTED GROUP  REASON', 'x               spec.vips: Required']);
  });
});
