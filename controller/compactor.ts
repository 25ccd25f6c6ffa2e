// Leader-driven etcd compaction (docs/etcd.md "Compaction"): etcd compacts nothing by default, and every write
// (heartbeats above all: a put per node every heartbeatMs) leaves a revision in its history until something does.
// The leading controller compacts, as kube-apiserver does for its etcd: every `intervalMs` it compacts to the
// revision it saw one interval before, so that at least one interval of history stays for a watch that reconnects
// (common/etcd-mirror.ts lists again after a compaction it missed anyway). Compaction is etcd-wide: on an etcd that
// something else compacts already (auto-compaction, a Kubernetes API server) set controller.yaml
// `compactionIntervalSeconds: 0`; two compactors do no harm beyond the smaller of their histories. Under etcd
// authentication only the root role may compact: there etcd's own auto-compaction does it (docs/etcd.md).
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../common/log.js';

export interface CompactorOptions {
  client: Etcd3;
  /** A key this controller may read (its etcd role covers the prefix only): its range's header has the revision. */
  probeKey: string;
  log: Logger;
  /** 0: never compact. */
  intervalMs: number;
  /** Only the leader compacts (one compactor per cluster); a new leader starts over (one interval of history). */
  leading: () => boolean;
  /** A compaction etcd took (the revision compacted to). */
  onCompacted?: (revision: number) => void;
}

export class Compactor {
  /** The revision seen at the previous tick while leading: the next compaction's target. */
  private previous: number | undefined;
  private compactedTo = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private deniedSaid = false;

  constructor(private readonly o: CompactorOptions) {}

  start(signal: AbortSignal): void {
    if (this.o.intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.o.intervalMs);
    this.timer.unref?.();
    signal.addEventListener('abort', () => this.stop(), { once: true });
    void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round (the timer calls it; tests call it by hand). Never throws. */
  async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      if (!this.o.leading()) {
        this.previous = undefined;
        return;
      }
      const now = await currentRevision(this.o.client, this.o.probeKey);
      const target = this.previous;
      this.previous = now;
      if (target === undefined || target <= this.compactedTo) return;
      await this.compact(target);
    } catch (err) {
      if (!/permission denied/i.test(String((err as Error)?.message ?? err)))
        this.o.log.warn({ err }, 'etcd compaction failed; trying again next interval');
      else if (!this.deniedSaid) {
        // etcd lets only the root role compact once authentication is on (deploy/etcd/setup.sh gives none).
        this.deniedSaid = true;
        this.o.log.error(
          { err },
          'etcd refused to compact (under etcd authentication Compact needs the root role): run etcd with ' +
            '--auto-compaction-mode=periodic --auto-compaction-retention=5m, and set compactionIntervalSeconds: 0',
        );
      }
    } finally {
      this.running = false;
    }
  }

  private async compact(revision: number): Promise<void> {
    try {
      await this.o.client.kv.compact({ revision: String(revision), physical: false });
    } catch (err) {
      // Someone else compacted further already: nothing left to do up to there.
      if (!/required revision has been compacted/i.test(String((err as Error)?.message ?? err))) throw err;
    }
    this.compactedTo = revision;
    this.o.log.debug({ revision }, 'etcd history compacted');
    this.o.onCompacted?.(revision);
  }
}

/** etcd's current revision (the header of a count-only range of one key). */
async function currentRevision(client: Etcd3, key: string): Promise<number> {
  const res = await client.kv.range({ key: Buffer.from(key), count_only: true });
  return Number(res.header.revision);
}
