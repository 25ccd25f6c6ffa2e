// Rejected groups in etcd (rejected/<group>), so that `vipwarden status` can list them with the reason on a bare VM
// as well as in Kubernetes (where the status condition says it too). Informational only: nothing reads it to decide.
// A decorator over the source's StatusSink and GroupSource, wired in main.ts: the controller itself is unchanged.
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../common/clock.js';
import { type Keys, type RejectedRecord } from '../common/keyspace.js';
import type { Logger } from '../common/log.js';
import type { GroupReport, GroupSource, SourceGroup, StatusSink } from './sources/types.js';

export class RejectedInEtcd {
  /** The groups this process wrote a rejected/ key for, with the reason written. */
  private readonly written = new Map<string, string>();

  constructor(private readonly deps: { client: Etcd3; keys: Keys; clock: Pick<Clock, 'wall'>; log: Logger }) {}

  sink(inner: StatusSink): StatusSink {
    return {
      report: async (group: string, report: GroupReport) => {
        await Promise.all([inner.report(group, report), this.record(group, report.rejected)]);
      },
      event: (group, event) => inner.event(group, event),
      finalize: async (group) => {
        await Promise.all([inner.finalize(group), this.record(group, undefined)]);
      },
    };
  }

  /** The same source; a group that is gone from it loses its rejected/ key. */
  source(inner: GroupSource): GroupSource {
    return {
      kind: inner.kind,
      start: (signal, onChange) => inner.start(signal, onChange),
      list: (): SourceGroup[] => {
        const groups = inner.list();
        if (this.written.size > 0) {
          const names = new Set(groups.map((g) => g.name));
          for (const name of this.written.keys()) if (!names.has(name)) void this.record(name, undefined);
        }
        return groups;
      },
    };
  }

  private loaded: Promise<void> | undefined;

  /** What an earlier leader left: read once, so that those keys go too when their group is placed or gone. */
  private load(): Promise<void> {
    this.loaded ??= (async () => {
      const { client, keys } = this.deps;
      const prefix = keys.rejectedPrefix();
      const res = await client.getAll().prefix(prefix).keys();
      for (const k of res) if (!this.written.has(k.slice(prefix.length))) this.written.set(k.slice(prefix.length), '');
    })().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }

  private async record(group: string, reason: string | undefined): Promise<void> {
    const { client, keys, clock, log } = this.deps;
    try {
      if (reason === undefined) {
        await this.load();
        if (!this.written.has(group)) return;
        this.written.delete(group);
        await client.delete().key(keys.rejected(group)).exec();
      } else {
        await this.load();
        if (this.written.get(group) === reason) return;
        this.written.set(group, reason);
        const rec: RejectedRecord = { reason, at: clock.wall() };
        await client.put(keys.rejected(group)).value(JSON.stringify(rec)).exec();
      }
    } catch (err) {
      this.written.delete(group);
      log.warn({ group, err }, 'could not record the rejected group in etcd');
    }
  }
}
