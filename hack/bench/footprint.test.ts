import { describe, expect, test } from '@jest/globals';
import { footprintOf, parseKiB, parseStat, treeOf, type TreeSample } from './footprint.js';

// Field layout of /proc/<pid>/stat (proc(5)): pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
// majflt cmajflt utime stime cutime cstime ...
const STAT = '4242 (vw dataplane (x)) S 4200 4200 4200 0 -1 4194560 120 0 0 0 30 12 5 3 20 0 1 0 555 1000 200';

describe('parseStat', () => {
  test('comm with spaces and parentheses; cpu = utime + stime + cutime + cstime', () => {
    expect(parseStat(STAT)).toEqual({ pid: 4242, comm: 'vw dataplane (x)', state: 'S', ppid: 4200, cpuTicks: 50 });
  });
  test('garbage and truncated lines are rejected', () => {
    expect(parseStat('')).toBeUndefined();
    expect(parseStat('12 (x) S 1 2')).toBeUndefined();
    expect(parseStat('nope')).toBeUndefined();
  });
});

test('parseKiB reads VmRSS and Pss, 0 when absent', () => {
  expect(parseKiB('Name:\tnode\nVmPeak:\t 999 kB\nVmRSS:\t   51200 kB\n', 'VmRSS')).toBe(51200);
  expect(parseKiB('Rss:   900 kB\nPss:   700 kB\nPss_Anon: 600 kB\n', 'Pss')).toBe(700);
  expect(parseKiB('Name:\tkthreadd\n', 'VmRSS')).toBe(0);
});

test('treeOf: the root and all its descendants, nothing else', () => {
  const ppids = new Map([
    [1, 0],
    [10, 1],
    [11, 10],
    [12, 11],
    [13, 10],
    [20, 1],
    [21, 20],
  ]);
  expect(treeOf(10, ppids)).toEqual([10, 11, 12, 13]);
  expect(treeOf(21, ppids)).toEqual([21]);
  expect(treeOf(99, ppids)).toEqual([]);
});

describe('footprintOf', () => {
  const sample = (t: number, cpuTicks: number, rssKiB: number, comms = ['node', 'vw-dataplane']): TreeSample => ({
    t,
    pids: comms.map((_, i) => 100 + i),
    comms,
    cpuTicks,
    rssKiB,
    pssKiB: rssKiB - 1024,
  });

  test('CPU over the window as % of one core; RSS mean and max', () => {
    // 10 s window, 20 ticks at 100 Hz = 0.2 s CPU = 2 %.
    const f = footprintOf(
      [sample(0, 1000, 40 * 1024), sample(5000, 1010, 44 * 1024), sample(10_000, 1020, 48 * 1024)],
      100,
    )!;
    expect(f.windowMs).toBe(10_000);
    expect(f.samples).toBe(3);
    expect(f.cpuPercent).toBe(2);
    expect(f.rssMiB).toBe(44);
    expect(f.rssMaxMiB).toBe(48);
    expect(f.pssMiB).toBe(43);
    expect(f.processes).toBe('node, vw-dataplane');
  });

  test('repeated process names are counted (keepalived and its VRRP child)', () => {
    const f = footprintOf(
      [sample(0, 0, 6000, ['keepalived', 'keepalived']), sample(1000, 1, 6000, ['keepalived', 'keepalived'])],
      100,
    )!;
    expect(f.processes).toBe('keepalived ×2');
    expect(f.cpuPercent).toBe(1);
  });

  test('no figure from fewer than two samples or a gone tree; no PSS when unreadable', () => {
    expect(footprintOf([sample(0, 0, 1)], 100)).toBeUndefined();
    expect(
      footprintOf([sample(0, 0, 1), { t: 1000, pids: [], comms: [], cpuTicks: 0, rssKiB: 0, pssKiB: 0 }], 100),
    ).toBeUndefined();
    const f = footprintOf([{ ...sample(0, 0, 2048), pssKiB: 0 }, sample(1000, 0, 2048)], 100)!;
    expect(f.pssMiB).toBeUndefined();
    expect(f.cpuPercent).toBe(0);
  });
});
