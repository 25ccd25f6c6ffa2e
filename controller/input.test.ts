// The planner's input reads the leader's own assignment writes that its watch does not show yet (FencedWriter.ownWrites).
import { describe, expect, test } from '@jest/globals';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { Mirror } from '../common/etcd.js';
import { Keys } from '../common/keyspace.js';
import { silentLogger } from '../common/log.js';
import { buildInput, type MirrorName, type Mirrors } from './input.js';
import { LeaderMemory } from './memory.js';
import { assignmentRecord } from './testing/records.js';

const keys = new Keys('/t/');
const rec = assignmentRecord;

describe('buildInput', () => {
  test("the leader's own newer writes win over its mirror; a write the mirror shows is the mirror's", () => {
    const names: MirrorName[] = ['nodes', 'health', 'assignments', 'released', 'drain', 'moves', 'groups', 'presence'];
    // Never started: only their entries are read.
    const mirrors = Object.fromEntries(
      names.map((n) => [n, new Mirror(undefined as unknown as Etcd3, `/t/${n}/`, silentLogger())]),
    ) as Mirrors;
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
});
