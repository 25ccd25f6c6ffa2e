// LVS directors on the netns testbed: node1 and node2 are the directors of one FailoverGroup, node3..node5 are real
// servers (nginx answering with its node's name), node6 is the sorry server, the client namespace sends requests.
//
// Two tiers in one file:
// - the director's control plane, everywhere: the holder programs the table from the spec, the standby checks the
//   real servers too and runs the backup sync daemon, a killed nginx is quiesced within interval x (fall + 1) and
//   back after rise, the sorry server comes in when every real server is down, the table and the sync daemon follow
//   a SIGKILL and a graceful stop, a restarted agent removes what it left. On a kernel without IPVS
//   (CONFIG_IP_VS unset, as on the CI machine of 2026-12) the table is a fake ipvsadm's (node-agent/lvs/
//   fake-ipvsadm-bin.ts, one table per namespace); with IPVS it is the kernel's, read with the real ipvsadm.
// - the data path, only with a kernel that has IPVS: requests through the VIP spread over the real servers in DR
//   mode, none fails while a real server dies, the sorry server answers when all are down.
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST, REPO, startCluster, type Cluster } from '../../hack/testbed/cluster.js';
import { requireRoot } from '../../hack/testbed/index.js';
import { eventually as eventuallyWithin, sleep } from '../harness/workloads.js';
import { parseDaemons, parseIpvsRules, type IpvsService, type SyncDaemon } from '../../node-agent/lvs/ipvs.js';

jest.setTimeout(240_000);

function kernelHasIpvs(): boolean {
  if (existsSync('/proc/net/ip_vs')) return true;
  try {
    execFileSync('modprobe', ['ip_vs'], { stdio: 'ignore' });
  } catch {
    /* no modprobe, or no module */
  }
  return existsSync('/proc/net/ip_vs');
}

const REAL = kernelHasIpvs() && process.env.VIPWARDEN_LVS_FAKE !== '1';
const GROUP = 'lvs';
const METRICS_PORT = 9645;
const INTERVAL = 500;
const FALL = 2;
const RISE = 2;
const REAL_SERVERS = ['node3', 'node4', 'node5'];
/**
 * Waits are longer with the fake: each fake ipvsadm call starts a Node.js process, which takes seconds on a loaded
 * machine (load 30 on 2 cores when this was written), and a director pass makes two or three of them.
 */
const T = (ms: number) => (REAL ? ms : ms * 3);
const eventually = (fn: () => Promise<boolean>, what: string, ms = 20_000) => eventuallyWithin(fn, what, T(ms));
/** How long one director pass may take on top of the detection time (see T). */
const PASS_MS = REAL ? 1500 : 8000;

let c: Cluster;
let fakeDir: string | undefined;
let savedPath: string | undefined;
let vip: string;
/** The director (holder) and the standby: whichever the controller chose first; they swap on each failover. */
let director = 'node1';
let standby = 'node2';
const ip = (node: string) => c.tb.node(node).ip;

function groupDoc(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name: GROUP },
    spec: {
      vips: [{ address: `${vip}/24` }],
      nodes: [
        { name: 'node1', priority: 100 },
        { name: 'node2', priority: 90 },
      ],
      failback: 'manual',
      virtualServers: [
        {
          name: 'web',
          port: 80,
          scheduler: 'rr',
          forwarding: 'dr',
          realServers: REAL_SERVERS.map((n) => ({ address: ip(n) })),
          check: {
            type: 'http',
            http: { path: '/', expectStatus: [200] },
            intervalMs: INTERVAL,
            timeoutMs: 400,
            rise: RISE,
            fall: FALL,
          },
          onFailure: 'quiesce',
          sorryServer: { address: ip('node6') },
          ...over,
        },
      ],
    },
  };
}

async function table(node: string): Promise<IpvsService[]> {
  const r = await c.tb.exec(node, ['ipvsadm', '-Sn'], { allowFailure: true });
  return parseIpvsRules(r.stdout).services;
}

