// Benchmark output: summaries per mode and profile, text tables (Markdown), targets, the step breakdown,
// the JSON document and an SVG chart. Everything here is pure: main.ts does the writing.
import { formatMs, medianOf, summarize, type Summary } from './stats.js';
import {
  MODES,
  PROFILES,
  productOf,
  type IterationResult,
  type Mode,
  type Profile,
  type StepOffsets,
} from './types.js';
import type { Footprint } from './footprint.js';

export interface CellSummary {
  profile: Profile;
  mode: Mode;
  /** Iterations that ran (setup failures left out). */
  n: number;
  errors: number;
  /** Outage; an iteration the client never recovered in counts as Infinity. */
  outage?: Summary;
  dual?: Summary;
  /** Iterations where the VIP was still on two nodes when the observation ended. */
  dualOngoing: number;
  /** Iterations with any dual-holder time (fault or recovery). */
  dualIterations: number;
  recoveryDualMax: number;
  endedOnOneHealthy: number;
  /** Medians of the step times (ms after the fault). */
  steps: StepOffsets;
  /** Medians of the per-iteration segments (ms). */
  segments: Segments;
}

/** Where the time goes, per iteration: consecutive steps of a failover (ms). */
export interface Segments {
  detection?: number;
  release?: number;
  reassign?: number;
  watchToAcquire?: number;
  addAddress?: number;
  announce?: number;
  clientReconnect?: number;
}

/**
 * Splits one iteration's step times into consecutive segments (pure; missing steps leave gaps).
 * The group is freed by the old holder's release (service failure, graceful stop) or by the end of its lease
 * (hard failures: the controller then also waits out the address lifetime, DESIGN.md Safety 3).
 */
export function segmentsOf(s: StepOffsets, mode: Mode): Segments {
  const d = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined ? Math.round((a - b) * 10) / 10 : undefined;
  const soft = mode === 'service' || mode === 'graceful';
  const freed = soft ? s.released : s.leaseEnded;
  const added = s.added ?? s.acquired;
  const out: Segments = {
    detection: s.detect,
    release: soft ? d(s.released, s.detect) : undefined,
    reassign: d(s.assigned, freed ?? s.detect),
    watchToAcquire: d(s.acquireStart, s.assigned),
    addAddress: d(added, s.acquireStart),
    announce: d(s.arp, added),
    clientReconnect: d(s.firstOkAfter, s.arp ?? added),
  };
  for (const k of Object.keys(out) as (keyof Segments)[]) if (out[k] === undefined) delete out[k];
  return out;
}

const STEP_KEYS: (keyof StepOffsets)[] = [
  'lastOkBefore',
  'detect',
  'released',
  'leaseEnded',
  'removed',
  'assigned',
  'acquireStart',
  'acquired',
  'added',
  'arp',
  'firstOkAfter',
];
const SEGMENT_KEYS: (keyof Segments)[] = [
  'detection',
  'release',
  'reassign',
  'watchToAcquire',
  'addAddress',
  'announce',
  'clientReconnect',
];

export function summarizeCells(results: readonly IterationResult[]): CellSummary[] {
  const out: CellSummary[] = [];
  for (const profile of PROFILES) {
    for (const mode of MODES) {
      const all = results.filter((r) => r.profile === profile && r.mode === mode);
      if (all.length === 0) continue;
      const rs = all.filter((r) => r.error === undefined);
      const steps: StepOffsets = {};
      for (const k of STEP_KEYS) {
        const m = medianOf(rs.map((r) => r.steps[k]));
        if (m !== undefined) steps[k] = Math.round(m);
      }
      const segs = rs.map((r) => segmentsOf(r.steps, r.mode));
      const segments: Segments = {};
      for (const k of SEGMENT_KEYS) {
        const m = medianOf(segs.map((x) => x[k]));
        if (m !== undefined) segments[k] = Math.round(m);
      }
      out.push({
        profile,
        mode,
        n: rs.length,
        errors: all.length - rs.length,
        outage: summarize(rs.map((r) => (r.outageMs === null ? Infinity : r.outageMs))),
        dual: summarize(rs.map((r) => r.dualMs)),
        dualOngoing: rs.filter((r) => r.dualOngoing).length,
        dualIterations: rs.filter((r) => r.dualMs > 0 || r.recoveryDualMs > 0).length,
        recoveryDualMax: Math.max(0, ...rs.map((r) => r.recoveryDualMs)),
        endedOnOneHealthy: rs.filter((r) => r.endedOnOneHealthy).length,
        steps,
        segments,
      });
    }
  }
  return out;
}

// ---- targets ------------------------------------------------------------------------------------------

export interface TargetCheck {
  target: string;
  profile: Profile;
  mode: Mode | 'all';
  limitMs: number;
  valueMs: number | undefined;
  met: boolean | undefined;
  /** keepalived tuned's figure for the same mode from the same run, and value / that figure. */
  keepalivedTunedMs?: number;
  ratio?: number;
  note?: string;
}

