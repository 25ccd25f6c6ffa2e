// vipwarden on the netns testbed (hack/testbed/cluster.ts: etcd, one agent per node, one controller, nginx),
// in the benchmark's two profiles, with the step timestamps of each failover read back from the JSON logs.
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KERNEL_SLACK_MS } from '../../common/kernel-lifetime.js';
import { addressOverhangMs, maxLifetimeSeconds } from '../../common/lease.js';
import { fenceOptions, parseAgentConfig } from '../../node-agent/config.js';
import { fenceOverhangMs, revokedFenceWaitMs } from '../../common/fence.js';
import { FENCE_TABLE } from '../../node-agent/fence/ruleset.js';
import { startCluster, webGroup, type Cluster } from '../testbed/cluster.js';
import { clusterNodeOps } from './cluster-subject.js';
import { ETCD_TIMING } from '../testbed/etcd.js';
import type { ExplainWindow, LogTimes, Profile, Subject } from './types.js';

interface VipwardenProfile {
  etcdHeartbeatMs?: number;
  etcdElectionMs?: number;
  /** Merged into agent.yaml. */
  agent: Record<string, unknown>;
  /** Merged into controller.yaml. */
  controller: Record<string, unknown>;
  /** The FailoverGroup's nginx check; absent fields take the schema's defaults. */
  check: { intervalMs?: number; timeoutMs?: number; rise?: number; fall?: number };
}

export const VIPWARDEN_PROFILES: Record<'vipwarden-default' | 'vipwarden-fast', VipwardenProfile> = {
  // Everything as shipped: etcd with the documented timing (ETCD_TIMING: 50/300 ms), 2 s node lease, the FailoverGroup's default check timing (1 s).
  'vipwarden-default': { agent: {}, controller: {}, check: {} },
  // DESIGN.md "Timing": etcd with --heartbeat-interval 20 --election-timeout 200 (1 s leases become possible),
  // 1 s lease renewed every 100 ms, checks every 100 ms. With a 1 s lease the address lifetime is 1 s too (the
  // kernel counts whole seconds), so the controller waits renewWindow + kernel slack after a lease ends (Safety 3):
  // addresses renewed within 100 ms of a keepalive (answers come every 100 ms) make that wait 150 ms shorter.
  //
  // With the fast fence and heartbeats (docs/design.md "Fast fence"): a heartbeat every 30 ms, revoked after 3
  // missed (the controller's default), a 150 ms fence window (the least that keepalives every 50 ms used within
  // 100 ms of their send allow), so the controller waits 200 ms after a revocation instead of the address
  // lifetime's 1.57 s. (A 50 ms renew window made the new holder's acquire wait for a keepalive answered within
  // 50 ms: up to 330 ms of retries right after a revocation, when etcd is busy.)
  'vipwarden-fast': {
    etcdHeartbeatMs: 20,
    etcdElectionMs: 200,
    agent: {
      lease: { ttlSeconds: 1, keepaliveIntervalMs: 50, renewWindowMs: 100 },
      fence: { mode: 'nftables', windowMs: 150, heartbeatMs: 30 },
    },
    controller: {},
    check: { intervalMs: 100, timeoutMs: 100 },
  },
};

export const PRIORITIES = [100, 90, 80];

/**
 * The agent.yaml additions a run uses: the profile's, with the fence mode set to `mode` (off, nftables or auto: the
 * profile's window and heartbeat stay, and run only where the fence does), then VIPWARDEN_BENCH_AGENT (JSON, merged
 * shallowly) over it.
 */
export function benchAgentConfig(
  profile: 'vipwarden-default' | 'vipwarden-fast',
  mode: string | undefined = process.env['VIPWARDEN_BENCH_FENCE'],
): Record<string, unknown> {
  if (mode !== undefined && mode !== 'off' && mode !== 'nftables' && mode !== 'auto')
    throw new Error(`VIPWARDEN_BENCH_FENCE must be off, nftables or auto, not ${mode}`);
  return {
    ...withFenceMode(VIPWARDEN_PROFILES[profile].agent, mode),
    ...(JSON.parse(process.env['VIPWARDEN_BENCH_AGENT'] ?? '{}') as Record<string, unknown>),
  };
}

