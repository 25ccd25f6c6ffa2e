// The leader's batched writes against a real etcd (controller/writer.ts): many assignments per fenced transaction,
// each with its own compare; a stale epoch in a batch costs only its own group; a deposed leader writes nothing;
// events go many per transaction and stay bounded per group; failsafe promise sets are stored once, by digest, in the
// transactions that name them, and deleted once nothing names them.
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { realClock } from '../../common/clock.js';
import { connectEtcd, Mirror } from '../../common/etcd.js';
import { Keys, type AssignmentRecord } from '../../common/keyspace.js';
import { promiseSetDigest, PromiseSetRecord } from '../../common/promise-sets.js';
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

  test("the watch's echo of this leader's own puts is told apart from anyone else's change (ownEcho)", async () => {
    const keys = new Keys('/batch-echo/');
    const term = await leader(keys);
    const ac = new AbortController();
    const w = writer(keys);
    /**
     * Each watch change: what ownEcho said, and whether it could know (the commit's answer came before the watch's
     * event: which of the two comes first is etcd's choice, and an echo not known yet wakes a pass, as any change).
     */
    const verdicts: { kind: string; own: boolean; known: boolean }[] = [];
    const mirrors = (['assignments', 'promisesets'] as const).map((kind) => {
      const m = new Mirror(
        c,
        kind === 'assignments' ? keys.assignmentsPrefix() : keys.promiseSetsPrefix(),
        silentLogger(),
      );
      m.on('change', (changed) => {
        const epochs = new Set([...w.ownWrites(0).values()].map((o) => o.epoch));
        const known = changed.every((k) => epochs.has(m.get(k)?.modRevision ?? -1));
        verdicts.push({ kind, own: w.ownEcho(kind, m, changed), known });
      });
      m.start(ac.signal);
      return m;
    });
    await Promise.all(mirrors.map((m) => m.ready));
    try {
      // 250 records naming one promise set: three transactions, so three puts of the set's key.
      const set = Object.freeze([{ node: 'n1', lease: '11' }]) as AssignmentRecord['promiseSet'] & object;
      const many: Action[] = Array.from({ length: 250 }, (_, i) => ({
        type: 'put',
        group: `s${i}`,
        expectEpoch: 0,
        record: { ...record(`s${i}`, 'n1'), promiseSet: set },
      }));
      expect(await w.applyAll(term, many)).not.toContain('conflict');
      const count = (kind: string) => verdicts.filter((v) => v.kind === kind).length;
      await until(
        async () => count('promisesets') >= 3 && [...mirrors[0]!.under(keys.assignmentsPrefix())].length === 250,
        10_000,
        'the echoes',
      );
      for (const v of verdicts) expect(v.own).toBe(v.known);
      // Someone else's put (an old leader, an operator), and a delete: never echoes, they wake a pass.
      const before = verdicts.length;
      await c.put(keys.assignment('s1')).value(JSON.stringify(record('s1', 'n2')));
      await until(async () => verdicts.length >= before + 1, 10_000, 'the other put');
      await c.delete().key(keys.assignment('s2'));
      await until(async () => verdicts.length >= before + 2, 10_000, 'the delete');
      expect(verdicts.slice(before).map((v) => v.own)).toEqual([false, false]);
    } finally {
      ac.abort();
      for (const m of mirrors) m.stop();
    }
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

  test('promise sets: stored once by digest with the records that name them; collected when nobody names them', async () => {
    const keys = new Keys('/batch-sets/');
    const term = await leader(keys);
    const setA = Object.freeze([
      { node: 'n1', lease: '11' },
      { node: 'n2', lease: '12' },
    ]) as AssignmentRecord['promiseSet'] & object;
    const setB = Object.freeze([{ node: 'n1', lease: '11' }]) as AssignmentRecord['promiseSet'] & object;
    const put = (g: string, set: AssignmentRecord['promiseSet'], expectEpoch: number): Action => ({
      type: 'put',
      group: g,
      expectEpoch,
      record: { ...record(g, 'n1'), promiseSet: set },
    });
    const w = writer(keys);
    // 150 records (two transactions), one set: each transaction writes it beside its records.
    expect(
      await w.applyAll(
        term,
        Array.from({ length: 150 }, (_, i) => put(`g${i}`, setA, 0)),
      ),
    ).not.toContain('conflict');
    const stored = async () => await c.getAll().prefix(keys.promiseSetsPrefix()).strings();
    const a = promiseSetDigest(setA);
    expect(Object.keys(await stored())).toEqual([keys.promiseSet(a)]);
    expect(PromiseSetRecord.parse(JSON.parse((await stored())[keys.promiseSet(a)]!)).set).toEqual(setA);
    const g0 = JSON.parse((await c.get(keys.assignment('g0')).string())!) as AssignmentRecord;
    expect(g0.promiseSetRef).toBe(a);
    expect(g0.promiseSet).toBeUndefined();
    // What the leader remembers of its own writes carries the set, as buildInput reads the record.
    expect(w.ownWrites(0).get('g0')?.record?.promiseSet).toEqual(setA);

    // Every record moves to set B: A is named by nothing and goes; B stays.
    const epochs = await c.getAll().prefix(keys.assignmentsPrefix()).exec();
    const epochOf = new Map(epochs.kvs.map((kv) => [kv.key.toString(), Number(kv.mod_revision)]));
    const moved = Array.from({ length: 150 }, (_, i) => put(`g${i}`, setB, epochOf.get(keys.assignment(`g${i}`))!));
    expect(await w.applyAll(term, moved)).not.toContain('conflict');
    const ac = new AbortController();
    const mirrors = {
      assignments: new Mirror(c, keys.assignmentsPrefix(), silentLogger()),
      promisesets: new Mirror(c, keys.promiseSetsPrefix(), silentLogger()),
    };
    try {
      for (const m of Object.values(mirrors)) m.start(ac.signal);
      await Promise.all(Object.values(mirrors).map((m) => m.ready));
      w.collectPromiseSets(term, mirrors);
      const b = promiseSetDigest(setB);
      await until(async () => Object.keys(await stored()).length === 1, 10_000, 'set A deleted');
      expect(Object.keys(await stored())).toEqual([keys.promiseSet(b)]);

      // A set written again after the mirror read it is not deleted: the delete compares its mod revision. Here the
      // promisesets view is stale (it shows A as last written at revision 1), nothing names A in the assignments
      // view, and A is in etcd under a newer revision.
      await w.applyAll(term, [put('lone', setA, 0)]);
      const idle = (prefix: string) => new Mirror(c, prefix, silentLogger());
      const views = { assignments: idle(keys.assignmentsPrefix()), promisesets: idle(keys.promiseSetsPrefix()) };
      views.assignments.revision = Number.MAX_SAFE_INTEGER;
      const entry = (modRevision: number) => ({
        key: keys.promiseSet(a),
        value: '',
        modRevision,
        createRevision: 1,
        lease: '0',
      });
      views.promisesets.entries.set(keys.promiseSet(a), entry(1));
      writer(keys).collectPromiseSets(term, views);
      await new Promise((r) => setTimeout(r, 300));
      expect(Object.keys(await stored())).toContain(keys.promiseSet(a));
      // The same view with A's real mod revision: deleted.
      const real = Number((await c.get(keys.promiseSet(a)).exec()).kvs[0]!.mod_revision);
      views.promisesets.entries.set(keys.promiseSet(a), entry(real));
      writer(keys).collectPromiseSets(term, views);
      await until(async () => !(keys.promiseSet(a) in (await stored())), 10_000, 'set A deleted');
    } finally {
      ac.abort();
    }
  });
});
