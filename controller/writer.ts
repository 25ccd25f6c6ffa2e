// The leader's writes to etcd, each in a transaction fenced on its leader key (DESIGN.md Safety 4): assignments
// (also compared with the epoch they were planned from), the group records agents run checks from, and the bounded
// event history. Writes in flight are capped with cockatiel bulkheads.
import { bulkhead, type BulkheadPolicy } from 'cockatiel';
import { Range, type DeleteBuilder, type Etcd3, type PutBuilder } from 'etcd3';
import type { Clock } from '../common/clock.js';
import type { Mirror } from '../common/etcd.js';
import { AssignmentRecord, decode, type EventRecord, type GroupRecord, type Keys } from '../common/keyspace.js';
import type { OutageRecord } from '../common/presence.js';
import type { Logger } from '../common/log.js';
import type { FailoverGroup } from '../crds/failovergroup.js';
import type { Term } from './election.js';
import type { OwnWrite } from './input.js';
import type { ControllerMetrics } from './metrics.js';
import { checksHash, type Action } from './planner.js';
import { decodeEntry } from './parsed.js';
import { assignmentWire, collectable } from '../common/promise-sets.js';
import type { StatusSink } from './sources/types.js';

/**
 * etcd writes in flight at once. Thousands of transactions started in one go (first placement of 1,000 groups)
 * kept the event loop and the one HTTP/2 connection busy for over a second: the leader's own keepalive answers
 * came too late and the controller deposed itself (seen in the scale benchmark, hack/bench/scale.ts).
 */
const MAX_WRITES_IN_FLIGHT = 32;

/** Events are history: a few transactions at a time, so that they do not hold up assignments. */
const MAX_EVENT_WRITES_IN_FLIGHT = 4;

/**
 * Events per transaction, each a put and a count of its group's history (2 operations: within etcd's default
 * --max-txn-ops of 128). One put and one listing per event were 2,000 requests beside a first placement of 1,000
 * groups (scale benchmark).
 */
const EVENTS_PER_TXN = 50;

/** Outage records (history too): fewer still. */
const MAX_OUTAGE_WRITES_IN_FLIGHT = 2;

/** Group records written per transaction (etcd takes up to 128 operations in one by default). */
const GROUP_RECORDS_PER_TXN = 100;

/**
 * Assignment writes per transaction. Each keeps its own compare (its key's mod revision against the epoch it was
 * planned from) beside the leader key's: 1 + 100 compares and 100 puts, within etcd's default --max-txn-ops of 128.
 * One transaction per group cost ~1 ms of etcd3/grpc-js client CPU each: a warm placement of 1,000 groups spent
 * 2 s writing (scale benchmark).
 */
export const ASSIGNMENTS_PER_TXN = 100;

/** And at most this many bytes of values per transaction: etcd refuses requests over 1.5 MiB (--max-request-bytes). */
export const ASSIGNMENT_TXN_BYTES = 512 * 1024;

/**
 * Rewrites of the promise set (every failsafe group's, whenever a node comes or goes) go after every other write:
 * a lost node's groups must not wait behind the rewrite of the other 990 (scale benchmark: 700 ms, they were
 * written in name order).
 */
function urgency(a: Action): number {
  return isDeferrable(a) ? 1 : 0;
}

/**
 * A promise-set rewrite (same holder, new epoch: failsafe rule 1) may go in the background, after the pass that
 * planned it (controller.ts `deferred`): at 10,000 groups a node that comes or goes rewrites 9,990 records, and a
 * pass that waited for them held up the moves of a lost node's groups by the next pass (scale benchmark).
 */
export function isDeferrable(a: Action): boolean {
  return a.type === 'put' && a.record.reason === 'promise-set';
}

/** Echoes remembered before those the mirror has shown are swept (ownEcho). */
const MAX_ECHOES = 20_000;

/** Deferred writes in flight at once: few, so that a pass's own writes never queue behind them. */
const MAX_DEFERRED_WRITES_IN_FLIGHT = 4;