/** `agent` with its fence mode set to `mode` (unchanged when undefined), keeping the fence's other settings. */
export function withFenceMode(agent: Record<string, unknown>, mode: string | undefined): Record<string, unknown> {
  if (mode === undefined) return agent;
  const f = agent['fence'];
  return { ...agent, fence: typeof f === 'object' && f !== null ? { ...f, mode } : mode };
}

/** The agents' fence mode in a run's agent.yaml additions (auto when none is set: the agent's default). */
export function fenceModeOf(agent: Record<string, unknown>): string {
  const f = agent['fence'];
  if (typeof f === 'string') return f;
  const m = (f as { mode?: unknown } | undefined)?.mode;
  return typeof m === 'string' ? m : 'auto';
}

export function vipwardenSettings(
  profile: 'vipwarden-default' | 'vipwarden-fast',
  agentYaml: Record<string, unknown> = VIPWARDEN_PROFILES[profile].agent,
): Record<string, unknown> {
  const p = VIPWARDEN_PROFILES[profile];
  const agent = parseAgentConfig(
    { node: 'bench', etcd: { endpoints: ['http://127.0.0.1:2379'] }, ...agentYaml },
    profile,
  );
  const maxLifetime = maxLifetimeSeconds(agent.lease);
  const kernelSlack = (p.controller['kernelSlackMs'] as number | undefined) ?? KERNEL_SLACK_MS;
  // `auto` resolves to nftables on the benchmark's machines (nft installed, the helper built).
  const fenced = fenceOptions(
    agent.fence.mode === 'auto' ? { ...agent, fence: { ...agent.fence, mode: 'nftables' } } : agent,
  );
  return {
    etcd: {
      heartbeatMs: p.etcdHeartbeatMs ?? ETCD_TIMING.heartbeatMs,
      electionMs: p.etcdElectionMs ?? ETCD_TIMING.electionMs,
    },
    lease: agent.lease,
    maxAddressLifetimeS: maxLifetime,
    /** Safety 3: the controller waits this long after a lease ends before moving the group. */
    overhangWaitMs: !fenced
      ? addressOverhangMs(
          {
            ttlSeconds: agent.lease.ttlSeconds,
            maxLifetimeSeconds: maxLifetime,
            renewWindowMs: agent.lease.renewWindowMs,
          },
          kernelSlack,
        )
      : fenced.heartbeatMs !== undefined
        ? revokedFenceWaitMs(fenced.windowMs)
        : fenceOverhangMs({ ttlSeconds: agent.lease.ttlSeconds, fenceWindowMs: fenced.windowMs }),
    ...(fenced ? { fenceWindowMs: fenced.windowMs } : {}),
    ...(fenced?.heartbeatMs !== undefined ? { heartbeatMs: fenced.heartbeatMs } : {}),
    kernelSlackMs: kernelSlack,
    shutdownGraceMs: agent.shutdownGraceMs,
    check: {
      type: 'http GET http://127.0.0.1/',
      intervalMs: p.check.intervalMs ?? 1000,
      timeoutMs: p.check.timeoutMs ?? 1000,
      rise: p.check.rise ?? 2,
      fall: p.check.fall ?? 2,
    },
    failback: 'auto',
    priorities: PRIORITIES,
  };
}

interface LogEntry {
  t: number;
  src: 'agent' | 'controller';
  node?: string;
  msg: string;
  f: Record<string, unknown>;
}

/** Reads the components' JSON logs in the testbed dir as they grow. */
export class LogTail {
  private readonly offsets = new Map<string, number>();
  private readonly partial = new Map<string, string>();
  private entries: LogEntry[] = [];

