// The Kubernetes source: FailoverGroup objects from the API server, through an informer (@kubernetes/client-node),
// and the way back: status (merge patch to the status subresource), Events, and the finalizer that keeps a deleted
// group's object until its VIPs are released on every node.
//
// The business logic never sees the client: the informer's handlers only record that something changed and wake
// the reconciler, which reads `list()` (a snapshot parsed with the one zod schema) and reports back through the
// StatusSink methods. The pure mapping lives in kube-objects.ts; finalizers and status patches go through one keyed
// queue, not the handlers.
import { makeInformer, type Informer, type KubeConfig, type ObjectCache } from '@kubernetes/client-node';
import type { Clock } from '../../common/clock.js';
import type { EventRecord } from '../../common/keyspace.js';
import type { Logger } from '../../common/log.js';
import { API_GROUP, API_VERSION, PLURAL, type FailoverGroup } from '../../crds/failovergroup.js';
import { FailoverGroupApi, statusCode } from './kube-client.js';
import { KeyedQueue } from './keyed-queue.js';
import {
  eventFor,
  FINALIZER,
  kubeEvent,
  statusPatch,
  toSourceGroup,
  worthAPass,
  type FailoverGroupObject,
} from './kube-objects.js';
import type { GroupReport, GroupSource, SourceGroup, StatusSink } from './types.js';

export { loadKubeConfig } from './kube-client.js';
export { FINALIZER, type FailoverGroupObject } from './kube-objects.js';

const PATH = `/apis/${API_GROUP}/${API_VERSION}/${PLURAL}`;

export interface KubernetesSourceOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  clock: Clock;
  /** Who reports (Event reportingInstance), e.g. the controller id. */
  instance: string;
  /** Namespace for the Events of these cluster-scoped objects (kubectl shows them with `get events -n default`). */
  eventNamespace?: string;
  /** First and largest delay before the informer is started again after an error. */
  restartDelayMs?: { min: number; max: number };
}

/** What the keyed queue does for a group: add the finalizer, and/or write status fields (merged, newest win). */
interface GroupWork {
  finalizer?: boolean;
  status?: Record<string, unknown>;
}

export class KubernetesSource implements GroupSource, StatusSink {
  readonly kind = 'kubernetes';
  private readonly api: FailoverGroupApi;
  private readonly log: Logger;
  private informer: (Informer<FailoverGroupObject> & ObjectCache<FailoverGroupObject>) | undefined;
  private readonly lastGood = new Map<string, { uid: string | undefined; group: FailoverGroup }>();
  /** The version of each object the last pass-worthy change was seen in (GenerationChangedPredicate). */
  private readonly seenVersions = new Map<string, FailoverGroupObject>();
  private signal: AbortSignal | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelay: number;
  private lastStartAt = 0;
  private listedOnce = false;
  /** Finalizers to add and status fields to write, per group, one write at a time per group. */
  private readonly queue: KeyedQueue<GroupWork>;
  private readonly eventNamespace: string;
  /** Counts of full lists (also after a 410), restarts after errors and updates skipped, for tests and logs. */
  readonly stats = { lists: 0, restarts: 0, errors: 0, skippedUpdates: 0 };

  constructor(private readonly opts: KubernetesSourceOptions) {
    this.api = new FailoverGroupApi(opts.kubeConfig, opts.clock);
    this.log = opts.log.child({ source: 'kubernetes' });
    this.restartDelay = opts.restartDelayMs?.min ?? 200;
    this.eventNamespace = opts.eventNamespace ?? 'default';
    this.queue = new KeyedQueue<GroupWork>({
      work: (group, w) => this.work(group, w),
      merge: (older, newer) => ({
        finalizer: older.finalizer || newer.finalizer,
        status: older.status || newer.status ? { ...older.status, ...newer.status } : undefined,
      }),
      retryMs: 1000,
      signal: () => this.signal,
    });
  }

