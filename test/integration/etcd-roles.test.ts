// Least-privilege etcd users (issue 10, item 2): deploy/etcd/setup.sh creates one role per node, a controller role,
// a read-only role and an operator role, and turns authentication on. Each component logs in with its client
// certificate (CN = user). With node1's credentials, etcd itself refuses writes to node2's keys and to assignments,
// and reads of what an agent does not need (node2's health and releases, events, leader, moves, drains).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { execa } from 'execa';
import { connectEtcd } from '../../common/etcd.js';
import { silentLogger } from '../../common/log.js';
import { Compactor } from '../../controller/compactor.js';
import { Keys } from '../../common/keyspace.js';
import { REPO } from '../../hack/testbed/cluster.js';
import { startEtcd, type EtcdCluster } from '../harness/etcd.js';

jest.setTimeout(60_000);

const keys = new Keys('/vipwarden/');
let etcd: EtcdCluster;

async function setup(...args: string[]) {
  const t = etcd.tls!;
  return execa('bash', [join(REPO, 'deploy', 'etcd', 'setup.sh'), ...args], {
    env: {
      ETCDCTL: etcd.binaries.etcdctl,
      ETCDCTL_ENDPOINTS: etcd.endpoints.join(','),
      ETCDCTL_CACERT: t.ca,
      ETCDCTL_CERT: t.cert, // CN root
      ETCDCTL_KEY: t.key,
    },
    reject: false,
  });
}

beforeAll(async () => {
  etcd = await startEtcd({ members: 1 });
  const args = ['--node', 'node1', '--node', 'node2', '--controller', 'controller', '--reader', 'reader'];
  const r = await setup(...args, '--operator', 'ops');
  if (r.exitCode !== 0) throw new Error(`setup.sh failed: ${r.stderr}`);
  // Safe to repeat, with authentication already on.
  const again = await setup(...args, '--operator', 'ops');
  if (again.exitCode !== 0) throw new Error(`setup.sh (second run) failed: ${again.stderr}`);
});
afterAll(async () => {
  await etcd?.stop();
});

/** 'ok' or 'denied' for a put of `key` as `user` (with the user's own client certificate). */
async function put(user: string, key: string, lease = false): Promise<'ok' | 'denied' | string> {
  const c = connectEtcd({ ...etcd.clientConfig({ user }), timeoutMs: 3000 });
  try {
    if (lease) {
      const l = c.lease(5, { autoKeepAlive: false });
      await l.put(key).value('v');
      await l.revoke();
    } else await c.put(key).value('v');
    return 'ok';
  } catch (err) {
    return /permission denied/i.test(String(err)) ? 'denied' : String(err);
  } finally {
    c.close();
  }
}
async function read(user: string, prefix: string): Promise<'ok' | 'denied' | string> {
  const c = connectEtcd({ ...etcd.clientConfig({ user }), timeoutMs: 3000 });
  try {
    await c.getAll().prefix(prefix).keys();
    return 'ok';
  } catch (err) {
    return /permission denied/i.test(String(err)) ? 'denied' : String(err);
  } finally {
    c.close();
  }
}

