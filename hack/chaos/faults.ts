// The chaos run's fault kinds, each an injection and an undo. Node faults (agent SIGKILL/SIGSTOP, link cut, nginx
// stop) are the benchmark's own (hack/bench/faults.ts) over a Subject adapter for a multi-group cluster; the others
// (cut from etcd only, etcd member and leader kill, controller leader kill, address churn) are added here, and a
// VIP moved between groups by editing specs in spec-move.ts.
import { FaultState, heal as healNode, inject as injectNode, undo as undoNode } from '../bench/faults.js';
import { clusterNodeOps } from '../bench/cluster-subject.js';
import type { Mode, Subject } from '../bench/types.js';
import type { Cluster } from '../testbed/cluster.js';
import { run, sleep, withTimeout } from '../testbed/util.js';
import { injectSpecMove } from './spec-move.js';

export const FAULT_KINDS = [
  'agent-kill',
  'agent-stop',
  'link-cut',
  'etcd-cut',
  'etcd-member-kill',
  'etcd-leader-kill',
  'controller-leader-kill',
  'nginx-stop',
  'address-churn',
  'spec-move',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Kinds that hit one node (the holder of a group). */
const NODE_MODE: Partial<Record<FaultKind, Mode>> = {
  'agent-kill': 'kill',
  'agent-stop': 'freeze',
  'link-cut': 'link',
  'nginx-stop': 'service',
};

/** Small seeded PRNG (mulberry32): the same seed replays the same faults. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(xs: readonly T[]): T {
    const x = xs[Math.floor(this.next() * xs.length)];
    if (x === undefined) throw new Error('pick from an empty list');
    return x;
  }
}

/** A group of the chaos cluster: its VIPs and its candidates, best first. */
export interface ChaosGroup {
  name: string;
  vips: string[];
  order: string[];
}

/** What the cluster looks like when nothing is wrong: which node holds which VIP. */
export interface Layout {
  groups: ChaosGroup[];
  /** VIP (no prefix) -> group name, as the specs say now. */
  vipGroup: Map<string, string>;
}

export interface ChaosEnv {
  c: Cluster;
  s: Subject;
  st: FaultState;
  layout: Layout;
  /** Processes the supervisor must leave down (`controller-<i>`, `agent-<node>`): a fault holds them down. */
  held: Set<string>;
  /** Rewrites one group's spec with the given VIPs. */
  writeGroup(name: string, vips: string[]): void;
  log(msg: string): void;
}

export interface ActiveFault {
  kind: FaultKind;
  /** Node, member, controller index or VIP it hit. */
  target: string;
  /** Also add and remove addresses on the holder's interface while it lasts (the issue 15 item 1 pattern). */
  churn: boolean;
  undo(): Promise<void>;
}

/** A Subject (hack/bench/types.ts) over a multi-group cluster, so the benchmark's node faults drive it. */
export function subjectOf(c: Cluster, profile: 'vipwarden-default' | 'vipwarden-fast', vip: string): Subject {
  return {
    product: 'vipwarden',
    profile,
    tb: c.tb,
    vip,
    preferred: c.tb.nodes[0]!.name,
    settings: {},
    ...clusterNodeOps(c),
    destroy: () => c.destroy(),
  };
}

/** Index of etcd's leader member, from `etcdctl endpoint status` (-1 if none answers as leader). */
export async function etcdLeader(c: Cluster): Promise<number> {
  const eps = c.etcd.members.filter((m) => m.running).map((m) => m.endpoint);
  if (eps.length === 0) return -1;
  const argv = [
    c.etcd.binaries.etcdctl,
    ...c.etcd.etcdctlFlags(),
    '--endpoints',
    eps.join(','),
    '--command-timeout=2s',
    'endpoint',
    'status',
    '-w',
    'json',
  ];
  const r = await run(argv, { allowFailure: true, timeoutMs: 5000 });
  // Member ids are uint64: compare their digits, not JSON numbers.
  for (const entry of r.stdout.split('{"Endpoint":').slice(1)) {
    const ep = /^"([^"]+)"/.exec(entry)?.[1];
    const id = /"member_id":(\d+)/.exec(entry)?.[1];
    const leader = /"leader":(\d+)/.exec(entry)?.[1];
    if (ep && id && id === leader) return c.etcd.members.findIndex((m) => m.endpoint === ep);
  }
  return -1;
}

