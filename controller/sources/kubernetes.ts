// The Kubernetes source: FailoverGroup objects from the API server, through an informer (@kubernetes/client-node),
// and the way back: status (merge patch to the status subresource), Events, and the finalizer that keeps a deleted
// group's object until its VIPs are released on every node.
//
// The business logic never sees the client: the informer's handlers only record that something changed and wake
// the reconciler, which reads `list()` (a snapshot parsed with the one zod schema) and reports back through the
// StatusSink methods. Finalizers are added by a small keyed queue, not inside the handlers.
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type Informer,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import type { Clock } from '../../common/clock.js';
import type { EventRecord } from '../../common/keyspace.js';
import type { Logger } from '../../common/log.js';
import {
  API_GROUP,
  API_VERSION,
  KIND,
  parseFailoverGroup,
  PLURAL,
  type FailoverGroup,
  type Phase,
  type Status,
  type ValidationError,
} from '../../crds/failovergroup.js';
import type { GroupDecision } from '../planner.js';
import type { GroupReport, GroupSource, SourceGroup, StatusSink } from './types.js';

export const FINALIZER = 'vipwarden.io/release';
const API_VERSION_FULL = `${API_GROUP}/${API_VERSION}`;
const PATH = `/apis/${API_GROUP}/${API_VERSION}/${PLURAL}`;
const COMPONENT = 'vipwarden-controller';

/** A FailoverGroup as the API server returns it (spec and status are validated by parseFailoverGroup, not here). */
export interface FailoverGroupObject extends KubernetesObject {
  spec?: unknown;
  status?: Partial<Status>;
}

type Condition = NonNullable<Status['conditions']>[number];

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

/** Loads a kubeconfig: the file named in the controller config, else in-cluster, else the default (KUBECONFIG). */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown } | null;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

function errText(err: unknown): string {
  const code = statusCode(err);
  const body = (err as { body?: unknown } | null)?.body;
  const msg = err instanceof Error ? err.message : String(err);
  return code !== undefined ? `HTTP ${code}: ${typeof body === 'string' ? body.slice(0, 500) : msg}` : msg;
}

/** RFC 3339 with second precision, as metav1.Time is written. */
function kubeTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Pure: one object of the API to a SourceGroup, keeping the last valid spec when the new one is invalid. */
export function toSourceGroup(obj: FailoverGroupObject, lastGood: FailoverGroup | undefined): SourceGroup {
  const md = obj.metadata ?? {};
  const name = md.name ?? '';
  const r = parseFailoverGroup(obj, `FailoverGroup ${name}`);
  const created = md.creationTimestamp ? new Date(md.creationTimestamp).getTime() : undefined;
  const out: SourceGroup = {
    name,
    group: r.ok ? r.group : lastGood,
    createdAt: created !== undefined && Number.isFinite(created) ? created : undefined,
    generation: md.generation,
    deleting: md.deletionTimestamp !== undefined && md.deletionTimestamp !== null,
  };
  if (!r.ok) out.error = r.error as ValidationError;
  return out;
}