async function daemons(node: string): Promise<SyncDaemon[]> {
  const r = await c.tb.exec(node, ['ipvsadm', '-Ln', '--daemon'], { allowFailure: true });
  return parseDaemons(r.stdout);
}

async function weights(node: string): Promise<Record<string, number>> {
  const s = (await table(node)).find((x) => x.address === vip && x.port === 80);
  return Object.fromEntries((s?.dests ?? []).map((d) => [d.address, d.weight]));
}

const allUp = () => Object.fromEntries(REAL_SERVERS.map((n) => [ip(n), 1]));

async function metric(node: string, name: string, server: string): Promise<number | undefined> {
  const res = await fetch(`http://${ip(node)}:${METRICS_PORT}/metrics`).catch(() => undefined);
  if (!res?.ok) return undefined;
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`server="${server}:80"`));
  return line ? Number(line.split(' ').at(-1)) : undefined;
}

beforeAll(async () => {
  requireRoot('the e2e tier');
  if (!REAL) {
    // The agents find this ipvsadm first on their PATH (the cluster passes the environment down).
    fakeDir = mkdtempSync(join(tmpdir(), 'vipwarden-fake-ipvs-'));
    const bin = join(fakeDir, 'ipvsadm');
    writeFileSync(
      bin,
      `#!/bin/sh\nexec ${process.execPath} ${join(DIST, 'node-agent/lvs/fake-ipvsadm-bin.js')} "$@"\n`,
    );
    chmodSync(bin, 0o755);
    savedPath = process.env.PATH;
    process.env.PATH = `${fakeDir}:${process.env.PATH}`;
    process.env.VIPWARDEN_FAKE_IPVS_DIR = fakeDir;
  }
  c = await startCluster({
    name: 'lvs',
    nodes: 6,
    start: false,
    agentFor: (node) => ({
      metrics: { listen: `${ip(node)}:${METRICS_PORT}` },
      // A graceful stop releases (one director pass) within shutdownGraceMs + 5 s; with the fake, a pass is slow.
      ...(REAL ? {} : { shutdownGraceMs: 8000 }),
    }),
  });
  try {
    vip = c.tb.vip(0);
    if (REAL)
      for (const n of [...REAL_SERVERS, 'node6'])
        await c.tb.exec(n, [process.execPath, join(REPO, 'bin/vipwarden.js'), 'realserver', 'add', vip]);
    await c.startAgent('node1');
    await c.startAgent('node2');
    c.startController(0);
    c.applyGroup(groupDoc());
    await eventually(async () => (await c.holderOf(GROUP)) !== null, 'a director holds the group', 30_000);
    director = (await c.holderOf(GROUP))!;
    standby = director === 'node1' ? 'node2' : 'node1';
  } catch (err) {
    keepLogs();
    await c.destroy();
    throw err;
  }
});

/** VIPWARDEN_LVS_LOGS=<dir>: keep a copy of the component logs. */
function keepLogs(): void {
  if (c && process.env.VIPWARDEN_LVS_LOGS) cpSync(c.tb.dir, process.env.VIPWARDEN_LVS_LOGS, { recursive: true });
}

afterAll(async () => {
  try {
    keepLogs();
    await c?.destroy();
  } finally {
    if (fakeDir) {
      process.env.PATH = savedPath;
      delete process.env.VIPWARDEN_FAKE_IPVS_DIR;
      rmSync(fakeDir, { recursive: true, force: true });
    }
  }
});

