// The event "kept through arbiter outage (N s)": agents report each keep by failsafe promises in their node record
// once etcd answers again (NodeRecord.failsafe.kept); the leader turns each new one into an event (history only).
import type { Entry } from '../common/etcd.js';
import { NodeRecord, type EventRecord, type Keys } from '../common/keyspace.js';
import { decodeEntry } from './parsed.js';

export class KeptEvents {
  /** Keeps already turned into events (by key), of the records seen last. */
  private seen = new Set<string>();
  private first = true;

  constructor(private readonly keys: Keys) {}

  /**
   * The keeps reported since the last call, as events with their keys. The first call (a new term) reports all
   * that are in the records: writing one again is harmless (same key, same value).
   */
  observe(nodes: Iterable<Entry>): { key: string; event: EventRecord }[] {
    const out: { key: string; event: EventRecord }[] = [];
    const now = new Set<string>();
    for (const e of nodes) {
      const rec = decodeEntry(NodeRecord, e);
      for (const k of rec?.failsafe?.kept ?? []) {
        const key = this.keys.keptEvent(k.group, k.epoch, rec!.name, k.at);
        now.add(key);
        if (this.seen.has(key) && !this.first) continue;
        const s = Math.round(k.ms / 1000);
        out.push({
          key,
          event: {
            group: k.group,
            from: rec!.name,
            to: rec!.name,
            reason: 'kept-through-arbiter-outage',
            at: k.at,
            epoch: k.epoch,
            message: `kept through arbiter outage (${s} s)`,
          },
        });
      }
    }
    this.seen = now;
    this.first = false;
    return out;
  }
}
