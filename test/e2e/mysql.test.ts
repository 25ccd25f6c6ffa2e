// The classic setup: a VIP in front of nginx and MySQL. A real MariaDB (Debian's mariadbd) runs in each node's
// namespace; the agents check it with the credentials file that their own configuration names.
//  - both required: stopping mysqld on the holder moves the VIP, though nginx there is fine;
//  - weighted (keepalived's `weight`): a passing MySQL check adds to the priority, so the node whose MySQL runs wins;
//  - expectations: a holder whose server turns read-only lets the VIP go; a read VIP stays on a running replica.
import { describe, expect, jest, test } from '@jest/globals';
import { TWO_NODES, type Cluster } from '../../hack/testbed/cluster.js';
import type { Sampler } from '../../hack/testbed/index.js';
import { useE2eCluster } from '../harness/e2e.js';
import { eventually, startMariadb, type Mariadb } from '../harness/workloads.js';

jest.setTimeout(180_000);

let c: Cluster;
let sampler: Sampler;
const db = new Map<string, Mariadb>();

const nginxCheck = {
  name: 'nginx',
  type: 'http',
  http: { port: 80, path: '/' },
  intervalMs: 200,
  timeoutMs: 200,
  rise: 2,
  fall: 2,
};
const mysqlCheck = (credentials: string, extra: Record<string, unknown> = {}, weight = 0) => ({
  name: 'mysql',
  type: 'mysql',
  mysql: { credentials, ...extra },
  intervalMs: 500,
  timeoutMs: 500,
  rise: 2,
  fall: 2,
  weight,
});

let dirs: Map<string, Mariadb> | undefined;
const e2e = useE2eCluster(
  {
    name: 'mysql',
    nodes: 2,
    start: false,
    // The credentials files exist once MariaDB is up; agents start after that.
    agentFor: (node) => ({
      credentials: { db: dirs!.get(node)!.credentialsFileTcp, 'db-socket': dirs!.get(node)!.credentialsFile },
    }),
  },
  async (f) => {
    ({ c, sampler } = f);
    for (const n of c.tb.nodes) db.set(n.name, await startMariadb(c.tb, n));
    dirs = db;
    for (const n of c.tb.nodes) await c.startAgent(n.name);
    c.startController(0);
  },
);

async function checkOf(group: string, node: string, check: string) {
  const s = await c.status();
  return s.groups
    .find((g) => g.group === group)
    ?.nodes.find((n) => n.name === node)
    ?.checks.find((x) => x.name === check);
}