describe(`LVS director control plane (${REAL ? 'kernel IPVS' : 'fake ipvsadm: this kernel has no IPVS'})`, () => {
  test('the holder programs the virtual service; the standby checks too, programs nothing and runs the backup daemon', async () => {
    await eventually(
      async () => JSON.stringify(await weights(director)) === JSON.stringify(allUp()),
      'the director directs to the three real servers',
    );
    const svc = (await table(director)).find((s) => s.address === vip)!;
    expect(svc).toMatchObject({ protocol: 'tcp', port: 80, scheduler: 'rr' });
    expect(svc.dests.every((d) => d.forwarding === 'dr' && d.port === 80)).toBe(true);
    expect(await table(standby)).toEqual([]);
    await eventually(
      async () => (await daemons(director)).some((d) => d.state === 'master'),
      'master daemon on the director',
    );
    await eventually(
      async () => (await daemons(standby)).some((d) => d.state === 'backup'),
      'backup daemon on the standby',
    );
    expect(await daemons(director)).toEqual([{ state: 'master', interface: 'eth0', syncId: 0 }]);
    // Warm standby: it has its own view of every real server.
    await eventually(
      async () => (await metric(standby, 'vipwarden_lvs_real_server_up', ip('node3'))) === 1,
      'the standby checks node3',
    );
  });

  test('a killed nginx is quiesced within interval x (fall + 1), by the holder and in the standby view; restarted, it is back', async () => {
    const t0 = Date.now();
    await c.nginx.get('node3')!.kill();
    // Detection, timed on the standby's metrics (no ipvsadm on that path): within interval x (fall + 1), plus
    // slack for a loaded machine.
    await eventually(
      async () => (await metric(standby, 'vipwarden_lvs_real_server_up', ip('node3'))) === 0,
      'the standby sees node3 down',
      10_000,
    );
    expect(Date.now() - t0).toBeLessThan(INTERVAL * (FALL + 1) + 2000);
    // The director's table follows within one pass (with the fake, a pass is several Node.js starts).
    await eventually(async () => (await weights(director))[ip('node3')] === 0, 'node3 quiesced', 10_000);
    if (REAL) expect(Date.now() - t0).toBeLessThan(INTERVAL * (FALL + 1) + PASS_MS);
    expect(await weights(director)).toEqual({ ...allUp(), [ip('node3')]: 0 });
    await eventually(
      async () => (await metric(director, 'vipwarden_lvs_real_server_weight', ip('node3'))) === 0,
      'the director reports weight 0 for node3',
    );
    await c.nginx.get('node3')!.start();
    await eventually(async () => (await weights(director))[ip('node3')] === 1, 'node3 back', 10_000);
  });

  test('the sorry server comes in while every real server is down, and leaves when one is back', async () => {
    for (const n of REAL_SERVERS) await c.nginx.get(n)!.kill();
    try {
      await eventually(async () => (await weights(director))[ip('node6')] === 1, 'sorry server in', 10_000);
      expect(await weights(director)).toEqual({
        ...Object.fromEntries(REAL_SERVERS.map((n) => [ip(n), 0])),
        [ip('node6')]: 1,
      });
      if (REAL) {
        const r = await c.tb.exec('client', ['curl', '-s', '--max-time', '2', `http://${vip}/`]);
        expect(r.stdout.trim()).toBe('node6');
      }
    } finally {
      for (const n of REAL_SERVERS) await c.nginx.get(n)!.start();
    }
    await eventually(
      async () => JSON.stringify(await weights(director)) === JSON.stringify(allUp()),
      'sorry server out, all back',
      10_000,
    );
  });

  test('director failover by SIGKILL: the standby directs and turns master; the old director, restarted, removes what it left', async () => {
    const [old, next] = [director, standby];
    c.agents.get(old)!.kill('SIGKILL');
    await eventually(async () => (await c.holderOf(GROUP)) === next, `${next} holds the group`, 30_000);
    await eventually(
      async () => JSON.stringify(await weights(next)) === JSON.stringify(allUp()),
      `${next} directs`,
      10_000,
    );
    await eventually(
      async () =>
        JSON.stringify(await daemons(next)) === JSON.stringify([{ state: 'master', interface: 'eth0', syncId: 0 }]),
      `${next}: master daemon, backup stopped`,
    );
    [director, standby] = [next, old];
    // A SIGKILLed agent leaves its table (its VIP expires by itself, so no traffic reaches it); a new start removes
    // the table and takes up the standby's role.
    expect((await table(old)).length).toBe(1);
    await c.agents
      .get(old)!
      .stop({ timeoutMs: 3000 })
      .catch(() => undefined);
    await c.startAgent(old);
    await eventually(async () => (await table(old)).length === 0, `${old} removed its leftover table`, 20_000);
    await eventually(
      async () =>
        JSON.stringify(await daemons(old)) === JSON.stringify([{ state: 'backup', interface: 'eth0', syncId: 0 }]),
      `${old}: backup daemon`,
      20_000,
    );
    expect(await c.holderOf(GROUP)).toBe(next); // failback: manual
  });

  test('graceful stop of the director: it releases (table removed, daemons stopped) and the standby takes over', async () => {
    const [old, next] = [director, standby];
    await c.agents.get(old)!.stop({ timeoutMs: T(15_000) });
    await eventually(async () => (await c.holderOf(GROUP)) === next, `${next} holds the group`, 30_000);
    await eventually(
      async () => JSON.stringify(await weights(next)) === JSON.stringify(allUp()),
      `${next} directs`,
      10_000,
    );
    [director, standby] = [next, old];
    expect(await table(old)).toEqual([]);
    expect(await daemons(old)).toEqual([]);
    await c.startAgent(old);
    await eventually(async () => (await daemons(old)).some((d) => d.state === 'backup'), `${old} standby again`);
  });
});