describe('etcd roles from deploy/etcd/setup.sh', () => {
  test("the controller may list etcd's leases and ask one's TTL (the leader memory's holder poll)", async () => {
    const c = connectEtcd({ ...etcd.clientConfig({ user: 'controller' }), timeoutMs: 3000 });
    try {
      const l = c.lease(5, { autoKeepAlive: false });
      const id = await l.grant();
      // Refused, the poll would fall back to one LeaseTimeToLive per holder (controller/memory.ts): no error shows.
      expect((await c.leaseClient.leaseLeases()).leases.map((x) => x.ID)).toContain(id);
      expect(Number((await c.leaseClient.leaseTimeToLive({ ID: id, keys: false })).TTL)).toBeGreaterThan(0);
      await l.revoke();
    } finally {
      c.close();
    }
  });

  test('authentication is on: an unknown certificate CN gets nothing', async () => {
    expect(await read('stranger', keys.prefix)).not.toBe('ok');
  });

  test("node1 writes its own keys (under its lease) and nothing of node2's, no assignment, no group", async () => {
    expect(await put('node1', keys.node('node1'), true)).toBe('ok');
    expect(await put('node1', keys.health('web', 'node1'), true)).toBe('ok');
    expect(await put('node1', keys.released('web', 'node1'), true)).toBe('ok');
    expect(await put('node1', keys.presence('web', 'node1'), true)).toBe('ok');
    // It reads what an agent needs: the groups, the assignments and their promise sets, the node records (its own, and the peers' addresses).
    expect(await read('node1', keys.groupsPrefix())).toBe('ok');
    expect(await read('node1', keys.assignmentsPrefix())).toBe('ok');
    expect(await read('node1', keys.promiseSetsPrefix())).toBe('ok');
    expect(await read('node1', keys.nodesPrefix())).toBe('ok');
    expect(await read('node1', keys.healthPrefix() + 'node1/')).toBe('ok');
    expect(await read('node1', keys.releasedPrefix() + 'node1/')).toBe('ok');

    expect(await put('node1', keys.node('node2'))).toBe('denied');
    expect(await put('node1', keys.health('web', 'node2'))).toBe('denied');
    expect(await put('node1', keys.released('web', 'node2'))).toBe('denied');
    expect(await put('node1', keys.presence('web', 'node2'))).toBe('denied');
    expect(await put('node1', keys.outage('web', 7, 'node1', 1))).toBe('denied');
    expect(await put('node1', keys.assignment('web'))).toBe('denied');
    expect(await put('node1', keys.promiseSet('0'.repeat(64)))).toBe('denied');
    expect(await put('node1', keys.group('web'))).toBe('denied');
    expect(await put('node1', keys.leader())).toBe('denied');
    expect(await put('node1', keys.move('web'))).toBe('denied');
    // a key that only shares node1's name as a prefix
    expect(await put('node1', keys.node('node10'))).toBe('denied');
  });

  test("node1 reads nothing it does not need: not node2's health or releases, events, the leader, moves, drains", async () => {
    expect(await read('node1', keys.prefix)).toBe('denied');
    expect(await read('node1', keys.healthPrefix() + 'node2/')).toBe('denied');
    expect(await read('node1', keys.healthPrefix())).toBe('denied');
    expect(await read('node1', keys.releasedPrefix() + 'node2/')).toBe('denied');
    expect(await read('node1', keys.eventsPrefix())).toBe('denied');
    expect(await read('node1', keys.leader())).toBe('denied');
    expect(await read('node1', keys.movesPrefix())).toBe('denied');
    expect(await read('node1', keys.drainPrefix())).toBe('denied');
    expect(await read('node1', keys.rejectedPrefix())).toBe('denied');
    expect(await read('node2', keys.releasedPrefix() + 'node1/')).toBe('denied');
  });

  test('the controller writes assignments, group records and the leader key', async () => {
    expect(await put('controller', keys.assignment('web'))).toBe('ok');
    expect(await put('controller', keys.group('web'))).toBe('ok');
    expect(await put('controller', keys.leader(), true)).toBe('ok');
    expect(await put('controller', keys.event('web', 7))).toBe('ok');
    expect(await put('controller', keys.outage('web', 7, 'node1', 1))).toBe('ok');
  });

  test('the controller may not compact (etcd lets only root): its compactor says so once and goes on', async () => {
    const c = connectEtcd({ ...etcd.clientConfig({ user: 'controller' }), timeoutMs: 3000 });
    const said: string[] = [];
    const log = { ...silentLogger(), error: (_o: unknown, msg: string) => said.push(msg) } as never;
    try {
      const compacted: number[] = [];
      const k = new Compactor({
        client: c,
        probeKey: keys.nodesPrefix(),
        log,
        intervalMs: 1000,
        leading: () => true,
        onCompacted: (r) => compacted.push(r),
      });
      for (let i = 0; i < 3; i++) {
        expect(await put('controller', keys.group('web'))).toBe('ok');
        await expect(k.tick()).resolves.toBeUndefined();
      }
      expect(compacted).toEqual([]);
      expect(said).toEqual([expect.stringMatching(/auto-compaction/)]);
    } finally {
      c.close();
    }
  });

  test('the reader reads everything and writes nothing; the operator writes only moves and drains', async () => {
    expect(await read('reader', keys.prefix)).toBe('ok');
    expect(await put('reader', keys.move('web'))).toBe('denied');
    expect(await put('reader', keys.drain('node1'))).toBe('denied');
    expect(await put('ops', keys.move('web'))).toBe('ok');
    expect(await put('ops', keys.drain('node1'))).toBe('ok');
    expect(await put('ops', keys.assignment('web'))).toBe('denied');
    expect(await put('ops', keys.node('node1'))).toBe('denied');
    // nothing outside the prefix, for anyone but root
    expect(await put('controller', '/elsewhere')).toBe('denied');
  });
});
