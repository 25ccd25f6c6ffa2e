// Pure parts of the testbed library: outage and overlap arithmetic, sampler line parsing, address checks.
import { computeOverlaps, AddressTimelines, parseSamplerLine } from './sampler.js';
import { answeredBy, outageAround, runsOf, type Sample } from './probe.js';
import { assertAllowedAddress, expandIPv6, isBenchV4, isBenchV6, normalizeIp } from './util.js';
import { linkK, netnsK } from './names.js';

const ok = (seq: number, t: number, body: string): Sample => ({ seq, t, tEnd: t + 1, ok: true, body });
const bad = (seq: number, t: number, error = 'timeout'): Sample => ({ seq, t, tEnd: t + 100, ok: false, error });

describe('outageAround', () => {
  const samples = [
    ok(0, 0, 'node1'),
    ok(1, 10, 'node1'),
    ok(2, 20, 'node1'),
    bad(3, 30),
    bad(4, 40),
    ok(5, 50, 'node2'),
    ok(6, 60, 'node2'),
  ];
  test('from the last answer before the first failure to the first answer after it', () => {
    const o = outageAround(samples, 15);
    expect(o.durationMs).toBe(30);
    expect(o.failed).toBe(2);
    expect(o.bodyBefore).toBe('node1');
    expect(o.bodyAfter).toBe('node2');
  });
  test('answers of the old holder right after the fault do not end the outage early', () => {
    expect(outageAround(samples, 5).durationMs).toBe(30);
  });
  test('no failure after the fault: zero outage', () => {
    expect(outageAround(samples, 45).durationMs).toBe(0);
  });
  test('never recovered: Infinity', () => {
    expect(outageAround([ok(0, 0, 'a'), bad(1, 10)], 5).durationMs).toBe(Infinity);
  });
  test('answeredBy and runsOf', () => {
    expect(answeredBy(samples)).toEqual({ node1: 3, node2: 2 });
    expect(runsOf(samples).map((r) => [r.body, r.count])).toEqual([
      ['node1', 3],
      [null, 2],
      ['node2', 2],
    ]);
  });
});

