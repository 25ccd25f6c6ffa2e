#!/usr/bin/env node
// vipwarden chaos run (npm run chaos, as root): random faults on the netns testbed with a 3-member etcd, several
// groups and both profiles, with the sampler and the client probes running throughout.
//
//   node dist/hack/chaos/main.js [--iterations N] [--seed S] [--profile default|fast|both] [--max-minutes M]
//        [--kinds agent-kill,...] [--out DIR] [--kernel-slack-ms MS]
//
// --kernel-slack-ms overrides the controller's kernelSlackMs (default: derived, common/kernel-lifetime.ts), to show
// what a smaller Safety-3 wait does (400 ms, the old default, puts VIPs on two nodes with the fast profile).
// Prints dual-holder time (must be 0), outages per fault kind, any iteration that did not converge (its logs are
// kept under DIR, default chaos-results/), and the seed. Exits 1 unless every iteration converged with 0 ms dual.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { installSignalHandlers, requireRoot } from '../testbed/index.js';
import { intOption as int, monoMs } from '../testbed/util.js';
import { FAULT_KINDS, type FaultKind } from './faults.js';
import { chaosPassed, formatReport } from './report.js';
import { runChaos, type ChaosProfile, type ChaosResult } from './run.js';

const USAGE = `usage: chaos [--iterations N] [--seed S] [--profile default|fast|both] [--max-minutes M]
             [--kinds ${FAULT_KINDS.join(',')}] [--out DIR] [--kernel-slack-ms MS]
             [--fence off|nftables|auto]   the agents' fence mode (default: the profile's: auto with heartbeats every 50 ms in default, as shipped; nftables with 30 ms heartbeats in fast)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      iterations: { type: 'string' },
      seed: { type: 'string' },
      profile: { type: 'string' },
      'max-minutes': { type: 'string' },
      kinds: { type: 'string' },
      out: { type: 'string' },
      'kernel-slack-ms': { type: 'string' },
      fence: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const iterations = int(values.iterations, 100, 1, 10_000, '--iterations');
  const seed = int(values.seed, Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1, '--seed');
  const maxMinutes = int(values['max-minutes'], 60, 1, 24 * 60, '--max-minutes');
  const prof = values.profile ?? 'both';
  if (!['default', 'fast', 'both'].includes(prof)) throw new Error(`--profile must be default, fast or both`);
  const profiles: ChaosProfile[] = prof === 'both' ? ['default', 'fast'] : [prof as ChaosProfile];
  const kinds = values.kinds
    ? values.kinds.split(',').map((k) => {
        if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`unknown fault kind ${k}\n${USAGE}`);
        return k as FaultKind;
      })
    : undefined;
  const slack = values['kernel-slack-ms'];
  const controller = slack === undefined ? undefined : { kernelSlackMs: int(slack, 0, 0, 10_000, '--kernel-slack-ms') };
  const outDir = resolve(values.out ?? 'chaos-results');
  const fence = values.fence as 'off' | 'nftables' | 'auto' | undefined;
  if (fence !== undefined && !['off', 'nftables', 'auto'].includes(fence))
    throw new Error(`--fence must be off, nftables or auto\n${USAGE}`);
  requireRoot('npm run chaos');
  installSignalHandlers();
  mkdirSync(outDir, { recursive: true });
  console.log(
    `chaos: seed ${seed}, ${iterations} iterations per profile (${profiles.join(', ')}), at most ${maxMinutes} min` +
      (fence ? `, fence: ${fence}` : ''),
  );

  const start = monoMs();
  const results: ChaosResult[] = [];
  for (const [n, profile] of profiles.entries()) {
    // Share the time bound: each profile gets its part of what is left.
    const left = start + maxMinutes * 60_000 - monoMs();
    const deadline = monoMs() + left / (profiles.length - n);
    results.push(
      await runChaos({
        profile,
        iterations,
        seed,
        deadline,
        outDir,
        ...(kinds ? { kinds } : {}),
        ...(controller ? { controller } : {}),
        ...(fence ? { fence } : {}),
      }),
    );
  }
  const report = formatReport(results);
  console.log(`\n${report}`);
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(results, null, 2));
  writeFileSync(join(outDir, 'summary.md'), `${report}\n`);
  return chaosPassed(results) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`chaos: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