const HARD: Mode[] = ['link', 'kill', 'freeze'];

/** Hard-failure bound (issue 13): fast profile < 400 ms, default < 1.5 s (keepalived: the matching profile's). */
export function hardLimitMs(profile: Profile): number {
  return profile === 'vipwarden-fast' || profile === 'keepalived-tuned' ? 400 : 1500;
}

/** Planned move (graceful) bound, both profiles. */
export const GRACEFUL_LIMIT_MS = 30;
/** Service failure bound: detection (interval × fall) + this. */
export const SERVICE_MARGIN_MS = 30;

/** Detection time (interval × fall) of the profiles as hack/bench defines them, where no settings are given. */
export const DETECTION_MS: Record<Profile, number> = {
  'vipwarden-default': 1000 * 2,
  'vipwarden-fast': 100 * 2,
  'keepalived-default': 1000 * 2,
  'keepalived-tuned': 1000 * 1,
};

/** Detection time of a profile's health check (interval × fall, ms) from its settings in results.json. */
export function detectionMsOf(settings: Record<string, unknown> | undefined): number | undefined {
  const num = (o: unknown, k: string) => {
    const v = (o as Record<string, unknown> | undefined)?.[k];
    return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
  };
  const vw = settings?.['check'];
  const ka = settings?.['vrrpScript'];
  const vwInterval = num(vw, 'intervalMs');
  const vwFall = num(vw, 'fall');
  if (vwInterval !== undefined && vwFall !== undefined) return vwInterval * vwFall;
  const kaInterval = num(ka, 'intervalS');
  const kaFall = num(ka, 'fall');
  if (kaInterval !== undefined && kaFall !== undefined) return kaInterval * 1000 * kaFall;
  return undefined;
}

/** value / reference, rounded to 2 digits; undefined where it means nothing (missing, or the reference is 0). */
export function ratioOf(value: number | undefined, reference: number | undefined): number | undefined {
  if (value === undefined || reference === undefined || Number.isNaN(value) || Number.isNaN(reference))
    return undefined;
  if (reference === 0 || !Number.isFinite(reference)) return undefined;
  if (!Number.isFinite(value)) return Infinity;
  return Math.round((value / reference) * 100) / 100;
}

export function formatRatio(r: number | undefined): string {
  if (r === undefined) return '–';
  if (!Number.isFinite(r)) return '∞';
  return `${r}×`;
}

/**
 * The targets of issue 16 (and 13 for hard failures), each with keepalived tuned's figure from the same run.
 * `settings`: the profiles' settings (results.json "profiles"), for the detection time and the Safety 3 wait.
 */
export function checkTargets(
  cells: readonly CellSummary[],
  settings: Partial<Record<Profile, Record<string, unknown>>> = {},
): TargetCheck[] {
  const out: TargetCheck[] = [];
  const p95 = (c: CellSummary | undefined) => c?.outage?.p95;
  const ka = (m: Mode) => cells.find((c) => c.profile === 'keepalived-tuned' && c.mode === m);
  const kaDualWorst = cells.some((c) => c.profile === 'keepalived-tuned')
    ? Math.max(0, ...cells.filter((c) => c.profile === 'keepalived-tuned').map((c) => c.dual?.max ?? 0))
    : undefined;
  for (const profile of PROFILES) {
    const cell = (m: Mode) => cells.find((c) => c.profile === profile && c.mode === m);
    const add = (target: string, mode: Mode | 'all', limitMs: number, valueMs: number | undefined, note?: string) => {
      const ref = profile === 'keepalived-tuned' ? undefined : mode === 'all' ? kaDualWorst : p95(ka(mode));
      out.push({
        target,
        profile,
        mode,
        limitMs,
        valueMs,
        met:
          valueMs === undefined || Number.isNaN(limitMs)
            ? undefined
            : valueMs < limitMs || (limitMs === 0 && valueMs === 0),
        ...(ref !== undefined ? { keepalivedTunedMs: ref } : {}),
        ...(ratioOf(valueMs, ref) !== undefined ? { ratio: ratioOf(valueMs, ref) } : {}),
        ...(note ? { note } : {}),
      });
    };
    const s = settings[profile];
    if (cell('service')) {
      const det = s === undefined ? DETECTION_MS[profile] : detectionMsOf(s);
      if (det === undefined)
        add('service failure p95 < detection + 30 ms', 'service', NaN, p95(cell('service')), 'detection time unknown');
      else
        add(
          `service failure p95 < ${formatMs(det)} detection + ${SERVICE_MARGIN_MS} ms`,
          'service',
          det + SERVICE_MARGIN_MS,
          p95(cell('service')),
        );
    }
    if (cell('graceful'))
      add(`planned move p95 < ${GRACEFUL_LIMIT_MS} ms`, 'graceful', GRACEFUL_LIMIT_MS, p95(cell('graceful')));
    const wait = typeof s?.['overhangWaitMs'] === 'number' ? s['overhangWaitMs'] : undefined;
    const slack = typeof s?.['kernelSlackMs'] === 'number' ? s['kernelSlackMs'] : undefined;
    for (const m of HARD) {
      const c = cell(m);
      if (!c) continue;
      const limit = hardLimitMs(profile);
      const v = p95(c);
      const note =
        productOf(profile) === 'vipwarden' && wait !== undefined && wait >= limit
          ? `cannot be met yet: the controller waits ${formatMs(wait)} after the lease ends before moving the group (Safety 3, kernel slack ${formatMs(slack)}); needs the fast fence`
          : undefined;
      const kept =
        c.dualIterations > 0 && v !== undefined && v < limit
          ? 'no outage only because the old holder kept the VIP while another node took it (dual holders)'
          : undefined;
      add(`hard failure p95 < ${formatMs(limit)}`, m, limit, v, note ?? kept);
    }
    const mine = cells.filter((c) => c.profile === profile);
    if (mine.length) {
      const worst = Math.max(0, ...mine.map((c) => c.dual?.max ?? 0));
      const recovery = Math.max(0, ...mine.map((c) => c.recoveryDualMax));
      add(
        'dual-holder time 0 in every mode',
        'all',
        0,
        worst,
        recovery > 0 ? `and up to ${formatMs(recovery)} while the initial state was restored` : undefined,
      );
    }
  }
  return out;
}

