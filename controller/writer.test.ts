import { describe, expect, it } from '@jest/globals';
import type { AssignmentRecord } from '../common/keyspace.js';
import type { Action } from './planner.js';
import { ASSIGNMENTS_PER_TXN, batchActions } from './writer.js';

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
    const batches = batchActions(actions);
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
    expect(batchActions(many).map((b) => b.length)).toEqual([ASSIGNMENTS_PER_TXN, ASSIGNMENTS_PER_TXN, 50]);
    // ~1 KB each, at most 4 KB a transaction: 3 per transaction.
    const big = Array.from({ length: 7 }, (_, i) => put(`g${i}`, 'initial', 'x'.repeat(1000)));
    const sizes = batchActions(big, 100, 4096).map((b) => b.length);
    expect(sizes).toEqual([3, 3, 1]);
    // One larger than the limit still goes, alone.
    expect(batchActions([put('g', 'initial', 'x'.repeat(5000))], 100, 4096).map((b) => b.length)).toEqual([1]);
  });
});
