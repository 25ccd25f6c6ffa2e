import { describe, expect, it } from '@jest/globals';
import type { AssignmentRecord } from '../common/keyspace.js';
import type { Action } from './planner.js';
import { promiseSetDigest, PromiseSetRecord } from '../common/promise-sets.js';
import { ASSIGNMENTS_PER_TXN, batchActions } from './writer.js';

const keyOf = (d: string) => `/p/promisesets/${d}`;
const SET = Object.freeze([
  { node: 'n1', lease: '1' },
  { node: 'n2', lease: '2' },
]);
const withSet = (a: Action, set: readonly { node: string; lease: string }[] = SET): Action =>
  a.type === 'put' ? { ...a, record: { ...a.record, promiseSet: set as AssignmentRecord['promiseSet'] } } : a;

const put = (group: string, reason: AssignmentRecord['reason'], extra = ''): Action => ({
  type: 'put',
  group,
  expectEpoch: 7,
  record: {
    group,
    vips: [{ address: extra }],
    release: false,
    specHash: 'h',
    at: 0,
    leader: 'c',
    holder: 'n1',
    holderLease: '1',
    reason,
  },
});

describe('batchActions', () => {
  it('keeps every action once, urgent ones first, promise-set rewrites after, each batch of one kind', () => {
    const actions: Action[] = [
      put('a', 'promise-set'),
      put('b', 'lease-expired'),
      { type: 'delete', group: 'c', expectEpoch: 3 },
      put('d', 'promise-set'),
      put('e', 'initial'),
    ];
    const batches = batchActions(actions, keyOf);
    expect(batches.map((b) => b.map((x) => x.action.group))).toEqual([
      ['b', 'c', 'e'],
      ['a', 'd'],
    ]);
    expect(batches.flat().map((x) => x.index)).toEqual([1, 2, 4, 0, 3]);
    // The value written is the record's JSON; a delete has none.
    expect(batches[0]![0]!.value).toBe(JSON.stringify((actions[1] as { record: AssignmentRecord }).record));
    expect(batches[0]![1]!.value).toBeUndefined();
  });

  it('stays within the operations and bytes per transaction', () => {
    const many = Array.from({ length: 250 }, (_, i) => put(`g${i}`, 'initial'));
    expect(batchActions(many, keyOf).map((b) => b.length)).toEqual([ASSIGNMENTS_PER_TXN, ASSIGNMENTS_PER_TXN, 50]);
    // ~1 KB each, at most 4 KB a transaction: 3 per transaction.
    const big = Array.from({ length: 7 }, (_, i) => put(`g${i}`, 'initial', 'x'.repeat(1000)));
    const sizes = batchActions(big, keyOf, 100, 4096).map((b) => b.length);
    expect(sizes).toEqual([3, 3, 1]);
    // One larger than the limit still goes, alone.
    expect(batchActions([put('g', 'initial', 'x'.repeat(5000))], keyOf, 100, 4096).map((b) => b.length)).toEqual([1]);
  });

  it('names a promise set by its digest and writes the set once per batch that names it', () => {
    const other = [{ node: 'n3', lease: '3' }];
    const actions = [withSet(put('a', 'initial')), withSet(put('b', 'initial')), withSet(put('c', 'initial'), other)];
    const [batch] = batchActions(actions, keyOf);
    for (const it of batch!) {
      const wire = JSON.parse(it.value!) as AssignmentRecord;
      // Not inline: the record names the set.
      expect(wire.promiseSet).toBeUndefined();
      expect(it.set!.key).toBe(keyOf(wire.promiseSetRef!));
      expect(PromiseSetRecord.parse(JSON.parse(it.set!.value)).set).toEqual(it.index === 2 ? other : SET);
      expect(promiseSetDigest(PromiseSetRecord.parse(JSON.parse(it.set!.value)).set)).toBe(wire.promiseSetRef);
    }
    // A record without a set names none, even when it was built from one that named a digest.
    const { promiseSet: _s, ...bare } = (actions[0] as { record: AssignmentRecord }).record;
    const stale: Action = {
      type: 'put',
      group: 'd',
      expectEpoch: 1,
      record: { ...bare, promiseSetRef: 'f'.repeat(64) },
    };
    const d = batchActions([stale], keyOf)[0]![0]!;
    expect((JSON.parse(d.value!) as AssignmentRecord).promiseSetRef).toBeUndefined();
    expect(d.set).toBeUndefined();
  });

  it('counts a set once per batch against the bytes per transaction', () => {
    const big = Array.from({ length: 400 }, (_, i) => ({ node: `node-${i}`, lease: String(1e15 + i) }));
    const size = JSON.stringify({ set: big }).length;
    const actions = Array.from({ length: 10 }, (_, i) => withSet(put(`g${i}`, 'initial'), big));
    // Room for the set and a few records: not one set per record.
    const sizes = batchActions(actions, keyOf, 100, size + 2000).map((b) => b.length);
    expect(sizes.reduce((x, y) => x + y, 0)).toBe(10);
    expect(sizes[0]).toBeGreaterThan(1);
    // Every batch carries the set it names.
    for (const b of batchActions(actions, keyOf, 100, size + 2000)) expect(b[0]!.set).toBeDefined();
  });
});