// ---- footprint ----------------------------------------------------------------------------------------

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

/** Footprint targets (issue 16 item 4): agent < 50 MiB resident and < 2 % of one core. */
export function footprintTargets(fp: Partial<Record<Profile, Footprint>>): string[] {
  const out: string[] = [];
  for (const p of ['vipwarden-default', 'vipwarden-fast'] as const) {
    const f = fp[p];
    if (!f) continue;
    out.push(
      `${p}: RSS ${f.rssMiB} MiB < 50 MiB ${f.rssMiB < 50 ? 'met' : 'MISSED'}; CPU ${f.cpuPercent} % < 2 % ${f.cpuPercent < 2 ? 'met' : 'MISSED'}${f.conditions ? ` (${f.conditions}; the target is for 10 groups checked every 100 ms)` : ''}`,
    );
  }
  return out;
}

// ---- text ---------------------------------------------------------------------------------------------

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

// ---- SVG ----------------------------------------------------------------------------------------------

const COLORS: Record<Profile, string> = {
  'vipwarden-default': '#1f5fa8',
  'vipwarden-fast': '#35a7d6',
  'keepalived-default': '#b8372f',
  'keepalived-tuned': '#ee8a2d',
};

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmtTick(ms: number): string {
  return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}

interface Panel {
  title: string;
  value: (c: CellSummary) => Summary | undefined;
  ongoing?: (c: CellSummary) => boolean;
}

