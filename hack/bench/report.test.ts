import { describe, expect, test } from '@jest/globals';
import { checkTargets, chartSvg, hardLimitMs, outageTable, segmentsOf, summarizeCells } from './report.js';
import { countedOverlaps } from './run.js';
import type { IterationResult, Mode, Profile } from './types.js';

function it(
  profile: Profile,
  mode: Mode,
  outageMs: number | null,
  dualMs = 0,
  extra: Partial<IterationResult> = {},
): IterationResult {
  return {
    profile,
    mode,
    iteration: 1,
    outageMs,
    failedAttempts: 0,
    dualMs,
    dualOngoing: false,
    recoveryDualMs: 0,
    endedOnOneHealthy: true,
    finalHolders: ['node2'],
    answeredBy: 'node2',
    steps: {},
    observedMs: 2000,
    ...extra,
  };
}

describe('segmentsOf', () => {
  test('service failure: the release frees the group', () => {
    expect(
      segmentsOf(
        { detect: 150, released: 170, assigned: 190, acquireStart: 192, added: 210, arp: 260, firstOkAfter: 265 },
        'service',
      ),
    ).toEqual({
      detection: 150,
      release: 20,
      reassign: 20,
      watchToAcquire: 2,
      addAddress: 18,
      announce: 50,
      clientReconnect: 5,
    });
  });

  test('hard failure: the lease end frees the group, a release logged by a cut-off agent does not count', () => {
    const s = segmentsOf(
      { detect: 1065, released: 490, leaseEnded: 1065, assigned: 1728, acquireStart: 1724, added: 1749, arp: 1800 },
      'link',
    );
    expect(s.release).toBeUndefined();
    expect(s.reassign).toBe(663);
    expect(s.watchToAcquire).toBe(-4);
  });

  test('keepalived: only what the sampler and the client saw', () => {
    expect(segmentsOf({ added: 700, arp: 702, firstOkAfter: 705 }, 'service')).toEqual({
      announce: 2,
      clientReconnect: 3,
    });
  });
});

describe('summaries and targets', () => {
  const results = [
    it('vipwarden-fast', 'service', 200),
    it('vipwarden-fast', 'service', 250),
    it('vipwarden-fast', 'service', 400),
    it('vipwarden-fast', 'graceful', 60),
    it('vipwarden-fast', 'kill', 1500),
    it('keepalived-tuned', 'kill', 10, 9000, {
      dualOngoing: true,
      endedOnOneHealthy: false,
      finalHolders: ['node1', 'node2'],
    }),
    it('keepalived-tuned', 'kill', null, 0, { error: 'setup failed' }),
  ];
  const cells = summarizeCells(results);

  test('cells per profile and mode, failed iterations left out', () => {
    const ka = cells.find((c) => c.profile === 'keepalived-tuned' && c.mode === 'kill')!;
    expect(ka.n).toBe(1);
    expect(ka.errors).toBe(1);
    expect(ka.dualOngoing).toBe(1);
    expect(ka.endedOnOneHealthy).toBe(0);
    const svc = cells.find((c) => c.profile === 'vipwarden-fast' && c.mode === 'service')!;
    expect(svc.outage?.p50).toBe(250);
    expect(svc.outage?.max).toBe(400);
  });

  test('an outage that never ended counts as infinite', () => {
    const c = summarizeCells([it('vipwarden-default', 'link', null)])[0]!;
    expect(c.outage?.max).toBe(Infinity);
  });

  test('targets', () => {
    const t = checkTargets(cells);
    const find = (target: string, profile: Profile) =>
      t.find((x) => x.target.startsWith(target) && x.profile === profile)!;
    expect(find('service failure', 'vipwarden-fast').met).toBe(false);
    expect(find('graceful move', 'vipwarden-fast').met).toBe(true);
    expect(find('hard failure', 'vipwarden-fast').met).toBe(true);
    expect(find('dual-holder', 'vipwarden-fast').met).toBe(true);
    expect(find('dual-holder', 'keepalived-tuned').met).toBe(false);
    expect(hardLimitMs('vipwarden-default')).toBe(2600);
    expect(hardLimitMs('vipwarden-fast')).toBe(1600);
  });

  test('table and chart render', () => {
    expect(outageTable(cells)).toContain('| kill     | keepalived-tuned |');
    const svg = chartSvg(cells, { title: 'a <title> & more' });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('a &lt;title&gt; &amp; more');
    expect(svg).toContain('≥');
    expect(svg.trim().endsWith('</svg>')).toBe(true);
  });
});

test('overlaps shorter than one sampler round are kept apart, not counted', () => {
  const r = countedOverlaps({
    totalMs: 10.2,
    intervals: [
      { from: 100, to: 100.2, ongoing: false, holders: ['node1', 'node2'] },
      { from: 200, to: 210, ongoing: false, holders: ['node2', 'node3'] },
      { from: 300, to: 300.1, ongoing: true, holders: ['node1', 'node2'] },
    ],
  });
  expect(r.totalMs).toBeCloseTo(10.1, 6);
  expect(r.counted.map((i) => i.from)).toEqual([200, 300]);
  expect(r.sameRound.map((i) => i.from)).toEqual([100]);
});