  constructor(private readonly dir: string) {}

  /** Reads what was appended since the last call; keeps entries newer than keepSinceWall (wall ms). */
  poll(wallMinusMono: number, keepSinceMono: number): LogEntry[] {
    let names: string[] = [];
    try {
      names = readdirSync(this.dir).filter((n) => /\.(agent|controller-\d+)\.\d+\.out\.log$/.test(n));
    } catch {
      return this.entries;
    }
    for (const name of names) {
      const path = join(this.dir, name);
      const src: LogEntry['src'] = name.includes('.agent.') ? 'agent' : 'controller';
      let size = 0;
      try {
        size = statSync(path).size;
      } catch {
        continue;
      }
      const from = this.offsets.get(name) ?? 0;
      if (size <= from) continue;
      const buf = Buffer.alloc(size - from);
      const fd = openSync(path, 'r');
      try {
        readSync(fd, buf, 0, buf.length, from);
      } finally {
        closeSync(fd);
      }
      this.offsets.set(name, size);
      const text = (this.partial.get(name) ?? '') + buf.toString('utf8');
      const lines = text.split('\n');
      this.partial.set(name, lines.pop() ?? '');
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        let f: Record<string, unknown>;
        try {
          f = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        const wall =
          typeof f['time'] === 'string' ? Date.parse(f['time']) : typeof f['time'] === 'number' ? f['time'] : NaN;
        if (!Number.isFinite(wall) || typeof f['msg'] !== 'string') continue;
        this.entries.push({
          t: wall - wallMinusMono,
          src,
          node: typeof f['node'] === 'string' ? f['node'] : undefined,
          msg: f['msg'],
          f,
        });
      }
    }
    this.entries = this.entries.filter((e) => e.t >= keepSinceMono);
    return this.entries;
  }
}

/** Step times of one failover, from the agents' and the controller's logs (pure, over parsed entries). */
export function stepTimes(entries: readonly LogEntry[], w: ExplainWindow): LogTimes {
  // Log times have 1 ms resolution and are converted from wall-clock time: allow a few ms before the fault.
  const inWin = entries.filter((e) => e.t >= w.tFault - 5 && e.t <= w.tEnd + 200).sort((a, b) => a.t - b.t);
  const first = (pred: (e: LogEntry) => boolean) => inWin.find(pred);
  const agent = (node: string | undefined, msg: string) => (e: LogEntry) =>
    e.src === 'agent' && e.node === node && e.msg === msg;
  const ctl = (msg: string) => (e: LogEntry) => e.src === 'controller' && e.msg === msg;
  const out: LogTimes = {};
  // (The message says "node lease ended (etcd says so)" since the lease end is asked; the bench looked for the
  // older text and missed it.)
  const leaseEnded = first(
    (e) => e.src === 'controller' && e.msg.startsWith('node lease ended') && e.f['node'] === w.from,
  );
  if (leaseEnded) out.leaseEnded = leaseEnded.t;
  // Heartbeats (docs/design.md "Fast fence"): the leader decided the holder was gone before its lease ended.
  const revoking = first((e) => ctl('heartbeats stopped: revoking the holder lease')(e) && e.f['node'] === w.from);
  if (w.mode === 'service')
    out.detect = first((e) => agent(w.from, 'check changed state')(e) && e.f['ok'] === false)?.t;
  else if (w.mode === 'graceful') out.detect = first(agent(w.from, 'stopping'))?.t;
  else out.detect = revoking?.t ?? leaseEnded?.t;
  const released = first(agent(w.from, 'released'));
  if (released) out.released = released.t;
  if (w.to) {
    const assigned = first((e) => ctl('assignment written')(e) && e.f['holder'] === w.to && e.f['release'] !== true);
    if (assigned) out.assigned = assigned.t;
    const ev = first((e) => ctl('failover')(e) && e.f['to'] === w.to);
    if (ev) {
      if (typeof ev.f['detectMs'] === 'number') out.eventDetectMs = ev.f['detectMs'];
      if (typeof ev.f['outageMs'] === 'number') out.eventOutageMs = ev.f['outageMs'];
      if (typeof ev.f['reason'] === 'string') out.eventReason = ev.f['reason'];
    }
    const acquired = first(agent(w.to, 'acquired'));
    if (acquired) {
      out.acquired = acquired.t;
      if (typeof acquired.f['tookMs'] === 'number') out.acquireStart = acquired.t - acquired.f['tookMs'];
    }
  }
  for (const k of Object.keys(out) as (keyof LogTimes)[]) if (out[k] === undefined) delete out[k];
  return out;
}