/** An action as it goes to etcd: the assignment's value, and the promise set it names (common/promise-sets.ts). */
export interface WireAction {
  index: number;
  action: Action;
  value?: string;
  set?: { key: string; value: string };
}

/**
 * The actions in batches of one urgency each, urgent ones first, each batch within the limits above (a promise set
 * counts once per batch that names it: it is written once there, beside the assignments).
 */
export function batchActions(
  actions: readonly Action[],
  keyOfSet: (digest: string) => string,
  perTxn = ASSIGNMENTS_PER_TXN,
  maxBytes = ASSIGNMENT_TXN_BYTES,
): WireAction[][] {
  const items: WireAction[] = actions.map((action, index) => ({
    index,
    action,
    ...(action.type === 'put' ? assignmentWire(action.record, keyOfSet) : {}),
  }));
  items.sort((x, y) => urgency(x.action) - urgency(y.action) || x.index - y.index);
  const batches: (typeof items)[] = [];
  let cur: typeof items = [];
  let sets = new Set<string>();
  let bytes = 0;
  for (const it of items) {
    let size = it.action.group.length + (it.value?.length ?? 0) + 64;
    if (it.set && !sets.has(it.set.key)) size += it.set.value.length + it.set.key.length;
    const last = cur[cur.length - 1];
    if (last && (cur.length >= perTxn || bytes + size > maxBytes || urgency(last.action) !== urgency(it.action))) {
      batches.push(cur);
      cur = [];
      sets = new Set();
      bytes = 0;
      size = it.action.group.length + (it.value?.length ?? 0) + 64;
      if (it.set) size += it.set.value.length + it.set.key.length;
    }
    if (it.set) sets.add(it.set.key);
    cur.push(it);
    bytes += size;
  }
  if (cur.length) batches.push(cur);
  return batches;
}

/** The distinct promise sets a batch names, each as a put (etcd refuses a key written twice in one transaction). */
function setPuts(client: Etcd3, batch: readonly WireAction[]): PutBuilder[] {
  const sets = new Map<string, string>();
  for (const it of batch) if (it.set) sets.set(it.set.key, it.set.value);
  return [...sets].map(([k, v]) => client.put(k).value(v));
}

/** Stored promise sets are looked at for deletion at most this often (ms). */
const PROMISE_SET_COLLECT_MS = 10_000;

export interface FencedWriterDeps {
  client: Etcd3;
  keys: Keys;
  clock: Clock;
  log: Logger;
  metrics: ControllerMetrics;
  status: StatusSink;
  eventsPerGroup: number;
  /** The leader key is no longer ours. */
  onDeposed: (why: string) => void;
}

export class FencedWriter {
  private readonly writes: BulkheadPolicy = bulkhead(MAX_WRITES_IN_FLIGHT, Infinity);
  /** The background lane (applyAll with `deferred`): its own slots, so that it never holds up a pass's writes. */
  private readonly deferredWrites: BulkheadPolicy = bulkhead(MAX_DEFERRED_WRITES_IN_FLIGHT, Infinity);
  /** Outages apart from events: they never hold up an event (tests read events right after a move). */
  private readonly outageWrites: BulkheadPolicy = bulkhead(MAX_OUTAGE_WRITES_IN_FLIGHT, Infinity);
  /** groups/<name> values by group object (parsed once, never changed in place): not serialized on every pass. */
  private readonly groupJson = new WeakMap<FailoverGroup, string>();
  /** Keys this leader put, with the revision, until their watch event came (ownEcho). */
  private readonly echoes = { assignments: new Map<string, number[]>(), promisesets: new Map<string, number[]>() };
  /** This leader's assignment writes, by group, until the assignments mirror shows them (ownWrites). */
  private readonly recent = new Map<string, OwnWrite>();
  /** Events waiting for a transaction, oldest first, and the event transactions in flight. */
  private readonly pendingEvents: { term: Term; key: string; value: string; prefix: string; log: Logger }[] = [];
  private eventTxns = 0;
  private collecting = false;
  private nextCollect = 0;

  constructor(private readonly deps: FencedWriterDeps) {}

