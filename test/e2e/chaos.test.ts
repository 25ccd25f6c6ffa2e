// A short chaos run (hack/chaos): a few random faults on the netns testbed with a 3-member etcd and three groups,
// default profile, fixed seed. Every iteration must converge with 0 ms on two nodes. Needs root and npm run build.
import { describe, expect, jest, test } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAULT_KINDS } from '../../hack/chaos/faults.js';
import { formatReport } from '../../hack/chaos/report.js';
import { runChaos } from '../../hack/chaos/run.js';
import { monoMs, requireRoot } from '../harness/testbed.js';

jest.setTimeout(150_000);

describe('chaos (short)', () => {
  test('a VIP moved between groups, then 4 iterations of random faults: 0 ms dual-holder time, every iteration converges', async () => {
    requireRoot('test/e2e/chaos.test.ts');
    const seed = Number(process.env['VIPWARDEN_CHAOS_SEED'] ?? 20261201);
    const outDir = mkdtempSync(join(tmpdir(), 'vipwarden-chaos-'));
    const r = await runChaos({
      profile: 'default',
      iterations: 5,
      seed,
      deadline: monoMs() + 60_000,
      outDir,
      // A VIP moved between groups by editing specs first (issue 15 item 2: fenced by AssignmentRecord.retiring),
      // then any kind.
      schedule: ['spec-move'],
      kinds: FAULT_KINDS,
      holdMs: [300, 1500],
      convergeTimeoutMs: 20_000,
      log: () => undefined,
    });
    console.log(formatReport([r]));
    expect(r.setupError).toBeUndefined();
    expect(r.iterations.length).toBeGreaterThanOrEqual(3);
    expect(r.iterations[0]?.kind).toBe('spec-move');
    for (const it of r.iterations) {
      expect({ i: it.i, kind: it.kind, dualMs: it.dualMs }).toEqual({ i: it.i, kind: it.kind, dualMs: 0 });
      expect({ i: it.i, kind: it.kind, converged: it.converged, error: it.error }).toEqual({
        i: it.i,
        kind: it.kind,
        converged: true,
        error: undefined,
      });
    }
  });
});