describe('overlaps', () => {
  test('a clean move has none; a del and an add at the same instant are not an overlap', () => {
    expect(computeOverlaps({ a: [{ from: 0, to: 10 }], b: [{ from: 10, to: null }] }, 100)).toEqual({
      intervals: [],
      totalMs: 0,
    });
    expect(computeOverlaps({ a: [{ from: 0, to: 10 }], b: [{ from: 12, to: null }] }, 100).totalMs).toBe(0);
  });
  test('two holders at once, closed and ongoing', () => {
    const o = computeOverlaps(
      { a: [{ from: 0, to: 30 }], b: [{ from: 10, to: null }], c: [{ from: 50, to: null }] },
      80,
    );
    expect(o.intervals).toEqual([
      { from: 10, to: 30, ongoing: false, holders: ['a', 'b'] },
      { from: 50, to: 80, ongoing: true, holders: ['b', 'c'] },
    ]);
    expect(o.totalMs).toBe(50);
  });
  test('since clips earlier history', () => {
    const tl = { a: [{ from: 0, to: 30 }], b: [{ from: 10, to: 20 }] };
    expect(computeOverlaps(tl, 100, 15).totalMs).toBe(5);
    expect(computeOverlaps(tl, 100, 25).totalMs).toBe(0);
  });
  test('AddressTimelines counts copies per node (same address on two interfaces of one node is one holder)', () => {
    const t = new AddressTimelines();
    const ev = (tt: number, node: string, kind: 'add' | 'del', ifname = 'eth0') =>
      t.apply({ t: tt, node, kind, address: '198.18.20.100', prefixLen: 32, ifname });
    ev(0, 'node1', 'add');
    ev(5, 'node1', 'add', 'lo');
    ev(10, 'node2', 'add');
    ev(20, 'node1', 'del');
    expect(t.holders('198.18.20.100')).toEqual(['node1', 'node2']);
    ev(30, 'node1', 'del', 'lo');
    expect(t.holders('198.18.20.100')).toEqual(['node2']);
    expect(t.overlaps('198.18.20.100', 100)).toEqual({
      intervals: [{ from: 10, to: 30, ongoing: false, holders: ['node1', 'node2'] }],
      totalMs: 20,
    });
  });
  test('a handover between two poll rounds is not an overlap; one that spans a round is', () => {
    // Round k dumps node1 at 100.00-100.01, node2 at 100.01-100.02; round k+1 at 105.00 and 105.01. node2 let go and
    // node1 took the address between the rounds: by `t` alone node1's add (105.00) precedes node2's del (105.01).
    const between = new AddressTimelines();
    const ev = (t: AddressTimelines, tt: number, node: string, kind: 'add' | 'del', lo: number, hi: number) =>
      t.apply({ t: tt, node, kind, address: '198.18.20.100', prefixLen: 32, ifname: 'eth0', lo, hi });
    ev(between, 50, 'node2', 'add', 45, 50.02);
    ev(between, 105.0, 'node1', 'add', 100.0, 105.005);
    ev(between, 105.01, 'node2', 'del', 100.01, 105.02);
    expect(between.overlaps('198.18.20.100', 200)).toEqual({ intervals: [], totalMs: 0 });
    // Without the bounds (t only), the same sequence reads as a 10 µs overlap: the false alarm this prevents.
    const tOnly = computeOverlaps({ node1: [{ from: 105.0, to: null }], node2: [{ from: 50, to: 105.01 }] }, 200);
    expect(tOnly.intervals).toHaveLength(1);
    // node2 still seen holding in the round after node1's add: both held it, for certain, from 105.005 to 110.01.
    const spanning = new AddressTimelines();
    ev(spanning, 50, 'node2', 'add', 45, 50.02);
    ev(spanning, 105.0, 'node1', 'add', 100.0, 105.005);
    ev(spanning, 115.01, 'node2', 'del', 110.01, 115.02);
    const o = spanning.overlaps('198.18.20.100', 200);
    expect(o.intervals).toEqual([{ from: 105.005, to: 110.01, ongoing: false, holders: ['node1', 'node2'] }]);
  });
  test('IPv6 addresses compare in canonical form', () => {
    const t = new AddressTimelines();
    t.apply({ t: 0, node: 'n1', kind: 'add', address: '2001:2:0:20::100', prefixLen: 128, ifname: 'eth0' });
    expect(t.holders('2001:0002:0000:0020:0000:0000:0000:0100')).toEqual(['n1']);
  });
});

describe('the fence view (sampler with fenceTable)', () => {
  const A = '198.18.20.100';
  test("a closed gate ends the node's holding though the address stays; opening it starts it again", () => {
    const t = new AddressTimelines();
    t.apply({ t: 0, node: 'node1', kind: 'add', address: A, prefixLen: 24, ifname: 'eth0' });
    t.applyGate({ t: 100, lo: 95, hi: 100.1, node: 'node1', address: A, closed: true });
    expect(t.holders(A)).toEqual([]);
    // node2 takes it while node1's gated address is still there: no overlap.
    t.apply({ t: 150, node: 'node2', kind: 'add', address: A, prefixLen: 24, ifname: 'eth0' });
    expect(t.holders(A)).toEqual(['node2']);
    expect(t.overlaps(A, 300).totalMs).toBe(0);
    expect(t.timeline(A)['node1']).toEqual([{ from: 0, to: 100, sureTo: 95 }]);
    // The gate opens again while node2 holds it: that is a dual holder (both answer).
    t.applyGate({ t: 200, lo: 195, hi: 200.1, node: 'node1', address: A, closed: false });
    expect(t.holders(A)).toEqual(['node1', 'node2']);
    expect(t.overlaps(A, 300)).toEqual({
      intervals: [{ from: 200.1, to: 300, ongoing: true, holders: ['node1', 'node2'] }],
      totalMs: 99.9,
    });
  });
  test('a gate closed before the address comes: the address holds nothing until it opens', () => {
    const t = new AddressTimelines();
    t.applyGate({ t: 0, node: 'node1', address: A, closed: true });
    t.apply({ t: 10, node: 'node1', kind: 'add', address: A, prefixLen: 24, ifname: 'eth0' });
    expect(t.holders(A)).toEqual([]);
    t.applyGate({ t: 20, node: 'node1', address: A, closed: false });
    expect(t.holders(A)).toEqual(['node1']);
    expect(t.timeline(A)['node1']).toEqual([{ from: 20, to: null }]);
  });
  test('gate lines parse', () => {
    expect(parseSamplerLine('12.5 vw20-node1 gate closed 198.18.20.100 10.0 12.6')).toEqual({
      kind: 'gate',
      event: { t: 12.5, netns: 'vw20-node1', address: '198.18.20.100', closed: true, lo: 10, hi: 12.6 },
    });
    expect(parseSamplerLine('12.5 vw20-node1 gate open 2001:2::1 10.0 12.6')).toMatchObject({
      kind: 'gate',
      event: { closed: false, address: '2001:2::1' },
    });
    expect(parseSamplerLine('12.5 vw20-node1 gate ajar 198.18.20.100 10 12')).toBeUndefined();
  });
});