/** Grouped bars on a log scale: bar = p50, whisker = p50..p95, dot = max; one group per mode. */
export function chartSvg(
  cells: readonly CellSummary[],
  opts: { title: string; subtitle?: string; notes?: string[] },
): string {
  const modes = MODES.filter((m) => cells.some((c) => c.mode === m));
  const profiles = PROFILES.filter((p) => cells.some((c) => c.profile === p));
  const panels: Panel[] = [
    { title: 'Client-visible outage (bar p50, whisker p95, dot max)', value: (c) => c.outage },
    {
      title:
        'Time the VIP sat on two nodes at once (bar p50, whisker p95, dot max; ≥: still on two nodes when observation ended)',
      value: (c) => c.dual,
      ongoing: (c) => c.dualOngoing > 0,
    },
  ];
  const W = 960;
  const left = 90;
  const right = 20;
  const panelH = 300;
  const top = 84;
  const gap = 80;
  const legendH = 30;
  const notes = opts.notes ?? [];
  const H = top + panels.length * panelH + (panels.length - 1) * gap + legendH + 40 + notes.length * 16;
  const plotW = W - left - right;
  const groupW = plotW / Math.max(1, modes.length);
  const barW = Math.min(34, (groupW * 0.8) / Math.max(1, profiles.length));
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(
    `<text x="${W / 2}" y="26" text-anchor="middle" font-size="17" font-weight="bold">${esc(opts.title)}</text>`,
  );
  if (opts.subtitle)
    parts.push(`<text x="${W / 2}" y="46" text-anchor="middle" fill="#555">${esc(opts.subtitle)}</text>`);

  panels.forEach((panel, pi) => {
    const y0 = top + pi * (panelH + gap);
    const plotH = panelH - 40;
    const values = cells.flatMap((c) => {
      const s = panel.value(c);
      return s ? [s.max, s.p95, s.p50].filter((x) => Number.isFinite(x)) : [];
    });
    const lo = 10;
    const maxV = Math.max(1000, ...values);
    const hi = 10 ** Math.ceil(Math.log10(maxV));
    const y = (v: number) =>
      y0 + plotH - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
    parts.push(`<text x="${left}" y="${y0 - 14}" font-size="13" font-weight="bold">${esc(panel.title)}</text>`);
    for (let t = lo; t <= hi; t *= 10) {
      for (const m of [1, 2, 5]) {
        const v = t * m;
        if (v > hi) continue;
        const yy = y(v).toFixed(1);
        parts.push(
          `<line x1="${left}" x2="${W - right}" y1="${yy}" y2="${yy}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`,
        );
        if (m === 1 || m === 5)
          parts.push(`<text x="${left - 6}" y="${yy}" dy="4" text-anchor="end" fill="#444">${fmtTick(v)}</text>`);
      }
    }
    parts.push(
      `<text x="${left - 6}" y="${(y0 + plotH + 16).toFixed(1)}" text-anchor="end" fill="#444" font-size="10">0 / ≤ 10 ms</text>`,
    );
    parts.push(`<line x1="${left}" x2="${left}" y1="${y0}" y2="${y0 + plotH}" stroke="#333"/>`);
    parts.push(`<line x1="${left}" x2="${W - right}" y1="${y0 + plotH}" y2="${y0 + plotH}" stroke="#333"/>`);
    modes.forEach((mode, mi) => {
      const gx = left + mi * groupW;
      parts.push(
        `<text x="${(gx + groupW / 2).toFixed(1)}" y="${y0 + plotH + 32}" text-anchor="middle" fill="#222">${esc(mode)}</text>`,
      );
      profiles.forEach((profile, k) => {
        const c = cells.find((x) => x.mode === mode && x.profile === profile);
        const s = c ? panel.value(c) : undefined;
        const x = gx + (groupW - barW * profiles.length) / 2 + k * barW;
        if (!c || !s) return;
        const color = COLORS[profile];
        const yb = y0 + plotH;
        const p50 = Number.isFinite(s.p50) ? s.p50 : hi;
        const yp = y(p50);
        parts.push(
          `<rect x="${(x + 2).toFixed(1)}" y="${yp.toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${Math.max(1, yb - yp).toFixed(1)}" fill="${color}"><title>${esc(`${profile} ${mode}: p50 ${formatMs(s.p50)}, p95 ${formatMs(s.p95)}, max ${formatMs(s.max)} (n=${s.n})`)}</title></rect>`,
        );
        const cx = x + barW / 2;
        const y95 = y(Number.isFinite(s.p95) ? s.p95 : hi);
        parts.push(
          `<line x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${yp.toFixed(1)}" y2="${y95.toFixed(1)}" stroke="#222" stroke-width="1.5"/>`,
        );
        parts.push(
          `<line x1="${(cx - 5).toFixed(1)}" x2="${(cx + 5).toFixed(1)}" y1="${y95.toFixed(1)}" y2="${y95.toFixed(1)}" stroke="#222" stroke-width="1.5"/>`,
        );
        const ym = y(Number.isFinite(s.max) ? s.max : hi);
        parts.push(`<circle cx="${cx.toFixed(1)}" cy="${ym.toFixed(1)}" r="3" fill="#fff" stroke="#222"/>`);
        if (s.max === 0)
          parts.push(
            `<text x="${cx.toFixed(1)}" y="${(yb - 4).toFixed(1)}" text-anchor="middle" font-size="10" fill="#222">0</text>`,
          );
        if (panel.ongoing?.(c))
          parts.push(
            `<text x="${cx.toFixed(1)}" y="${(ym + 20).toFixed(1)}" text-anchor="middle" font-size="13" font-weight="bold" fill="#fff">≥</text>`,
          );
        if (!Number.isFinite(s.max))
          parts.push(
            `<text x="${cx.toFixed(1)}" y="${(y0 - 2).toFixed(1)}" text-anchor="middle" font-size="11" fill="#b00">∞</text>`,
          );
      });
    });
  });
  const ly = H - 30 - notes.length * 16;
  notes.forEach((n, i) =>
    parts.push(`<text x="${left}" y="${ly + 26 + i * 16}" fill="#444" font-size="11">${esc(n)}</text>`),
  );
  let lx = left;
  for (const p of profiles) {
    parts.push(`<rect x="${lx}" y="${ly - 10}" width="14" height="14" fill="${COLORS[p]}"/>`);
    parts.push(`<text x="${lx + 20}" y="${ly + 1}">${esc(p)}</text>`);
    lx += 40 + p.length * 7.5;
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
