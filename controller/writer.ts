// The leader's writes to etcd, each in a transaction fenced on its leader key (DESIGN.md Safety 4): assignments
// (also compared with the epoch they were planned from), the group records agents run checks from, and the bounded
// event history. Writes in flight are capped with cockatiel bulkheads.
import { bulkhead, type BulkheadPolicy } from 'cockatiel';
import type { DeleteBuilder, Etcd3, PutBuilder } from 'etcd3';
import type { Clock } from '../common/clock.js';
import type { Mirror } from '../common/etcd.js';
import type { EventRecord, GroupRecord, Keys } from '../common/keyspace.js';
import type { OutageRecord } from '../common/presence.js';
import type { Logger } from '../common/log.js';
import type { FailoverGroup } from '../crds/failovergroup.js';
import type { Term } from './election.js';
import type { ControllerMetrics } from './metrics.js';
import { checksHash, type Action } from './planner.js';
import type { StatusSink } from './sources/types.js';

/**
 * etcd writes in flight at once. Thousands of transactions started in one go (first placement of 1,000 groups)
 * kept the event loop and the one HTTP/2 connection busy for over a second: the leader's own keepalive answers
 * came too late and the controller deposed itself (seen in the scale benchmark, hack/bench/scale.ts).
 */
const MAX_WRITES_IN_FLIGHT = 32;

/** Events are history: a few at a time, so that they do not hold up assignments (two requests each). */
const MAX_EVENT_WRITES_IN_FLIGHT = 4;

/** Outage records (history too): fewer still. */
const MAX_OUTAGE_WRITES_IN_FLIGHT = 2;

/** Group records written per transaction (etcd takes up to 128 operations in one by default). */
const GROUP_RECORDS_PER_TXN = 100;

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
  private readonly eventWrites: BulkheadPolicy = bulkhead(MAX_EVENT_WRITES_IN_FLIGHT, Infinity);
  /** Outages apart from events: they never hold up an event (tests read events right after a move). */
  private readonly outageWrites: BulkheadPolicy = bulkhead(MAX_OUTAGE_WRITES_IN_FLIGHT, Infinity);
  /** groups/<name> values by group object (parsed once, never changed in place): not serialized on every pass. */
  private readonly groupJson = new WeakMap<FailoverGroup, string>();

  constructor(private readonly deps: FencedWriterDeps) {}

  private fenced(term: Term) {
    return this.deps.client.if(this.deps.keys.leader(), 'Create', '==', term.revision);
  }

  /** Applies every action, a bounded number at a time. */
  async applyAll(term: Term, actions: readonly Action[]): Promise<('ok' | 'conflict')[]> {
    return Promise.all(actions.map((a) => this.writes.execute(() => this.apply(term, a))));
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

  /** One fenced transaction per action: the leader key must still be ours and the assignment unchanged. */
  async apply(term: Term, a: Action): Promise<'ok' | 'conflict'> {
    const { client, keys } = this.deps;
    const key = keys.assignment(a.group);
    const txn = this.fenced(term).and(key, 'Mod', '==', a.expectEpoch);
    const op = a.type === 'put' ? client.put(key).value(JSON.stringify(a.record)) : client.delete().key(key);
    const res = await txn.then(op).commit();
    if (!res.succeeded) {
      const leader = await client.get(keys.leader()).exec();
      const kv = leader.kvs[0];
      if (!kv || Number(kv.create_revision) !== term.revision) {
        this.deps.onDeposed('leader key is no longer ours');
      } else {
        this.deps.log.info({ group: a.group, epoch: a.expectEpoch }, 'assignment changed under us; planning again');
      }
      return 'conflict';
    }
    const epoch = Number(res.header.revision);
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
    return 'ok';
  }

  /** Logs, counts and records a transition: in etcd (bounded history) and with the status sink (Events). */
  event(term: Term, ev: EventRecord, key?: string): void {
    const log = this.deps.log.child({ group: ev.group, epoch: ev.epoch });
    const what = ev.reason === 'kept-through-arbiter-outage' ? (ev.message ?? ev.reason) : 'failover';
    log.info({ from: ev.from, to: ev.to, reason: ev.reason, detectMs: ev.detectMs, outageMs: ev.outageMs }, what);
    // A keep is history, not a holder change.
    if (ev.reason !== 'kept-through-arbiter-outage') this.deps.metrics.transition(ev.group, ev.reason);
    void this.eventWrites
      .execute(() => this.recordEvent(term, ev, key))
      .catch((err: unknown) => log.warn({ err }, 'could not record the event'));
    void this.deps.status.event(ev.group, ev).catch((err: unknown) => log.warn({ err }, 'could not publish the event'));
  }

  /** events/<group>/<epoch>, bounded to the newest eventsPerGroup entries. */
  private recordEvent(term: Term, ev: EventRecord, key?: string): Promise<void> {
    const { keys } = this.deps;
    const k = key ?? keys.event(ev.group, ev.epoch);
    return this.putBounded(term, k, JSON.stringify(ev), keys.eventsPrefix(ev.group));
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
    const { client } = this.deps;
    await this.fenced(term).then(client.put(key).value(value)).commit();
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