function etcdCutRule(c: Cluster, op: '-I' | '-D'): string[] {
  const ports = c.etcd.members.map((m) => String(m.clientPort)).join(',');
  return ['iptables', '-w', op, 'OUTPUT', '-p', 'tcp', '-d', c.tb.bridgeIp, '-m', 'multiport', '--dports', ports];
}

/** Adds and removes /32 addresses (198.18.K.200-249) on a node's eth0 at random moments until stopped. */
export function startChurn(env: ChaosEnv, node: string, rng: Rng, firstAtMs: number): () => Promise<void> {
  let stopped = false;
  const added: string[] = [];
  const loop = (async () => {
    await sleep(firstAtMs);
    while (!stopped) {
      const a = `198.18.${env.c.tb.id}.${rng.int(200, 249)}/32`;
      const r = await env.c.tb.exec(node, ['ip', 'addr', 'add', a, 'dev', 'eth0'], { allowFailure: true });
      if (r.exitCode === 0) added.push(a);
      if (added.length > 3) {
        const old = added.shift()!;
        await env.c.tb.exec(node, ['ip', 'addr', 'del', old, 'dev', 'eth0'], { allowFailure: true });
      }
      await sleep(rng.int(150, 900));
    }
  })();
  return async () => {
    stopped = true;
    await loop.catch(() => undefined);
    for (const a of added) await env.c.tb.exec(node, ['ip', 'addr', 'del', a, 'dev', 'eth0'], { allowFailure: true });
  };
}

/** Node holding group `g` according to etcd (null: none). */
async function holderNode(env: ChaosEnv, g: ChaosGroup): Promise<string> {
  return (await env.c.holderOf(g.name).catch(() => null)) ?? g.order[0]!;
}

export async function injectFault(env: ChaosEnv, kind: FaultKind, rng: Rng): Promise<ActiveFault> {
  const { c } = env;
  const group = rng.pick(env.layout.groups);
  const node = await holderNode(env, group);
  // The dangerous combination of issue 15: the holder's agent dies or stops, and an unrelated address is added on
  // its interface 0.5-0.95 s later. Also with cuts: whatever ends the lease, churn must not keep the address.
  const churn = ['agent-kill', 'agent-stop', 'link-cut', 'etcd-cut'].includes(kind) && rng.next() < 0.5;
  let stopChurn: (() => Promise<void>) | undefined;
  // The churn loop draws from its own generator: the main sequence must not depend on how long a fault lasts.
  if (churn) stopChurn = startChurn(env, node, new Rng(rng.int(0, 2 ** 31)), rng.int(500, 950));
  const withChurn = (undo: () => Promise<void>) => async () => {
    await stopChurn?.();
    await undo();
  };

  const mode = NODE_MODE[kind];
  if (mode) {
    await injectNode(env.s, env.st, mode, node);
    return { kind, target: node, churn, undo: withChurn(() => undoNode(env.s, env.st, mode, node)) };
  }
  switch (kind) {
    case 'etcd-cut': {
      await c.tb.exec(node, [...etcdCutRule(c, '-I'), '-j', 'DROP']);
      return {
        kind,
        target: node,
        churn,
        undo: withChurn(async () => {
          await c.tb.exec(node, [...etcdCutRule(c, '-D'), '-j', 'DROP'], { allowFailure: true });
        }),
      };
    }
    case 'etcd-member-kill':
    case 'etcd-leader-kill': {
      const leader = await etcdLeader(c);
      const candidates = c.etcd.members
        .map((_, i) => i)
        .filter((i) => (kind === 'etcd-leader-kill') === (i === leader));
      const m = candidates.length > 0 ? rng.pick(candidates) : rng.int(0, c.etcd.members.length - 1);
      await c.etcd.kill(m, 'SIGKILL');
      return { kind, target: `etcd-${m}${m === leader ? ' (leader)' : ''}`, churn, undo: () => c.etcd.restart(m) };
    }
    case 'controller-leader-kill': {
      let i = await c.leaderIndex().catch(() => -1);
      if (i < 0) i = 0;
      const p = c.controllers[i];
      env.held.add(`controller-${i}`);
      p?.kill('SIGKILL');
      return {
        kind,
        target: `controller-${i}`,
        churn,
        undo: async () => {
          if (p) await withTimeout(p.done, 5000, undefined);
          try {
            if (c.controllers[i]?.exited) c.startController(i);
          } finally {
            env.held.delete(`controller-${i}`);
          }
        },
      };
    }
    case 'address-churn': {
      const stop = startChurn(env, node, new Rng(rng.int(0, 2 ** 31)), rng.int(0, 400));
      return { kind, target: node, churn: false, undo: stop };
    }
    case 'spec-move':
      return injectSpecMove(env, rng);
    default:
      throw new Error(`no injection for ${kind}`);
  }
}