describe('MySQL / MariaDB check on the netns testbed', () => {
  test('nginx and MySQL both required: stopping mysqld on the holder moves the VIP', async () => {
    const vip = e2e.f.applyWeb(0, {
      name: 'db',
      nodes: TWO_NODES,
      checks: [nginxCheck, mysqlCheck('db')],
    });
    await sampler.waitForHolder(vip, 'node1', 30_000);
    expect((await checkOf('db', 'node1', 'mysql'))?.message).toMatch(/SELECT 1 ok; read_only=0/);

    await db.get('node1')!.stop();
    await sampler.waitForHolder(vip, 'node2', 30_000);
    // Events are written on their own, after the assignment (controller/writer.ts): wait for this one.
    let evs = await c.events('db');
    await eventually(async () => (evs = await c.events('db')).at(-1)?.to === 'node2', 'the failover event');
    expect([evs.at(-1)!.from, evs.at(-1)!.to, evs.at(-1)!.reason]).toEqual(['node1', 'node2', 'unhealthy']);
    // nginx on node1 is fine: it was MySQL that failed, and the status says so.
    const m = await checkOf('db', 'node1', 'mysql');
    expect(m?.ok).toBe(false);
    expect(m?.message).toMatch(/ECONNREFUSED/);
    expect((await checkOf('db', 'node1', 'nginx'))?.ok).toBe(true);

    // MySQL back on node1: the preferred node takes the VIP back (failback auto).
    await db.get('node1')!.start();
    await sampler.waitForHolder(vip, 'node1', 30_000);
    await e2e.f.deleteAndWait('db', vip);
  });

  test('weighted instead of required: the node whose MySQL runs wins, and nobody is unhealthy', async () => {
    // node1 100 + 10 while MySQL passes; node2 95 + 10. Over the socket named in the credentials file.
    const vip = e2e.f.applyWeb(1, {
      name: 'dbw',
      nodes: [
        ['node1', 100],
        ['node2', 95],
      ],
      checks: [nginxCheck, mysqlCheck('db-socket', {}, 10)],
    });
    await sampler.waitForHolder(vip, 'node1', 30_000);

    await db.get('node1')!.stop();
    await sampler.waitForHolder(vip, 'node2', 30_000);
    let evs = await c.events('dbw');
    await eventually(async () => (evs = await c.events('dbw')).at(-1)?.to === 'node2', 'the failover event');
    const ev = evs.at(-1)!;
    expect([ev.from, ev.to, ev.reason]).toEqual(['node1', 'node2', 'failback']);
    const node1 = (await c.status()).groups.find((g) => g.group === 'dbw')!.nodes.find((n) => n.name === 'node1')!;
    expect(node1.healthy).toBe(true);
    expect(node1.checks.find((x) => x.name === 'mysql')?.message).toMatch(/ENOENT|ECONNREFUSED/);

    // Both down: priorities alone decide again (100 > 95).
    await db.get('node2')!.stop();
    await sampler.waitForHolder(vip, 'node1', 30_000);
    await db.get('node1')!.start();
    await db.get('node2')!.start();
    await eventually(
      async () => (await checkOf('dbw', 'node2', 'mysql'))?.ok === true,
      'MySQL check passing on node2 again',
      60_000, // a MariaDB restart under CI load: a bound that only catches a hang
    );
    await eventually(
      async () => (await checkOf('dbw', 'node1', 'mysql'))?.ok === true,
      'MySQL check passing on node1 again',
      60_000, // a MariaDB restart under CI load: a bound that only catches a hang
    );
    // Whichever check passed first may have held it for a moment (105 > 100); with both passing node1 wins (110).
    await sampler.waitForHolder(vip, 'node1', 30_000);
    await e2e.f.deleteAndWait('dbw', vip);
  });

  test('a holder whose server turns read-only lets the VIP go (expectReadOnly: false)', async () => {
    const vip = e2e.f.applyWeb(2, {
      name: 'dbro',
      nodes: TWO_NODES,
      failback: 'manual',
      checks: [mysqlCheck('db', { expectReadOnly: false })],
    });
    await sampler.waitForHolder(vip, 'node1', 30_000);
    await db.get('node1')!.sql('SET GLOBAL read_only = 1');
    await sampler.waitForHolder(vip, 'node2', 30_000);
    expect((await checkOf('dbro', 'node1', 'mysql'))?.message).toBe('read_only is ON, expected OFF');
    await db.get('node1')!.sql('SET GLOBAL read_only = 0');
    await e2e.f.deleteAndWait('dbro', vip);
  });

  test('a read VIP on a running replica: replication stopped, the VIP goes; started again, it comes back', async () => {
    // node2 replicates from node1 over the testbed network.
    await db.get('node2')!.replicateFrom(db.get('node1')!);
    const vip = e2e.f.applyWeb(3, {
      name: 'dbread',
      nodes: TWO_NODES,
      checks: [mysqlCheck('db', { replication: { maxLagSeconds: 30 } })],
    });
    // node1 is the primary, not a replica: only node2 may hold the read VIP.
    await sampler.waitForHolder(vip, 'node2', 30_000);
    // node1's verdict comes in its own time: the MySQL driver loads with a node's first mysql check, and on a loaded
    // machine that first attempt may time out (the next one says why node1 may not hold).
    await eventually(
      async () => (await checkOf('dbread', 'node1', 'mysql'))?.message === 'not a replica: replication status is empty',
      "node1's replication verdict",
      30_000,
    );
    expect((await checkOf('dbread', 'node1', 'mysql'))?.message).toBe('not a replica: replication status is empty');
    expect((await checkOf('dbread', 'node2', 'mysql'))?.message).toMatch(/replication running, lag \d+s/);

    await db.get('node2')!.sql('STOP SLAVE IO_THREAD');
    // Wait for the check's verdict itself: on a loaded machine the VIP may also leave for a moment for another
    // reason (a late keepalive), which would say nothing about the replication check.
    await eventually(
      async () => /^replication IO thread is No/.test((await checkOf('dbread', 'node2', 'mysql'))?.message ?? ''),
      'the replication check to fail on node2',
      30_000,
    );
    await eventually(
      async () => (await c.status()).groups.find((g) => g.group === 'dbread')?.holder === null,
      'no holder for the read VIP',
      30_000,
    );
    await sampler.waitForHolder(vip, null, 30_000);

    await db.get('node2')!.sql('START SLAVE IO_THREAD');
    await sampler.waitForHolder(vip, 'node2', 30_000);
    await e2e.f.deleteAndWait('dbread', vip);
  });
});
