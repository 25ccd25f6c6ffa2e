import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import type { Entry } from './etcd.js';
import { Keys, type AssignmentRecord } from './keyspace.js';
import {
  assignmentWire,
  collectable,
  promiseSetDigest,
  promiseSetValue,
  PromiseSets,
  type PromiseSetSource,
} from './promise-sets.js';

const keys = new Keys('/p/');
const SET = [
  { node: 'a', lease: '1' },
  { node: 'b', lease: '2' },
];
const entry = (key: string, value: string, rev = 1): Entry => ({
  key,
  value,
  modRevision: rev,
  createRevision: rev,
  lease: '0',
});
const source = (entries: Entry[]): PromiseSetSource => ({ get: (k) => entries.find((e) => e.key === k) });
const record = (over: Partial<AssignmentRecord> = {}): AssignmentRecord => ({
  group: 'g',
  holder: 'a',
  holderLease: '1',
  vips: [{ address: '198.18.0.10/32' }],
  release: false,
  reason: 'initial',
  specHash: 'h',
  at: 0,
  leader: 'c',
  ...over,
});

describe('promise sets stored by digest', () => {
  it('names a set by the SHA-256 of its canonical text', () => {
    expect(promiseSetDigest(SET)).toBe(createHash('sha256').update('a=1,b=2').digest('hex'));
    // Another lease is another set.
    expect(promiseSetDigest([SET[0]!, { node: 'b', lease: '3' }])).not.toBe(promiseSetDigest(SET));
  });

  it('takes a stored set only when it hashes to the digest it is named by', () => {
    const d = promiseSetDigest(SET);
    const good = new PromiseSets(source([entry(keys.promiseSet(d), promiseSetValue(SET))]), (x) => keys.promiseSet(x));
    expect(good.get(d)).toEqual(SET);
    const bad: string[] = [];
    const swapped = new PromiseSets(
      source([entry(keys.promiseSet(d), promiseSetValue([SET[0]!]))]),
      (x) => keys.promiseSet(x),
      (_d, why) => bad.push(why),
    );
    expect(swapped.get(d)).toBeUndefined();
    expect(bad).toEqual(['the set does not hash to its digest']);
    const garbage = new PromiseSets(source([entry(keys.promiseSet(d), '{"set":3}')]), (x) => keys.promiseSet(x));
    expect(garbage.get(d)).toBeUndefined();
    expect(new PromiseSets(source([]), (x) => keys.promiseSet(x)).get(d)).toBeUndefined();
  });

  it('resolves a record: inline and setless ones as they are, a named set looked up, an unreadable one undefined', () => {
    const d = promiseSetDigest(SET);
    const sets = new PromiseSets(source([entry(keys.promiseSet(d), promiseSetValue(SET))]), (x) => keys.promiseSet(x));
    const inline = record({ promiseSet: SET });
    expect(sets.resolve(inline)).toBe(inline);
    const none = record();
    expect(sets.resolve(none)).toBe(none);
    expect(sets.resolve(record({ promiseSetRef: d }))?.promiseSet).toEqual(SET);
    expect(sets.resolve(record({ promiseSetRef: 'e'.repeat(64) }))).toBeUndefined();
  });

  it('writes the digest, not the set, and the set under its key', () => {
    const w = assignmentWire(record({ promiseSet: SET }), (x) => keys.promiseSet(x));
    const wire = JSON.parse(w.value) as AssignmentRecord;
    expect(wire.promiseSet).toBeUndefined();
    expect(wire.promiseSetRef).toBe(promiseSetDigest(SET));
    expect(w.set).toEqual({ key: keys.promiseSet(promiseSetDigest(SET)), value: promiseSetValue(SET) });
    expect(keys.promiseSetDigestOf(w.set!.key)).toBe(promiseSetDigest(SET));
  });

  it('collects only sets no record names, last written at or before the assignments revision', () => {
    const [x, y, z] = ['1', '2', '3'].map((c) => c.repeat(64)) as [string, string, string];
    const stored = [
      entry(keys.promiseSet(x), '', 4),
      entry(keys.promiseSet(y), '', 4),
      entry(keys.promiseSet(z), '', 9),
    ];
    const got = collectable(stored, new Set([x]), 8, (k) => keys.promiseSetDigestOf(k)).map((e) => e.key);
    // x is named; z was written after the revision the references were read at (a record naming it may be unseen).
    expect(got).toEqual([keys.promiseSet(y)]);
  });
});
