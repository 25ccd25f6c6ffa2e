// The vipwarden CLI against a real etcd: status (table and JSON), events, move / --unpin, drain / undrain, and a
// clear message with exit code 1 when etcd cannot be reached (a closed loopback port).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import type { Etcd3 } from 'etcd3';
import { connectEtcd } from '../../common/etcd.js';
import {
  Keys,
  type AssignmentRecord,
  type EventRecord,
  type GroupRecord,
  type HealthRecord,
  type NodeRecord,
} from '../../common/keyspace.js';
import { CommandError, realExec } from '../../common/exec.js';
import { run } from '../../cli/main.js';
import { REPO, requireBuilt } from '../../hack/testbed/cluster.js';
import { startEtcd, type EtcdCluster } from '../harness/etcd.js';

jest.setTimeout(60_000);

const PREFIX = '/cli-test/';
const keys = new Keys(PREFIX);
let etcd: EtcdCluster;
let client: Etcd3;
let env: NodeJS.ProcessEnv;

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(argv, env, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A loopback port that nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const now = Date.now();
const spec = {
  vips: [{ address: '198.18.0.100/24' }],
  nodes: [
    { name: 'node1', priority: 100 },
    { name: 'node2', priority: 90 },
    { name: 'node3', priority: 80 },
  ],
  checks: [
    { name: 'nginx', type: 'http', http: { port: 80, path: '/' }, intervalMs: 100, timeoutMs: 100, rise: 2, fall: 2 },
  ],
  failback: 'auto',
};

beforeAll(async () => {
  etcd = await startEtcd({ members: 1 });
  client = connectEtcd(etcd.clientConfig());
  env = { ...etcd.cliEnv({ user: 'cli' }), VIPWARDEN_PREFIX: PREFIX };

  // What a running cluster leaves in etcd: node1 and node2 alive under leases, node3 gone; node1 holds web.
  const leases: Record<string, string> = {};
  for (const n of ['node1', 'node2']) {
    const lease = client.lease(60, { autoKeepAlive: false });
    leases[n] = await lease.grant();
    const rec: NodeRecord = {
      name: n,
      lease: leases[n]!,
      ttlSeconds: 60,
      maxLifetimeSeconds: 59,
      renewWindowMs: 500,
      addresses: [],
      interfaces: ['eth0'],
      version: 'test',
      startedAt: now,
    };
    await client.put(keys.node(n)).value(JSON.stringify(rec)).lease(leases[n]!).exec();
  }
  const group: GroupRecord = { name: 'web', generation: 1, spec, checksHash: 'h' };
  await client.put(keys.group('web')).value(JSON.stringify(group));
  const health = (ok: boolean): HealthRecord => ({
    healthy: ok,
    priorityDelta: 0,
    checks: [{ name: 'nginx', ok, ...(ok ? {} : { message: 'connection refused' }) }],
    checksHash: 'h',
    at: now,
  });
  await client
    .put(keys.health('web', 'node1'))
    .value(JSON.stringify(health(true)))
    .lease(leases.node1!)
    .exec();
  await client
    .put(keys.health('web', 'node2'))
    .value(JSON.stringify(health(false)))
    .lease(leases.node2!)
    .exec();
  // An old health record of node3, without a live lease: not to be believed.
  await client.put(keys.health('web', 'node3')).value(JSON.stringify(health(true)));
  const a: AssignmentRecord = {
    group: 'web',
    holder: 'node1',
    holderLease: leases.node1!,
    vips: [{ address: '198.18.0.100/24' }],
    release: false,
    reason: 'initial',
    specHash: 's',
    at: now,
    leader: 'controller-0',
  };
  await client.put(keys.assignment('web')).value(JSON.stringify(a));
  await client.put(keys.leader()).value(JSON.stringify({ id: 'controller-0', since: now, version: 'test' }));
  const evs: EventRecord[] = [
    { group: 'web', from: null, to: 'node1', reason: 'initial', at: now - 60_000, epoch: 5 },
    {
      group: 'web',
      from: 'node2',
      to: 'node1',
      reason: 'unhealthy',
      at: now - 30_000,
      epoch: 9,
      detectMs: 210,
      outageMs: 95,
    },
    { group: 'webapp', from: null, to: 'node2', reason: 'initial', at: now - 20_000, epoch: 7 },
  ];
  for (const e of evs) await client.put(keys.event(e.group, e.epoch)).value(JSON.stringify(e));
  // Noise under another prefix must not show.
  await client.put('/vipwarden/groups/other').value(JSON.stringify({ ...group, name: 'other' }));
});

afterAll(async () => {
  client?.close();
  await etcd?.stop();
});

describe('vipwarden CLI on a real etcd', () => {
  test('status: leader, holder, epoch, candidates with liveness and health', async () => {
    const r = await cli('status');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('leader: controller-0');
    // The group's row, then (issue 14: the docs promise it) the failing check's message in its own table.
    expect(lines).toHaveLength(6);
    expect(lines[2]).toMatch(
      /^web\s+198\.18\.0\.100\/24\s+node1\s+\d+\s+node1\(100,up,ok\) node2\(90,up,FAIL\) node3\(80,down,\?\)$/,
    );
    expect(lines.slice(3)).toEqual([
      '',
      'GROUP  NODE   FAILING CHECK  MESSAGE',
      'web    node2  nginx          connection refused',
    ]);
  });

  test('status -o json: the same, machine-readable, with the assignment epoch', async () => {
    const r = await cli('status', '-o', 'json');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as {
      leader: string;
      groups: {
        group: string;
        holder: string;
        epoch: number;
        nodes: { name: string; live: boolean; healthy: boolean | null; checks: unknown[] }[];
      }[];
    };
    expect(s.leader).toBe('controller-0');
    expect(s.groups.map((g) => g.group)).toEqual(['web']);
    const web = s.groups[0]!;
    expect(web.holder).toBe('node1');
    const epoch = Number((await client.get(keys.assignment('web')).exec()).kvs[0]!.mod_revision);
    expect(web.epoch).toBe(epoch);
    expect(web.nodes.map((n) => [n.name, n.live, n.healthy])).toEqual([
      ['node1', true, true],
      ['node2', true, false],
      ['node3', false, null],
    ]);
    expect(web.nodes[1]!.checks).toEqual([{ name: 'nginx', ok: false, message: 'connection refused' }]);
  });

  test('events: all groups in epoch order, or one group; JSON too', async () => {
    const all = await cli('events');
    expect(all.code).toBe(0);
    const rows = all.out.split('\n').slice(1);
    expect(rows.map((l) => l.split(/\s+/).slice(1, 6))).toEqual([
      ['web', '5', '-', 'node1', 'initial'],
      ['webapp', '7', '-', 'node2', 'initial'],
      ['web', '9', 'node2', 'node1', 'unhealthy'],
    ]);
    expect(rows[2]).toMatch(/210ms\s+95ms$/);

    // "web" must not take in "webapp".
    const web = await cli('events', 'web', '-o', 'json');
    expect(web.code).toBe(0);
    expect((JSON.parse(web.out) as EventRecord[]).map((e) => e.epoch)).toEqual([5, 9]);

    const none = await cli('events', 'db');
    expect(none).toEqual({ code: 0, out: 'no events', err: '' });
  });

  test('move pins a group to a candidate, --unpin removes the pin; non-candidates and unknown groups are refused', async () => {
    const r = await cli('move', 'web', 'node2');
    expect(r.code).toBe(0);
    expect(r.out).toContain('web: pinned to node2');
    const pin = JSON.parse((await client.get(keys.move('web')).string())!) as { to: string; at: number };
    expect(pin.to).toBe('node2');
    expect((await cli('status')).out).toContain('node1 [pinned:node2]');
    expect(JSON.parse((await cli('status', '-o', 'json')).out).groups[0].pinnedTo).toBe('node2');

    const bad = await cli('move', 'web', 'node9');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('node9 is not a candidate node of web');
    const unknown = await cli('move', 'nosuch', 'node1');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('no group named nosuch');
    expect(JSON.parse((await client.get(keys.move('web')).string())!).to).toBe('node2');

    const un = await cli('move', 'web', '--unpin');
    expect(un.code).toBe(0);
    expect(un.out).toContain('web: unpinned');
    expect(await client.get(keys.move('web')).string()).toBeNull();
  });

  test('drain and undrain a node', async () => {
    const d = await cli('drain', 'node2');
    expect(d).toMatchObject({ code: 0, out: 'node2: drained; its groups move to other nodes' });
    const rec = JSON.parse((await client.get(keys.drain('node2')).string())!) as { at: number; by: string };
    expect(rec.by).toBe('cli');
    expect(rec.at).toBeGreaterThan(0);
    expect((await cli('status')).out).toContain('node2(90,up,drained)');

    const u = await cli('undrain', 'node2');
    expect(u).toMatchObject({ code: 0, out: 'node2: undrained' });
    expect(await client.get(keys.drain('node2')).string()).toBeNull();
    expect((await cli('status')).out).toContain('node2(90,up,FAIL)');
  });

  test('options before the command; drain refuses a node nobody knows; rejected groups are listed', async () => {
    const before = await cli('--prefix', PREFIX, '-o', 'json', 'status');
    expect(before.code).toBe(0);
    expect(JSON.parse(before.out).leader).toBe('controller-0');

    const typo = await cli('drain', 'no-such-node');
    expect(typo.code).toBe(2);
    expect(typo.err.split('\n')[0]).toBe(
      'vipwarden: no node named no-such-node: it is not registered and no group names it',
    );
    expect(await client.get(keys.drain('no-such-node')).string()).toBeNull();
    // node3 is not registered (its lease is gone) but web names it: it may be drained.
    expect((await cli('drain', 'node3')).code).toBe(0);
    expect((await cli('undrain', 'node3')).code).toBe(0);

    await client
      .put(keys.rejected('db'))
      .value(JSON.stringify({ reason: 'VIP 198.18.0.100 is already claimed by group web', at: now }));
    try {
      const table = await cli('status');
      expect(table.out.split('\n').slice(-2)).toEqual([
        'REJECTED GROUP  REASON',
        'db              VIP 198.18.0.100 is already claimed by group web',
      ]);
      const json = JSON.parse((await cli('status', '-o', 'json')).out) as { rejected: unknown[] };
      expect(json.rejected).toEqual([
        { group: 'db', reason: 'VIP 198.18.0.100 is already claimed by group web', at: now },
      ]);
    } finally {
      await client.delete().key(keys.rejected('db')).exec();
    }
  });

  test('an empty prefix: no groups, no leader', async () => {
    const r = await cli('status', '--prefix', '/empty/');
    expect(r).toEqual({ code: 0, out: 'leader: (none)\nno groups', err: '' });
  });

  test('etcd unreachable (a closed loopback port): a clear message and exit 1, quickly', async () => {
    const port = await closedPort();
    for (const argv of [['status'], ['events'], ['drain', 'node1'], ['move', 'web', '--unpin']]) {
      const t0 = Date.now();
      const r = await cli(...argv, '--etcd', `https://127.0.0.1:${port}`, '--timeout', '2000');
      expect(r.code).toBe(1);
      expect(r.out).toBe('');
      expect(r.err).toBe(
        `vipwarden: cannot reach etcd at https://127.0.0.1:${port}: connection refused. Check --etcd or VIPWARDEN_ETCD.`,
      );
      // Hang catcher only.
      expect(Date.now() - t0).toBeLessThan(20_000);
    }
  });

  test('the installed binary says the same and exits 1 (no handle keeps it alive)', async () => {
    requireBuilt();
    const port = await closedPort();
    const bin = join(REPO, 'bin', 'vipwarden.js');
    let failure: CommandError | undefined;
    try {
      await realExec([process.execPath, bin, 'status', '--etcd', `http://127.0.0.1:${port}`, '--timeout', '2000'], {
        timeoutMs: 20_000,
      });
    } catch (err) {
      failure = err as CommandError;
    }
    expect(failure).toBeInstanceOf(CommandError);
    expect(failure!.timedOut).toBe(false);
    expect(failure!.exitCode).toBe(1);
    expect(failure!.stderr.trim()).toBe(
      `vipwarden: cannot reach etcd at http://127.0.0.1:${port}: connection refused. Check --etcd or VIPWARDEN_ETCD.`,
    );

    const ok = await realExec(
      [process.execPath, bin, 'status', ...etcd.cliFlags({ user: 'cli' }), '--prefix', PREFIX],
      {
        timeoutMs: 20_000,
      },
    );
    expect(ok.stdout.split('\n')[0]).toBe('leader: controller-0');
  });

  describe.each([
    ['vipwarden-agent', 'agent config', '/etc/vipwarden/agent.yaml'],
    ['vipwarden-controller', 'controller config', '/etc/vipwarden/controller.yaml'],
  ])('%s', (name, what) => {
    const exec = (...args: string[]) =>
      realExec([process.execPath, join(REPO, 'bin', `${name}.js`), ...args], { timeoutMs: 20_000, okCodes: [1, 2] });

    test('--help and --version print and exit 0', async () => {
      requireBuilt();
      const help = await exec('--help');
      expect(help.exitCode).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^usage: ${name} \\[--config FILE\\]`));
      const version = await exec('--version');
      expect(version).toMatchObject({
        exitCode: 0,
        stdout: expect.stringMatching(new RegExp(`^${name} \\d+\\.\\d+\\.\\d+`)),
      });
    });

    test('an unknown flag is an error (exit 2), not a silent fall back to the default config', async () => {
      requireBuilt();
      const r = await exec('--confg', '/tmp/x.yaml');
      expect(r.exitCode).toBe(2);
      expect(r.stderr.split('\n')[0]).toBe(`${name}: unknown option --confg`);
      expect(r.stderr).toContain(`usage: ${name}`);
    });

    test('a missing config file is one line, exit 1', async () => {
      requireBuilt();
      const r = await exec('--config', '/nonexistent/vipwarden.yaml');
      expect(r.exitCode).toBe(1);
      expect(r.stderr.trim()).toBe(
        `${name}: ${what} /nonexistent/vipwarden.yaml does not exist (give another with --config)`,
      );
    });
  });

  test('vipwarden-agent takes its node name from --node or VIPWARDEN_NODE', async () => {
    requireBuilt();
    const dir = mkdtempSync(join(tmpdir(), 'vw-agent-node-'));
    const config = join(dir, 'agent.yaml');
    // No node: in the file, and a bad one from the environment: the message names the field, so the name got there.
    writeFileSync(config, `etcd: { endpoints: ['http://127.0.0.1:1'] }\ninterface: lo\nstateDir: ${dir}\n`);
    const bin = join(REPO, 'bin', 'vipwarden-agent.js');
    const none = await realExec([process.execPath, bin, '--config', config], { timeoutMs: 20_000, okCodes: [1] });
    expect(none.stderr).toMatch(/^vipwarden-agent: .*agent\.yaml: node: /);
    const env = await realExec([process.execPath, bin, '--config', config], {
      timeoutMs: 20_000,
      okCodes: [1],
      env: { VIPWARDEN_NODE: 'Bad_Name' },
    });
    expect(env.stderr).toMatch(/node: must be a DNS-1123 name/);
    const flag = await realExec([process.execPath, bin, '--config', config, '--node', 'Also_Bad'], {
      timeoutMs: 20_000,
      okCodes: [1],
      env: { VIPWARDEN_NODE: 'node1' },
    });
    expect(flag.stderr).toMatch(/node: must be a DNS-1123 name/);
  });
});
