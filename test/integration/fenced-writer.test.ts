// The leader's batched writes against a real etcd (controller/writer.ts): many assignments per fenced transaction,
// each with its own compare; a stale epoch in a batch costs only its own group; a deposed leader writes nothing;
// events go many per transaction and stay bounded per group.
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { realClock } from '../../common/clock.js';
import { connectEtcd } from '../../common/etcd.js';
import { Keys } from '../../common/keyspace.js';
import { silentLogger } from '../../common/log.js';
import type { Term } from '../../controller/election.js';
import { NO_CONTROLLER_METRICS } from '../../controller/metrics.js';
import type { Action } from '../../controller/planner.js';
import { NO_STATUS } from '../../controller/sources/types.js';
import { assignmentRecord } from '../../controller/testing/records.js';
import { FencedWriter } from '../../controller/writer.js';
import { startEtcd, type EtcdCluster } from '../harness/etcd.js';

jest.setTimeout(60_000);

let etcd: EtcdCluster;
let c: ReturnType<typeof connectEtcd>;
beforeAll(async () => {
  etcd = await startEtcd({ members: 1 });
  c = connectEtcd(etcd.clientConfig());
});
afterAll(async () => {
  c?.close();
  await etcd?.stop();
});

const record = assignmentRecord;

async function leader(keys: Keys): Promise<Term> {
  const res = await c.put(keys.leader()).value('{}').exec();
  return { id: 'c', revision: Number(res.header.revision), lease: '0' };
}

function writer(keys: Keys, deposed: string[] = [], eventsPerGroup = 100) {
  return new FencedWriter({
    client: c,
    keys,
    clock: realClock,
    log: silentLogger(),
    metrics: NO_CONTROLLER_METRICS,
    status: NO_STATUS,
    eventsPerGroup,
    onDeposed: (why) => deposed.push(why),
  });
}

async function until(pred: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('FencedWriter', () => {
  test('250 assignments in batches, one of them planned from a stale epoch: the others are written, it is not', async () => {
    const keys = new Keys('/batch/');
    const term = await leader(keys);
    // g7 exists already (another write the plan did not see): its action expects epoch 0 and must fail.
    const other = await c
      .put(keys.assignment('g7'))
      .value(JSON.stringify(record('g7', 'other')))
      .exec();
    const actions: Action[] = Array.from({ length: 250 }, (_, i) => ({
      type: 'put',
      group: `g${i}`,
      expectEpoch: 0,
      record: record(`g${i}`, 'n1'),
      event: { from: null, to: 'n1', reason: 'initial' },
    }));
    const w = writer(keys);
    const results = await w.applyAll(term, actions);
    expect(results.filter((r) => r === 'conflict')).toHaveLength(1);
    expect(results[7]).toBe('conflict');
    const all = await c.getAll().prefix(keys.assignmentsPrefix()).strings();
    expect(Object.keys(all)).toHaveLength(250);
    expect(JSON.parse(all[keys.assignment('g7')]!).holder).toBe('other');
    expect(JSON.parse(all[keys.assignment('g8')]!).holder).toBe('n1');
    // Remembered for the next pass until a mirror shows them; the failed one is not.
    const own = w.ownWrites(0);
    expect(own.size).toBe(249);
    expect(own.has('g7')).toBe(false);
    expect(own.get('g8')?.epoch).toBeGreaterThan(Number(other.header.revision));
    expect(own.get('g8')?.record?.holder).toBe('n1');
    expect(w.ownWrites(Number.MAX_SAFE_INTEGER).size).toBe(0);
    // Every written group's event, one each.
    await until(async () => (await c.getAll().prefix(keys.eventsPrefix()).count()) === 249, 10_000, 'the 249 events');
  });

  test('a deposed leader writes none of a batch and is told so', async () => {
    const keys = new Keys('/batch-deposed/');
    const term = await leader(keys);
    await c.delete().key(keys.leader());
    await c.put(keys.leader()).value('{"id":"b"}');
    const deposed: string[] = [];
    const actions: Action[] = Array.from({ length: 5 }, (_, i) => ({
      type: 'put',
      group: `g${i}`,
      expectEpoch: 0,
      record: record(`g${i}`, 'n1'),
    }));
    const results = await writer(keys, deposed).applyAll(term, actions);
    expect(results).toEqual(Array(5).fill('conflict'));
    expect(deposed.length).toBeGreaterThan(0);
    expect(await c.getAll().prefix(keys.assignmentsPrefix()).count()).toBe(0);
  });

  test('events stay bounded per group when many come at once', async () => {
    const keys = new Keys('/batch-events/');
    const term = await leader(keys);
    const w = writer(keys, [], 3);
    for (let epoch = 1; epoch <= 8; epoch++)
      for (const group of ['a', 'b'])
        w.event(term, { group, epoch, from: null, to: 'n1', reason: 'initial', at: epoch });
    const names = async (g: string) => await c.getAll().prefix(keys.eventsPrefix(g)).keys();
    await until(
      async () => (await names('a')).length === 3 && (await names('b')).length === 3,
      10_000,
      'three events per group',
    );
    // The newest ones (key order), as before.
    expect(await names('a')).toEqual([6, 7, 8].map((e) => keys.event('a', e)));
  });
});
