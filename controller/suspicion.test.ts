// Unit tests for controller/suspicion.ts: who is suspected when heartbeats stop, and that a stalled stream (an etcd
// election or outage, a slow watch) suspects nobody. Beats are fed in time order up to each question, as the
// watch delivers them.
import { describe, expect, test } from '@jest/globals';
import { HeartbeatSuspicion, type Beating } from './suspicion.js';

const three: Beating[] = ['n1', 'n2', 'n3'].map((node) => ({ node, heartbeatMs: 50 }));

/** A schedule of beats: each node of `nodes` every `period` ms in [from, to). */
type Beats = { nodes: string[]; from: number; to: number; period?: number }[];

/** Feeds the beats of `plan` up to `now` (inclusive) that were not fed yet, in time order, then asks. */
function asker(s: HeartbeatSuspicion, plan: Beats, beating: Beating[] = three) {
  const all: [number, string][] = [];
  for (const p of plan) for (let t = p.from; t < p.to; t += p.period ?? 50) for (const n of p.nodes) all.push([t, n]);
  all.sort((a, b) => a[0] - b[0]);
  let i = 0;
  return (now: number): string[] => {
    while (i < all.length && all[i]![0] <= now) {
      const [t, n] = all[i++]!;
      s.beat(n, t);
    }
    return s.suspects(beating, now).sort();
  };
}

describe('HeartbeatSuspicion', () => {
  test('a node silent for more than misses × its period while the others beat is suspected, and not before', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    const ask = asker(s, [
      { nodes: ['n1', 'n2', 'n3'], from: 0, to: 1000 }, // n1's last beat at 950
      { nodes: ['n2', 'n3'], from: 1000, to: 2000 },
    ]);
    expect(ask(1000)).toEqual([]);
    expect(ask(1100)).toEqual([]); // the others' beat at 1100 is 150 ms after n1's last: not more than 3 × 50
    expect(ask(1149)).toEqual([]);
    expect(ask(1150)).toEqual(['n1']); // their beat at 1150: 200 ms
  });

  test('a stalled stream suspects nobody, and after it resumes everyone has the full allowance again', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    // etcd stalls after 950: no events at all until 1500; n1's first beat after it is 120 ms later than the others'.
    const ask = asker(s, [
      { nodes: ['n1', 'n2', 'n3'], from: 0, to: 1000 },
      { nodes: ['n2', 'n3'], from: 1500, to: 2000 },
      { nodes: ['n1'], from: 1620, to: 2000 },
    ]);
    for (const t of [1000, 1100, 1300, 1499, 1500, 1600, 1650, 1990]) expect(ask(t)).toEqual([]);
  });

  test('a stall that starts just after a node beat late within its period suspects nobody (the model test found it)', () => {
    // misses 2, period 20: n1 last heard at 984, n2 and n3 at 990 and 994; nothing after 1000.
    const s = new HeartbeatSuspicion(2);
    s.restart(0);
    const b = (node: string): Beating => ({ node, heartbeatMs: 20 });
    const ask = asker(
      s,
      [
        { nodes: ['n1'], from: 4, to: 1000, period: 20 },
        { nodes: ['n2'], from: 10, to: 1000, period: 20 },
        { nodes: ['n3'], from: 14, to: 1000, period: 20 },
      ],
      [b('n1'), b('n2'), b('n3')],
    );
    for (const t of [995, 1010, 1030, 1040, 1100, 1500]) expect(ask(t)).toEqual([]);
  });

  test('after a stall, a node that comes back late is not suspected; once it beat again, it is counted as before', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    const ask = asker(s, [
      { nodes: ['n1', 'n2', 'n3'], from: 0, to: 1000 },
      { nodes: ['n2', 'n3'], from: 1500, to: 3000 }, // the stream resumes at 1500 without n1 (it reconnects later)
      { nodes: ['n1'], from: 2500, to: 2600 }, // n1 back at 2500, then silent again after 2550
    ]);
    expect(ask(1700)).toEqual([]); // before, suspected at 1700: 150 ms after the resume without it
    expect(ask(2400)).toEqual([]); // not heard since the resume: late to reconnect, left to its TTL
    expect(ask(2700)).toEqual([]);
    expect(ask(2750)).toEqual(['n1']); // heard at 2550 since the resume, silent since: more than 3 periods
  });

  test('a node alone is never suspected: its TTL is the detector', () => {
    const s = new HeartbeatSuspicion(2);
    s.restart(0);
    const one = [{ node: 'n1', heartbeatMs: 50 }];
    const ask = asker(s, [{ nodes: ['n1'], from: 0, to: 500 }], one);
    expect(ask(600)).toEqual([]);
    expect(ask(5000)).toEqual([]);
  });

  test('restart: a new leader takes the nodes it names as heard then; a watch back without names, none', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    const ask = asker(s, [{ nodes: ['n2', 'n3'], from: 0, to: 3000 }]); // n1 never beats
    expect(ask(1900)).toEqual([]); // never heard since the watch came back: left to its TTL
    s.restart(2000, ['n1', 'n2', 'n3']); // a leader takes over, knowing n1
    expect(ask(2150)).toEqual([]);
    expect(ask(2200)).toEqual(['n1']); // taken as heard at 2000, silent since: more than 3 periods
    s.restart(2300); // the watch came back after being down
    expect(ask(2900)).toEqual([]);
  });

  test('two nodes gone at once are both suspected by the third', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    const ask = asker(s, [
      { nodes: ['n1', 'n2', 'n3'], from: 0, to: 500 },
      { nodes: ['n3'], from: 500, to: 1000 },
    ]);
    expect(ask(760)).toEqual(['n1', 'n2']);
  });

  test('each node is judged by its own period', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    const mixed: Beating[] = [
      { node: 'n1', heartbeatMs: 200 },
      { node: 'n2', heartbeatMs: 50 },
      { node: 'n3', heartbeatMs: 50 },
    ];
    const ask = asker(
      s,
      [
        { nodes: ['n1'], from: 0, to: 1 },
        { nodes: ['n2', 'n3'], from: 0, to: 1000 },
      ],
      mixed,
    );
    expect(ask(600)).toEqual([]);
    expect(ask(650)).toEqual(['n1']);
  });

  test('a node that registered again is not silent until it has beaten under its new lease', () => {
    const s = new HeartbeatSuspicion(3);
    s.restart(0);
    const withLease = (l1: string): Beating[] => three.map((b) => ({ ...b, lease: b.node === 'n1' ? l1 : b.node }));
    for (let t = 0; t < 500; t += 50) for (const n of ['n1', 'n2', 'n3']) s.beat(n, t, n === 'n1' ? 'A' : n);
    // n1's lease A ends; it registers under B, and its first put under B waits behind one stuck under A.
    for (let t = 500; t < 1500; t += 50) for (const n of ['n2', 'n3']) s.beat(n, t, n);
    expect(s.suspects(withLease('A'), 1450)).toEqual(['n1']); // still under A: silent, as before
    expect(s.suspects(withLease('B'), 1450)).toEqual([]); // under B it never beat: left to B's TTL
    s.beat('n1', 1500, 'B');
    for (let t = 1500; t <= 1650; t += 50) for (const n of ['n2', 'n3']) s.beat(n, t, n);
    expect(s.suspects(withLease('B'), 1650)).toEqual([]);
    for (const n of ['n2', 'n3']) s.beat(n, 1700, n);
    expect(s.suspects(withLease('B'), 1700)).toEqual(['n1']); // beat under B at 1500, silent since
  });
});