export async function startVipwardenSubject(
  profile: 'vipwarden-default' | 'vipwarden-fast',
  /** groups: FailoverGroups on the testbed (default 1); the others (web-2...) have VIPs 1..groups-1, same check. */
  /** peer: the agents get the failsafe peer channel (the arbiter modes). */
  opts: { nodes?: number; groups?: number; etcdMembers?: 1 | 3; peer?: boolean } = {},
): Promise<Subject> {
  const p = VIPWARDEN_PROFILES[profile];
  // VIPWARDEN_BENCH_FENCE=off|nftables|auto overrides the agents' fence mode (default: the profile's);
  // VIPWARDEN_BENCH_AGENT: JSON merged over the profile's agent.yaml (shallow), e.g. '{"lease":{...}}'.
  const agent = benchAgentConfig(profile);
  const c: Cluster = await startCluster({
    name: profile === 'vipwarden-default' ? 'bench-vwd' : 'bench-vwf',
    nodes: opts.nodes ?? 3,
    etcdMembers: opts.etcdMembers,
    peer: opts.peer,
    etcdHeartbeatMs: p.etcdHeartbeatMs,
    etcdElectionMs: p.etcdElectionMs,
    agent,
    controller: p.controller,
    logLevel: 'info',
  });
  const vip = c.tb.vip(0);
  const check: Record<string, unknown> = { name: 'nginx', type: 'http', http: { port: 80, path: '/' }, ...p.check };
  c.applyGroup(
    webGroup({
      vips: [`${vip}/${c.tb.prefixLen}`],
      nodes: c.tb.nodes.map((n, i): [string, number] => [n.name, PRIORITIES[i] ?? 10]),
      failback: 'auto',
      checks: [check],
    }),
  );
  const groups = opts.groups ?? 1;
  for (let g = 2; g <= groups; g++)
    c.applyGroup(
      webGroup({
        name: `web-${g}`,
        vips: [`${c.tb.vip(g - 1)}/${c.tb.prefixLen}`],
        nodes: c.tb.nodes.map((n, i): [string, number] => [n.name, PRIORITIES[i] ?? 10]),
        failback: 'auto',
        checks: [check],
      }),
      `web-${g}.yaml`,
    );
  const logs = new LogTail(c.tb.dir);
  const agentOf = (node: string) => c.agents.get(node);

  return {
    product: 'vipwarden',
    profile: profile as Profile,
    tb: c.tb,
    etcd: c.etcd,
    vip,
    preferred: c.tb.nodes[0]!.name,
    settings: { ...vipwardenSettings(profile, agent), groups, fence: fenceModeOf(agent) },
    // The sampler reads the fence's gates too (none where the table is absent): a gated address without a live
    // element holds nothing.
    fenceTable: FENCE_TABLE,
    ...clusterNodeOps(c),
    daemonPid: (node) => {
      const a = agentOf(node);
      return a && !a.exited ? a.pid : undefined;
    },
    async explain(w) {
      const entries = logs.poll(w.wallMinusMono, w.tFault - 60_000);
      return stepTimes(entries, w);
    },
    async destroy() {
      for (const a of c.agents.values()) if (!a.exited) a.kill('SIGCONT');
      await c.destroy();
    },
  };
}
