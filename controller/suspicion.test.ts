// Unit tests for controller/suspicion.ts: who is suspected when heartbeats stop, and that a stalled stream (an etcd
// election or outage, a slow watch) suspects nobody.
import { describe, expect, test } from '@jest/globals';
import { HeartbeatSuspicion, type Beating } from './suspicion.js';

const three: Beating[] = ['n1', 'n2', 'n3'].map((node) => ({ node, heartbeatMs: 50 }));

/** Beats every node of `nodes` every 50 ms from `from` to `to` (exclusive), in order, and returns `to`. */
function beatAll(s: HeartbeatSuspicion, nodes: string[], from: number, to: number): number {
  for (let t = from; t < to; t += 50) for (const n of nodes) s.beat(n, t);
  return to;
}

describe('HeartbeatSuspicion', () => {
  test('a node silent for misses × its period while the others beat is suspected, and not before', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    beatAll(s, ['n1', 'n2', 'n3'], 0, 1000); // last beats at 950
    beatAll(s, ['n2', 'n3'], 1000, 1200); // n1 silent from 950
    expect(s.suspects(three, 1000)).toEqual([]);
    expect(s.suspects(three, 1100)).toEqual([]); // 150 ms silent: not more than 3 × 50
    expect(s.suspects(three, 1101)).toEqual(['n1']);
  });

  test('a stalled stream suspects nobody, and after it resumes everyone has the full allowance again', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    beatAll(s, ['n1', 'n2', 'n3'], 0, 1000);
    // etcd stalls 950..1500: no events at all.
    for (const t of [1000, 1100, 1300, 1499]) expect(s.suspects(three, t)).toEqual([]);
    // n2 and n3 come back first; n1's first beat after the stall is 120 ms later.
    beatAll(s, ['n2', 'n3'], 1500, 1620);
    expect(s.suspects(three, 1600)).toEqual([]);
    s.beat('n1', 1620);
    beatAll(s, ['n1', 'n2', 'n3'], 1650, 2000);
    expect(s.suspects(three, 1990)).toEqual([]);
  });

  test('a node that does not come back after a stall is suspected misses × period after the stream resumed', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    beatAll(s, ['n1', 'n2', 'n3'], 0, 1000);
    beatAll(s, ['n2', 'n3'], 1500, 1700);
    expect(s.suspects(three, 1650)).toEqual([]); // 150 ms since the stream resumed
    expect(s.suspects(three, 1690)).toEqual(['n1']);
  });

  test('a node alone is never suspected: its TTL is the detector', () => {
    const s = new HeartbeatSuspicion(2);
    s.restart(0);
    beatAll(s, ['n1'], 0, 500);
    expect(s.suspects([{ node: 'n1', heartbeatMs: 50 }], 600)).toEqual([]);
    expect(s.suspects([{ node: 'n1', heartbeatMs: 50 }], 5000)).toEqual([]);
  });

  test('restart (new leader, new watch) gives every node its allowance from then', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    beatAll(s, ['n2', 'n3'], 0, 2000); // n1 never beat; it is first asked about at 100
    expect(s.suspects(three, 100)).toEqual([]);
    beatAll(s, ['n2', 'n3'], 2000, 2100);
    expect(s.suspects(three, 2060)).toEqual(['n1']);
    s.restart(2100, ['n1', 'n2', 'n3']);
    beatAll(s, ['n2', 'n3'], 2100, 2300);
    expect(s.suspects(three, 2240)).toEqual([]);
    expect(s.suspects(three, 2260)).toEqual(['n1']);
  });

  test('two nodes gone at once are both suspected by the third', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    beatAll(s, ['n1', 'n2', 'n3'], 0, 500);
    beatAll(s, ['n3'], 500, 800);
    expect(s.suspects(three, 760).sort()).toEqual(['n1', 'n2']);
  });

  test('each node is judged by its own period', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    const mixed: Beating[] = [
      { node: 'n1', heartbeatMs: 200 },
      { node: 'n2', heartbeatMs: 50 },
      { node: 'n3', heartbeatMs: 50 },
    ];
    s.beat('n1', 0);
    beatAll(s, ['n2', 'n3'], 0, 700);
    expect(s.suspects(mixed, 590)).toEqual([]);
    expect(s.suspects(mixed, 650)).toEqual(['n1']);
  });
});
