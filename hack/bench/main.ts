#!/usr/bin/env node
// vipwarden benchmark (npm run bench, as root): client-visible outage and dual-holder time, vipwarden side by side
// with keepalived on the same netns testbed with the same client, then the scale benchmark.
//
//   node dist/hack/bench/main.js [--quick] [--iterations N] [--modes service,graceful,link,kill,freeze]
//        [--profiles vipwarden-default,vipwarden-fast,keepalived-default,keepalived-tuned]
//        [--out DIR] [--scale | --no-scale] [--no-failover] [--settle-ms MS] [--footprint-ms MS] [--vipwarden-groups N]
//        [--scale-nodes 100] [--scale-groups 1000] [--scale-steady-ms MS]
//        [--heartbeat-load] [--heartbeat-nodes 3,10,100] [--heartbeat-ms 30] [--heartbeat-duration-ms 10000]
//
// Writes DIR/results.json, DIR/failover.svg and DIR/summary.md (DIR defaults to bench-results/, git-ignored).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO } from '../testbed/cluster.js';
import { etcdBinaries } from '../etcd/binaries.js';
import { installSignalHandlers, requireRoot } from '../testbed/index.js';
import { intOption as int, run } from '../testbed/util.js';
import { startKeepalivedSubject } from './keepalived.js';
import {
  breakdownTable,
  chartSvg,
  checkTargets,
  footprintTable,
  footprintTargets,
  outageTable,
  stepsTable,
  summarizeCells,
  targetTable,
} from './report.js';
import type { Footprint } from './footprint.js';
import { DEFAULT_RUN, idleFootprint, runSubject } from './run.js';
import { runScale, scaleTargets, type ScaleResult } from './scale.js';
import {
  heartbeatGrowthLines,
  heartbeatLoadTable,
  runHeartbeatLoad,
  type HeartbeatLoadResult,
} from './heartbeat-load.js';
import { formatMs } from './stats.js';
import {
  MODES,
  MODE_TITLES,
  PROFILES,
  productOf,
  type IterationResult,
  type Mode,
  type Profile,
  type Subject,
} from './types.js';
import { startVipwardenSubject } from './vipwarden.js';
import { ARBITER_MODES, runArbiterModes, splitModes } from './arbiter.js';

const USAGE = `usage: bench [--quick] [--iterations N] [--modes ${[...MODES, ...ARBITER_MODES].join(',')}] [--profiles ${PROFILES.join(',')}]
             [--out DIR] [--scale | --no-scale] [--no-failover] [--settle-ms MS] [--footprint-ms MS] [--vipwarden-groups N]
             [--agent dist|sea] [--scale-nodes N] [--scale-groups N] [--scale-steady-ms MS]
             [--heartbeat-load] [--heartbeat-nodes 3,10,100] [--heartbeat-ms 30] [--heartbeat-duration-ms MS]`;

function list<T extends string>(raw: string | undefined, all: readonly T[], what: string): T[] {
  if (!raw) return [...all];
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const i of items)
    if (!(all as readonly string[]).includes(i)) throw new Error(`unknown ${what} "${i}" (known: ${all.join(', ')})`);
  return items as T[];
}

async function version(argv: string[]): Promise<string> {
  const r = await run(argv, { allowFailure: true, timeoutMs: 10_000 }).catch(() => undefined);
  return (r?.stdout || r?.stderr || '').split('\n')[0]?.trim() ?? '';
}

async function machine(): Promise<Record<string, unknown>> {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    etcd: await version([etcdBinaries().etcd, '--version']),
    keepalived: await version(['keepalived', '--version']),
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    git: await version(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD']),
  };
}

