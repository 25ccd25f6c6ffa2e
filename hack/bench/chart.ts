// The benchmark's SVG chart: outage per mode and profile on a log scale.
import { formatMs, type Summary } from './stats.js';
import { MODES, PROFILES, type Profile } from './types.js';
import type { CellSummary } from './summary.js';

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