/** Pure: the status a report asks for, as a merge patch of `status` (null clears a field). */
export function statusPatch(
  report: GroupReport,
  current: Partial<Status> | undefined,
  now: number,
): Record<string, unknown> {
  const d: GroupDecision | undefined = report.decision;
  const src = report.source;
  const invalid = src.error !== undefined;
  const rejected = report.rejected;
  let phase: Phase;
  if (rejected !== undefined && (!d || !invalid)) phase = 'Invalid';
  else if (d) phase = d.phase;
  else phase = 'Pending';
  const vips = (src.group?.spec.vips ?? []).map((v) => v.address);

  const accepted: Omit<Condition, 'lastTransitionTime'> =
    rejected === undefined
      ? {
          type: 'Accepted',
          status: 'True',
          reason: 'Valid',
          message: 'the spec is valid and its VIPs are not claimed by another group',
        }
      : invalid
        ? {
            type: 'Accepted',
            status: 'False',
            reason: 'InvalidSpec',
            message: src.group ? `${rejected} (the last valid spec stays in force)` : rejected,
          }
        : { type: 'Accepted', status: 'False', reason: 'VIPConflict', message: rejected };
  const holding = d?.holder !== null && d?.holder !== undefined && (phase === 'Active' || phase === 'Degraded');
  const ready: Omit<Condition, 'lastTransitionTime'> = holding
    ? { type: 'Ready', status: 'True', reason: phase, message: `${vips.join(', ')} held by ${d?.holder}` }
    : { type: 'Ready', status: 'False', reason: phase, message: d?.message ?? rejected ?? 'not placed yet' };
  const conditions = [accepted, ready].map((c): Condition => {
    const prev = current?.conditions?.find((p) => p.type === c.type);
    const same = prev && prev.status === c.status;
    return {
      ...c,
      lastTransitionTime: same && prev.lastTransitionTime ? prev.lastTransitionTime : kubeTime(now),
      ...(src.generation !== undefined ? { observedGeneration: src.generation } : {}),
    };
  });
  const status: Record<string, unknown> = {
    phase,
    holder: d?.holder ?? null,
    epoch: d && d.epoch > 0 ? d.epoch : null,
    vips: phase === 'Invalid' && !d ? null : vips,
    observedGeneration: src.generation ?? null,
    nodes: d ? d.nodes.map((n) => ({ name: n.name, live: n.live, healthy: n.healthy, priority: n.priority })) : null,
    conditions,
  };
  return status;
}

