// The benchmark's text tables (Markdown): outage, targets, step breakdown, steps, idle footprint.
import { formatMs } from './stats.js';
import { PROFILES, type Profile } from './types.js';
import type { Footprint } from './footprint.js';
import { SEGMENT_KEYS, STEP_KEYS, type CellSummary } from './summary.js';
import { formatRatio, ratioOf, type TargetCheck } from './targets.js';

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [fmt(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(fmt)].join('\n');
}

export function outageTable(cells: readonly CellSummary[]): string {
  const rows = cells.map((c) => {
    const dualMax = c.dual ? `${c.dualOngoing ? '≥ ' : ''}${formatMs(c.dual.max)}` : '–';
    return [
      c.mode,
      c.profile,
      String(c.n) + (c.errors ? ` (+${c.errors} failed)` : ''),
      formatMs(c.outage?.p50),
      formatMs(c.outage?.p95),
      formatMs(c.outage?.max),
      formatMs(c.dual?.p50),
      formatMs(c.dual?.p95),
      dualMax,
      `${c.endedOnOneHealthy}/${c.n}`,
    ];
  });
  return table(
    ['mode', 'profile', 'n', 'outage p50', 'p95', 'max', 'dual p50', 'p95', 'max', 'one healthy holder'],
    rows,
  );
}

export function targetTable(checks: readonly TargetCheck[]): string {
  const rows = checks.map((t) => [
    t.target,
    t.mode,
    t.profile,
    formatMs(t.valueMs),
    t.met === undefined ? '–' : t.met ? 'met' : 'MISSED',
    t.profile === 'keepalived-tuned' ? '' : formatMs(t.keepalivedTunedMs),
    t.profile === 'keepalived-tuned' ? '' : formatRatio(t.ratio),
    t.note ?? '',
  ]);
  return table(['target', 'mode', 'profile', 'measured', '', 'keepalived tuned', 'ratio', 'note'], rows);
}

export function breakdownTable(cells: readonly CellSummary[]): string {
  const rows = cells.map((c) => [
    c.mode,
    c.profile,
    ...SEGMENT_KEYS.map((k) => formatMs(c.segments[k])),
    formatMs(c.outage?.p50),
  ]);
  return table(
    [
      'mode',
      'profile',
      'detection',
      'release',
      'reassign (incl. Safety 3 wait)',
      'watch→acquire',
      'add address',
      'announce (ARP)',
      'client reconnect',
      'outage p50',
    ],
    rows,
  );
}

export function stepsTable(cells: readonly CellSummary[]): string {
  const rows = cells.map((c) => [
    c.mode,
    c.profile,
    ...STEP_KEYS.map((k) => (c.steps[k] === undefined ? '–' : String(c.steps[k]))),
  ]);
  return table(['mode', 'profile', ...STEP_KEYS], rows);
}

/** Idle footprint per profile (the preferred node's daemon and its descendants) beside keepalived tuned's. */
export function footprintTable(fp: Partial<Record<Profile, Footprint>>): string {
  const ref = fp['keepalived-tuned'];
  const rows = PROFILES.filter((p) => fp[p]).map((p) => {
    const f = fp[p]!;
    const mine = p !== 'keepalived-tuned';
    return [
      p,
      f.processes,
      `${f.rssMiB} MiB`,
      `${f.rssMaxMiB} MiB`,
      f.pssMiB === undefined ? '–' : `${f.pssMiB} MiB`,
      mine ? formatRatio(ratioOf(f.rssMiB, ref?.rssMiB)) : '',
      `${f.cpuPercent} %`,
      mine ? formatRatio(ratioOf(f.cpuPercent, ref?.cpuPercent)) : '',
      `${Math.round(f.windowMs / 100) / 10} s`,
      f.conditions ?? '',
    ];
  });
  return table(
    [
      'profile',
      'processes',
      'RSS mean',
      'RSS max',
      'PSS mean',
      'RSS ÷ ka tuned',
      'CPU (% of 1 core)',
      'CPU ÷ ka tuned',
      'window',
      'conditions',
    ],
    rows,
  );
}
