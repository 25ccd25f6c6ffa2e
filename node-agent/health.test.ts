// Table tests for the pure parts of health checking: the rise/fall hysteresis step and the group summary
// (keepalived-style weights: 0 = required, positive added while passing, negative added while failing).
import { describe, expect, test } from '@jest/globals';
import type { HealthCheckSpec } from '../crds/failovergroup.js';
import { step, summarize, type CheckState } from './health.js';

const initial: CheckState = { ok: undefined, successes: 0, failures: 0 };

/** Runs a sequence of outcomes ('+' pass, '-' fail), one per 100 ms from t=1000, and returns every state. */
function runSeq(seq: string, rise: number, fall: number, from: CheckState = initial): CheckState[] {
  const out: CheckState[] = [];
  let s = from;
  [...seq].forEach((c, i) => {
    s = step(s, { ok: c === '+', message: c === '+' ? 'ok' : 'refused' }, rise, fall, 1000 + i * 100, 5);
    out.push(s);
  });
  return out;
}

const okString = (states: CheckState[]) => states.map((s) => (s.ok === undefined ? '?' : s.ok ? 'U' : 'D')).join('');

describe('step: rise/fall hysteresis', () => {
  test.each([
    // seq, rise, fall, states after each result (U up, D down)
    ['+', 2, 2, 'U'], // the first result decides
    ['-', 2, 2, 'D'],
    ['+-+-+-', 2, 2, 'UUUUUU'], // single failures never reach fall 2
    ['+--', 2, 2, 'UUD'],
    ['+---', 3, 3, 'UUUD'],
    ['+-', 1, 1, 'UD'],
    ['-+', 1, 1, 'DU'],
    ['-+-+-+', 2, 2, 'DDDDDD'], // single successes never reach rise 2
    ['-++', 2, 2, 'DDU'],
    ['-+++', 3, 1, 'DDDU'],
    ['--++--++', 2, 2, 'DDDUUDDU'],
    ['+-+--', 2, 2, 'UUUUD'], // the failure streak restarts after a success
  ])('%s rise %i fall %i -> %s', (seq, rise, fall, want) => {
    expect(okString(runSeq(seq, rise, fall))).toBe(want);
  });

  test('counters and message', () => {
    const s = runSeq('++-', 2, 3);
    expect(s.map((x) => [x.successes, x.failures])).toEqual([
      [1, 0],
      [2, 0],
      [0, 1],
    ]);
    expect(s[2]).toMatchObject({ ok: true, message: 'refused', latencyMs: 5 });
  });

  test('firstFailAt is the first failure of the current streak, cleared by a success', () => {
    const s = runSeq('+--+--', 2, 2);
    expect(s.map((x) => x.firstFailAt)).toEqual([undefined, 1100, 1100, undefined, 1400, 1400]);
    expect(okString(s)).toBe('UUDDDD');
  });

  test('does not change its input', () => {
    const s: CheckState = { ok: true, successes: 3, failures: 0 };
    step(s, { ok: false }, 2, 1, 5);
    expect(s).toEqual({ ok: true, successes: 3, failures: 0 });
  });
});

function check(name: string, weight = 0): HealthCheckSpec {
  return {
    name,
    type: 'tcp',
    intervalMs: 1000,
    timeoutMs: 1000,
    rise: 2,
    fall: 2,
    weight,
    tcp: { port: 80, host: '127.0.0.1' },
  };
}
const up = (firstFailAt?: number): CheckState => ({
  ok: true,
  successes: 2,
  failures: firstFailAt ? 1 : 0,
  firstFailAt,
  message: 'ok',
});
/** A check of this weight (0: required) in this state, for the summarize table. */
const of = (weight: number, state: CheckState): [number, CheckState] => [weight, state];
const down = (firstFailAt: number): CheckState => ({
  ok: false,
  successes: 0,
  failures: 2,
  firstFailAt,
  message: 'refused',
});

describe('summarize', () => {
  test('no checks: known and healthy', () => {
    expect(summarize([], new Map())).toEqual({
      known: true,
      healthy: true,
      priorityDelta: 0,
      checks: [],
      failingSince: undefined,
    });
  });

  test('unknown until every check has a first result, and unknown is not healthy', () => {
    const specs = [check('a'), check('b')];
    const r = summarize(specs, new Map([['a', up()]]));
    expect(r).toMatchObject({ known: false, healthy: false });
    expect(r.checks).toEqual([
      { name: 'a', ok: true, message: 'ok', latencyMs: undefined },
      { name: 'b', ok: false, message: 'no result yet' },
    ]);
    expect(
      summarize(
        specs,
        new Map([
          ['a', up()],
          ['b', initial],
        ]),
      ).known,
    ).toBe(false);
  });

  test.each<[string, [number, CheckState][], { healthy: boolean; priorityDelta: number; failingSince?: number }]>([
    ['all required passing', [of(0, up()), of(0, up())], { healthy: true, priorityDelta: 0 }],
    [
      'a required check failing',
      [of(0, up()), of(0, down(500))],
      { healthy: false, priorityDelta: 0, failingSince: 500 },
    ],
    [
      'two required failing: the earliest',
      [of(0, down(700)), of(0, down(500))],
      { healthy: false, priorityDelta: 0, failingSince: 500 },
    ],
    [
      'a required check still up inside its fall count is not failing',
      [of(0, up(900))],
      { healthy: true, priorityDelta: 0 },
    ],
    ['positive weight passing adds', [of(0, up()), of(50, up())], { healthy: true, priorityDelta: 50 }],
    [
      'positive weight failing adds nothing and does not make unhealthy',
      [of(0, up()), of(50, down(100))],
      { healthy: true, priorityDelta: 0 },
    ],
    ['negative weight failing subtracts', [of(0, up()), of(-30, down(100))], { healthy: true, priorityDelta: -30 }],
    ['negative weight passing adds nothing', [of(-30, up())], { healthy: true, priorityDelta: 0 }],
    [
      'weights add up',
      [of(20, up()), of(30, up()), of(-40, down(1)), of(-5, up())],
      { healthy: true, priorityDelta: 10 },
    ],
    [
      'weighted failures do not set failingSince',
      [of(-30, down(100)), of(0, down(300))],
      { healthy: false, priorityDelta: -30, failingSince: 300 },
    ],
  ])('%s', (_name, rows, want) => {
    const specs = rows.map(([w], i) => check(`c${i}`, w));
    const states = new Map(rows.map(([, s], i) => [`c${i}`, s]));
    const r = summarize(specs, states);
    expect({
      known: r.known,
      healthy: r.healthy,
      priorityDelta: r.priorityDelta,
      failingSince: r.failingSince,
    }).toEqual({ known: true, failingSince: undefined, ...want });
    expect(r.checks.map((c) => c.ok)).toEqual(rows.map(([, s]) => s.ok));
  });

  test('checks keep the spec order and carry message and latency', () => {
    const specs = [check('z'), check('a', 10)];
    const r = summarize(
      specs,
      new Map([
        ['a', { ...up(), latencyMs: 3 }],
        ['z', { ...down(5), latencyMs: 9 }],
      ]),
    );
    expect(r.checks).toEqual([
      { name: 'z', ok: false, message: 'refused', latencyMs: 9 },
      { name: 'a', ok: true, message: 'ok', latencyMs: 3 },
    ]);
  });

  test('states of checks not in the spec are ignored', () => {
    expect(
      summarize(
        [check('a')],
        new Map([
          ['a', up()],
          ['old', down(1)],
        ]),
      ),
    ).toMatchObject({ healthy: true, checks: [{ name: 'a' }] });
  });
});