// The data path needs the kernel's IPVS; on a kernel without it these are skipped (the fake table forwards nothing).
const dataPath = REAL ? describe : describe.skip;

async function get(timeoutS = 2): Promise<string> {
  const r = await c.tb.exec('client', ['curl', '-s', '--max-time', String(timeoutS), `http://${vip}/`], {
    allowFailure: true,
  });
  return r.exitCode === 0 ? r.stdout.trim() : `error ${r.exitCode}`;
}

dataPath('LVS data path (DR)', () => {
  test('requests spread over the real servers round-robin', async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const b = await get();
      seen.set(b, (seen.get(b) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(REAL_SERVERS);
    for (const n of REAL_SERVERS) expect(seen.get(n)).toBe(10);
  });

  test('with persistence a client stays on one real server', async () => {
    c.applyGroup(groupDoc({ persistenceSeconds: 60 }));
    await eventually(async () => (await table(await holder())).some((s) => s.persistence === 60), 'persistent');
    const bodies = new Set<string>();
    for (let i = 0; i < 10; i++) bodies.add(await get());
    expect(bodies.size).toBe(1);
    c.applyGroup(groupDoc());
    await eventually(async () => (await table(await holder())).every((s) => s.persistence === undefined), 'back');
  });

  test('no request fails once interval x (fall + 1) has passed after a real server died', async () => {
    await c.nginx.get('node4')!.kill();
    try {
      await sleep(INTERVAL * (FALL + 1) + 500);
      const bodies: string[] = [];
      for (let i = 0; i < 30; i++) bodies.push(await get());
      expect(bodies.filter((b) => b.startsWith('error'))).toEqual([]);
      expect(bodies).not.toContain('node4');
    } finally {
      await c.nginx.get('node4')!.start();
    }
    await eventually(async () => (await get()) === 'node4' || (await get()) === 'node4', 'node4 serves again');
  });

  test('after a director failover the new director serves new connections', async () => {
    const before = await holder();
    c.agents.get(before)!.kill('SIGKILL');
    const other = before === 'node1' ? 'node2' : 'node1';
    await eventually(async () => (await c.holderOf(GROUP)) === other, 'moved', 30_000);
    await eventually(async () => REAL_SERVERS.includes(await get()), 'served through the new director', 20_000);
    await c.agents
      .get(before)!
      .stop({ timeoutMs: 3000 })
      .catch(() => undefined);
    await c.startAgent(before);
  });
});

async function holder(): Promise<string> {
  return (await c.holderOf(GROUP)) ?? 'node1';
}