/** Pure: the Event for one transition. */
export function eventFor(
  group: string,
  uid: string | undefined,
  ev: EventRecord,
  opts: { namespace: string; instance: string; now: number },
): CoreV1Event {
  const figures = [
    ev.detectMs !== undefined ? `detected in ${Math.round(ev.detectMs)} ms` : '',
    ev.outageMs !== undefined ? `outage ${Math.round(ev.outageMs)} ms` : '',
  ].filter(Boolean);
  const tail = `(${ev.reason}${figures.length ? `; ${figures.join(', ')}` : ''}, epoch ${ev.epoch})`;
  let reason: string;
  let message: string;
  let type = 'Normal';
  if (ev.from && ev.to) {
    reason = 'Failover';
    message = `VIPs moved from ${ev.from} to ${ev.to} ${tail}`;
  } else if (ev.to) {
    reason = 'Assigned';
    message = `VIPs assigned to ${ev.to} ${tail}`;
  } else {
    reason = ev.reason === 'deleted' ? 'Released' : 'NoHealthyNode';
    message =
      ev.reason === 'deleted'
        ? `VIPs released by ${ev.from ?? 'no node'} ${tail}`
        : `VIPs left ${ev.from ?? 'no node'}; no node can hold them ${tail}`;
    if (ev.reason !== 'deleted') type = 'Warning';
  }
  const at = new Date(ev.at);
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${group}.${ev.epoch.toString(16)}`, namespace: opts.namespace },
    involvedObject: { apiVersion: API_VERSION_FULL, kind: KIND, name: group, ...(uid ? { uid } : {}) },
    reason,
    message: ev.message ? `${message}: ${ev.message}` : message,
    type,
    count: 1,
    firstTimestamp: at,
    lastTimestamp: at,
    source: { component: COMPONENT },
    reportingComponent: COMPONENT,
    reportingInstance: opts.instance,
    action: reason,
  };
}

export class KubernetesSource implements GroupSource, StatusSink {
  readonly kind = 'kubernetes';
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly log: Logger;
  private informer: (Informer<FailoverGroupObject> & ObjectCache<FailoverGroupObject>) | undefined;
  private readonly lastGood = new Map<string, { uid: string | undefined; group: FailoverGroup }>();
  /** Names whose finalizer may need adding; worked off one at a time. */
  private readonly finalizerQueue = new Set<string>();
  private finalizerRunning = false;
  private signal: AbortSignal | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelay: number;
  private lastStartAt = 0;
  /** Status fields waiting to be written, and the writer running for each group. */
  private readonly pendingStatus = new Map<string, Record<string, unknown>>();
  private readonly statusRuns = new Map<string, Promise<void>>();
  private readonly eventNamespace: string;
  /** Counts of full lists (also after a 410) and restarts after errors, for tests and logs. */
  readonly stats = { lists: 0, restarts: 0, errors: 0 };

  constructor(private readonly opts: KubernetesSourceOptions) {
    this.custom = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.log = opts.log.child({ source: 'kubernetes' });
    this.restartDelay = opts.restartDelayMs?.min ?? 200;
    this.eventNamespace = opts.eventNamespace ?? 'default';
  }

  /** Starts the informer; resolves once the first list is in (an empty snapshot would delete every assignment). */
  async start(signal: AbortSignal, onChange: () => void): Promise<void> {
    this.signal = signal;
    let firstList: () => void = () => undefined;
    const listed = new Promise<void>((res) => (firstList = res));
    const listFn = async () => {
      const list = (await this.custom.listClusterCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        plural: PLURAL,
      })) as {
        items: FailoverGroupObject[];
        metadata?: { resourceVersion?: string };
      };
      this.stats.lists++;
      this.log.debug(
        { items: list.items.length, resourceVersion: list.metadata?.resourceVersion },
        'listed FailoverGroups',
      );
      // The informer fills its cache right after this returns; the snapshot is complete on the next tick.
      setImmediate(firstList);
      return list;
    };
    const informer = makeInformer<FailoverGroupObject>(this.opts.kubeConfig, PATH, listFn);
    this.informer = informer;
    const changed = (obj: FailoverGroupObject) => {
      const name = obj.metadata?.name;
      if (name) this.enqueueFinalizer(name);
      onChange();
    };
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', () => onChange());
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
      this.log.warn({ err: errText(err), retryInMs: delay }, 'FailoverGroup informer failed; starting it again');
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
      this.log.warn({ err: errText(err) }, 'FailoverGroup informer could not start');
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

  private enqueueFinalizer(name: string): void {
    const o = this.cached(name);
    if (!o || o.metadata?.deletionTimestamp || o.metadata?.finalizers?.includes(FINALIZER)) return;
    this.finalizerQueue.add(name);
    if (!this.finalizerRunning) void this.runFinalizers();
  }

  private async runFinalizers(): Promise<void> {
    this.finalizerRunning = true;
    try {
      while (this.finalizerQueue.size > 0 && !this.signal?.aborted) {
        const name = this.finalizerQueue.values().next().value as string;
        this.finalizerQueue.delete(name);
        const o = this.cached(name);
        if (!o || o.metadata?.deletionTimestamp || o.metadata?.finalizers?.includes(FINALIZER)) continue;
        // resourceVersion makes the merge patch conditional: a concurrent change of the list is not overwritten.
        const finalizers = [...(o.metadata?.finalizers ?? []), FINALIZER];
        try {
          await this.custom.patchClusterCustomObject(
            {
              group: API_GROUP,
              version: API_VERSION,
              plural: PLURAL,
              name,
              body: { metadata: { finalizers, resourceVersion: o.metadata?.resourceVersion } },
            },
            MERGE_PATCH,
          );
          this.log.info({ group: name }, 'finalizer added');
        } catch (err) {
          const code = statusCode(err);
          if (code === 404) continue;
          // 409: the informer brings the newer version, whose update event enqueues the name again.
          if (code !== 409) this.log.warn({ group: name, err: errText(err) }, 'could not add the finalizer');
          if (code !== 409) setTimeout(() => this.enqueueFinalizer(name), 1000);
        }
      }
    } finally {
      this.finalizerRunning = false;
    }
  }

  async report(group: string, report: GroupReport): Promise<void> {
    const o = this.cached(group);
    if (!o) return;
    const status = statusPatch(report, o.status, this.opts.clock.wall());
    await this.patchStatus(group, status);
    if (report.rejected !== undefined && !report.source.error) {
      const prev = o.status?.conditions?.find((c) => c.type === 'Accepted');
      if (prev?.status !== 'False') {
        await this.createEvent(
          group,
          o.metadata?.uid,
          'Rejected',
          `not placed: ${report.rejected}`,
          'Warning',
          `${group}.rejected.${this.opts.clock.wall().toString(16)}`,
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
    await this.postEvent(e);
    if (o) {
      await this.patchStatus(group, {
        lastTransition: {
          from: ev.from,
          to: ev.to,
          reason: ev.reason,
          time: new Date(ev.at).toISOString(),
          durationMs: ev.outageMs ?? null,
        },
      });
    }
  }

  async finalize(group: string): Promise<void> {
    const o = this.cached(group);
    const finalizers = o?.metadata?.finalizers;
    if (!o || !finalizers?.includes(FINALIZER)) return;
    try {
      await this.custom.patchClusterCustomObject(
        {
          group: API_GROUP,
          version: API_VERSION,
          plural: PLURAL,
          name: group,
          body: {
            metadata: {
              finalizers: finalizers.filter((f) => f !== FINALIZER),
              resourceVersion: o.metadata?.resourceVersion,
            },
          },
        },
        MERGE_PATCH,
      );
      this.log.info({ group }, 'VIPs released everywhere; finalizer removed');
    } catch (err) {
      // 404: gone already; 409: the next pass sees the newer version and tries again.
      const code = statusCode(err);
      if (code !== 404 && code !== 409) throw err;
    }
  }

  /**
   * Queues a status merge patch. Patches of one group go out one at a time, newest fields winning, so that an older
   * report can never land after a newer one; a patch that keeps failing is tried again later.
   */
  private patchStatus(group: string, status: Record<string, unknown>): Promise<void> {
    this.pendingStatus.set(group, { ...this.pendingStatus.get(group), ...status });
    let run = this.statusRuns.get(group);
    if (!run) {
      run = this.flushStatus(group).finally(() => this.statusRuns.delete(group));
      this.statusRuns.set(group, run);
    }
    return run;
  }

  private async flushStatus(group: string): Promise<void> {
    for (
      let pending = this.pendingStatus.get(group);
      pending && !this.signal?.aborted;
      pending = this.pendingStatus.get(group)
    ) {
      this.pendingStatus.delete(group);
      try {
        await this.sendStatus(group, pending);
      } catch (err) {
        // Keep what failed (under anything newer) and try again in a while; the caller hears of the failure.
        this.pendingStatus.set(group, { ...pending, ...this.pendingStatus.get(group) });
        const retry = setTimeout(() => void this.patchStatus(group, {}).catch(() => undefined), 2000);
        retry.unref();
        throw err;
      }
    }
  }

  private async sendStatus(group: string, status: Record<string, unknown>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.custom.patchClusterCustomObjectStatus(
          { group: API_GROUP, version: API_VERSION, plural: PLURAL, name: group, body: { status } },
          MERGE_PATCH,
        );
        return;
      } catch (err) {
        const code = statusCode(err);
        if (code === 404) return;
        const transient = code === undefined || code === 409 || code === 429 || code >= 500;
        if (!transient || attempt >= 3 || this.signal?.aborted) throw new Error(`status of ${group}: ${errText(err)}`);
        await this.opts.clock.sleep(200 * attempt, this.signal);
      }
    }
  }

  private async createEvent(
    group: string,
    uid: string | undefined,
    reason: string,
    message: string,
    type: string,
    name: string,
  ): Promise<void> {
    const now = new Date(this.opts.clock.wall());
    await this.postEvent({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace: this.eventNamespace },
      involvedObject: { apiVersion: API_VERSION_FULL, kind: KIND, name: group, ...(uid ? { uid } : {}) },
      reason,
      message,
      type,
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      source: { component: COMPONENT },
      reportingComponent: COMPONENT,
      reportingInstance: this.opts.instance,
      action: reason,
    });
  }

  private async postEvent(e: CoreV1Event): Promise<void> {
    try {
      await this.core.createNamespacedEvent({ namespace: this.eventNamespace, body: e });
    } catch (err) {
      // The same transition reported twice (a pass repeated after a conflict) is one Event.
      if (statusCode(err) === 409) return;
      throw new Error(`event for ${e.involvedObject.name}: ${errText(err)}`);
    }
  }
}
