// CPU of one leader pass (buildInput + plan), in process, on the scale benchmark's state: N nodes, G groups with
// 3 candidates each, every candidate registered and healthy, every group assigned to its first candidate. No etcd,
// no other process: the figures do not depend on how loaded the machine's etcd is.
//   node dist/hack/bench/pass.js [--nodes 100] [--groups 1000] [--passes 5]
// "fresh" passes get new mirror entries each time (every record parsed, as every pass was before the records were
// cached per mod revision); "same" passes read the same entries (a steady state in which little changed).
import { parseArgs } from 'node:util';
import type { Entry } from '../../common/etcd.js';
import { Mirror } from '../../common/etcd.js';
import { Keys, type AssignmentRecord, type HealthRecord, type NodeRecord } from '../../common/keyspace.js';
import { silentLogger } from '../../common/log.js';
import { assignmentWire } from '../../common/promise-sets.js';
import { parseFailoverGroup, type FailoverGroup } from '../../crds/failovergroup.js';
import { buildInput, type Mirrors } from '../../controller/input.js';
import { LeaderMemory } from '../../controller/memory.js';
import { checksHash, plan, specHash, vipsOf, type Plan } from '../../controller/planner.js';
import { batchActions } from '../../controller/writer.js';
import { nodeName, scaleGroup } from './scale.js';

interface State {
  keys: Keys;
  groups: Map<string, FailoverGroup>;
  /** key -> value, per mirror. */
  values: Record<'nodes' | 'health' | 'assignments' | 'promisesets', Map<string, { value: string; lease: string }>>;
}

export function scaleState(nodes: number, groups: number): State {
  const keys = new Keys('/bench/');
  const lease = (n: number) => String(1000 + n);
  const values: State['values'] = {
    nodes: new Map(),
    health: new Map(),
    assignments: new Map(),
    promisesets: new Map(),
  };
  // Every assignment names the live promise set (failsafe groups, the default), stored once as the leader writes it.
  const liveSet = Array.from({ length: nodes }, (_, n) => ({ node: nodeName(n), lease: lease(n) })).sort((a, b) =>
    a.node < b.node ? -1 : a.node > b.node ? 1 : 0,
  );
  for (let n = 0; n < nodes; n++) {
    const rec: NodeRecord = {
      name: nodeName(n),
      lease: lease(n),
      ttlSeconds: 2,
      maxLifetimeSeconds: 1,
      renewWindowMs: 100,
      addresses: [],
      interfaces: ['eth0'],
      version: 'bench',
      startedAt: 0,
    };
    values.nodes.set(keys.node(rec.name), { value: JSON.stringify(rec), lease: lease(n) });
  }
  const gs = new Map<string, FailoverGroup>();
  for (let i = 0; i < groups; i++) {
    const r = parseFailoverGroup(scaleGroup(i, nodes));
    if (!r.ok) throw r.error;
    const g = r.group;
    gs.set(g.name, g);
    for (const [k, c] of g.spec.nodes.entries()) {
      const h: HealthRecord = {
        healthy: true,
        priorityDelta: 0,
        checks: [{ name: 'web', ok: true }],
        checksHash: checksHash(g),
        at: 0,
      };
      values.health.set(keys.health(g.name, c.name), { value: JSON.stringify(h), lease: lease((i + k) % nodes) });
    }
    const holder = g.spec.nodes[0]!.name;
    const a: AssignmentRecord = {
      group: g.name,
      holder,
      holderLease: lease(i % nodes),
      vips: vipsOf(g),
      release: false,
      reason: 'initial',
      specHash: specHash(g),
      at: 0,
      leader: 'bench',
    };
    const wire = assignmentWire({ ...a, promiseSet: liveSet }, (d) => keys.promiseSet(d));
    values.assignments.set(keys.assignment(g.name), { value: wire.value, lease: '0' });
    if (wire.set) values.promisesets.set(wire.set.key, { value: wire.set.value, lease: '0' });
  }
  return { keys, groups: gs, values };
}

function mirrorOf(prefix: string, values: Map<string, { value: string; lease: string }>, rev: number): Mirror {
  const m = new Mirror(null as never, prefix, silentLogger());
  for (const [key, v] of values) {
    const e: Entry = { key, value: v.value, modRevision: rev, createRevision: 1, lease: v.lease };
    m.entries.set(key, e);
  }
  return m;
}

function cloneMirror(m: Mirror): Mirror {
  const c = new Mirror(null as never, m.prefix, silentLogger());
  for (const [k, e] of m.entries) c.entries.set(k, e);
  return c;
}

