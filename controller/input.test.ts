// The planner's input reads the leader's own assignment writes that its watch does not show yet (FencedWriter.ownWrites).
import { describe, expect, test } from '@jest/globals';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { Mirror } from '../common/etcd.js';
import { Keys } from '../common/keyspace.js';
import { promiseSetDigest, promiseSetValue } from '../common/promise-sets.js';
import { silentLogger } from '../common/log.js';
import { buildInput, type MirrorName, type Mirrors } from './input.js';
import { LeaderMemory } from './memory.js';
import { assignmentRecord } from './testing/records.js';

const keys = new Keys('/t/');
const rec = assignmentRecord;

/** Never started: only their entries are read. */
function idleMirrors(): Mirrors {
  const names: MirrorName[] = [
    'nodes',
    'health',
    'assignments',
    'released',
    'drain',
    'moves',
    'groups',
    'presence',
    'promisesets',
  ];
  return Object.fromEntries(
    names.map((n) => [n, new Mirror(undefined as unknown as Etcd3, `/t/${n}/`, silentLogger())]),
  ) as Mirrors;
}

function entry(key: string, value: string, rev: number) {
  return { key, value, modRevision: rev, createRevision: rev, lease: '0' };
}

describe('buildInput', () => {
  test("the leader's own newer writes win over its mirror; a write the mirror shows is the mirror's", () => {
    const mirrors = idleMirrors();
    for (const [g, holder, rev] of [
      ['a', 'n1', 5],
      ['b', 'n1', 6],
      ['c', 'n1', 7],
    ] as const)
      mirrors.assignments.entries.set(keys.assignment(g), {
        key: keys.assignment(g),
        value: JSON.stringify(rec(g, holder)),
        modRevision: rev,
        createRevision: rev,
        lease: '0',
      });
    const clock: Clock = { mono: () => 1000, wall: () => 1000, sleep: async () => undefined };
    const memory = new LeaderMemory({ clock, log: silentLogger(), keys, kernelSlackMs: 400, askLease: async () => 10 });
    try {
      const input = buildInput(
        {
          keys,
          mirrors,
          memory,
          log: silentLogger(),
          leader: 'c',
          settleMs: 0,
          now: 1000,
          mono: 1000,
          ownWrites: new Map([
            ['a', { epoch: 9, record: rec('a', 'n2') }],
            ['b', { epoch: 9 }],
            ['d', { epoch: 9, record: rec('d', 'n3') }],
          ]),
        },
        { groups: new Map(), frozen: new Set(), contested: new Set() },
      );
      expect(input.assignments.get('a')).toEqual({ record: rec('a', 'n2'), epoch: 9 });
      expect(input.assignments.has('b')).toBe(false);
      expect(input.assignments.get('c')?.epoch).toBe(7);
      expect(input.assignments.get('d')?.record.holder).toBe('n3');
    } finally {
      memory.stop();
    }
  });

  test('an assignment whose stored promise set cannot be read or checked is not planned (frozen), not planned as setless', () => {
    const set = [
      { node: 'n1', lease: '11' },
      { node: 'n2', lease: '12' },
    ];
    const digest = promiseSetDigest(set);
    const mirrors = idleMirrors();
    for (const [g, rev] of [
      ['a', 5],
      ['b', 6],
    ] as const) {
      const { promiseSet: _inline, ...r } = rec(g, 'n1');
      mirrors.assignments.entries.set(
        keys.assignment(g),
        entry(keys.assignment(g), JSON.stringify({ ...r, promiseSetRef: digest }), rev),
      );
    }
    const clock: Clock = { mono: () => 1000, wall: () => 1000, sleep: async () => undefined };
    const memory = new LeaderMemory({ clock, log: silentLogger(), keys, kernelSlackMs: 400, askLease: async () => 10 });
    const ctx = { keys, mirrors, memory, log: silentLogger(), leader: 'c', settleMs: 0, now: 1000, mono: 1000 };
    const sel = { groups: new Map(), frozen: new Set(['z']), contested: new Set<string>() };
    try {
      // Not there yet (the promisesets/ watch is behind): both frozen. Planned without their set, a failsafe group
      // whose holder's lease ended would be given to any node after the ordinary wait (rule 5 lost).
      let input = buildInput(ctx, sel);
      expect(input.assignments.has('a')).toBe(false);
      expect([...input.frozen].sort()).toEqual(['a', 'b', 'z']);
      expect([...sel.frozen]).toEqual(['z']);
      // A value that does not hash to its digest is not taken either.
      const tampered = promiseSetValue([{ node: 'n1', lease: '11' }]);
      mirrors.promisesets.entries.set(keys.promiseSet(digest), entry(keys.promiseSet(digest), tampered, 4));
      input = buildInput(ctx, sel);
      expect(input.frozen.has('a')).toBe(true);
      // The set as written: read, with the record.
      mirrors.promisesets.entries.set(keys.promiseSet(digest), entry(keys.promiseSet(digest), promiseSetValue(set), 5));
      input = buildInput(ctx, sel);
      expect(input.frozen.has('a')).toBe(false);
      expect(input.assignments.get('a')?.record.promiseSet).toEqual(set);
      expect(input.assignments.get('b')?.record.promiseSetRef).toBe(digest);
    } finally {
      memory.stop();
    }
  });
});