  private fenced(term: Term) {
    return this.deps.client.if(this.deps.keys.leader(), 'Create', '==', term.revision);
  }

  /**
   * Applies every action: many per fenced transaction (batchActions), each with its own compare, a bounded number
   * of transactions at a time. A transaction whose compares do not all hold writes nothing; its actions are then
   * tried one by one, so that one group planned from a stale epoch holds up no other. Returns what became of each
   * action, in the order given; `settled` is told of each batch's groups once its writes are done (committed ones
   * are in ownWrites by then).
   */
  async applyAll(
    term: Term,
    actions: readonly Action[],
    opts: { deferred?: boolean; settled?: (groups: readonly string[]) => void } = {},
  ): Promise<('ok' | 'conflict')[]> {
    const lane = opts.deferred ? this.deferredWrites : this.writes;
    const results: ('ok' | 'conflict')[] = new Array<'ok' | 'conflict'>(actions.length).fill('conflict');
    await Promise.all(
      batchActions(actions, (d) => this.deps.keys.promiseSet(d)).map(async (batch) => {
        try {
          const batchResult = await lane.execute(() => this.applyBatch(term, batch));
          if (batchResult !== 'retry') {
            for (const it of batch) results[it.index] = batchResult;
            return;
          }
          await Promise.all(
            batch.map(async (it) => (results[it.index] = await lane.execute(() => this.apply(term, it.action)))),
          );
        } finally {
          opts.settled?.(batch.map((it) => it.action.group));
        }
      }),
    );
    return results;
  }

  /** One fenced transaction for a batch: 'ok', 'conflict' (deposed), or 'retry' (some epoch moved: one by one). */
  private async applyBatch(term: Term, batch: readonly WireAction[]): Promise<'ok' | 'conflict' | 'retry'> {
    if (batch.length === 1) return this.apply(term, batch[0]!.action);
    const { client, keys } = this.deps;
    let txn = this.fenced(term);
    for (const { action: a } of batch) txn = txn.and(keys.assignment(a.group), 'Mod', '==', a.expectEpoch);
    const ops = batch.map(({ action: a, value }) =>
      a.type === 'put'
        ? client.put(keys.assignment(a.group)).value(value!)
        : client.delete().key(keys.assignment(a.group)),
    );
    // The promise sets the batch names go in the same transaction: a record that names a set is never in etcd
    // without it (common/promise-sets.ts).
    const res = await txn.then(...ops, ...setPuts(client, batch)).commit();
    if (!res.succeeded) {
      if (!(await this.stillLeader(term))) {
        this.deps.onDeposed('leader key is no longer ours');
        return 'conflict';
      }
      this.deps.log.info(
        { groups: batch.length },
        'an assignment of a batch changed under us; writing them one by one',
      );
      return 'retry';
    }
    const epoch = Number(res.header.revision);
    for (const { action, value } of batch) this.wrote(term, action, epoch, value);
    for (const it of batch) if (it.set) this.echo('promisesets', it.set.key, epoch);
    return 'ok';
  }

  private async stillLeader(term: Term): Promise<boolean> {
    const leader = await this.deps.client.get(this.deps.keys.leader()).exec();
    const kv = leader.kvs[0];
    return kv !== undefined && Number(kv.create_revision) === term.revision;
  }

