// The benchmark's targets (issues 13 and 16), each checked against the run's summaries beside keepalived tuned's.
import { formatMs } from './stats.js';
import { PROFILES, productOf, type Mode, type Profile } from './types.js';
import type { Footprint } from './footprint.js';
import type { CellSummary } from './summary.js';

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
