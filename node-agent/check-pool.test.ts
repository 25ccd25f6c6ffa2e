// CheckPool: groups naming the same check share one run loop; each still gets every result.
import { describe, expect, test } from '@jest/globals';
import type { Clock } from '../common/clock.js';
import type { HealthCheckSpec } from '../crds/failovergroup.js';
import type { AgentConfig } from './config.js';
import type { CheckFn } from './checks/index.js';
import { CheckPool, runKey } from './check-pool.js';
import { GroupHealth } from './health.js';
import { silentLogger } from '../common/log.js';

function tcp(name: string, extra: Partial<HealthCheckSpec> = {}): HealthCheckSpec {
  return {
    name,
    type: 'tcp',
    intervalMs: 100,
    timeoutMs: 100,
    rise: 2,
    fall: 2,
    weight: 0,
    tcp: { port: 80, host: '127.0.0.1' },
    ...extra,
  };
}

/** A clock whose sleeps end when the test says (`tick`) or their signal aborts. */
function manualClock() {
  const sleepers: (() => void)[] = [];
  const clock: Clock = {
    mono: () => 0,
    wall: () => 0,
    sleep: (_ms, signal) =>
      new Promise<void>((resolve) => {
        sleepers.push(resolve);
        signal?.addEventListener('abort', () => resolve(), { once: true });
      }),
  };
  const flush = () => new Promise((r) => setTimeout(r, 0));
  const tick = async () => {
    for (const s of sleepers.splice(0)) s();
    await flush();
  };
  return { clock, tick, flush };
}

function counting(ok = true) {
  const runs: string[] = [];
  const fn: CheckFn = async (spec) => {
    runs.push(spec.name);
    return { ok, message: 'm' };
  };
  return { fn, runs };
}

const deps = { exec: (() => Promise.reject(new Error('no exec'))) as never, config: {} as AgentConfig };

describe('CheckPool', () => {
  test('the run key ignores what only the group reads (name, weight, rise, fall)', () => {
    expect(runKey(tcp('a'))).toBe(runKey(tcp('b', { weight: 10, rise: 5, fall: 1 })));
    expect(runKey(tcp('a'))).not.toBe(runKey(tcp('a', { intervalMs: 200 })));
    expect(runKey(tcp('a'))).not.toBe(runKey(tcp('a', { tcp: { port: 81, host: '127.0.0.1' } })));
  });

  test('two subscribers of the same check: one run per interval, both get every result', async () => {
    const { clock, tick, flush } = manualClock();
    const { fn, runs } = counting();
    const pool = new CheckPool({ tcp: fn }, deps, clock);
    const a: boolean[] = [];
    const b: boolean[] = [];
    const ua = pool.subscribe(tcp('a'), (o) => a.push(o.ok));
    const ub = pool.subscribe(tcp('b', { weight: 5 }), (o) => b.push(o.ok));
    await flush();
    await tick();
    expect(pool.size).toBe(1);
    expect(runs).toHaveLength(2);
    expect(a).toEqual([true, true]);
    expect(b).toEqual([true, true]);
    ua();
    await tick();
    expect(a).toHaveLength(2); // no result after unsubscribing
    expect(b).toHaveLength(3);
    ub();
    expect(pool.size).toBe(0);
    await tick();
    expect(runs).toHaveLength(3); // the loop stopped with its last subscriber
  });

  test('a late subscriber starts from the latest result; a different check gets a loop of its own', async () => {
    const { clock, flush } = manualClock();
    const { fn, runs } = counting();
    const pool = new CheckPool({ tcp: fn }, deps, clock);
    pool.subscribe(tcp('a'), () => undefined);
    await flush();
    const late: boolean[] = [];
    pool.subscribe(tcp('late'), (o) => late.push(o.ok));
    await flush();
    expect(late).toEqual([true]);
    expect(runs).toHaveLength(1);
    pool.subscribe(tcp('other', { intervalMs: 1000 }), () => undefined);
    await flush();
    expect(pool.size).toBe(2);
    expect(runs).toHaveLength(2);
  });

  test('GroupHealths on one pool keep their own hysteresis and weights', async () => {
    const { clock, tick, flush } = manualClock();
    const { fn, runs } = counting(false);
    const pool = new CheckPool({ tcp: fn }, deps, clock);
    const log = silentLogger();
    const required = new GroupHealth('g1', [tcp('c')], { tcp: fn }, deps, clock, log, pool);
    const weighted = new GroupHealth('g2', [tcp('c', { weight: -20, fall: 3 })], { tcp: fn }, deps, clock, log, pool);
    required.start();
    weighted.start();
    await flush();
    await tick();
    expect(runs).toHaveLength(2);
    expect(required.state).toMatchObject({ known: true, healthy: false, priorityDelta: 0 });
    expect(weighted.state).toMatchObject({ known: true, healthy: true, priorityDelta: -20 });
    required.stop();
    weighted.stop();
    expect(pool.size).toBe(0);
  });
});
