// The director against a fake ipvsadm (an in-memory IPVS table that refuses what the kernel refuses) and fake
// checks whose answers the test sets: acquire and release, standbys, failover of the sync daemons, real-server
// failure and return, the sorry server, leftovers at start, and repeat safety.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realClock } from '../../common/clock.js';
import { silentLogger } from '../../common/log.js';
import { FailoverGroupSpec, type Spec } from '../../crds/failovergroup.js';
import type { CheckFn } from '../checks/index.js';
import type { ResourceContext } from '../resources.js';
import { LvsDirector } from './director.js';
import { FakeIpvs } from './fake-ipvsadm.js';

const KEY = 'tcp 198.18.0.100:80';

function lvsSpec(over: Record<string, unknown> = {}): Spec {
  return FailoverGroupSpec.parse({
    vips: [{ address: '198.18.0.100/24' }],
    nodes: [{ name: 'dir1' }, { name: 'dir2' }],
    virtualServers: [
      {
        name: 'web',
        port: 80,
        forwarding: 'dr',
        realServers: [{ address: '198.18.0.11' }, { address: '198.18.0.12' }, { address: '198.18.0.13' }],
        check: { type: 'tcp', intervalMs: 100, timeoutMs: 50, rise: 1, fall: 1 },
        sorryServer: { address: '198.18.0.99' },
        ...over,
      },
    ],
  });
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('LvsDirector', () => {
  let dir: string;
  let ipvs: FakeIpvs;
  let down: Set<string>;
  let ac: AbortController;
  let director: LvsDirector;
  const tcp: CheckFn = async (spec) =>
    down.has(spec.tcp!.host) ? { ok: false, message: 'connection refused' } : { ok: true, message: 'connected' };

  const make = () =>
    new LvsDirector({
      config: { node: 'dir1', interface: 'eth0', stateDir: dir },
      exec: ipvs.exec,
      clock: realClock,
      log: silentLogger(),
      checkRegistry: { tcp },
    });
  const ctx = (group: string, spec: Spec | undefined): ResourceContext => ({
    group,
    node: 'dir1',
    epoch: 7,
    vips: [],
    spec,
    isCurrent: () => true,
    signal: ac.signal,
    log: silentLogger(),
  });
  const weights = () =>
    Object.fromEntries((ipvs.services.get(KEY)?.dests ?? []).map((d) => [`${d.address}:${d.port}`, d.weight]));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vw-lvs-'));
    ipvs = new FakeIpvs();
    down = new Set();
    ac = new AbortController();
    director = make();
  });
  afterEach(async () => {
    await director.stop();
    ac.abort();
    rmSync(dir, { recursive: true, force: true });
  });

  it('directs while it holds the group: table, sysctls and the master sync daemon; release undoes it', async () => {
    await director.start(ac.signal);
    const r = director.resource();
    await r.acquire(ctx('g', lvsSpec()));
    expect(ipvs.services.get(KEY)).toMatchObject({ scheduler: 'wlc', dests: expect.any(Array) });
    expect(weights()).toEqual({ '198.18.0.11:80': 1, '198.18.0.12:80': 1, '198.18.0.13:80': 1 });
    expect(ipvs.services.get(KEY)!.dests.every((d) => d.forwarding === 'dr')).toBe(true);
    expect(ipvs.sysctls).toEqual(['net.ipv4.vs.expire_quiescent_template=1', 'net.ipv4.vs.expire_nodest_conn=1']);
    expect(ipvs.daemons).toEqual([{ state: 'master', interface: 'eth0', syncId: 0 }]);
    expect(JSON.parse(readFileSync(join(dir, 'dir1.lvs.json'), 'utf8'))).toEqual({
      services: [KEY],
      daemons: ['master'],
    });

    // Safe to repeat: another acquire (an update) changes nothing.
    const applied = ipvs.applied.length;
    await r.acquire(ctx('g', lvsSpec()));
    expect(ipvs.applied.length).toBe(applied);

    // Released, it is a standby for the group: the sync daemon turns to backup. Stopped, it runs none.
    await r.release(ctx('g', lvsSpec()));
    expect(ipvs.services.size).toBe(0);
    expect(ipvs.daemons).toEqual([{ state: 'backup', interface: 'eth0', syncId: 0 }]);
    await director.stop();
    expect(ipvs.daemons).toEqual([]);
  });

  it('stopped while the shutdown release runs, it leaves no daemon: a late pass starts no backup daemon', async () => {
    await director.start(ac.signal);
    director.setCandidates(new Map([['g', lvsSpec()]]));
    const r = director.resource();
    await r.acquire(ctx('g', lvsSpec()));
    await until('master daemon', () => ipvs.daemons.length === 1 && ipvs.daemons[0]!.state === 'master');
    // As on SIGTERM: the abort stops the director while the agent's release of the group is still under way (the
    // release pass sees this node as the group's standby and wants a backup daemon).
    // A pass is under way (the agent's last pass handed it the groups), so the release's pass waits behind it.
    director.setCandidates(new Map([['g', lvsSpec({ scheduler: 'rr' })]]));
    const release = r.release(ctx('g', lvsSpec()));
    const stop = director.stop();
    await Promise.all([release, stop]);
    expect(ipvs.services.size).toBe(0);
    expect(ipvs.daemons).toEqual([]);
  });

  it('a director that is also told the group as a candidate removes the table on release', async () => {
    await director.start(ac.signal);
    director.setCandidates(new Map([['g', lvsSpec()]]));
    await director.resource().acquire(ctx('g', lvsSpec()));
    await until('backup stopped', () => ipvs.daemons.length === 1 && ipvs.daemons[0]!.state === 'master');
    director.setCandidates(new Map([['g', lvsSpec()]]));
    down.add('198.18.0.13');
    await director.resource().release(ctx('g', lvsSpec()));
    expect(ipvs.services.size).toBe(0);
    expect(ipvs.daemons).toEqual([{ state: 'backup', interface: 'eth0', syncId: 0 }]);
  });

  it('a standby runs the checks and the backup daemon, and programs nothing; on failover it re-points', async () => {
    await director.start(ac.signal);
    director.setCandidates(new Map([['g', lvsSpec()]]));
    await until('backup daemon', () => ipvs.daemons.length === 1);
    expect(ipvs.daemons).toEqual([{ state: 'backup', interface: 'eth0', syncId: 0 }]);
    expect(ipvs.services.size).toBe(0);
    // Warm: the standby already knows 198.18.0.12 is down when it takes over.
    down.add('198.18.0.12');
    await until('check result', async () =>
      (await director.status()).some((s) => s.address === '198.18.0.12' && s.up === false),
    );
    await director.resource().acquire(ctx('g', lvsSpec()));
    expect(weights()).toEqual({ '198.18.0.11:80': 1, '198.18.0.12:80': 0, '198.18.0.13:80': 1 });
    expect(ipvs.daemons).toEqual([{ state: 'master', interface: 'eth0', syncId: 0 }]);
    const i = ipvs.calls.findIndex((c) => c[1] === '--start-daemon');
    const j = ipvs.calls.findIndex((c) => c[1] === '--stop-daemon' && c[2] === 'backup');
    expect(i).toBeGreaterThan(-1);
    expect(j).toBeGreaterThan(i);
  });

  it('takes a failed real server out (weight 0, or removed), brings it back, and falls back to the sorry server', async () => {
    await director.start(ac.signal);
    const r = director.resource();
    await r.acquire(ctx('g', lvsSpec()));
    down.add('198.18.0.11');
    await until('quiesced', () => weights()['198.18.0.11:80'] === 0);
    // Quiesce is an edit (-e), not a delete and re-add: established connections stay.
    expect(ipvs.applied.some((l) => l.startsWith('-d') || l.startsWith('-D'))).toBe(false);
    down.delete('198.18.0.11');
    await until('back', () => weights()['198.18.0.11:80'] === 1);

    for (const a of ['198.18.0.11', '198.18.0.12', '198.18.0.13']) down.add(a);
    await until('sorry server', () => weights()['198.18.0.99:80'] === 1);
    expect(weights()).toEqual({ '198.18.0.11:80': 0, '198.18.0.12:80': 0, '198.18.0.13:80': 0, '198.18.0.99:80': 1 });
    down.delete('198.18.0.13');
    await until('sorry server gone', () => weights()['198.18.0.99:80'] === undefined);
    expect(weights()['198.18.0.13:80']).toBe(1);

    await r.acquire(ctx('g', lvsSpec({ onFailure: 'remove' })));
    expect(Object.keys(weights())).toEqual(['198.18.0.13:80']);
  });

  it('at start removes the services and daemons an earlier run left, and nothing of anyone else', async () => {
    ipvs.put({ protocol: 'tcp', address: '198.18.0.100', port: 80, scheduler: 'rr', dests: [] });
    ipvs.put({ protocol: 'tcp', address: '198.18.0.200', port: 443, scheduler: 'rr', dests: [] });
    ipvs.daemons.push({ state: 'master', interface: 'eth0', syncId: 0 });
    writeFileSync(join(dir, 'dir1.lvs.json'), JSON.stringify({ services: [KEY], daemons: ['master'] }));
    await director.start(ac.signal);
    expect([...ipvs.services.keys()]).toEqual(['tcp 198.18.0.200:443']);
    expect(ipvs.daemons).toEqual([]);
  });

  it('a node that directs nothing never runs ipvsadm', async () => {
    await director.start(ac.signal);
    director.setCandidates(
      new Map([
        ['plain', FailoverGroupSpec.parse({ vips: [{ address: '198.18.0.5/24' }], nodes: [{ name: 'dir1' }] })],
      ]),
    );
    await director
      .resource()
      .acquire(
        ctx('plain', FailoverGroupSpec.parse({ vips: [{ address: '198.18.0.5/24' }], nodes: [{ name: 'dir1' }] })),
      );
    await new Promise((r) => setTimeout(r, 50));
    expect(ipvs.calls).toEqual([]);
  });

  it('fails the acquire when IPVS cannot be programmed (the group then moves to a node that can)', async () => {
    await director.start(ac.signal);
    ipvs.unavailable = true;
    await expect(director.resource().acquire(ctx('g', lvsSpec()))).rejects.toThrow(/Protocol not available/);
  });

  it('reports real servers with their state and the IPVS counters', async () => {
    await director.start(ac.signal);
    await director.resource().acquire(ctx('g', lvsSpec()));
    ipvs.services.get(KEY)!.stats.set('198.18.0.11:80', [2, 3, 10, 100, 90, 6000, 70000]);
    down.add('198.18.0.12');
    await until('down', () => weights()['198.18.0.12:80'] === 0);
    const st = await director.status();
    expect(st.find((s) => s.address === '198.18.0.11')).toMatchObject({
      group: 'g',
      service: 'web',
      up: true,
      weight: 1,
      stats: {
        activeConns: 2,
        inactiveConns: 3,
        conns: 10,
        inPackets: 100,
        outPackets: 90,
        inBytes: 6000,
        outBytes: 70000,
      },
    });
    expect(st.find((s) => s.address === '198.18.0.12')).toMatchObject({
      up: false,
      weight: 0,
      message: 'connection refused',
    });
  });
});
