// fast-check generators for the failsafe model (testing/model.ts): random clusters, clocks, networks and faults.
import fc from 'fast-check';
import type { Ablation } from '../rules.js';
import { MAX_NODES, MODEL_TIMING, type Fault, type ModelParams } from './model.js';

export const HORIZON_MS = 36_000;

const node = fc.integer({ min: 0, max: MAX_NODES - 1 });
const at = fc.integer({ min: 500, max: 20_000 });
const dur = fc.integer({ min: 100, max: 14_000 });
const mask = fc.integer({ min: 1, max: (1 << MAX_NODES) - 1 });
/** Every node but n0 (the first holder): a holder cut off with everyone else, or everyone else cut off. */
const masks = fc.oneof(mask, fc.constant(1), fc.constant((1 << MAX_NODES) - 1), fc.constant((1 << MAX_NODES) - 2));

export const fault: fc.Arbitrary<Fault> = fc.oneof(
  fc.record({ at, kind: fc.constant('etcd-down' as const), dur }),
  fc.record({ at, kind: fc.constant('cut-etcd' as const), mask: masks, dur }),
  fc.record({ at, kind: fc.constant('cut-lan' as const), mask: masks, dur }),
  fc.record({ at, kind: fc.constant('slow-lan' as const), extraMs: fc.integer({ min: 0, max: 3000 }), dur }),
  fc.record({ at, kind: fc.constant('freeze' as const), node, dur: fc.integer({ min: 100, max: 4000 }) }),
  fc.record({ at, kind: fc.constant('restart' as const), node, dur: fc.integer({ min: 0, max: 3000 }) }),
  fc.record({ at, kind: fc.constant('move' as const) }),
  fc.record({ at, kind: fc.constant('join' as const) }),
  fc.record({ at, kind: fc.constant('leave' as const), node }),
);

/** A fault, sometimes followed closely by a node joining (joins that race a partition are the interesting ones). */
const episode: fc.Arbitrary<Fault[]> = fc.oneof(
  fault.map((f) => [f]),
  fc.tuple(fault, fc.integer({ min: 0, max: 3000 })).map(([f, d]): Fault[] => [f, { at: f.at + d, kind: 'join' }]),
  // Two faults, the second close to the end of the first (a freeze that spans etcd's return, a cut that outlasts
  // another).
  fc
    .tuple(fault, fault, fc.integer({ min: -1500, max: 1500 }))
    .map(([f, g, d]): Fault[] => [f, { ...g, at: Math.max(0, f.at + ('dur' in f ? f.dur : 0) + d) }]),
  // etcd comes back while the holder stays cut off and the LAN is slow: late answers meet a peer that may take over.
  fc
    .record({ t: at, d: fc.integer({ min: 1000, max: 8000 }), e: fc.integer({ min: -1500, max: 300 }), slow: dur })
    .map(({ t, d, e, slow }): Fault[] => [
      { at: t, kind: 'etcd-down', dur: d },
      { at: t + d + e, kind: 'cut-etcd', mask: 1, dur: 15_000 },
      { at: Math.max(0, t + d - 3000), kind: 'slow-lan', extraMs: Math.min(slow, 3000), dur: 6000 },
    ]),
  // The same return with the holder left cut off; a node joins about when the holder's lease ends (so the holder
  // never asked it), and the group is moved soon after a listed node took over: the move must not free the group
  // while that node's promise binds it (rule 3).
  fc
    .record({
      t: at,
      d: fc.integer({ min: 1000, max: 6000 }),
      j: fc.integer({ min: 1500, max: 3000 }),
      m: fc.integer({ min: 2500, max: 6000 }),
    })
    .map(({ t, d, j, m }): Fault[] => [
      { at: t, kind: 'etcd-down', dur: d },
      { at: t + d - 100, kind: 'cut-etcd', mask: 1, dur: 15_000 },
      { at: t + d + j, kind: 'join' },
      { at: t + d + Math.max(m, j + 300), kind: 'move' },
    ]),
);

export const anyFaults: fc.Arbitrary<Fault[]> = fc.array(episode, { maxLength: 5 }).map((e) => e.flat());

const drift = fc.integer({ min: -MODEL_TIMING.driftPpm, max: MODEL_TIMING.driftPpm });

export function params(
  without: readonly Ablation[],
  faults: fc.Arbitrary<Fault[]> = anyFaults,
): fc.Arbitrary<ModelParams> {
  return fc.record({
    initialNodes: fc.integer({ min: 2, max: 4 }),
    ratePpm: fc.array(drift, { minLength: MAX_NODES, maxLength: MAX_NODES }),
    offsetMs: fc.array(fc.integer({ min: 0, max: 1_000_000 }), { minLength: MAX_NODES, maxLength: MAX_NODES }),
    maxDelayMs: fc.integer({ min: 0, max: 150 }),
    lossPct: fc.integer({ min: 0, max: 10 }),
    seed: fc.integer(),
    faults,
    horizonMs: fc.constant(HORIZON_MS),
    without: fc.constant(without),
  });
}
