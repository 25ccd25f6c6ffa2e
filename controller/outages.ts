// The leader's view of the agents' presence records (presence/<node>/<group>): merged, so that what an agent said
// stays known after its key went with its lease, and turned into outage records (controller/gaps.ts) to write.
import type { Entry } from '../common/etcd.js';
import { decode, type Keys } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';
import { PRESENCE_KEPT, PresenceRecord, type OutageRecord } from '../common/presence.js';
import { pairOutages, type NodeChange } from './gaps.js';

/** Changes kept per node and group once merged (agents publish PRESENCE_KEPT; a new lease starts the list anew). */
const MERGED_KEPT = 2 * PRESENCE_KEPT;

export class OutageHistory {
  /** group -> node -> changes, oldest first. */
  private readonly seen = new Map<string, Map<string, NodeChange[]>>();
  /** group -> outage key -> value written (only keys the merged changes still give: bounded with them). */
  private readonly written = new Map<string, Map<string, string>>();

  constructor(private readonly deps: { keys: Keys; log: Logger }) {}

  /** Merges the records in etcd; returns the groups whose changes grew. */
  observe(entries: Iterable<Entry>): Set<string> {
    const { keys, log } = this.deps;
    const changed = new Set<string>();
    for (const e of entries) {
      const parts = keys.presenceParts(e.key);
      const rec = decode(PresenceRecord, e.value, (why) => log.warn({ key: e.key, why }, 'ignoring a presence record'));
      if (!parts || !rec) continue;
      let byNode = this.seen.get(parts.group);
      if (!byNode) this.seen.set(parts.group, (byNode = new Map()));
      const have = byNode.get(parts.node) ?? [];
      const ids = new Set(have.map(id));
      const fresh = rec.changes
        .map((c): NodeChange => ({ ...c, node: parts.node, ...(rec.boot ? { boot: rec.boot } : {}) }))
        .filter((c) => !ids.has(id(c)));
      if (fresh.length === 0) continue;
      byNode.set(parts.node, [...have, ...fresh].sort((a, b) => a.at - b.at).slice(-MERGED_KEPT));
      changed.add(parts.group);
    }
    return changed;
  }

  /** The outages of these groups not written yet (or changed since: a removal reported late). */
  pending(groups: Iterable<string>): { key: string; record: OutageRecord; json: string }[] {
    const out: { key: string; record: OutageRecord; json: string }[] = [];
    for (const g of groups) {
      const changes = [...(this.seen.get(g)?.values() ?? [])].flat();
      const done = this.written.get(g) ?? new Map<string, string>();
      const now = new Map<string, string>();
      for (const record of pairOutages(g, changes)) {
        const key = this.deps.keys.outage(g, record.epoch, record.to, record.toAt);
        const json = JSON.stringify(record);
        if (done.get(key) === json) now.set(key, json);
        else out.push({ key, record, json });
      }
      this.written.set(g, now);
    }
    return out;
  }

  wrote(group: string, key: string, json: string): void {
    let m = this.written.get(group);
    if (!m) this.written.set(group, (m = new Map()));
    m.set(key, json);
  }

  /** Groups that no longer exist: their history goes. */
  keepOnly(groups: ReadonlySet<string>): void {
    for (const g of [...this.seen.keys()]) if (!groups.has(g)) this.seen.delete(g);
    for (const g of [...this.written.keys()]) if (!groups.has(g)) this.written.delete(g);
  }
}

function id(c: { kind: string; epoch: number; at: number }): string {
  return `${c.kind}/${c.epoch}/${c.at}`;
}