describe('parseSamplerLine', () => {
  test('address changes and control lines', () => {
    expect(parseSamplerLine('123.456 vw20-node1 add 198.18.20.100/32 eth0')).toEqual({
      kind: 'addr',
      event: { t: 123.456, netns: 'vw20-node1', kind: 'add', address: '198.18.20.100', prefixLen: 32, ifname: 'eth0' },
    });
    expect(parseSamplerLine('1.000 vw20-node2 del 2001:2:0:20::100/128 eth0')?.kind).toBe('addr');
    expect(parseSamplerLine('123.456 vw20-node1 del 198.18.20.100/32 eth0 118.400 123.470')).toEqual({
      kind: 'addr',
      event: {
        t: 123.456,
        netns: 'vw20-node1',
        kind: 'del',
        address: '198.18.20.100',
        prefixLen: 32,
        ifname: 'eth0',
        lo: 118.4,
        hi: 123.47,
      },
    });
    expect(parseSamplerLine('5.5 - hb 200 1 300 0')).toEqual({
      kind: 'hb',
      t: 5.5,
      polls: 200,
      late: 1,
      maxPollUs: 300,
      errors: 0,
    });
    expect(parseSamplerLine('5.5 - ready 1')).toEqual({ kind: 'ready', t: 5.5, polls: 1 });
    expect(parseSamplerLine('garbage')).toBeUndefined();
  });
});

describe('addresses and names', () => {
  test('only loopback and the benchmarking ranges are allowed', () => {
    expect(isBenchV4('198.18.0.1')).toBe(true);
    expect(isBenchV4('198.19.255.254')).toBe(true);
    expect(isBenchV4('198.20.0.1')).toBe(false);
    expect(isBenchV6('2001:2::1')).toBe(true);
    expect(isBenchV6('2001:2:0:ff::1')).toBe(true);
    expect(isBenchV6('2001:2:1::1')).toBe(false);
    expect(isBenchV6('2001:db8::1')).toBe(false);
    expect(() => assertAllowedAddress('127.0.0.1')).not.toThrow();
    expect(() => assertAllowedAddress('10.0.0.1')).toThrow(/not allowed/);
    expect(() => assertAllowedAddress('192.0.2.2')).toThrow(/not allowed/);
  });
  test('IPv6 helpers', () => {
    expect(expandIPv6('2001:2::1')).toEqual([0x2001, 2, 0, 0, 0, 0, 0, 1]);
    expect(normalizeIp('2001:0002:0000:0000::0100')).toBe('2001:2::100');
    expect(normalizeIp('198.18.1.2/24')).toBe('198.18.1.2');
  });
  test('our resource names', () => {
    expect(netnsK('vw20-node3')).toBe(20);
    expect(netnsK('vw20-client')).toBe(20);
    expect(netnsK('vw20-other')).toBeUndefined();
    expect(linkK('vwbr20')).toBe(20);
    expect(linkK('vw20n3')).toBe(20);
    expect(linkK('vw20c')).toBe(20);
    expect(linkK('vw20')).toBeUndefined();
    expect(linkK('eth0')).toBeUndefined();
  });
});