  /** groups/<name>: the validated spec, for the agents' health checks. Written only when it changed. */
  async publishGroups(
    term: Term,
    groups: ReadonlyMap<string, FailoverGroup>,
    mirrors: { groups: Mirror; assignments: Mirror },
  ): Promise<void> {
    const { client, keys } = this.deps;
    const ops: (() => PutBuilder | DeleteBuilder)[] = [];
    for (const [name, g] of groups) {
      let value = this.groupJson.get(g);
      if (value === undefined) {
        const rec: GroupRecord = { name, generation: g.generation, spec: g.spec, checksHash: checksHash(g) };
        this.groupJson.set(g, (value = JSON.stringify(rec)));
      }
      if (mirrors.groups.get(keys.group(name))?.value === value) continue;
      ops.push(() => client.put(keys.group(name)).value(value));
    }
    for (const e of mirrors.groups.under(keys.groupsPrefix())) {
      const name = e.key.slice(keys.groupsPrefix().length);
      // Keep the record while an assignment exists: the holder still needs it to release hooks and SNAT.
      if (!groups.has(name) && !mirrors.assignments.get(keys.assignment(name)))
        ops.push(() => client.delete().key(e.key));
    }
    // Many records per fenced transaction: one transaction each made a cold start with 1,000 groups spend
    // seconds publishing them before any agent could report health (scale benchmark).
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < ops.length; i += GROUP_RECORDS_PER_TXN) {
      const batch = ops.slice(i, i + GROUP_RECORDS_PER_TXN);
      writes.push(
        this.writes.execute(() =>
          this.fenced(term)
            .then(...batch.map((op) => op()))
            .commit(),
        ),
      );
    }
    await Promise.all(writes);
  }

  /** One action in its own fenced transaction: the leader key must still be ours and the assignment unchanged. */
  async apply(term: Term, a: Action): Promise<'ok' | 'conflict'> {
    const { client, keys } = this.deps;
    const key = keys.assignment(a.group);
    const txn = this.fenced(term).and(key, 'Mod', '==', a.expectEpoch);
    const wire: WireAction = {
      index: 0,
      action: a,
      ...(a.type === 'put' ? assignmentWire(a.record, (d) => keys.promiseSet(d)) : {}),
    };
    const value = wire.value;
    const op = value !== undefined ? client.put(key).value(value) : client.delete().key(key);
    const res = await txn.then(op, ...setPuts(client, [wire])).commit();
    if (!res.succeeded) {
      if (!(await this.stillLeader(term))) {
        this.deps.onDeposed('leader key is no longer ours');
      } else {
        this.deps.log.info({ group: a.group, epoch: a.expectEpoch }, 'assignment changed under us; planning again');
      }
      return 'conflict';
    }
    this.wrote(term, a, Number(res.header.revision), value);
    if (wire.set) this.echo('promisesets', wire.set.key, Number(res.header.revision));
    return 'ok';
  }

  /**
   * Deletes the stored promise sets no assignment names (common/promise-sets.ts `collectable`: only sets last
   * written at or before the assignments mirror's revision, each compared on that mod revision), at most every
   * PROMISE_SET_COLLECT_MS, in the background. A delete that fails its compare was written again since: kept.
   */
  collectPromiseSets(term: Term, mirrors: { assignments: Mirror; promisesets: Mirror }): void {
    const now = this.deps.clock.mono();
    if (this.collecting || now < this.nextCollect) return;
    this.nextCollect = now + PROMISE_SET_COLLECT_MS;
    const { client, keys } = this.deps;
    const referenced = new Set<string>();
    for (const e of mirrors.assignments.under(keys.assignmentsPrefix())) {
      const ref = decodeEntry(AssignmentRecord, e)?.promiseSetRef;
      if (ref) referenced.add(ref);
    }
    const stale = collectable(
      mirrors.promisesets.under(keys.promiseSetsPrefix()),
      referenced,
      mirrors.assignments.revision,
      (k) => keys.promiseSetDigestOf(k),
    );
    if (!stale.length) return;
    this.collecting = true;
    void Promise.all(
      stale.map((e) =>
        this.writes.execute(() =>
          this.fenced(term).and(e.key, 'Mod', '==', e.modRevision).then(client.delete().key(e.key)).commit(),
        ),
      ),
    )
      .then((rs) => {
        const n = rs.filter((r) => r.succeeded).length;
        if (n) this.deps.log.info({ deleted: n }, 'deleted promise sets no assignment names');
      })
      .catch((err: unknown) => this.deps.log.warn({ err }, 'could not delete unused promise sets'))
      .finally(() => (this.collecting = false));
  }

  /**
   * Whether every key a watch change names is this leader's own put at the revision the mirror now shows: the pass
   * that wrote it planned every later step from it already (ownWrites), and the pass after a write is asked for by
   * the controller itself, so the echo wakes no pass. At 10,000 groups a placement's ~200 echoed batches each
   * started a ~0.3 s pass, and the watch fell seconds behind (a lost node's key deletion queued behind them).
   * A delete, a put by anyone else, or a put this leader made at another revision is not an echo.
   */
  ownEcho(kind: 'assignments' | 'promisesets', mirror: Mirror, changed: readonly string[]): boolean {
    const echoes = this.echoes[kind];
    let own = true;
    for (const k of changed) {
      const revs = echoes.get(k);
      const e = mirror.get(k);
      if (!revs || !e || !revs.includes(e.modRevision)) own = false;
      // The writes up to the one shown came back (or were overwritten before their event: a watch shows each).
      if (revs && e) {
        const left = revs.filter((r) => r > e.modRevision);
        if (left.length) echoes.set(k, left);
        else echoes.delete(k);
      }
    }
    // Writes whose echo never came one by one (a list after a broken watch shows them together): shown by now.
    if (echoes.size > MAX_ECHOES)
      for (const [k, revs] of echoes) if (revs.every((r) => r <= mirror.revision)) echoes.delete(k);
    return own;
  }

  /** A key this leader put at `revision` (a promise set goes in many transactions: each is remembered). */
  private echo(kind: 'assignments' | 'promisesets', key: string, revision: number): void {
    const revs = this.echoes[kind].get(key);
    if (revs) revs.push(revision);
    else this.echoes[kind].set(key, [revision]);
  }

  /**
   * The assignments this leader wrote or deleted that a mirror at `mirrorRevision` does not show yet. A mirror at
   * or past a write's revision shows it, or what came after it: the write is forgotten then.
   */
  ownWrites(mirrorRevision: number): ReadonlyMap<string, OwnWrite> {
    for (const [g, w] of this.recent) if (w.epoch <= mirrorRevision) this.recent.delete(g);
    return this.recent;
  }

  /** A written action: remembered until the mirror shows it, logged, and its event recorded. */
  private wrote(term: Term, a: Action, epoch: number, value?: string): void {
    if (a.type === 'put') this.echo('assignments', this.deps.keys.assignment(a.group), epoch);
    const prev = this.recent.get(a.group);
    if (!prev || prev.epoch < epoch) {
      // The record as a reader of etcd decodes it (the same schema as the mirror's entries), with the promise set
      // it names, as buildInput resolves it.
      const read =
        a.type === 'put'
          ? decode(AssignmentRecord, value ?? assignmentWire(a.record, (d) => this.deps.keys.promiseSet(d)).value)
          : undefined;
      const record =
        read && a.type === 'put' && a.record.promiseSet ? { ...read, promiseSet: a.record.promiseSet } : read;
      this.recent.set(a.group, record ? { epoch, record } : { epoch });
    }
    const log = this.deps.log.child({ group: a.group, epoch });
    if (a.type === 'put') {
      const r = a.record;
      log.info(
        { node: r.holder, holder: r.holder, release: r.release, reason: r.reason },
        r.release ? 'asked holder to release' : 'assignment written',
      );
    } else {
      log.info('assignment deleted');
    }
    if (a.event) this.event(term, { group: a.group, ...a.event, at: this.deps.clock.wall(), epoch });
  }

  /** Logs, counts and records a transition: in etcd (bounded history) and with the status sink (Events). */
  event(term: Term, ev: EventRecord, key?: string): void {
    const log = this.deps.log.child({ group: ev.group, epoch: ev.epoch });
    const what = ev.reason === 'kept-through-arbiter-outage' ? (ev.message ?? ev.reason) : 'failover';
    log.info({ from: ev.from, to: ev.to, reason: ev.reason, detectMs: ev.detectMs, outageMs: ev.outageMs }, what);
    // A keep is history, not a holder change.
    if (ev.reason !== 'kept-through-arbiter-outage') this.deps.metrics.transition(ev.group, ev.reason);
    const { keys } = this.deps;
    this.pendingEvents.push({
      term,
      key: key ?? keys.event(ev.group, ev.epoch),
      value: JSON.stringify(ev),
      prefix: keys.eventsPrefix(ev.group),
      log,
    });
    this.flushEvents();
    void this.deps.status.event(ev.group, ev).catch((err: unknown) => log.warn({ err }, 'could not publish the event'));
  }

  /**
   * events/<group>/<epoch>, bounded to the newest eventsPerGroup entries: the waiting events in fenced transactions
   * of up to EVENTS_PER_TXN, at most MAX_EVENT_WRITES_IN_FLIGHT at once (an event that comes alone goes alone, at
   * once; the ones that came meanwhile go together). Each transaction also counts each group's history; a group
   * over its bound is trimmed after it (listed and its oldest deleted, as before).
   */
  private flushEvents(): void {
    while (this.pendingEvents.length > 0 && this.eventTxns < MAX_EVENT_WRITES_IN_FLIGHT) {
      const term = this.pendingEvents[0]!.term;
      const keys = new Set<string>();
      let n = 0;
      // One term per transaction, and a key at most once (etcd refuses a key changed twice in one transaction).
      while (
        n < this.pendingEvents.length &&
        n < EVENTS_PER_TXN &&
        this.pendingEvents[n]!.term === term &&
        !keys.has(this.pendingEvents[n]!.key)
      )
        keys.add(this.pendingEvents[n++]!.key);
      const batch = this.pendingEvents.splice(0, n);
      this.eventTxns++;
      void this.recordEvents(term, batch)
        .catch((err: unknown) => {
          for (const e of batch) e.log.warn({ err }, 'could not record the event');
        })
        .finally(() => {
          this.eventTxns--;
          this.flushEvents();
        });
    }
  }

  private async recordEvents(
    term: Term,
    batch: readonly { key: string; value: string; prefix: string }[],
  ): Promise<void> {
    const { client } = this.deps;
    const prefixes = [...new Set(batch.map((e) => e.prefix))];
    const counts = prefixes.map((p) => {
      const r = Range.prefix(p);
      return { request_range: { key: r.start, range_end: r.end, count_only: true } };
    });
    const res = await this.fenced(term)
      .then(...batch.map((e) => client.put(e.key).value(e.value)), ...counts)
      .commit();
    if (!res.succeeded) throw new Error('the leader key is no longer ours');
    await Promise.all(
      prefixes.map(async (p, i) => {
        const count = Number(res.responses[batch.length + i]?.response_range?.count ?? 0);
        if (count > this.deps.eventsPerGroup) await this.trim(term, p);
      }),
    );
  }

  /**
   * outages/<group>/<key>: a period with the VIP on no node, as the agents measured it (controller/outages.ts).
   * History like events, bounded alike; a value already there (written by an earlier leader) is not written again.
   */
  async outage(term: Term, o: { key: string; record: OutageRecord; json: string }): Promise<void> {
    const { client, keys } = this.deps;
    const r = o.record;
    await this.outageWrites.execute(async () => {
      if ((await client.get(o.key).string()) === o.json) return;
      this.deps.log.info(
        { group: r.group, epoch: r.epoch, from: r.from, to: r.to, reason: r.reason, gapMs: r.gapMs },
        'VIP was on no node',
      );
      await this.putBounded(term, o.key, o.json, keys.outagesPrefix(r.group));
    });
  }

  private async putBounded(term: Term, key: string, value: string, prefix: string): Promise<void> {
    await this.fenced(term).then(this.deps.client.put(key).value(value)).commit();
    await this.trim(term, prefix);
  }

  /** Deletes the oldest keys under `prefix` beyond eventsPerGroup (key order). */
  private async trim(term: Term, prefix: string): Promise<void> {
    const { client } = this.deps;
    const names = await client.getAll().prefix(prefix).sort('Key', 'Ascend').keys();
    const excess = names.length - this.deps.eventsPerGroup;
    if (excess > 0) {
      const ops = names.slice(0, excess).map((k) => client.delete().key(k));
      await this.fenced(term)
        .then(...ops)
        .commit();
    }
  }
}