/** Brings everything back, whatever happened (after a failed iteration or an undo that threw). */
export async function healAll(env: ChaosEnv): Promise<void> {
  const { c } = env;
  for (const g of env.layout.groups) env.writeGroup(g.name, g.vips);
  for (let i = 0; i < c.etcd.members.length; i++)
    if (!c.etcd.members[i]!.running) await c.etcd.restart(i).catch((e) => env.log(`etcd-${i} restart: ${String(e)}`));
  for (const n of c.tb.nodes) {
    for (;;) {
      const r = await c.tb.exec(n.name, [...etcdCutRule(c, '-D'), '-j', 'DROP'], { allowFailure: true });
      if (r.exitCode !== 0) break;
    }
  }
  await healNode(env.s, env.st);
  for (let i = 0; i < c.controllers.length; i++) {
    try {
      if (c.controllers[i]?.exited) c.startController(i);
    } catch {
      // the supervisor started it meanwhile
    }
  }
  env.held.clear();
}

/**
 * Restarts a controller or agent that exited on its own once it has been down for 1 s, as systemd
 * (Restart=always, RestartSec=1) or a Deployment/DaemonSet would: a controller exits when it loses leadership, by
 * design. Each restart is reported; an agent is left alone while a fault holds its node down.
 */
export function startSupervisor(env: ChaosEnv, onRestart: (name: string) => void): () => void {
  const { c } = env;
  const downSince = new Map<string, number>();
  let busy = false;
  const due = (name: string, exited: boolean): boolean => {
    if (!exited || env.held.has(name)) {
      downSince.delete(name);
      return false;
    }
    const since = downSince.get(name) ?? Date.now();
    downSince.set(name, since);
    if (Date.now() - since < 1000) return false;
    downSince.delete(name);
    return true;
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void (async () => {
      for (let i = 0; i < c.controllers.length; i++) {
        const name = `controller-${i}`;
        if (due(name, c.controllers[i]?.exited ?? true)) {
          try {
            c.startController(i);
            onRestart(name);
          } catch {
            // started meanwhile by an undo or heal
          }
        }
      }
      for (const n of c.tb.nodes) {
        const name = `agent-${n.name}`;
        const a = c.agents.get(n.name);
        if (!env.st.isHealthy(n.name)) continue;
        if (due(name, a?.exited ?? true)) {
          await c.startAgent(n.name).catch(() => undefined);
          onRestart(name);
        }
      }
    })().finally(() => {
      busy = false;
    });
  }, 250);
  return () => clearInterval(timer);
}