  /** True once the first list is in: before that, `list()` is not a snapshot of anything. */
  synced(): boolean {
    return this.listedOnce;
  }

  /** Starts the informer; resolves once the first list is in (an empty snapshot would delete every assignment). */
  async start(signal: AbortSignal, onChange: () => void): Promise<void> {
    this.signal = signal;
    let firstList: () => void = () => undefined;
    const listed = new Promise<void>((res) => (firstList = res));
    const listFn = async () => {
      const list = await this.api.list();
      this.stats.lists++;
      this.log.debug(
        { items: list.items.length, resourceVersion: list.metadata?.resourceVersion },
        'listed FailoverGroups',
      );
      // The informer fills its cache right after this returns; the snapshot is complete on the next tick.
      setImmediate(() => {
        if (!this.listedOnce) {
          this.listedOnce = true;
          onChange();
        }
        firstList();
      });
      return list;
    };
    const informer = makeInformer<FailoverGroupObject>(this.opts.kubeConfig, PATH, listFn);
    this.informer = informer;
    const changed = (obj: FailoverGroupObject) => {
      const name = obj.metadata?.name;
      if (!name) return onChange();
      if (!worthAPass(this.seenVersions.get(name), obj)) {
        // Our own status patch (or another status-only change): no pass, and nothing to add.
        this.stats.skippedUpdates++;
        return;
      }
      this.seenVersions.set(name, obj);
      this.enqueueFinalizer(name);
      onChange();
    };
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', (obj: FailoverGroupObject) => {
      if (obj.metadata?.name) this.seenVersions.delete(obj.metadata.name);
      onChange();
    });
    informer.on('connect', () => {
      this.log.debug('FailoverGroup watch (re)connecting');
    });
    // ListWatch stops on any error but a 410 (after which it lists again by itself): start it again, with backoff.
    informer.on('error', (err: unknown) => {
      this.stats.errors++;
      if (signal.aborted) return;
      // An informer that ran for a while before failing starts again quickly; one that keeps failing backs off.
      if (this.opts.clock.mono() - this.lastStartAt > 30_000) this.restartDelay = this.opts.restartDelayMs?.min ?? 200;
      const delay = this.restartDelay;
      this.restartDelay = Math.min(this.restartDelay * 2, this.opts.restartDelayMs?.max ?? 5000);
      this.log.warn({ err, retryInMs: delay }, 'FailoverGroup informer failed; starting it again');
      if (this.restartTimer) clearTimeout(this.restartTimer);
      this.restartTimer = setTimeout(() => {
        if (signal.aborted) return;
        this.stats.restarts++;
        void this.startInformer(informer);
      }, delay);
    });
    const aborted = new Promise<void>((res) =>
      signal.addEventListener(
        'abort',
        () => {
          if (this.restartTimer) clearTimeout(this.restartTimer);
          this.queue.close();
          void informer.stop();
          res();
        },
        { once: true },
      ),
    );
    void this.startInformer(informer);
    await Promise.race([listed, aborted]);
    for (const o of informer.list()) if (o.metadata?.name) this.enqueueFinalizer(o.metadata.name);
    this.log.info({ groups: informer.list().length }, 'FailoverGroup informer started');
  }

  /** informer.start() reports failures through the 'error' handlers; a throw here is treated as one of those. */
  private async startInformer(informer: Informer<FailoverGroupObject>): Promise<void> {
    this.lastStartAt = this.opts.clock.mono();
    try {
      await informer.start();
    } catch (err) {
      this.log.warn({ err }, 'FailoverGroup informer could not start');
    }
  }

  list(): SourceGroup[] {
    const objs = this.informer?.list() ?? [];
    const out: SourceGroup[] = [];
    const seen = new Set<string>();
    for (const o of objs) {
      const name = o.metadata?.name;
      if (!name) continue;
      seen.add(name);
      const prev = this.lastGood.get(name);
      const uid = o.metadata?.uid;
      const sg = toSourceGroup(o, prev && prev.uid === uid ? prev.group : undefined);
      if (sg.group && !sg.error) this.lastGood.set(name, { uid, group: sg.group });
      out.push(sg);
    }
    for (const n of [...this.lastGood.keys()]) if (!seen.has(n)) this.lastGood.delete(n);
    return out;
  }

  private cached(name: string): FailoverGroupObject | undefined {
    return this.informer?.get(name);
  }

  private needsFinalizer(o: FailoverGroupObject | undefined): o is FailoverGroupObject {
    return o !== undefined && !o.metadata?.deletionTimestamp && !o.metadata?.finalizers?.includes(FINALIZER);
  }

  private enqueueFinalizer(name: string): void {
    if (!this.needsFinalizer(this.cached(name))) return;
    void this.queue.push(name, { finalizer: true }).catch(() => undefined);
  }

  /** One queued write for a group: the finalizer (if still missing), then the status fields. */
  private async work(group: string, w: GroupWork): Promise<void> {
    if (w.finalizer) await this.addFinalizer(group);
    if (w.status) await this.api.patchStatus(group, w.status, this.signal);
  }

  private async addFinalizer(name: string): Promise<void> {
    const o = this.cached(name);
    if (!this.needsFinalizer(o)) return;
    // resourceVersion makes the merge patch conditional: a concurrent change of the list is not overwritten.
    const finalizers = [...(o.metadata?.finalizers ?? []), FINALIZER];
    try {
      await this.api.patchFinalizers(name, finalizers, o.metadata?.resourceVersion);
      this.log.info({ group: name }, 'finalizer added');
    } catch (err) {
      const code = statusCode(err);
      // 404: gone; 409: the informer brings the newer version, whose update event enqueues the name again.
      if (code === 404 || code === 409) return;
      this.log.warn({ group: name, err }, 'could not add the finalizer');
      throw err;
    }
  }

  async report(group: string, report: GroupReport): Promise<void> {
    const o = this.cached(group);
    if (!o) return;
    const status = statusPatch(report, o.status, this.opts.clock.wall());
    await this.queue.push(group, { status });
    if (report.rejected !== undefined && !report.source.error) {
      const prev = o.status?.conditions?.find((c) => c.type === 'Accepted');
      if (prev?.status !== 'False') {
        const at = this.opts.clock.wall();
        await this.api.postEvent(
          this.eventNamespace,
          kubeEvent({
            group,
            uid: o.metadata?.uid,
            name: `${group}.rejected.${at.toString(16)}`,
            reason: 'Rejected',
            message: `not placed: ${report.rejected}`,
            type: 'Warning',
            at,
            namespace: this.eventNamespace,
            instance: this.opts.instance,
          }),
        );
      }
    }
  }

  async event(group: string, ev: EventRecord): Promise<void> {
    const o = this.cached(group);
    const e = eventFor(group, o?.metadata?.uid, ev, {
      namespace: this.eventNamespace,
      instance: this.opts.instance,
      now: this.opts.clock.wall(),
    });
    await this.api.postEvent(this.eventNamespace, e);
    if (o) {
      await this.queue.push(group, {
        status: {
          lastTransition: {
            from: ev.from,
            to: ev.to,
            reason: ev.reason,
            time: new Date(ev.at).toISOString(),
            durationMs: ev.outageMs ?? null,
          },
        },
      });
    }
  }

  async finalize(group: string): Promise<void> {
    const o = this.cached(group);
    const finalizers = o?.metadata?.finalizers;
    if (!o || !finalizers?.includes(FINALIZER)) return;
    try {
      await this.api.patchFinalizers(
        group,
        finalizers.filter((f) => f !== FINALIZER),
        o.metadata?.resourceVersion,
      );
      this.log.info({ group }, 'VIPs released everywhere; finalizer removed');
    } catch (err) {
      // 404: gone already; 409: the next pass sees the newer version and tries again.
      const code = statusCode(err);
      if (code !== 404 && code !== 409) throw err;
    }
  }
}