export function mirrorsOf(s: State, rev: number): Mirrors {
  const empty = new Map<string, { value: string; lease: string }>();
  const k = s.keys;
  return {
    nodes: mirrorOf(k.nodesPrefix(), s.values.nodes, rev),
    health: mirrorOf(k.healthPrefix(), s.values.health, rev),
    assignments: mirrorOf(k.assignmentsPrefix(), s.values.assignments, rev),
    released: mirrorOf(k.releasedPrefix(), empty, rev),
    drain: mirrorOf(k.drainPrefix(), empty, rev),
    moves: mirrorOf(k.movesPrefix(), empty, rev),
    groups: mirrorOf(k.groupsPrefix(), empty, rev),
    promisesets: mirrorOf(k.promiseSetsPrefix(), s.values.promisesets, rev),
    presence: mirrorOf(k.presencePrefix(), empty, rev),
  };
}

/** ms of one buildInput + plan, at monotonic (and wall) time `at`. */
export function timePass(
  s: State,
  mirrors: Mirrors,
  memory: LeaderMemory,
  at = 1,
): { ms: number; actions: number; plan: Plan } {
  const t0 = performance.now();
  const input = buildInput(
    {
      keys: s.keys,
      mirrors,
      memory,
      log: silentLogger(),
      leader: 'bench',
      settleMs: 0,
      now: at,
      mono: at,
    },
    { groups: s.groups, frozen: new Set(), contested: new Set() },
  );
  const p = plan(input);
  return { ms: performance.now() - t0, actions: p.actions.length, plan: p };
}

function main(): void {
  const { values } = parseArgs({
    options: { nodes: { type: 'string' }, groups: { type: 'string' }, passes: { type: 'string' } },
  });
  const nodes = Number(values.nodes ?? 100);
  const groups = Number(values.groups ?? 1000);
  const passes = Number(values.passes ?? 5);
  const s = scaleState(nodes, groups);
  const memory = new LeaderMemory({
    clock: { mono: () => 1, wall: () => 1, sleep: () => Promise.resolve() },
    log: silentLogger(),
    keys: s.keys,
    kernelSlackMs: 0,
    askLease: () => Promise.resolve(2),
  });
  const fresh: number[] = [];
  const same: number[] = [];
  let actions = 0;
  const steady = mirrorsOf(s, 1);
  for (let i = 0; i < passes; i++) fresh.push(timePass(s, mirrorsOf(s, 2 + i), memory).ms);
  for (let i = 0; i < passes; i++) {
    const r = timePass(s, steady, memory);
    same.push(r.ms);
    actions = r.actions;
  }
  // A lost node: its node record and health gone, etcd said its lease ended; the pass that moves its groups (and
  // plans every other failsafe group's promise-set rewrite), then the writer's batching of what it planned.
  let mono = 1;
  const lostMemory = new LeaderMemory({
    clock: { mono: () => mono, wall: () => mono, sleep: () => Promise.resolve() },
    log: silentLogger(),
    keys: s.keys,
    kernelSlackMs: 0,
    askLease: () => Promise.resolve(2),
  });
  lostMemory.observe(steady.nodes.under(s.keys.nodesPrefix()), steady.assignments.under(s.keys.assignmentsPrefix()));
  timePass(s, steady, lostMemory);
  const lostLease = '1000';
  const lost = { ...steady, nodes: cloneMirror(steady.nodes), health: cloneMirror(steady.health) };
  for (const m of [lost.nodes, lost.health])
    for (const [k, e] of m.entries) if (e.lease === lostLease) m.entries.delete(k);
  lostMemory.revoked(lostLease);
  mono += 3_600_000;
  const { ms: lostPlanMs, plan: lp } = timePass(s, lost, lostMemory, mono);
  const tw = performance.now();
  const batches = batchActions(lp.actions, (d) => s.keys.promiseSet(d));
  const lostWireMs = performance.now() - tw;
  const moves = lp.actions.filter((a) => a.type === 'put' && a.record.reason !== 'promise-set').length;
  lostMemory.stop();
  memory.stop();
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(1);
  console.log(
    JSON.stringify(
      {
        nodes,
        groups,
        passes,
        freshEntriesMs: med(fresh),
        sameEntriesMs: med(same),
        actions,
        lostNode: {
          planMs: lostPlanMs.toFixed(1),
          batchMs: lostWireMs.toFixed(1),
          actions: lp.actions.length,
          moves,
          batches: batches.length,
        },
      },
      null,
      0,
    ),
  );
}

if (process.argv[1]?.endsWith('/pass.js')) main();
