// The cloud floating IP as a GroupResource: on acquire, point the group's floating IP at this node, in the
// background (the VIPs already work; a slow or failing cloud API must not hold up the rest, nor make the node give
// the group up), then keep it in line on a period (keeper.ts: a late assign of an old holder is undone). Nothing
// happens on release but the end of that period: the next holder reassigns the IP, and an "unassign" from the old
// holder could land after the new holder's assign. Work stops as soon as the epoch is no longer current.
import type { Registry } from 'prom-client';
import type { Clock } from '../../common/clock.js';
import type { CloudProviders } from '../../crds/failovergroup.js';
import type { AgentConfig } from '../config.js';
import type { GroupResource, ResourceContext } from '../resources.js';
import { digitalocean } from './digitalocean.js';
import { keepInLine, reassertCounter } from './keeper.js';
import {
  ensureAssigned,
  readTokenFile,
  type EnsureOutcome,
  type FloatingIpProvider,
  type ProviderFactory,
} from './provider.js';

/** One line per cloud. Adding a cloud: a provider file, a line here, its name in CloudProviders (crds). */
export const PROVIDERS: Record<(typeof CloudProviders)[number], ProviderFactory> = {
  digitalocean,
};

export interface CloudResourceDeps {
  config: Pick<AgentConfig, 'cloud' | 'credentials'>;
  clock: Clock;
  fetch?: typeof fetch;
  /** For tests: provider construction (default PROVIDERS). */
  providers?: Partial<Record<string, ProviderFactory>>;
  onOutcome?(group: string, outcome: EnsureOutcome | { result: 'failed'; error: string }): void;
  /** Each re-assert: the holder found the floating IP pointing at `from` and points it at itself again. */
  onReassert?(group: string, from: string | null, to: string): void;
  /** Where vipwarden_cloud_floating_ip_reasserts_total goes (the agent's metrics registry). */
  registry?: Registry;
}

interface Task {
  ac: AbortController;
  /** The first assignment is done (its outcome reported). */
  first: Promise<void>;
  /** The period has ended too. */
  done: Promise<void>;
}

export class CloudResource implements GroupResource {
  readonly name = 'cloud';
  private readonly tasks = new Map<string, Task>();
  private readonly cache = new Map<string, FloatingIpProvider>();
  private readonly reasserts;

  constructor(private readonly deps: CloudResourceDeps) {
    this.reasserts = deps.registry ? reassertCounter(deps.registry) : undefined;
  }

  async acquire(ctx: ResourceContext): Promise<void> {
    const cloud = ctx.spec?.cloud;
    this.stop(ctx.group);
    if (!cloud) return;
    const ac = new AbortController();
    const signal = AbortSignal.any([ac.signal, ctx.signal]);
    const log = ctx.log.child({ provider: cloud.provider, floatingIp: cloud.floatingIp });
    let firstDone!: () => void;
    const first = new Promise<void>((resolve) => (firstDone = resolve));
    const done = (async () => {
      let provider: FloatingIpProvider;
      try {
        provider = this.provider(cloud.provider, cloud.credentials ?? cloud.provider);
      } catch (err) {
        // A configuration error: no period would fix it.
        log.error({ err }, 'floating IP could not be pointed at this node');
        this.deps.onOutcome?.(ctx.group, { result: 'failed', error: String(err) });
        return;
      }
      const common = { provider, ip: cloud.floatingIp, isCurrent: ctx.isCurrent, signal, clock: this.deps.clock, log };
      const retry = this.deps.config.cloud.retry;
      try {
        const outcome = await ensureAssigned({ ...common, retry });
        if (outcome.result === 'superseded') {
          log.info({ attempts: outcome.attempts }, 'floating IP: assignment moved on, stopped');
          this.deps.onOutcome?.(ctx.group, outcome);
          return;
        }
        log.info(
          { result: outcome.result, instance: outcome.instance, attempts: outcome.attempts },
          'floating IP points at this node',
        );
        this.deps.onOutcome?.(ctx.group, outcome);
      } catch (err) {
        // The API may come back: the period below tries again.
        log.error({ err }, 'floating IP could not be pointed at this node');
        this.deps.onOutcome?.(ctx.group, { result: 'failed', error: String(err) });
      } finally {
        firstDone();
      }
      const end = await keepInLine({
        ...common,
        retry,
        periodMs: this.deps.config.cloud.checkIntervalMs,
        confirm: ctx.confirmLease,
        onReassert: (from, to) => {
          this.reasserts?.inc({ group: ctx.group, provider: provider.name });
          this.deps.onReassert?.(ctx.group, from, to);
        },
      });
      log.info({ end }, 'floating IP: period ended');
    })().finally(() => {
      firstDone();
      if (this.tasks.get(ctx.group)?.ac === ac) this.tasks.delete(ctx.group);
    });
    this.tasks.set(ctx.group, { ac, first, done });
  }

  async release(ctx: ResourceContext): Promise<void> {
    this.stop(ctx.group);
  }

  /** Resolves when the group's first assignment has finished, its outcome reported (tests). */
  settled(group: string): Promise<void> {
    return this.tasks.get(group)?.first ?? Promise.resolve();
  }

  /** Resolves when the group's floating IP work, its period included, has ended (tests, shutdown). */
  ended(group: string): Promise<void> {
    return this.tasks.get(group)?.done ?? Promise.resolve();
  }

  async close(): Promise<void> {
    const all = [...this.tasks.values()];
    for (const t of all) t.ac.abort();
    await Promise.all(all.map((t) => t.done));
  }

  private stop(group: string): void {
    this.tasks.get(group)?.ac.abort();
    this.tasks.delete(group);
  }

  private provider(name: string, credentials: string): FloatingIpProvider {
    const key = `${name}/${credentials}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    const registry: Partial<Record<string, ProviderFactory>> = this.deps.providers ?? PROVIDERS;
    const factory = registry[name];
    if (!factory) throw new Error(`no cloud provider named ${name}`);
    const path = this.deps.config.credentials[credentials];
    if (!path)
      throw new Error(`credentials "${credentials}" (the ${name} API token) are not in the agent configuration`);
    const p = factory({
      cloud: this.deps.config.cloud,
      token: () => readTokenFile(path),
      requestTimeoutMs: this.deps.config.cloud.requestTimeoutMs,
      clock: this.deps.clock,
      fetch: this.deps.fetch ?? fetch,
    });
    this.cache.set(key, p);
    return p;
  }
}
