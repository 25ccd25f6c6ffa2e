// The leader's etcd compaction (controller/compactor.ts) against a real etcd: it compacts to the revision seen one
// round before (so one interval of history stays), only while leading, and a compaction someone else made further
// is no error.
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { connectEtcd } from '../../common/etcd.js';
import { silentLogger } from '../../common/log.js';
import { Compactor } from '../../controller/compactor.js';
import { startEtcd, type EtcdCluster } from '../harness/etcd.js';

jest.setTimeout(60_000);

let etcd: EtcdCluster;
let client: ReturnType<typeof connectEtcd>;
beforeAll(async () => {
  etcd = await startEtcd({ members: 1 });
  client = connectEtcd(etcd.clientConfig());
});
afterAll(async () => {
  client?.close();
  await etcd?.stop();
});

async function put(key: string): Promise<number> {
  const res = await client.put(key).value('x').exec();
  return Number(res.header.revision);
}

/** Whether etcd still has the history at `revision` (a read there fails once it was compacted). */
async function readable(revision: number): Promise<boolean> {
  try {
    await client.get('/t/a').revision(String(revision)).exec();
    return true;
  } catch (err) {
    if (/compacted/i.test(String(err))) return false;
    throw err;
  }
}

/** A compactor on the test's client, and the revisions it compacted to. */
function compactor(leading: () => boolean): { c: Compactor; compacted: number[] } {
  const compacted: number[] = [];
  const c = new Compactor({
    client,
    probeKey: '/t/a',
    log: silentLogger(),
    intervalMs: 1000,
    leading,
    onCompacted: (r) => compacted.push(r),
  });
  return { c, compacted };
}

test('compacts to the revision of the round before, only while leading', async () => {
  let leading = true;
  const { c, compacted } = compactor(() => leading);
  const r1 = await put('/t/a');
  await c.tick(); // the first round only notes the revision
  expect(compacted).toEqual([]);
  const r2 = await put('/t/a');
  await put('/t/a');
  await c.tick(); // compacts to what the first round saw: r1, not further
  expect(compacted).toEqual([r1]);
  expect(await readable(r1 - 1)).toBe(false);
  expect(await readable(r1)).toBe(true);
  expect(await readable(r2)).toBe(true);

  // Not leading: nothing, and a new term starts over (one round of history again).
  leading = false;
  await put('/t/a');
  await c.tick();
  await c.tick();
  leading = true;
  await c.tick();
  expect(compacted).toEqual([r1]);
  const r3 = await put('/t/a');
  await c.tick();
  expect(compacted.length).toBe(2);
  expect(compacted[1]!).toBeLessThan(r3);
  expect(await readable(r2)).toBe(false);
});

test('a compaction made further by someone else is no error', async () => {
  const { c } = compactor(() => true);
  await put('/t/a');
  await c.tick();
  const later = await put('/t/a');
  await client.kv.compact({ revision: String(later), physical: true });
  await expect(c.tick()).resolves.toBeUndefined();
  expect(await readable(later)).toBe(true);
});