async function startSubject(p: Profile, vwGroups: number): Promise<Subject> {
  switch (p) {
    case 'vipwarden-default':
    case 'vipwarden-fast':
      return startVipwardenSubject(p, { groups: vwGroups });
    case 'keepalived-default':
    case 'keepalived-tuned':
      return startKeepalivedSubject(p);
  }
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      iterations: { type: 'string' },
      modes: { type: 'string' },
      profiles: { type: 'string' },
      out: { type: 'string' },
      scale: { type: 'boolean' },
      'no-scale': { type: 'boolean', default: false },
      'no-failover': { type: 'boolean', default: false },
      'settle-ms': { type: 'string' },
      'footprint-ms': { type: 'string' },
      'vipwarden-groups': { type: 'string' },
      agent: { type: 'string' },
      'scale-nodes': { type: 'string' },
      'scale-groups': { type: 'string' },
      'scale-steady-ms': { type: 'string' },
      'heartbeat-load': { type: 'boolean', default: false },
      'heartbeat-nodes': { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      'heartbeat-duration-ms': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  requireRoot('the benchmark');
  installSignalHandlers();
  const iterations = int(values.iterations, values.quick ? 3 : 10, 1, 1000, '--iterations');
  const { nodeModes, arbiter } = splitModes(values.modes);
  const modes = nodeModes === '' ? [] : list<Mode>(nodeModes, MODES, 'mode');
  const profiles = list<Profile>(values.profiles, PROFILES, 'profile');
  const settleMs = int(values['settle-ms'], DEFAULT_RUN.settleMs, 2000, 120_000, '--settle-ms');
  // Idle footprint window per profile (0: not measured).
  const footprintMs = int(values['footprint-ms'], values.quick ? 5000 : 20_000, 0, 600_000, '--footprint-ms');
  // FailoverGroups on vipwarden's testbed (the failover figures are those of the first, web).
  const vwGroups = int(values['vipwarden-groups'], 1, 1, 50, '--vipwarden-groups');
  // The agent the testbeds run: dist (node dist/node-agent/main.js, the default) or sea (the single executable
  // that the .deb and the image ship, built by hack/package/sea.sh; its footprint is what an operator sees).
  const agentForm = values.agent ?? 'dist';
  if (agentForm !== 'dist' && agentForm !== 'sea') throw new Error(`--agent: dist or sea, not "${agentForm}"`);
  if (agentForm === 'sea') {
    const r = await run(['bash', join(REPO, 'hack', 'package', 'sea.sh')], { timeoutMs: 600_000 });
    const dir = /^SEA_DIR=(.+)$/m.exec(r.stdout)?.[1];
    if (!dir) throw new Error('hack/package/sea.sh printed no SEA_DIR');
    process.env.VIPWARDEN_TESTBED_AGENT = join(dir, 'vipwarden-agent');
  }
  const scale = values['no-scale'] ? false : (values.scale ?? true);
  const failover = !values['no-failover'];
  // Heartbeat write load (issue 13): off unless asked for.
  const heartbeatLoad = values['heartbeat-load'];
  const heartbeatNodes = (values['heartbeat-nodes'] ?? '3,10,100')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => int(x, 0, 1, 1000, '--heartbeat-nodes'));
  const heartbeatMs = int(values['heartbeat-ms'], 30, 5, 10_000, '--heartbeat-ms');
  const heartbeatDurationMs = int(values['heartbeat-duration-ms'], 10_000, 1000, 600_000, '--heartbeat-duration-ms');
  const out = resolve(values.out ?? join(REPO, 'bench-results'));
  mkdirSync(out, { recursive: true });
  const log = (s: string) => console.log(s);
  const started = new Date();
  const meta = {
    started: started.toISOString(),
    args: argv,
    iterations,
    modes,
    profiles,
    settleMs,
    footprintMs,
    vipwardenGroups: vwGroups,
    agent: agentForm,
    machine: await machine(),
  };
  log(
    `vipwarden benchmark: ${iterations} iteration(s) of ${modes.join(', ')} for ${profiles.join(', ')}${scale ? ', then the scale benchmark' : ''}`,
  );
  log(`machine: ${JSON.stringify(meta.machine)}`);

  const results: IterationResult[] = [];
  const settings: Partial<Record<Profile, Record<string, unknown>>> = {};
  const footprints: Partial<Record<Profile, Footprint>> = {};
  let scaleResult: ScaleResult | undefined;
  let scaleError: string | undefined;
  let heartbeatResult: HeartbeatLoadResult[] | undefined;
  let heartbeatError: string | undefined;
  const write = () => {
    const cells = summarizeCells(results);
    const doc = {
      meta: { ...meta, finished: new Date().toISOString() },
      modes: Object.fromEntries(modes.map((m) => [m, MODE_TITLES[m]])),
      profiles: settings,
      summary: cells,
      targets: checkTargets(cells, settings),
      footprints,
      iterations: results,
      ...(scaleResult ? { scale: scaleResult } : {}),
      ...(scaleError ? { scaleError } : {}),
      ...(heartbeatResult ? { heartbeatLoad: heartbeatResult } : {}),
      ...(heartbeatError ? { heartbeatLoadError: heartbeatError } : {}),
    };
    writeFileSync(join(out, 'results.json'), JSON.stringify(doc, null, 2) + '\n');
    if (cells.length) {
      const subtitle = `${iterations} iteration(s) per cell · ${String(meta.machine['cores'])} cores ${String(meta.machine['cpu'])} · ${started.toISOString().slice(0, 10)}`;
      const notes = [
        'Outage: from the last answer before the fault to the first after it (fresh TCP connection every 10 ms, 100 ms timeout).',
        'An outage of 0 with dual holders: the old holder kept the VIP and kept answering while another node took it too.',
      ];
      writeFileSync(
        join(out, 'failover.svg'),
        chartSvg(cells, { title: 'VIP failover: vipwarden and keepalived on the same netns testbed', subtitle, notes }),
      );
    }
    writeFileSync(
      join(out, 'summary.md'),
      summaryMarkdown(cells, scaleResult, settings, footprints) + heartbeatMarkdown(heartbeatResult),
    );
  };

  if (failover && modes.length > 0) {
    for (const p of profiles) {
      log(`\n== ${p} ==`);
      let s: Subject | undefined;
      try {
        s = await startSubject(p, vwGroups);
        settings[p] = s.settings;
        log(`  testbed ${s.tb.id} (${s.tb.subnet}), VIP ${s.vip}; settings ${JSON.stringify(s.settings)}`);
        if (footprintMs > 0) {
          try {
            const f = await idleFootprint(s, footprintMs, DEFAULT_RUN);
            if (f) {
              f.conditions = conditionsOf(s.settings);
              footprints[p] = f;
              log(
                `  idle footprint of ${s.preferred}'s daemon (${f.processes}) over ${f.windowMs} ms: RSS ${f.rssMiB} MiB (max ${f.rssMaxMiB}), CPU ${f.cpuPercent} % of one core`,
              );
            }
          } catch (err) {
            log(`  footprint not measured: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
        results.push(
          ...(await runSubject(s, {
            ...DEFAULT_RUN,
            settleMs,
            iterations,
            modes,
            log,
            evidenceDir: join(out, 'evidence'),
          })),
        );
      } catch (err) {
        log(`  ${p}: could not run: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        await s?.destroy().catch((err) => log(`  ${p}: teardown failed: ${String(err)}`));
      }
      write();
    }
  }
  if (failover && arbiter.length > 0) await runArbiterModes({ profiles, modes: arbiter, iterations, out, log });
  if (scale) {
    log('\n== scale: 1 controller, simulated agents, FailoverGroups ==');
    try {
      scaleResult = await runScale({
        nodes: int(values['scale-nodes'], 100, 3, 1000, '--scale-nodes'),
        groups: int(values['scale-groups'], 1000, 1, 20_000, '--scale-groups'),
        steadyMs: int(values['scale-steady-ms'], values.quick ? 10_000 : 30_000, 1000, 600_000, '--scale-steady-ms'),
        log,
      });
    } catch (err) {
      scaleError = err instanceof Error ? err.message : String(err);
      log(`  scale benchmark failed: ${scaleError}`);
    }
  }
  if (heartbeatLoad) {
    log(`\n== heartbeat write load: simulated nodes' heartbeat puts on a real etcd, every ${heartbeatMs} ms ==`);
    try {
      heartbeatResult = await runHeartbeatLoad({
        nodes: heartbeatNodes,
        heartbeatMs,
        durationMs: heartbeatDurationMs,
        log,
      });
    } catch (err) {
      heartbeatError = err instanceof Error ? err.message : String(err);
      log(`  heartbeat load failed: ${heartbeatError}`);
    }
  }
  write();
  const cells = summarizeCells(results);
  log('');
  log(summaryMarkdown(cells, scaleResult, settings, footprints) + heartbeatMarkdown(heartbeatResult));
  log(`results: ${join(out, 'results.json')}, ${join(out, 'failover.svg')}, ${join(out, 'summary.md')}`);
  return 0;
}

function heartbeatMarkdown(r: HeartbeatLoadResult[] | undefined): string {
  if (!r?.length) return '';
  const growth = heartbeatGrowthLines(r).map((l) => `- ${l}`);
  return [
    `### Heartbeat write load (a put every ${r[0]!.heartbeatMs} ms per node)\n`,
    heartbeatLoadTable(r),
    '',
    ...growth,
    '',
  ].join('\n');
}

/** What the idle daemon held while its footprint was measured (the testbed has one group). */
function conditionsOf(settings: Record<string, unknown>): string {
  const check = settings['check'] as { intervalMs?: number } | undefined;
  const groups = typeof settings['groups'] === 'number' ? settings['groups'] : 1;
  const script = settings['vrrpScript'] as { intervalS?: number } | undefined;
  if (check?.intervalMs !== undefined)
    return `${groups} group${groups === 1 ? '' : 's'} held, checked every ${check.intervalMs} ms`;
  if (script?.intervalS !== undefined) return `1 VRRP instance (master), vrrp_script every ${script.intervalS} s`;
  return '';
}

export function summaryMarkdown(
  cells: ReturnType<typeof summarizeCells>,
  scale: ScaleResult | undefined,
  settings: Partial<Record<Profile, Record<string, unknown>>> = {},
  footprints: Partial<Record<Profile, Footprint>> = {},
): string {
  const parts: string[] = [];
  if (Object.keys(footprints).length) {
    parts.push(
      "### Idle footprint (the holder's daemon and its descendants, side by side; ratio to keepalived tuned)\n",
      footprintTable(footprints),
      '',
      ...footprintTargets(footprints).map((l) => `- ${l}`),
      '',
    );
  }
  if (cells.length) {
    parts.push('### Client-visible outage and dual-holder time\n', outageTable(cells), '');
    parts.push(
      '### Targets (printed, not asserted; keepalived tuned from the same run, ratio = measured ÷ keepalived tuned)\n',
      targetTable(checkTargets(cells, settings)),
      '',
    );
    const vw = cells.filter((c) => productOf(c.profile) === 'vipwarden');
    if (vw.length) {
      parts.push(
        "### Where the time goes (medians, ms; vipwarden steps from the components' logs)\n",
        breakdownTable(cells),
        '',
      );
      parts.push('### Step times (medians, ms after the fault)\n', stepsTable(cells), '');
    }
  }
  if (scale) {
    parts.push('### Scale\n');
    const p = scale.placement;
    parts.push(
      [
        `| figure | value |`,
        `|---|---|`,
        `| nodes (simulated agents) / FailoverGroups | ${scale.nodes} / ${scale.groups} |`,
        `| first full placement (controller start → every group has a holder) | ${formatMs(p.placedMs)} (leader ${formatMs(p.leaderMs)}, group records published ${formatMs(p.groupsPublishedMs)}, all health in ${formatMs(p.healthCompleteMs)}) |`,
        `| first full placement, warm start (group records and health already in etcd, new controller) | ${formatMs(scale.warmPlacement.placedMs)} (elected ${formatMs(scale.warmPlacement.leaderMs)}, files read and etcd listed ${formatMs(scale.warmPlacement.leadingMs)}, assignments written ${formatMs(scale.warmPlacement.firstAssignmentMs)} to ${formatMs(scale.warmPlacement.lastAssignmentMs)}; ${scale.warmPlacement.cpuSeconds ?? '–'} s CPU)${scale.warmPlacement.note ? ` (${scale.warmPlacement.note})` : ''} |`,
        `| lost node: its ${scale.lostNode.groups} groups reassigned after its lease was revoked${scale.lostNode.settleMs !== undefined ? ` (${formatMs(scale.lostNode.settleMs)} after the warm placement)` : ''} | ${formatMs(scale.lostNode.reassignedMs)}${scale.lostNode.note ? ` (${scale.lostNode.note})` : ''} |`,
        `| controller CPU to first placement | ${scale.controller.cpuSecondsToPlacement ?? '–'} s |`,
        `| reconcile passes to first placement | ${scale.passes.toPlacement ? `${scale.passes.toPlacement.passes} passes, mean ${scale.passes.toPlacement.meanMs} ms, slowest < ${scale.passes.toPlacement.slowestUnderMs ?? '∞'} ms` : '–'} |`,
        `| reconcile passes in steady state | ${scale.passes.steady ? `${scale.passes.steady.perSecond}/s, mean ${scale.passes.steady.meanMs} ms, slowest < ${scale.passes.steady.slowestUnderMs ?? '∞'} ms` : '–'} |`,
        `| controller CPU in steady state | ${scale.controller.steadyCpuPercent ?? '–'} % of one core |`,
        `| controller memory (RSS, peak) | ${scale.controller.rssMiB ?? '–'} MiB, ${scale.controller.peakRssMiB ?? '–'} MiB |`,
        `| etcd requests/s in steady state (${Math.round(scale.etcd.windowMs / 1000)} s window) | ${scale.etcd.totalPerSecond} |`,
        `| of which unary | ${
          Object.entries(scale.etcd.unaryPerSecond)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ') || '–'
        } |`,
        `| of which stream messages | ${
          Object.entries(scale.etcd.streamMessagesPerSecond)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ') || '–'
        } |`,
        `| targets (issue 16) | ${scaleTargets(scale)} |`,
      ].join('\n'),
      '',
    );
  }
  return parts.join('\n') + '\n';
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    console.error(USAGE);
    process.exit(2);
  },
);
